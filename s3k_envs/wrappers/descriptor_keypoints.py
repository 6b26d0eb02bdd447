"""DescriptorKeypointObservation: label-free 3D keypoints from dense descriptors, with the
same observation as :class:`~s3k_envs.wrappers.keypoints.KeypointObservation`.

>>> env = DescriptorKeypointObservation(gym.make("S3K-BoxPush-v0"), "runs/desc/model.pt")
>>> obs, info = env.reset(seed=0)
>>> obs["keypoints"]             # (K, 3) float32, m, world frame (descriptor keypoints)
>>> obs["keypoint_confidence"]   # (K,) float32 in [0, 1], mean over cameras
>>> info["predicted_keypoints"], info["predicted_keypoints_2d"], info["predicted_confidence"]

Rewards, agents and planners that read ``keypoints`` + ``keypoint_confidence`` work
unchanged with either wrapper. The differences: the keypoints are the checkpoint's K
reference descriptors (``descriptor_0`` ...), not the env's named keypoints, so they are not
compared with ``env.keypoint_names``; and a descriptor network works with any number of
cameras (it runs per view), so only the image size must match the training images.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

from s3k_envs.descriptors.keypoints import DescriptorPredictor
from s3k_envs.wrappers.keypoints import KeypointObservation


class DescriptorKeypointObservation(KeypointObservation):
    """Replace the images and calibration of a multi-view env by descriptor keypoints.

    Args:
        env: a calibrated multi-view env (see :class:`KeypointObservation`).
        predictor: a :class:`~s3k_envs.descriptors.keypoints.DescriptorPredictor`, or the
            path of a descriptor checkpoint with reference descriptors (``s3k descriptors
            select``).
        num_keypoints: the K the caller expects (a checkpoint with another K is refused).
        **kwargs: ``keep``, ``confidence``, ``keep_images``, ``keypoint_bounds``,
            ``torch_threads`` as for :class:`KeypointObservation`.

    Raises:
        ValueError: the env has no calibrated images, or renders another image size than
            the descriptor network was trained on.
        DescriptorCheckpointError: the checkpoint has no references or another K.
    """

    def __init__(self, env: gym.Env, predictor: DescriptorPredictor | str | os.PathLike[str],
                 num_keypoints: int | None = None, **kwargs: Any) -> None:
        recorded: Any = predictor
        if isinstance(predictor, (str, os.PathLike)):
            recorded = os.fspath(predictor)
            predictor = DescriptorPredictor.load(predictor, num_keypoints=num_keypoints)
        elif not isinstance(predictor, DescriptorPredictor):
            raise TypeError(f"predictor: expected a DescriptorPredictor or a checkpoint path, "
                            f"got {type(predictor).__name__}")
        elif num_keypoints is not None and len(predictor.keypoint_names) != num_keypoints:
            raise ValueError(f"predictor has {len(predictor.keypoint_names)} keypoints, "
                             f"expected {num_keypoints}")
        super().__init__(env, predictor, **kwargs)
        # Re-creating the wrapper from env.spec loads the checkpoint path again.
        self._saved_kwargs = {**self._saved_kwargs, "predictor": recorded,
                              "num_keypoints": num_keypoints}

    def _check_model(self, who: str, c: int, h: int, w: int) -> None:
        mh, mw = self.predictor.image_size
        if (mh, mw) != (h, w):
            raise ValueError(
                f"the descriptor model was trained on {mh}x{mw} images, but {who} renders "
                f"{h}x{w}; make the env with image_size=({mh}, {mw}) or use a matching model")
