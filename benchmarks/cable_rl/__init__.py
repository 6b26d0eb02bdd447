"""RL on cable insertion from demonstrations: S3K keypoints vs beta-VAE features vs true keypoints.

The S3K paper's headline experiment (§6, Fig. 7) on ``S3K-CableInsert-v0`` with one fixed,
calibrated camera rig for every episode (env option ``camera_seed``, like a robot cell).
Two learners (``--agent``):

* ``rlpd`` (default): :class:`agents.rlpd.RLPD` (SAC + symmetric demo / online batches +
  LayerNorm critic ensemble + UTD 4 + observation normalisation) with the best configuration
  of ``benchmarks/cable_rlpd.py`` on true keypoints (there held-out 14/20 and 16/20 after
  10,000 steps, seeds 0 and 1): socket-relative positions, the plug's motion since the
  previous step and the time left in the observation, no entropy term in the critic target,
  the 40-step time limit stored as terminal (``bootstrap_truncation=False``), initial
  temperature 0.01. Its observation is built on each arm's ``Dict`` observation below (the
  same wrappers, so ``kp`` and ``vae`` see exactly what DDPGfD's arms see), by
  :func:`~benchmarks.cable_rl.rlpd_training.arm_features`: ``kp`` / ``gt``:
  :func:`benchmarks.cable_rlpd.state_vector` of the arm's keypoints (``tip - socket``,
  ``base - socket``, ``gripper - socket`` relative to the *predicted* socket for ``kp``,
  gripper quaternion and velocities, plug keypoint motion since the previous step, time
  left: 26 numbers); ``vae``: latent, gripper pose and velocity, latent change since the
  previous step, time left (34 numbers). The demonstrations (step 3 below) go through the
  same function (a test replays a demonstration's actions in the wrapped env and compares
  every observation). Runs in ``WORK/runs/rlpd/<arm>/seed_<s>/``, results stem
  ``cable_rl_rlpd_<profile>``; checkpoints hold the agent, its replay buffer and random-stream
  states (``.npz``, no pickle) and the episode log (see
  :mod:`~benchmarks.cable_rl.rlpd_training`).
* ``ddpgfd``: :class:`agents.ddpgfd.DDPGfD` (the paper's agent: SB3's TD3 + demonstrations,
  n-step returns, L2 and a Q-filtered behaviour-cloning term) on the flattened ``Dict``
  observation. Its run directories (``WORK/runs/<arm>/seed_<s>/``), stems (``cable_rl``,
  ``cable_rl_<profile>``), settings and committed results are those from before RLPD
  existed; it does not learn this task within the quick profile (below).

One agent per *arm*:

==========  ===========================================================================
arm         ``Dict`` observation (DDPGfD: flattened, ``gymnasium.spaces.flatten``)
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
3. **Training**: the agent per arm and seed for ``--steps`` env steps
   (``WORK/runs/[rlpd/]<arm>/seed_<s>/``): every finished training episode goes to
   ``episodes.csv`` (env steps so far, success by the keypoint rule, true success, return,
   ...), for DDPGfD TensorBoard events to ``tb/`` (SB3's ``tensorboard_log``;
   ``rollout/success_rate`` is the keypoint rule, ``rollout/success_true`` the ground truth).
   A checkpoint (model, replay buffer, episode log) is written atomically at the first
   episode end after every
   ``--checkpoint-every`` steps; an interrupted run resumes from it (the random streams are
   re-seeded then, so a resumed run is not bit-identical to an uninterrupted one).
4. **Evaluation**: the final deterministic policy on ``--eval-episodes`` held-out env seeds
   (``EVAL_SEED_BASE + i``; demonstrations use seeds from ``--demo-seed``, training resets
   start from ``TRAIN_SEED_BASE + 1000 * seed``), ``eval.csv``; then ``result.json`` marks the
   run done. A rerun skips finished (arm, seed) runs, resumes an interrupted one from its
   checkpoint, and refuses (with the reason) to reuse a run made with other settings.
   ``--aggregate-only`` trains nothing: it writes the outputs from the finished runs (per
   arm, the seeds that have finished; the JSON's ``missing_runs`` names the rest, and arms
   with no finished run are left out, so no VAE is trained for them).

Outputs (atomic) in ``--out`` (default ``benchmarks/results/`` for ``--quick`` / ``--full``,
``WORK`` for ``--smoke``), stem ``cable_rl_rlpd_<profile>`` (RLPD), ``cable_rl`` (DDPGfD
``--full``) or ``cable_rl_<profile>`` (DDPGfD), ``_<tag>`` appended with ``--tag``:

* ``<stem>.csv``: one row per arm: evaluation success rates (keypoint rule and true) as mean,
  sd, min and max over seeds; the final training success (rolling average over the last
  ``--window`` steps) mean / min / max over seeds; the representation's keypoint error
  (``kp``: the S3K model, ``vae``: the linear probe, mm); the env steps at which each seed's
  rolling true success first reaches 0.5 and 0.8 (first episode end with a full window
  behind it; mean / min / max over the seeds that got there, and how many did);
* ``<stem>.json``: the same plus the configuration, machine info and command, stage timings,
  demonstration conversion counts, the VAE training summary, the probe, every run's result;
* ``<stem>_episodes.csv`` (every training episode of every run) and ``<stem>_eval.csv``
  (every evaluation episode);
* ``<stem>.png``: success rate vs env steps like the paper's Fig. 7 (rolling average over
  ``--window`` steps, mean over seeds with a min-max band; left the keypoint rule, right the
  ground truth), final evaluation at the right edge.

Profiles (one is required; every value can be overridden, see ``--help``):

=========  ======  =====  ======  ======  =========  ======  ===========  =====  ==========
profile    demos   VAE    probe   VAE     VAE px /   seeds   steps        eval   window
                   frames frames  budget  arch               RLPD/DDPGfD  eps.
=========  ======  =====  ======  ======  =========  ======  ===========  =====  ==========
smoke      2       20     8       10 st.  32 / tiny  1       100 / 100    1      50
quick      51      600    60      10 min  64 / def.  2       3000 / 2000  10     500
full       51      2000   300     30 min  64 / def.  5       40000        50     2000
=========  ======  =====  ======  ======  =========  ======  ===========  =====  ==========

(VAE budget in CPU minutes of this process, ``clock="cpu"``; "def." = the
:class:`~agents.beta_vae.training.VAETrainConfig` defaults. The demonstrations, datasets and
VAE are the same for both agents and shared through the work directory.) RLPD checkpoints
every 500 (quick) / 2,000 (full) steps and uses
:class:`~benchmarks.cable_rl.config.RLPDParams` (UTD 4, 2 critics, batch 256, 256 x 256,
initial temperature 0.01; ``--utd``, ``--critics``, ``--init-temperature``), in ``smoke``
with 32 x 32 networks and batch 16 so that the test updates. Every profile uses the same
DDPGfD settings: the module defaults of :class:`~agents.ddpgfd.DDPGfD` (demo fraction 0.25,
5-step returns, BC weight 1 with the Q-filter, L2 1e-5, lr 1e-3, batch 256, gamma 0.99),
MLPs of 256 x 256, Gaussian exploration noise 0.1, all stored transitions kept. Both arms
run at 128 px (the shipped keypoint checkpoint was trained at 128 px; the VAE resizes the
views to its own size); the ``gt`` arm renders 32 px images it never looks at.

RLPD wall time (1 torch thread): measured 400-step runs (``--quick --arms kp gt --seeds 0
--steps 400``, 2026-12-05, the 2-core machine shared with six other processes, load average
6-9): ``kp`` 15.2 and ``gt`` 18.0 agent steps per CPU-second of the process (env step with
rendering + S3K inference for ``kp`` + one RLPD round of 4 critic updates), i.e. 4.8 and 6.6
steps/s of wall time under that load; demonstrations 25 s, conversion of ``kp`` and ``gt``
19 s. ``vae`` was not measured (``kp``'s cost plus the VAE encoder). So ``--quick --arms kp
vae gt`` should take on idle cores about 20 min of runs in one process (6 runs x 3,000
steps at ~13-18 steps/s; ~10 min with ``--ray`` on 2 cores) plus ~14 min of VAE stage
(datasets + 10 CPU-min of training, below) -- about 35 min (25 with ``--ray``); with ``--arms
kp gt`` the VAE stage is skipped (~12 min). ``--full`` (15 runs x 40,000 steps) ~11 CPU-hours
at these rates (``vae`` assumed ~13 steps/s), split over the cores with ``--ray``.

DDPGfD wall time on the project's 2-core CPU machine (1 torch thread). Measured ``--quick
--arms kp vae gt`` (2026-11-22, the machine shared with four other benchmarks, so each process got
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
evaluation), :mod:`~benchmarks.cable_rl.rlpd_training` (RLPD observation, demonstrations and
runs), :mod:`~benchmarks.cable_rl.report` (summary, figure, table),
:mod:`~benchmarks.cable_rl.cli` (the pipeline and its command line).

Usage::

    MUJOCO_GL=egl python -m benchmarks.cable_rl --quick [--arms kp vae gt] [--agent ddpgfd]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --full [--seeds 0 1 2 3 4] [--steps 40000]
        [--work-dir runs/cable_rl] [--out benchmarks/results] [--vae-checkpoint PATH]
    MUJOCO_GL=egl python -m benchmarks.cable_rl --smoke --work-dir /tmp/cable_rl  # ~0.5 min
    MUJOCO_GL=egl python -m benchmarks.cable_rl --full --arms kp vae gt --aggregate-only
"""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
