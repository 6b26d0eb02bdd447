"""RL on cable insertion: DDPG from demonstrations on S3K keypoints vs on beta-VAE features.

The S3K paper's headline experiment (§6, Fig. 7) on ``S3K-CableInsert-v0`` with one fixed,
calibrated camera rig for every episode (env option ``camera_seed``, like a robot cell).
Agents (:class:`agents.ddpgfd.DDPGfD`, SB3's TD3 + demonstrations, n-step returns, L2 and a
Q-filtered behaviour-cloning term), one per *arm*:

==========  ===========================================================================
arm         observation (flattened to a Box, ``gymnasium.spaces.flatten`` order)
==========  ===========================================================================
``kp``      the S3K model's predicted keypoints ``(3, 3)`` m
            (:class:`~s3k_envs.wrappers.keypoints.KeypointObservation`, the shipped
            checkpoint) + gripper pose and velocity: ``gripper_pos (3,)`` m,
            ``gripper_quat (4,)``, ``gripper_linvel (3,)`` m/s, ``gripper_angvel (3,)``
            rad/s -> 22 numbers
``vae``     the beta-VAE latent mean ``(10,)`` of the 4 views
            (:class:`~agents.beta_vae.observation.VAEObservation`, trained here on unlabelled
            frames of the same rig) + the same gripper pose and velocity -> 23 numbers
``gt``      (optional upper bound) the ground-truth keypoints ``(3, 3)`` m + gripper pose
            and velocity -> 22 numbers; privileged
==========  ===========================================================================

Reward and success. ``kp`` and ``vae`` get the *same* reward from the S3K model:
:func:`~s3k_envs.wrappers.rewards.cable_insert_reward` on the predicted keypoints
(``1 - tanh(D / 0.2 m)`` per step with ``D = |tip - socket| + |base - (socket + 1 cm z)|``,
+100 on success; leaving the safety box ends the episode and so forfeits the reward still to
come -- the env's reward, see ``s3k_envs/envs/cable.py``; results committed before this
change were measured with ``-D`` per step and ``-10`` on leaving), and an episode
succeeds -- and ends -- by the keypoint rule (distance < 2.5 cm on the predicted keypoints;
the env itself is made with ``terminate_on_success=False``). The ground-truth success
(``info["is_success_true"]``, the env's own rule on true keypoints) is
logged beside it: the two disagree both ways -- the rule fires a step or two late once the
plug is in the socket (see 1. below), and it can fire far from the socket when the
prediction fails (the smoke run saw a training episode of the ``vae`` arm end "inserted" by
the keypoint rule, predicted distance 1.7 cm, with a true insertion error of 47.5 cm), which an
agent may learn to exploit; compare the two columns. The ``gt`` arm gets the same rule on
the true keypoints (then both successes coincide and the reward equals the env's own).

Pipeline, every step cached under ``WORK = --work-dir/<profile>`` (default
``runs/cable_rl/<profile>``) and resumed when the command is rerun:

1. **Demonstrations**: ``--demos`` (default 51, the paper's count) successful episodes of
   :class:`s3k_envs.experts.CableInsertExpert` with images, on the fixed rig
   (:func:`s3k_envs.demos.run_episode` / ``save_demonstrations``, ``WORK/demos/cable.npz``).
   They are recorded on the env with ``terminate_on_success=False``, as the arms' envs are
   made, and go on ``--demo-extra-steps`` (6) control steps after the first true success
   (:class:`ContinueAfterSuccess`): with the shipped checkpoint the predicted ``plug_tip`` is
   8-21 mm off once the tip is inside the socket (measured on 10 expert episodes, fixed and
   random rigs), so at the first true success (true insertion error ~2.0 cm) the predicted
   error is still 2.8-3.7 cm and the keypoint rule fires only ~2 steps later, deeper in the
   socket; demonstrations that stopped at the true success would never show the ``kp`` /
   ``vae`` agents a success. Converted per arm with
   :func:`agents.ddpgfd.episodes_from_recording` (``kp``: the arm's ``KeypointObservation``
   observation of the recorded images; ``vae``: that observation passed through the arm's
   ``VAEObservation``, exactly the env's stack; ``gt``: the recorded true keypoints). The
   rewards are **recomputed** with the arm's own ``KeypointReward`` on the same keypoints the
   arm's env uses (predicted for ``kp``/``vae``; the safety-box flag is recomputed from the
   recorded gripper position and socket), and an episode is cut where that keypoint rule
   first succeeds (terminated there, as the arm's env would end it); when the rule never
   fires the last step is marked truncated (the recording stopped, bootstrap). Cached as
   ``WORK/demos/<arm>.npz``; the counts (and how many steps after the true success each
   arm's rule fired) go into the summary.
2. **beta-VAE**: unlabelled frames of the same rig along the expert's path
   (``s3k_envs.keypoints.data.generate_dataset``, ``rollout_steps`` / ``rollout_noise`` as the
   shipped cable checkpoint's data: 25 / 0.2; the env made with
   ``terminate_on_success=False`` like the arms' envs), ``WORK/vae_frames``; training with
   :func:`agents.beta_vae.training.train_vae` for a CPU-time budget (``WORK/vae``,
   resumable), unless
   ``--vae-checkpoint`` is given; a linear probe (latent mean -> true keypoints, mm,
   :func:`agents.beta_vae.probe.linear_probe`) on a separate labelled set of the same rig
   (``WORK/probe_frames``), next to the S3K keypoint model's error on the same test samples.
3. **Training**: ``DDPGfD`` per arm and seed for ``--steps`` env steps
   (``WORK/runs/<arm>/seed_<s>/``): every finished training episode goes to
   ``episodes.csv`` (env steps so far, success by the keypoint rule, true success, return,
   ...), TensorBoard events to ``tb/`` (SB3's ``tensorboard_log``; ``rollout/success_rate``
   is the keypoint rule, ``rollout/success_true`` the ground truth). A checkpoint (model,
   replay buffer, episode log) is written atomically at the first episode end after every
   ``--checkpoint-every`` steps; an interrupted run resumes from it (the random streams are
   re-seeded then, so a resumed run is not bit-identical to an uninterrupted one).
4. **Evaluation**: the final deterministic policy on ``--eval-episodes`` held-out env seeds
   (``EVAL_SEED_BASE + i``; demonstrations use seeds from ``--demo-seed``, training resets
   start from ``TRAIN_SEED_BASE + 1000 * seed``), ``eval.csv``; then ``result.json`` marks the
   run done. A rerun skips finished (arm, seed) runs, resumes an interrupted one from its
   checkpoint, and refuses (with the reason) to reuse a run made with other settings.

Outputs (atomic) in ``--out`` (default ``benchmarks/results/`` for ``--quick`` / ``--full``,
``WORK`` for ``--smoke``), stem ``cable_rl`` (``--full``) or ``cable_rl_<profile>``:

* ``<stem>.csv``: one row per arm: evaluation success rates (keypoint rule and true) as mean,
  sd, min and max over seeds; the final training success (rolling average over the last
  ``--window`` steps) mean / min / max over seeds; the representation's keypoint error
  (``kp``: the S3K model, ``vae``: the linear probe, mm);
* ``<stem>.json``: the same plus the configuration, machine info and command, stage timings,
  demonstration conversion counts, the VAE training summary, the probe, every run's result;
* ``<stem>_episodes.csv`` (every training episode of every run) and ``<stem>_eval.csv``
  (every evaluation episode);
* ``<stem>.png``: success rate vs env steps like the paper's Fig. 7 (rolling average over
  ``--window`` steps, mean over seeds with a min-max band; left the keypoint rule, right the
  ground truth), final evaluation at the right edge.

Profiles (one is required; every value can be overridden, see ``--help``):

=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========
profile    demos   VAE    probe   VAE     VAE px /   seeds   steps  eval   window
                   frames frames  budget  arch                      eps.
=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========
smoke      2       20     8       10 st.  32 / tiny  1       100    1      50
quick      51      600    60      10 min  64 / def.  2       2000   10     500
full       51      2000   300     30 min  64 / def.  5       40000  50     2000
=========  ======  =====  ======  ======  =========  ======  =====  =====  ==========

(VAE budget in CPU minutes of this process, ``clock="cpu"``; "def." = the
:class:`~agents.beta_vae.training.VAETrainConfig` defaults.) Every profile uses the same DDPGfD
settings: the module defaults of :class:`~agents.ddpgfd.DDPGfD` (demo fraction 0.25,
5-step returns, BC weight 1 with the Q-filter, L2 1e-5, lr 1e-3, batch 256, gamma 0.99),
MLPs of 256 x 256, Gaussian exploration noise 0.1, all stored transitions kept. Both arms run
at 128 px (the shipped keypoint checkpoint was trained at 128 px; the VAE resizes the views
to its own size); the ``gt`` arm renders 32 px images it never looks at.

Wall time on the project's 2-core CPU machine (1 torch thread). Measured ``--quick --arms kp
vae gt`` (2026-11-22, the machine shared with four other benchmarks, so each process got
about half a core): **53.5 min** -- demonstrations 26 s, VAE + probe datasets 172 s, VAE
10 CPU-min = 18.5 min wall, conversion 69 s, 6 runs x 2,000 steps + evaluation 30.5 min at
5.8-8.3 agent steps/s. On idle cores the agent steps (env step + S3K inference + VAE encoder
+ one DDPGfD update of batch 256) run at ~15 / s (``kp``, ``vae``) and ~25 / s (``gt``, no
inference, 32 px), so ``--quick`` should take ~25 min there (VAE 10 min, runs ~11 min).
``--full`` ~7.5 h for ``kp`` + ``vae`` (10 runs x 40,000 steps, evaluation ~12 min, VAE 30
CPU-min, 2,300 dataset samples ~8 min), ~9.5 h with ``gt`` (5 more runs at ~25 steps/s). Not
run yet: the quick profile's 2,000 steps are far too few for DDPGfD to learn this task (0 %
for every arm, also on true keypoints; see ``benchmarks/cable_rl_ablation.py`` and
``benchmarks/cable_bc.py``). The JSON records the measured stage timings of every run.

Modules: :mod:`~benchmarks.cable_rl.config` (constants, profiles, :class:`Config`, helpers),
:mod:`~benchmarks.cable_rl.envs` (the arms' envs), :mod:`~benchmarks.cable_rl.stages`
(demonstrations, beta-VAE, conversion), :mod:`~benchmarks.cable_rl.training` (DDPGfD runs,
evaluation), :mod:`~benchmarks.cable_rl.report` (summary, figure, table),
:mod:`~benchmarks.cable_rl.cli` (the pipeline and its command line).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rl --quick [--arms kp vae gt]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --full [--seeds 0 1 2 3 4] [--steps 40000]
        [--work-dir runs/cable_rl] [--out benchmarks/results] [--vae-checkpoint PATH]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --smoke --work-dir /tmp/cable_rl  # ~0.5 min
"""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
