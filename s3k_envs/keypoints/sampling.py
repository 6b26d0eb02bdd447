"""What one sample of a keypoint dataset is: its seeds, the generation parameters
(:class:`GenerationParams`), the :class:`SampleGenerator` (env reset and rollout, rendering,
labelling cameras, label noise) and the assembly of samples into a shard's arrays.

Sample ``i`` is one ``env.reset(seed=sample_seed(seed, i))`` (then an optional short expert
rollout): a random scene seen by a random camera rig; its labelling randomness comes from
:func:`label_rng`. The format the samples are written in is :mod:`s3k_envs.keypoints.dataset`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from s3k_envs.keypoints.dataset import LABEL_ARRAYS

DEFAULT_SHARD_SIZE = 256
DEFAULT_IMAGE_SIZE = 128
#: SeedSequence key of the labelling randomness (camera choice, label noise) of a sample.
_LABEL_STREAM = 1


# ---------------------------------------------------------------------------- seeds
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def sample_seed(seed: int, index: int) -> int:
    """Seed of ``env.reset`` for sample ``index`` of a dataset generated with ``seed``.

    64 bits of ``np.random.SeedSequence([seed, index])``: every sample can be regenerated
    alone, whatever process or order generated the others.
    """
    seq = np.random.SeedSequence([_check_seed(seed), _check_seed(index)])
    return int(seq.generate_state(1, np.uint64)[0])


def label_rng(seed: int, index: int) -> np.random.Generator:
    """Random generator of the labelling of sample ``index`` (camera choice, then noise).

    Independent of the env's own randomness (``SeedSequence([seed, index, 1])``).
    """
    return np.random.default_rng(
        np.random.SeedSequence([_check_seed(seed), _check_seed(index), _LABEL_STREAM])
    )


# ---------------------------------------------------------------------------- parameters
@dataclass
class GenerationParams:
    """Everything that determines a dataset's content (and nothing that does not).

    Attributes:
        env_id: Gymnasium id of a multi-view env (``S3K-Box-v0``, ...).
        env_options: keyword arguments of ``gymnasium.make`` (JSON values; includes
            ``image_size``).
        seed: dataset seed (non-negative int).
        num_samples: N samples (env resets).
        num_labelled: M; samples ``0..M-1`` are labelled.
        label_cameras: cameras chosen at random to label each labelled sample (>= 2), or
            None for all cameras.
        label_noise_px: standard deviation of the Gaussian noise added to each label
            coordinate, pixels.
        shard_size: samples per shard.
        rollout_steps: if > 0, each sample runs the env's scripted expert
            (``s3k_envs.experts.make_expert``) for a number of steps drawn uniformly from
            ``0..rollout_steps`` after the reset, so the data covers the states a task passes
            through (gripper near the object, plug in the socket), not only initial states.
            Envs without a scripted expert (e.g. wrapped with ``MultiViewCameras``) take
            uniformly random actions instead.
        rollout_noise: std of Gaussian noise added to the expert's actions (in [-1, 1]
            action units) during the rollout, for states off the expert's path.
    """

    env_id: str
    env_options: dict[str, Any]
    seed: int
    num_samples: int
    num_labelled: int
    label_cameras: int | None
    label_noise_px: float
    shard_size: int
    rollout_steps: int = 0
    rollout_noise: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (the keys of the manifest they fill)."""
        return asdict(self)


def _json_normalise(name: str, value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples -> lists); clear error otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name}: expected JSON-serialisable values, got {value!r} ({e})"
        ) from None


