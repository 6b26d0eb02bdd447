"""Linear probe: how much of the true 3D keypoint positions is linearly readable from the
latent mean (ridge regression, 3D error in mm), next to a keypoint model's error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from agents.beta_vae.frames import check_same_setup, dataset_dirs
from agents.beta_vae.model import ACTIVE_VARIANCE, BetaVAE, PathLike, load_vae

#: Ridge penalties tried by :func:`linear_probe` (on standardised latents).
DEFAULT_ALPHAS = tuple(float(a) for a in 10.0 ** np.arange(-4, 4))


# ------------------------------------------------------------------------------ linear probe
def _labelled_samples(paths: PathLike | Sequence[PathLike]) -> dict[str, Any]:
    """Images, calibration and true 3D keypoints of the labelled samples of datasets."""
    from s3k_envs.keypoints.dataset import load_arrays, read_manifest

    dirs = dataset_dirs(paths)
    manifests = [(d, read_manifest(d)) for d in dirs]
    check_same_setup(manifests)
    parts: dict[str, list[np.ndarray]] = {"images": [], "intrinsics": [], "extrinsics": [],
                                          "keypoints_3d": []}
    for d, _ in manifests:
        arrays = load_arrays(d)
        rows = np.asarray(arrays["label_rows"], dtype=np.int64)
        if rows.size == 0:
            continue
        for key in ("images", "intrinsics", "extrinsics"):
            parts[key].append(np.asarray(arrays[key][rows]))
        parts["keypoints_3d"].append(np.asarray(arrays["keypoints_3d"], dtype=np.float64))
    if not parts["images"]:
        raise ValueError(f"{[str(d) for d in dirs]}: no labelled samples; the probe needs "
                         "datasets generated with --labelled M > 0")
    out: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    out["keypoint_names"] = list(manifests[0][1]["keypoint_names"])
    out["env_id"] = manifests[0][1].get("env_id")
    return out


@torch.no_grad()
def encode_means(vae: BetaVAE, images: np.ndarray | torch.Tensor, batch: int = 64
                 ) -> np.ndarray:
    """Posterior means of frames.

    Args:
        vae: the model (its train/eval mode is restored).
        images: ``(N, C, H, W, 3)`` uint8.
        batch: frames per forward pass.

    Returns:
        ``(N, D)`` float64.
    """
    was_training = vae.training
    vae.eval()
    try:
        mus = [vae.encode(images[i:i + batch])[0].double().cpu().numpy()
               for i in range(0, len(images), batch)]
    finally:
        vae.train(was_training)
    return np.concatenate(mus) if mus else np.zeros((0, vae.config.latent_dim))


class RidgeFit(NamedTuple):
    """A fitted ridge regression on standardised inputs.

    Attributes:
        x_mean, x_scale: ``(D,)`` input standardisation. weights: ``(D, T)``.
        y_mean: ``(T,)`` intercept. alpha: the chosen penalty. loo_mse: ``(A,)`` mean squared
        leave-one-out residual of every penalty tried.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    weights: np.ndarray
    y_mean: np.ndarray
    alpha: float
    loo_mse: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(N, D)`` inputs -> ``(N, T)`` predictions."""
        return (np.asarray(x, np.float64) - self.x_mean) / self.x_scale @ self.weights + self.y_mean


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
              ) -> RidgeFit:
    """Ridge regression with intercept, penalty chosen by exact leave-one-out error.

    Args:
        x: ``(N, D)`` inputs (standardised inside; constant columns get scale 1).
        y: ``(N, T)`` targets.
        alphas: penalties to try (on the standardised inputs).

    Returns:
        :class:`RidgeFit` with the penalty of least mean squared LOO residual.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"fit_ridge: expected x (N, D) and y (N, T) with N >= 2, got "
                         f"{x.shape} and {y.shape}")
    if not alphas or min(alphas) < 0:
        raise ValueError(f"alphas: expected penalties >= 0, got {list(alphas)}")
    n, d = x.shape
    x_mean, y_mean = x.mean(0), y.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    xs, yc = (x - x_mean) / scale, y - y_mean
    gram, xty = xs.T @ xs, xs.T @ yc
    losses, fits = [], []
    for alpha in alphas:
        inv = np.linalg.pinv(gram + float(alpha) * np.eye(d))
        w = inv @ xty
        hat = np.einsum("nd,de,ne->n", xs, inv, xs) + 1.0 / n  # leverage, intercept included
        resid = (yc - xs @ w) / np.maximum(1.0 - hat, 1e-6)[:, None]
        losses.append(float((resid ** 2).sum(1).mean()))
        fits.append(w)
    best = int(np.argmin(losses))
    return RidgeFit(x_mean, scale, fits[best], y_mean, float(alphas[best]), np.asarray(losses))


