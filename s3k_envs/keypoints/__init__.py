"""S3K semantic 3D keypoints: datasets, model, losses, training, evaluation, prediction.

Modules (import the one you need; this package imports nothing heavy on its own):

* :mod:`s3k_envs.keypoints.data` — multi-view keypoint datasets: ``s3k generate``, the
  on-disk format, :class:`~s3k_envs.keypoints.data.KeypointDataset` and
  :func:`~s3k_envs.keypoints.data.load_arrays` (see ``docs/datasets.md``).
* ``model``, ``heatmaps``, ``losses``, ``train``, ``evaluate``, ``predictor`` — the S3K
  network, its multi-view losses, training and evaluation.
"""

from __future__ import annotations