def check_int(name: str, value: Any, minimum: int) -> int:
    """``int(value)``; ValueError naming ``name`` unless it is an integer (not a bool)
    ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def make_params(
    env_id: str,
    num_samples: int,
    num_labelled: int = 0,
    *,
    image_size: int | Sequence[int] | None = None,
    seed: int = 0,
    env_options: Mapping[str, Any] | None = None,
    label_cameras: int | None = None,
    label_noise_px: float = 0.0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    rollout_steps: int = 0,
    rollout_noise: float = 0.0,
) -> GenerationParams:
    """Validate generation arguments (see :func:`generate_dataset`) into parameters.

    Raises:
        ValueError: a value out of range, ``label_cameras < 2``, conflicting image sizes or
            options that are not JSON values.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id: expected a Gymnasium env id string, got {env_id!r}")
    num_samples = check_int("num_samples", num_samples, 1)
    num_labelled = check_int("num_labelled", num_labelled, 0)
    if num_labelled > num_samples:
        raise ValueError(
            f"num_labelled: expected at most num_samples={num_samples}, got {num_labelled}"
        )
    if label_cameras is not None:
        label_cameras = check_int("label_cameras", label_cameras, 0)
        if label_cameras < 2:
            raise ValueError(
                f"label_cameras: expected >= 2 cameras per labelled sample (triangulating a "
                f"label needs two views), got {label_cameras}"
            )
    try:
        noise = float(label_noise_px)
    except (TypeError, ValueError):
        noise = math.nan
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"label_noise_px: expected a finite value >= 0, got {label_noise_px!r}")
    rollout_steps = check_int("rollout_steps", rollout_steps, 0)
    try:
        rnoise = float(rollout_noise)
    except (TypeError, ValueError):
        rnoise = math.nan
    if not (math.isfinite(rnoise) and rnoise >= 0):
        raise ValueError(f"rollout_noise: expected a finite value >= 0, got {rollout_noise!r}")
    options = dict(env_options or {})
    for key in options:
        if not isinstance(key, str):
            raise ValueError(f"env_options: keys must be strings, got {key!r}")
    if "render_mode" in options:
        raise ValueError("env_options: render_mode is not an option of dataset generation")
    if image_size is not None:
        if "image_size" in options and _json_normalise("image_size", options["image_size"]) != (
            _json_normalise("image_size", image_size)
        ):
            raise ValueError(
                f"image_size {image_size!r} conflicts with env option image_size="
                f"{options['image_size']!r}; give it once"
            )
        options["image_size"] = image_size
    options.setdefault("image_size", DEFAULT_IMAGE_SIZE)
    return GenerationParams(
        env_id=env_id,
        env_options=_json_normalise("env_options", options),
        seed=_check_seed(seed),
        num_samples=num_samples,
        num_labelled=num_labelled,
        label_cameras=label_cameras,
        label_noise_px=noise,
        shard_size=check_int("shard_size", shard_size, 1),
        rollout_steps=rollout_steps,
        rollout_noise=rnoise,
    )


# ---------------------------------------------------------------------------- sampling
def _multiview_hint(env_id: str) -> str:
    """How to turn a MuJoCo env without cameras into one ``s3k generate`` takes."""
    return ("For a MuJoCo env without cameras, attach a calibrated camera rig with "
            "s3k_envs.wrappers.MultiViewCameras, registered as an id by "
            "s3k_envs.wrappers.multiview.register_multiview('MyEnv-MultiView-v0', "
            f"{env_id!r}, keypoints=[...]) (docs/plugging-into-your-env.md)")


def make_env(env_id: str, env_options: Mapping[str, Any]) -> Any:
    """``gymnasium.make(env_id, **env_options)`` without the passive checker.

    Raises:
        ValueError: unknown env id, an env that does not take the options (e.g. not a
            multi-view env: it has no ``image_size``), or the env's own error for bad options.
    """
    import gymnasium as gym

    import s3k_envs  # registers the S3K-* ids

    try:
        return gym.make(env_id, disable_env_checker=True, **dict(env_options))
    except gym.error.Error as e:  # unknown id / namespace / version
        raise ValueError(
            f"env_id {env_id!r}: {e} (S3K envs: {sorted(s3k_envs.ENV_SPECS)}; MuJoCo envs "
            f"with a camera rig: {sorted(s3k_envs.wrappers.multiview.EXAMPLES)})"
        ) from None
    except TypeError as e:  # e.g. "unexpected keyword argument 'image_size'"
        raise ValueError(
            f"{env_id}: gymnasium.make({env_id!r}, **{dict(env_options)!r}) failed ({e}); "
            "`s3k generate` expects a multi-view env (observation dict with 'images', "
            f"'intrinsics' and 'extrinsics') that takes these options. {_multiview_hint(env_id)}"
        ) from e


