"""VAEObservation: replace the images of a multi-view env by a frozen beta-VAE's latent
(a :class:`s3k_envs.wrappers.features.FeatureObservation`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from agents.beta_vae.model import BetaVAE, PathLike, load_vae
from s3k_envs.wrappers.features import FeatureObservation

#: Bounds of ``obs["latent"]`` in :class:`VAEObservation` (the prior is N(0, 1)).
LATENT_BOUND = 10.0


# ------------------------------------------------------------------------------ wrapper
class VAEObservation(FeatureObservation, gym.utils.RecordConstructorArgs):
    """Replace the images and calibration of a multi-view env by a frozen beta-VAE's latent
    (a :class:`~s3k_envs.wrappers.features.FeatureObservation`).

    Every ``reset`` and ``step`` encodes the C views of the new frame in one forward pass
    (``torch.inference_mode``), inside the env, so vector envs' final observations are
    encoded too.

    Args:
        env: an env whose observation is a ``Dict`` with ``images (C, H, W, 3)`` uint8 (every
            S3K env, or a MuJoCo env wrapped in ``MultiViewCameras``), with the C and
            ``(H, W)`` the VAE was trained on.
        vae: a :class:`BetaVAE` (used as it is, in eval mode; not copied) or the path of a
            checkpoint (loaded on ``device``; keeps the wrapper cheap to re-create in vector
            env workers).
        keep: the env's other observation keys to keep; default every key except
            ``images``, ``intrinsics`` and ``extrinsics`` (``gripper_pos``, ``gripper_quat``,
            ``gripper_linvel``, ``gripper_angvel``, ...).
        keep_images: also keep ``images`` (for videos of the observations).
        latent_bound: ``obs["latent"]`` lies in ``[-latent_bound, latent_bound]`` (clipped).
        device: torch device when ``vae`` is a path.
        torch_threads: if given, torch threads for every encoding (the caller's count is
            restored afterwards); 1 is best in vector-env worker processes on a small CPU.

    Observation (``spaces.Dict``): the kept keys unchanged, plus ``latent`` ``(D,)`` float32,
    the posterior mean (NaN -> 0, clipped into the bounds).

    Info, besides the env's own: ``latent_mean`` ``(D,)`` float32 (unclipped) and
    ``latent_logvar`` ``(D,)`` float32.

    Vector envs: ``SyncVectorEnv`` needs nothing special; for ``AsyncVectorEnv`` build the
    wrapper in the env function (a path, or a VAE captured by it: it pickles), pass
    ``torch_threads=1`` and use the ``"forkserver"`` or ``"spawn"`` context (llvmpipe's
    threads do not survive ``fork``).

    Raises:
        ValueError: the env has no multi-view images (the message points to
            ``MultiViewCameras``), another camera count or image size than the VAE, or
            ``keep`` names keys the env does not observe or would be overwritten.
        TypeError: ``vae`` is neither a BetaVAE nor a path.
    """

    FEATURE_KEYS: ClassVar[tuple[str, ...]] = ("latent",)
    NEEDS_CALIBRATION: ClassVar[bool] = False

    def __init__(
        self,
        env: gym.Env,
        vae: BetaVAE | PathLike,
        keep: Sequence[str] | None = None,
        keep_images: bool = False,
        latent_bound: float = LATENT_BOUND,
        device: str = "cpu",
        torch_threads: int | None = None,
    ) -> None:
        recorded = os.fspath(vae) if isinstance(vae, (str, os.PathLike)) else vae
        gym.utils.RecordConstructorArgs.__init__(
            self, _disable_deepcopy=True, vae=recorded, keep=None if keep is None else list(keep),
            keep_images=keep_images, latent_bound=latent_bound, device=device,
            torch_threads=torch_threads)
        FeatureObservation.__init__(self, env)
        who = self.env_name
        c, h, w = self.camera_shape
        self.torch_threads = torch_threads
        if isinstance(vae, (str, os.PathLike)):
            vae = load_vae(vae, device=device)
        elif not isinstance(vae, BetaVAE):
            raise TypeError(f"vae: expected a BetaVAE or a checkpoint path, got "
                            f"{type(vae).__name__}")
        self.vae: BetaVAE = vae.eval()
        cfg = vae.config
        if c != cfg.num_cameras:
            raise ValueError(f"the beta-VAE embeds {cfg.num_cameras} views, but {who} has {c} "
                             f"cameras; make the env with num_cameras={cfg.num_cameras}")
        if [h, w] != cfg.source_size:
            sh, sw = cfg.source_size
            raise ValueError(f"the beta-VAE was trained on {sh}x{sw} images, but {who} renders "
                             f"{h}x{w}; make the env with image_size=({sh}, {sw})")
        bound = float(latent_bound)
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"latent_bound: expected a finite value > 0, got {latent_bound!r}")
        self.latent_bound = bound
        self._init_observation(keep, keep_images, {
            "latent": spaces.Box(-bound, bound, (cfg.latent_dim,), np.float32)})

    def features(self, obs: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Encode the C views of one observation in one forward pass.

        Args:
            obs: the wrapped env's observation, with ``images (C, H, W, 3)`` uint8.

        Returns:
            ``({"latent": (D,) float32}, {"latent_mean": (D,) float32,
            "latent_logvar": (D,) float32})``: the posterior mean clipped into the bounds
            (NaN -> 0), and the unclipped posterior.
        """
        with torch.inference_mode():
            mu, logvar = self.vae.encode(np.asarray(obs["images"])[None])
        mean = mu[0].float().cpu().numpy()
        out = {"latent": np.clip(np.nan_to_num(mean, nan=0.0), -self.latent_bound,
                                 self.latent_bound).astype(np.float32)}
        info = {"latent_mean": mean.astype(np.float32),
                "latent_logvar": logvar[0].float().cpu().numpy()}
        return out, info
