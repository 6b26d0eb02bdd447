"""The beta-VAE baseline of the S3K paper (§6): all C camera views of a frame in one latent.

The paper compares its keypoint agent with "an equivalent agent with a beta-VAE as the vision
model. It embedded all 4 camera views into a single 10 dimensional latent embedding. Both
models were trained on the same unlabelled data". This module is that baseline:

* :class:`BetaVAE`: every view (resized to ``S x S``, default 64 px) goes through the same
  strided-conv encoder; the C per-view feature vectors are concatenated and an MLP gives the
  mean and log-variance of one ``D``-dimensional Gaussian posterior (default ``D = 10``).
  The decoder maps ``z`` through an MLP and one linear head per camera to a small feature map
  per view, then through a shared transposed-conv stack to the C images. The likelihood is
  Gaussian with a fixed standard deviation (default 0.1 of the intensity range) or
  Bernoulli, summed over every pixel, colour channel and view; the loss is
  ``recon + beta KL`` or, with capacity annealing (Burgess et al. 2018),
  ``recon + beta |KL - C(t)|`` with ``C`` ramped from 0 to ``capacity`` nats.
* :func:`train_vae`: trains on the images of one or more ``s3k generate`` dataset
  directories (labels unused), with atomic checkpoints every ``checkpoint_every`` steps, resume
  after interruption, a CSV log (+ TensorBoard), a time budget in wall or CPU seconds, and a
  PNG of input views vs reconstructions at the end.
* :func:`linear_probe`: how much of the true 3D keypoint positions is *linearly* readable from
  the latent mean: ridge regression (penalty chosen by leave-one-out) on a train split of
  labelled samples, 3D error in mm on a test split, next to the error of an S3K keypoint model
  on the same test samples when one is given.
* :class:`VAEObservation`: a wrapper that replaces the images (and calibration) of a
  multi-view env by the latent mean of a frozen encoder, like
  :class:`s3k_envs.wrappers.KeypointObservation`.

Modules: :mod:`~agents.beta_vae.model` (config, network, loss, checkpoints),
:mod:`~agents.beta_vae.frames` (dataset frames, evaluation, reconstruction grids),
:mod:`~agents.beta_vae.training` (:func:`~agents.beta_vae.training.train_vae`),
:mod:`~agents.beta_vae.probe` (:func:`~agents.beta_vae.probe.linear_probe`),
:mod:`~agents.beta_vae.observation` (:class:`~agents.beta_vae.observation.VAEObservation`),
:mod:`~agents.beta_vae.cli` (the command line).

Usage::

    python -m agents.beta_vae train --data DIR [DIR ...] --out RUN [--minutes M --clock cpu]
        [--beta 1] [--capacity NATS] [--image-size 64] [--batch 32] [--lr 1e-3] [--seed 0]
    python -m agents.beta_vae probe RUN/model.pt --labelled DIR [DIR ...] [--test DIR]
        [--keypoint-model CKPT] [--out RUN/probe.json]
    python -m agents.beta_vae recon RUN/model.pt --data DIR --out RUN/recon.png [--samples 4]

Outputs of ``train`` in ``RUN/``: ``model.pt`` (latest weights), ``best.pt`` (lowest
validation loss, when a validation split exists), ``train_state.pt`` (weights + optimizer +
step + RNG states; rerunning the same command resumes from it), ``log.csv``,
``train_config.json``, ``summary.json``, ``recon.png`` and ``tb/`` (TensorBoard events, when
``tensorboard`` is installed).

Why these defaults give the baseline a fair chance (measured on the 600 cable frames of
``runs/ckpt/cable/train``, 4 views resized to 64 px): the frames differ little pixel by pixel
(intensity std over frames 0.053), so under a **Bernoulli** likelihood everything beyond the
mean image is worth only ~390 nats per frame (binary-entropy floor 32,526 nats, mean image
32,919) and ``beta = 1`` runs collapsed within 30 steps (all latents at the prior, KL 0.007
nats after 200 steps, with or without a KL warm-up). Under a **Gaussian** likelihood with
``sigma = 0.1`` the same variation is worth ~6,900 nats per frame, and with ``beta = 1``
(reached after a 10 % warm-up) the latents became informative after ~250 steps of 16 frames
(KL 9 nats and rising). Both terms are sums over the ``4 x 64 x 64 x 3 = 49152`` intensities
of a frame. The per-dimension KL is logged (``kl_0 ..``), with the number of dimensions above
:data:`ACTIVE_KL_NATS` (``active_units``); validation also counts the dimensions whose mean
varies over frames (``val_active_units``, Burda et al.'s test, which a narrow but
uninformative posterior cannot pass). ``--capacity`` switches to capacity annealing.
"""
