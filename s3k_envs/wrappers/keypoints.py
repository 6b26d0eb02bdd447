"""KeypointObservation: turn the C calibrated camera images of an env into 3D keypoints.

>>> ckpt = "assets/checkpoints/S3K-CableInsert-v0.pt"
>>> env = KeypointObservation(gym.make("S3K-CableInsert-v0"), ckpt)
>>> obs, info = env.reset(seed=0)
>>> obs["keypoints"]             # (K, 3) float32, m, world frame (predicted)
>>> obs["keypoint_confidence"]   # (K,) float32 in [0, 1], mean over cameras
>>> obs["gripper_pos"]           # the env's other observations are kept
>>> info["predicted_keypoints"], info["predicted_keypoints_2d"], info["predicted_confidence"]
>>> info["keypoints"]            # the env's ground truth stays in info

The same thing in one line: ``gymnasium.make("S3K-CableInsert-v0", obs_mode="keypoints")``
(the shipped checkpoint, see :mod:`s3k_envs.checkpoints`).

Every ``reset`` and ``step`` runs the S3K model once on all C views of the frame (one batch)
and triangulates the keypoints with the Appendix-B confidence weights
(:class:`~s3k_envs.keypoints.predictor.KeypointPredictor`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from s3k_envs.keypoints.predictor import KeypointPredictor, Prediction
from s3k_envs.wrappers.features import FeatureObservation

#: Margin (m) added on every side of an env's ``gripper_bounds`` for the keypoint bounds.
WORKSPACE_MARGIN = 1.0
#: Keypoint bounds (m, every coordinate) when the env declares no workspace.
DEFAULT_BOUND = 10.0


def keypoint_bounds_for(env: gym.Env, margin: float = WORKSPACE_MARGIN
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Default bounds of the keypoint observation.

    Args:
        env: the wrapped env.
        margin: m added on every side of the env's workspace.

    Returns:
        ``(low, high)``, each ``(3,)`` float64 m: the env's ``gripper_bounds`` (the box the
        gripper is kept in, as every S3K env declares it) grown by ``margin``, or
        ``±DEFAULT_BOUND`` when the env declares no workspace.
    """
    bounds = getattr(env.unwrapped, "gripper_bounds", None)
    try:
        arr = np.asarray(bounds, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (2, 3) or not np.all(np.isfinite(arr)):
        return np.full(3, -DEFAULT_BOUND), np.full(3, DEFAULT_BOUND)
    return arr[0] - margin, arr[1] + margin


class KeypointObservation(FeatureObservation, gym.utils.RecordConstructorArgs):
    """Replace the images and calibration of a multi-view env by S3K 3D keypoints
    (a :class:`~s3k_envs.wrappers.features.FeatureObservation`).

    Args:
        env: an env whose observation is a ``Dict`` with ``images (C, H, W, 3)`` uint8,
            ``intrinsics (C, 3, 3)`` and ``extrinsics (C, 4, 4)`` (every S3K env, or any
            MuJoCo env wrapped in :class:`s3k_envs.wrappers.MultiViewCameras`).
        predictor: a :class:`~s3k_envs.keypoints.predictor.KeypointPredictor`, or the path of a
            checkpoint written by ``s3k train`` (loaded on ``device``). Passing a path keeps
            the wrapper cheap to re-create from ``env.spec`` and in vector-env workers.
        keep: names of the env's other observation keys to keep; default all keys except
            the images and calibration (``gripper_pos``, ``gripper_quat``, ...).
        confidence: also observe ``keypoint_confidence`` ``(K,)``.
        keep_images: also keep ``images`` (for rendering or videos of the observations).
        keypoint_bounds: ``(low, high)`` of the keypoint observation, each a number or
            ``(3,)``, m; default :func:`keypoint_bounds_for` (the env's ``gripper_bounds``
            grown by 1 m, else ±10 m). Predictions are clipped into them.
        device: torch device of the model when ``predictor`` is a path.
        torch_threads: if given, every prediction runs with this many torch threads and the
            caller's thread count is restored afterwards (the wrapper never changes it); 1 is
            usually best in vector-env worker processes.

    Observation (``spaces.Dict``): the kept keys unchanged, plus
        ``keypoints`` ``(K, 3)`` float32, m, world frame: the triangulated prediction, NaN/inf
        replaced and clipped into ``keypoint_bounds``;
        ``keypoint_confidence`` ``(K,)`` float32 in [0, 1] (with ``confidence=True``): the
        mean over the C cameras of the per-camera Appendix-B weights (about 0.05 for a flat
        heatmap, 0.95 for a sharp one).

    Info (reset and step), besides the env's own (ground truth ``keypoints`` etc.):
        ``predicted_keypoints`` ``(K, 3)`` float32 m, the raw triangulated prediction;
        ``predicted_keypoints_2d`` ``(C, K, 2)`` float32 px (u = column, v = row);
        ``predicted_confidence`` ``(C, K)`` float32 per-camera weights.

    Vector envs: ``SyncVectorEnv`` / SB3's ``DummyVecEnv`` need nothing special. For
    ``AsyncVectorEnv`` / ``SubprocVecEnv`` build the wrapper inside the env function (a
    checkpoint path, or a predictor captured by the function: it pickles), pass
    ``torch_threads=1``, and use the ``"forkserver"`` or ``"spawn"`` context when the parent
    process has already rendered: Mesa's llvmpipe threads do not survive ``fork`` and a forked
    worker hangs in its first render. On a small shared CPU, one torch thread is also much
    faster than several (4 views at 64 px: 10 ms with 1 thread, 250 ms with 2 on 2 busy cores).

    Raises:
        ValueError: the env has no calibrated images (the message points to
            ``MultiViewCameras``), or the model was trained for other keypoint names, another
            camera count or another image size than the env has; or ``keep`` names keys the
            env does not observe.
    """

    FEATURE_KEYS: ClassVar[tuple[str, ...]] = ("keypoints", "keypoint_confidence")

    def __init__(
        self,
        env: gym.Env,
        predictor: KeypointPredictor | str | os.PathLike[str],
        keep: Sequence[str] | None = None,
        confidence: bool = True,
        keep_images: bool = False,
        keypoint_bounds: tuple[Any, Any] | None = None,
        device: str = "cpu",
        torch_threads: int | None = None,
    ) -> None:
        recorded = os.fspath(predictor) if isinstance(predictor, (str, os.PathLike)) else predictor
        gym.utils.RecordConstructorArgs.__init__(
            self, _disable_deepcopy=True, predictor=recorded,
            keep=None if keep is None else list(keep), confidence=confidence,
            keep_images=keep_images, keypoint_bounds=keypoint_bounds, device=device,
            torch_threads=torch_threads)
        FeatureObservation.__init__(self, env)
        if torch_threads is not None and (isinstance(torch_threads, bool)
                                          or int(torch_threads) < 1):
            raise ValueError(f"torch_threads: expected an int >= 1 or None, got "
                             f"{torch_threads!r}")
        self.torch_threads = None if torch_threads is None else int(torch_threads)
        if isinstance(predictor, (str, os.PathLike)):
            predictor = KeypointPredictor.load(predictor, device=device)
        elif not callable(getattr(predictor, "predict", None)):
            raise TypeError(f"predictor: expected a KeypointPredictor or a checkpoint path, got "
                            f"{type(predictor).__name__}")
        self.predictor: KeypointPredictor = predictor
        #: Names of the observed keypoints, in the order of ``obs["keypoints"]``.
        self.keypoint_names: list[str] = list(predictor.keypoint_names)
        self._check_model(self.env_name, *self.camera_shape)
        self.confidence = bool(confidence)

        low, high = keypoint_bounds if keypoint_bounds is not None else keypoint_bounds_for(env)
        low = np.broadcast_to(np.asarray(low, dtype=np.float64), (3,))
        high = np.broadcast_to(np.asarray(high, dtype=np.float64), (3,))
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(f"keypoint_bounds: expected finite low < high (m), got "
                             f"{keypoint_bounds!r}")
        k = len(self.keypoint_names)
        self._low = np.tile(low.astype(np.float32), (k, 1))
        self._high = np.tile(high.astype(np.float32), (k, 1))
        features: dict[str, spaces.Space] = {
            "keypoints": spaces.Box(self._low, self._high, (k, 3), np.float32)}
        if self.confidence:
            features["keypoint_confidence"] = spaces.Box(0.0, 1.0, (k,), np.float32)
        self._init_observation(keep, keep_images, features)
        #: The latest raw :class:`Prediction` (``None`` before the first reset).
        self.last_prediction: Prediction | None = None

    def _check_model(self, who: str, c: int, h: int, w: int) -> None:
        p = self.predictor
        try:  # the env itself, or a wrapper such as MultiViewCameras, names its keypoints
            env_names = self.env.get_wrapper_attr("keypoint_names")
        except AttributeError:
            env_names = None
        if env_names is not None and len(env_names) and list(env_names) != self.keypoint_names:
            raise ValueError(
                f"the keypoint model was trained for keypoints {self.keypoint_names}, but {who} "
                f"has keypoints {list(env_names)}; use a checkpoint trained on this env")
        if int(p.num_cameras) != c:
            raise ValueError(
                f"the keypoint model was trained for {p.num_cameras} cameras, but {who} has "
                f"{c}; make the env with num_cameras={p.num_cameras} or use a matching model")
        if tuple(p.image_size) != (h, w):
            mh, mw = p.image_size
            raise ValueError(
                f"the keypoint model was trained on {mh}x{mw} images, but {who} renders "
                f"{h}x{w}; make the env with image_size=({mh}, {mw}) or use a matching model")

    def features(self, obs: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Predict and triangulate the keypoints of one multi-view observation.

        Args:
            obs: the wrapped env's observation: ``images (C, H, W, 3)`` uint8,
                ``intrinsics (C, 3, 3)``, ``extrinsics (C, 4, 4)`` (world->camera).

        Returns:
            ``({"keypoints": (K, 3) float32 m[, "keypoint_confidence": (K,) float32]},
            {"predicted_keypoints": (K, 3), "predicted_keypoints_2d": (C, K, 2) px,
            "predicted_confidence": (C, K)})``.
        """
        pred = self.predictor.predict(obs["images"], obs["intrinsics"], obs["extrinsics"])
        self.last_prediction = pred
        points = np.asarray(pred.points_3d, dtype=np.float32)
        conf = np.asarray(pred.confidence, dtype=np.float32)
        # NaN -> 0 m, +-inf -> the bounds: the observation is always inside its space.
        safe = np.clip(np.nan_to_num(points, nan=0.0), self._low, self._high)
        out = {"keypoints": safe.astype(np.float32)}
        if self.confidence:
            mean = np.nan_to_num(conf, nan=0.0).mean(axis=0)
            out["keypoint_confidence"] = np.clip(mean, 0.0, 1.0).astype(np.float32)
        info = {"predicted_keypoints": points,
                "predicted_keypoints_2d": np.asarray(pred.keypoints_2d, dtype=np.float32),
                "predicted_confidence": conf}
        return out, info
