"""S3K semantic 3D keypoints: datasets, model, losses, training, evaluation, prediction.

Modules (import the one you need; this package imports nothing heavy on its own):

* :mod:`s3k_envs.keypoints.data` — ``s3k generate``: generating a multi-view keypoint
  dataset (see ``docs/datasets.md``); :mod:`s3k_envs.keypoints.sampling` — what one sample
  is (seeds, parameters, the sample generator); :mod:`s3k_envs.keypoints.dataset` — the
  on-disk format, its checks, :class:`~s3k_envs.keypoints.dataset.KeypointDataset` and
  :func:`~s3k_envs.keypoints.dataset.load_arrays`.
* ``model``, ``heatmaps``, ``losses``, ``train``, ``evaluate``, ``predictor`` — the S3K
  network, its multi-view losses, training and evaluation.
"""

from __future__ import annotations
