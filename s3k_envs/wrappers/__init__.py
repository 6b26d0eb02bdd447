"""Wrappers that turn pixels into keypoints, keypoints into rewards, and any MuJoCo env into a
calibrated multi-view env.

* :class:`FeatureObservation` (``features.py``): the base of the wrappers that replace the
  images and calibration by features computed from them.
* :class:`KeypointObservation` (``keypoints.py``): images + calibration -> 3D keypoints.
* :class:`DescriptorKeypointObservation` (``descriptor_keypoints.py``): the same output from
  label-free dense-descriptor keypoints (:mod:`s3k_envs.descriptors`).
* :class:`KeypointReward` (``rewards.py``): reward and success from keypoint distances.
* :class:`MultiViewCameras` (``multiview.py``): a randomized calibrated camera rig for any
  MuJoCo-based Gymnasium env.

Imported lazily so that ``import s3k_envs.wrappers`` does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DescriptorKeypointObservation": "s3k_envs.wrappers.descriptor_keypoints",
    "FeatureObservation": "s3k_envs.wrappers.features",
    "KeypointObservation": "s3k_envs.wrappers.keypoints",
    "KeypointReward": "s3k_envs.wrappers.rewards",
    "KeypointTerm": "s3k_envs.wrappers.rewards",
    "MultiViewCameras": "s3k_envs.wrappers.multiview",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 's3k_envs.wrappers' has no attribute {name!r}")
