"""MPC with learned dynamics on S3K-BoxPush-v0 from four state sources ("Keypoints into the
Future", issue 13 step 4): true keypoints, S3K keypoints, label-free descriptor keypoints and
a beta-VAE latent, in the same env, from the same transitions, with the same planner.

1. **Data** (cached): ``--episodes`` episodes of ``--steps`` control steps with noisy-expert
   and random pushes (each step, with probability ``--random-prob`` a random planar action
   held for 2-4 steps, otherwise :class:`~s3k_envs.experts.BoxPushExpert`'s action plus
   Gaussian noise of std ``--noise``; reset seeds ``--data-seed + i``). One pass records the
   actions and every requested method's states (images are rendered only when an image
   method's states are missing; rendering does not change the physics, so every method sees
   the same transitions). Action = ``a[0], a[1]`` (pusher x, y velocity).
2. **States and goals** (:mod:`benchmarks.push_mpc.sources`), all with the pusher position
   ``obs["gripper_pos"]`` as one more row / 3 more entries:

   * ``true``: the 3 true box corners ``(4, 3)`` m; goal = ``obs["goal_keypoints"]``.
   * ``s3k``: the 3 corners predicted by the shipped Box model (``S3K-Box-v0.pt``, what
     ``gym.make("S3K-BoxPush-v0", obs_mode="keypoints")`` uses), ``(4, 3)`` m.
   * ``descriptor``: the K = 5 descriptor keypoints of ``S3K-BoxPush-descriptors-v0.pt``
     (no labels; trained with the commands of docs/keypoints-into-the-future.md), ``(6, 3)`` m.
   * ``vae``: the latent mean (D = 10) of the suite's beta-VAE (:mod:`agents.beta_vae`, the
     cable benchmark's baseline) trained here on the collected frames (4 views at 64 px,
     ``--vae-steps`` steps of 32 frames), ``(13,)`` flat.

   The goal of ``s3k``, ``descriptor`` and ``vae`` is **their own model's output on the env's
   goal images** (``goal_images=True``: the 4 views of the box at its goal pose, pusher
   hidden), not the privileged ``goal_keypoints``: a method that only sees images gets its
   goal as an image, as in the paper, and a bias of the model (e.g. a keypoint consistently
   2 mm off) then cancels between state and goal instead of being charged as a goal error.
   For the descriptor keypoints there is no other choice anyway: they are not the corners.
3. **Dynamics** per method and seed (cached): :class:`~agents.dynamics.KeypointDynamics`
   (H = 2, residual MLP 2 x 256) on that method's states of the shared transitions,
   ``--train-steps`` Adam steps (batch 256, 5-step rollout loss), initial weights and batch
   order from the seed.
4. **Evaluation** on ``--eval-episodes`` goal episodes (``goal_mode="pushes"``: the goal is
   where 1-3 simulated random pushes leave the box; reset seeds 10000 + i, never used for
   data), each run for its full ``--eval-steps`` (default the env's time limit: BoxPush 60,
   ShoePush 80 steps; no stop on success): MPPI
   (:class:`~agents.mpc.MPPIPlanner`, replanning every step, 256 samples x 10 steps, random
   shooting + 3 MPPI rounds, planner noise from the seed and the episode). Cost: terminal +
   0.1 x running **mean keypoint distance** of the object rows to the method's goal
   keypoints, + ``--reach-cost`` x the mean pusher-to-keypoint-centroid distance (a
   tie-breaker for plans that do not touch the box yet, not in the paper); for ``vae`` the
   **Euclidean latent distance** to the goal latent and no tie-breaker (its state has no box
   position). The privileged expert and uniformly random actions are the baselines. The
   metric is the same for all: the TRUE final box position (cm) and angle (deg) error,
   success at the end (2 cm and 10 deg), planning ms per control step (and perception ms:
   the keypoint / latent inference per step, images to state).
5. **Seeds** ``--seeds 0,1,...`` (dynamics initialisation and batch order, planner noise; the
   data, the descriptor model and the VAE are shared): the JSON summary gives per method the
   per-seed statistics and their mean and std over seeds; the PNG shows bars (mean over
   seeds) with one point per seed.

Everything expensive is cached under ``--cache`` (default ``runs/push_mpc/``): the data per
method, the VAE's frames and model, each dynamics model, and the evaluated episodes, one JSON
line appended (and fsynced) per episode, so an interrupted run resumes where it stopped and
a rerun with more goals or another seed only computes what is new.

``--quick``: 150 data episodes x 30 steps, 3,000 dynamics steps, a 600-step beta-VAE,
20 goals, seeds 0 and 1. Measured on this 2-core machine with 1 thread while other jobs kept
it at a load of 6-11: seed 0 with everything shared (data 5 min, VAE 6.5 min, 4 dynamics
models 1.3-1.6 min each, 20 goals per method 2-4 min, baselines) 25 min; seed 1 on top
(cached data and VAE) 12 min more, 6 min of them the process's own CPU time
(``cpu_seconds`` in the result file).
``--full`` (the default): 600 episodes, 20,000 steps, a 6,000-step VAE, 100 goals, seeds
0,1,2: 1.6 h wall here as two processes sharing the cache (``--methods true,s3k,descriptor``
and ``--methods vae``) with another job running (data 6 min, VAE 21 min, each (method, seed)
unit 6-8 min), then one cached call with all methods to write the combined result.
Results: ``benchmarks/results/push_mpc_<tag>.{csv,json,png}``.

**Variants** (:mod:`benchmarks.push_mpc.variants`; they change only the evaluation scene or
what perception sees, result stems ``push_mpc_<tag>_<variant>``): ``--cameras top|low`` (the
image methods triangulate from the 2 most / least top-down views; data and dynamics are the
base run's; no beta-VAE: it embeds 4 views), ``--occluder`` (cards without collision in front
of 2 cameras, in the current and goal views), ``--env S3K-ShoePush-v0 --instances test``
(data on the training shoes, goals on the held-out shoes; S3K arm: the shipped Shoes model;
descriptor arm: ``--descriptor-checkpoint`` or a shoe checkpoint trained under the cache).
Only the image methods are evaluated again for ``--cameras`` / ``--occluder``: the true arm
and the baselines do not read images, and their cached rows are reused.

``--device`` (default ``cpu``; ``auto`` = cuda, then mps, then cpu): where the dynamics
train and the planner samples and rolls out (perception stays on the CPU; a cached model is
reused whichever device trained it, its stats say where). ``--ray [ADDRESS]``
(:mod:`benchmarks.push_mpc.ray_tasks`): every (method, seed) unit -- dynamics training and
goal episodes -- and every baseline is a Ray task writing the same cache files as the local
runner, so results are the same rows and an interrupted cluster run resumes from the cache
(which must then be on a file system every node sees); data and VAE stay on the driver.

    MUJOCO_GL=egl python -m benchmarks.push_mpc --quick [--methods true,s3k,descriptor,vae]
    MUJOCO_GL=egl python -m benchmarks.push_mpc --full --device auto --ray auto
"""

from __future__ import annotations

from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the result document."""
    from benchmarks.push_mpc.run import main as run_main

    return run_main(argv, doc=(__doc__ or "").split("\n\n")[0])