#: Rollout policy of envs without a scripted expert: uniform random actions.
_RANDOM_ACTIONS = "random actions"


def _rollout_policy(env: Any) -> Any:
    """The scripted expert of an S3K env (``s3k_envs.experts.make_expert``), or
    ``_RANDOM_ACTIONS`` for any other env with a bounded ``Box`` action space.

    Raises:
        ValueError: an env without an expert whose action space is not a bounded ``Box``.
    """
    from gymnasium import spaces

    from s3k_envs.envs.base import MultiViewEnv

    if isinstance(env.unwrapped, MultiViewEnv):
        from s3k_envs.experts import make_expert

        return make_expert(env)
    space = env.action_space
    if not (isinstance(space, spaces.Box) and space.is_bounded("both")):
        raise ValueError(
            f"rollout_steps: {type(env.unwrapped).__name__} has no scripted expert, and "
            f"random actions need a bounded Box action space, got {space}"
        )
    return _RANDOM_ACTIONS


class SampleGenerator:
    """One env that turns sample indices into sample dicts (used in-process and by workers).

    Attributes:
        num_cameras: C. image_size: ``(H, W)`` pixels. keypoint_names: K names.
    """

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self._expert: Any = None
        self.env = make_env(params.env_id, params.env_options)
        try:
            space = self.env.observation_space
            shapes = {key: tuple(space[key].shape) for key in ("images", "intrinsics",
                                                                 "extrinsics")}
        except (KeyError, TypeError):
            self.env.close()
            raise ValueError(
                f"{params.env_id}: expected a multi-view env whose observation dict has "
                f"'images', 'intrinsics' and 'extrinsics', got {self.env.observation_space}. "
                f"{_multiview_hint(params.env_id)}"
            ) from None
        c, h, w, _ = shapes["images"]
        self.num_cameras, self.image_size = int(c), (int(h), int(w))
        try:
            names = self.env.get_wrapper_attr("keypoint_names")
        except AttributeError:
            names = ()
        self.keypoint_names: tuple[str, ...] = tuple(str(n) for n in names)
        if params.num_labelled > 0 and not self.keypoint_names:
            self.env.close()
            raise ValueError(f"{params.env_id}: the env defines no keypoints to label")
        if params.label_cameras is not None and params.label_cameras > self.num_cameras:
            self.env.close()
            raise ValueError(
                f"label_cameras: expected at most the env's {self.num_cameras} cameras, got "
                f"{params.label_cameras}"
            )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> SampleGenerator:
        """A generator that reproduces the samples of an existing dataset."""
        keys = GenerationParams.__dataclass_fields__
        # Entries added in later versions (rollout_*) default when an older manifest lacks them.
        return cls(GenerationParams(**{k: manifest[k] for k in keys if k in manifest}))

    def sample(self, index: int) -> dict[str, Any]:
        """Sample ``index``: images and calibration, plus labels if ``index < num_labelled``.

        Returns:
            ``images (C, H, W, 3)`` uint8, ``intrinsics (C, 3, 3)`` / ``extrinsics (C, 4, 4)``
            float32 and, for labelled samples, ``keypoints_2d (C, K, 2)`` px float32,
            ``label_mask (C, K)``, ``labelling_cameras (C,)`` bool, ``keypoints_3d (K, 3)``
            m float32.
        """
        p = self.params
        obs, info = self.env.reset(seed=sample_seed(p.seed, index))
        if p.rollout_steps > 0:
            obs, info = self._rollout(index, obs, info)
        out: dict[str, Any] = {
            "images": np.array(obs["images"], dtype=np.uint8),
            "intrinsics": np.array(obs["intrinsics"], dtype=np.float32),
            "extrinsics": np.array(obs["extrinsics"], dtype=np.float32),
        }
        if index < p.num_labelled:
            out.update(self._labels(index, info))
        return out

    def _rollout(self, index: int, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Run the scripted expert (plus action noise) for a random number of steps; envs
        without one (e.g. other people's envs wrapped with ``MultiViewCameras``) take
        uniformly random actions instead."""
        p = self.params
        if self._expert is None:
            self._expert = _rollout_policy(self.env)
        if self._expert is not _RANDOM_ACTIONS:
            self._expert.reset()
        # Its own stream (not the label stream), fixed by (seed, index): same bytes anywhere.
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, index, 0x5EED]))
        steps = int(rng.integers(0, p.rollout_steps + 1))
        for _ in range(steps):
            low, high = self.env.action_space.low, self.env.action_space.high
            if self._expert is _RANDOM_ACTIONS:
                action = rng.uniform(low, high)
            else:
                action = np.asarray(self._expert(obs, info), dtype=np.float64)
                action = action + p.rollout_noise * rng.standard_normal(action.shape)
            obs, _, terminated, truncated, info = self.env.step(
                np.clip(action, low, high).astype(self.env.action_space.dtype))
            if terminated or truncated:
                break
        return obs, info

    def _labels(self, index: int, info: Mapping[str, Any]) -> dict[str, np.ndarray]:
        p = self.params
        c, k = self.num_cameras, len(self.keypoint_names)
        rng = label_rng(p.seed, index)
        chosen = np.zeros(c, dtype=bool)
        if p.label_cameras is None:
            chosen[:] = True
        else:
            chosen[rng.choice(c, size=p.label_cameras, replace=False)] = True
        noise = rng.standard_normal((c, k, 2)) * p.label_noise_px
        uv = np.asarray(info["keypoints_2d"], dtype=np.float64).reshape(c, k, 2) + noise
        mask = np.asarray(info["keypoints_visible"], dtype=bool).reshape(c, k) & chosen[:, None]
        return {
            "keypoints_2d": np.where(mask[..., None], uv, 0.0).astype(np.float32),
            "label_mask": mask,
            "labelling_cameras": chosen,
            "keypoints_3d": np.asarray(info["keypoints"], dtype=np.float32).reshape(k, 3),
        }

    def samples(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Samples ``start .. stop - 1``."""
        return [self.sample(i) for i in range(start, stop)]

    def close(self) -> None:
        """Close the env (frees its renderer)."""
        self.env.close()


def assemble_shard(samples: Sequence[Mapping[str, Any]], start: int, num_labelled: int,
                   num_cameras: int, num_keypoints: int) -> dict[str, np.ndarray]:
    """Stack the sample dicts of samples ``start, start + 1, ...`` into shard arrays."""
    n = len(samples)
    index = np.arange(start, start + n, dtype=np.int64)
    labelled = index < num_labelled
    rows = np.flatnonzero(labelled).astype(np.int64)
    arrays = {
        "images": np.stack([s["images"] for s in samples]),
        "intrinsics": np.stack([s["intrinsics"] for s in samples]).astype(np.float32),
        "extrinsics": np.stack([s["extrinsics"] for s in samples]).astype(np.float32),
        "sample_index": index,
        "labelled": labelled,
        "label_rows": rows,
    }
    c, k = num_cameras, num_keypoints
    empty = {"keypoints_2d": (c, k, 2), "label_mask": (c, k), "labelling_cameras": (c,),
             "keypoints_3d": (k, 3)}
    for key, shape in empty.items():
        dtype = LABEL_ARRAYS[key][1]
        if rows.size:
            arrays[key] = np.stack([samples[r][key] for r in rows]).astype(dtype)
        else:
            arrays[key] = np.zeros((0, *shape), dtype=dtype)
    return arrays