def _errors_mm(pred: np.ndarray, true: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """3D error statistics, mm, of ``(N, K, 3)`` predictions against truth (metres)."""
    err = np.linalg.norm(np.asarray(pred, np.float64) - true, axis=-1) * 1000.0  # (N, K)

    def stats(e: np.ndarray) -> dict[str, float]:
        e = e.ravel()
        return {"median": float(np.median(e)), "mean": float(e.mean()),
                "p90": float(np.percentile(e, 90)), "rms": float(np.sqrt((e ** 2).mean())),
                "n": int(e.size)}

    return {**stats(err), "per_keypoint": {n: stats(err[:, k]) for k, n in enumerate(names)}}


def linear_probe(
    vae: BetaVAE | PathLike,
    labelled_dir: PathLike | Sequence[PathLike],
    *,
    test_dir: PathLike | Sequence[PathLike] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    keypoint_model: PathLike | None = None,
    batch: int = 64,
) -> dict[str, Any]:
    """Linear read-out of true 3D keypoint positions from the VAE's latent mean.

    The latent means of the labelled samples are regressed onto the ``K x 3`` true keypoint
    coordinates (metres, world frame) with ridge regression (:func:`fit_ridge`, penalty by
    leave-one-out on the train split); the error is the Euclidean distance per keypoint on the
    test split, in mm. For reference the same statistics are given for predicting the mean
    train position ("mean_baseline") and, with ``keypoint_model``, for an S3K keypoint model
    (triangulated predictions) on exactly the same test samples.

    Args:
        vae: a :class:`BetaVAE` or the path of its checkpoint.
        labelled_dir: dataset directory (or several) with labelled samples (``keypoints_3d``).
            Use data the VAE was not trained on.
        test_dir: datasets for the test split; default: a seeded ``test_fraction`` of
            ``labelled_dir``'s samples.
        test_fraction: share of the samples held out when ``test_dir`` is None.
        seed: seed of that split.
        alphas: ridge penalties to choose from.
        keypoint_model: optional S3K keypoint checkpoint evaluated on the test split.
        batch: frames per forward pass.

    Returns:
        JSON-able dict: ``test`` (median, mean, p90, rms in mm over every keypoint of every
        test sample, ``n``, ``per_keypoint``), ``train`` (the fit's own error), ``mean_baseline``,
        ``keypoint_model`` (or None), ``r2`` (test R² averaged over the ``3K`` coordinates),
        ``alpha``, ``num_train``, ``num_test``, ``latent_dim``, ``active_units_variance``
        (dims whose latent mean varies by more than :data:`ACTIVE_VARIANCE` over the
        samples), ``keypoint_names``.

    Raises:
        ValueError: no labelled samples, fewer than 2 train or 1 test samples, datasets of
            another camera count / image size than the VAE.
    """
    if not isinstance(vae, BetaVAE):
        vae = load_vae(vae)
    data = _labelled_samples(labelled_dir)
    names = data["keypoint_names"]
    if test_dir is not None:
        test = _labelled_samples(test_dir)
        if test["keypoint_names"] != names:
            raise ValueError(f"{test_dir}: keypoints {test['keypoint_names']} differ from "
                             f"those of {labelled_dir}: {names}")
        train = data
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction: expected in (0, 1), got {test_fraction!r}")
        m = len(data["images"])
        perm = np.random.default_rng(seed).permutation(m)
        n_test = max(1, round(m * test_fraction))
        if m - n_test < 2:
            raise ValueError(f"{labelled_dir}: {m} labelled samples are too few for a train "
                             f"split of >= 2 and a test split of >= 1")
        pick = {"test": np.sort(perm[:n_test]), "train": np.sort(perm[n_test:])}
        train, test = ({k: (v[pick[part]] if isinstance(v, np.ndarray) else v)
                        for k, v in data.items()} for part in ("train", "test"))
    if len(train["images"]) < 2:
        raise ValueError(f"{labelled_dir}: the probe needs >= 2 labelled train samples, got "
                         f"{len(train['images'])}")
    k = len(names)
    z_train = encode_means(vae, train["images"], batch)
    z_test = encode_means(vae, test["images"], batch)
    y_train = train["keypoints_3d"].reshape(len(z_train), 3 * k)
    y_test = test["keypoints_3d"].reshape(len(z_test), 3 * k)
    fit = fit_ridge(z_train, y_train, alphas)
    pred_test = fit.predict(z_test)
    ss_res = ((y_test - pred_test) ** 2).sum(0)
    ss_tot = ((y_test - y_train.mean(0)) ** 2).sum(0)
    r2 = float(np.mean(1.0 - ss_res / np.maximum(ss_tot, 1e-18)))
    z_all = np.concatenate([z_train, z_test])
    result: dict[str, Any] = {
        "test": _errors_mm(pred_test.reshape(-1, k, 3), test["keypoints_3d"], names),
        "train": _errors_mm(fit.predict(z_train).reshape(-1, k, 3), train["keypoints_3d"],
                            names),
        "mean_baseline": _errors_mm(np.broadcast_to(y_train.mean(0).reshape(1, k, 3),
                                                    test["keypoints_3d"].shape),
                                    test["keypoints_3d"], names),
        "keypoint_model": None,
        "r2": r2,
        "alpha": fit.alpha,
        "num_train": len(z_train),
        "num_test": len(z_test),
        "latent_dim": vae.config.latent_dim,
        "active_units_variance": int((z_all.var(0) > ACTIVE_VARIANCE).sum()),
        "keypoint_names": list(names),
    }
    if keypoint_model is not None:
        from s3k_envs.keypoints.predictor import KeypointPredictor

        predictor = KeypointPredictor.load(keypoint_model)
        if list(predictor.keypoint_names) != list(names):
            raise ValueError(f"{keypoint_model}: predicts {predictor.keypoint_names}, the data "
                             f"has keypoints {names}")
        points = np.concatenate([
            predictor.predict(test["images"][i:i + batch], test["intrinsics"][i:i + batch],
                              test["extrinsics"][i:i + batch]).points_3d
            for i in range(0, len(test["images"]), batch)])
        result["keypoint_model"] = {"checkpoint": str(keypoint_model),
                                    **_errors_mm(points, test["keypoints_3d"], names)}
    return result
