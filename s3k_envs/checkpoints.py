"""Where the shipped pretrained keypoint checkpoints live, and how to find them.

The repository keeps one S3K checkpoint per env at ``assets/checkpoints/<ENV_ID>.pt``
(e.g. ``assets/checkpoints/S3K-CableInsert-v0.pt``). An installed wheel carries the same
files as ``s3k_envs/assets/checkpoints/`` (a hatch ``force-include`` in ``pyproject.toml``),
so :func:`default_checkpoint` looks in both places:

1. ``<package>/assets/checkpoints/`` (installed wheel);
2. ``<repo>/assets/checkpoints/`` next to the package (editable install or a plain checkout).

An env may fall back to the checkpoint of another env whose scene and keypoints it shares
(:data:`FALLBACKS`: ``S3K-BoxDistractors-v0`` and ``S3K-BoxPush-v0`` use the Box model,
``S3K-ShoePush-v0`` the Shoes model, when they have none of their own).
``gymnasium.make(ENV_ID, obs_mode="keypoints")`` uses this resolver;
``keypoint_checkpoint=PATH`` overrides it.

How each file was made (data, seeds, training budget) and its held-out error are recorded in
``assets/checkpoints/README.md``. The ``S3K-CableInsert-v0`` model was retrained on
2026-12-05 (issue 15) on data that also cover the plug deep in the socket (expert rollouts
continued past the success), so that ``plug_tip`` stays at the socket opening once the tip
is inside (median error there 1.7 mm instead of 13.6 mm;
``benchmarks/results/cable_socket_keypoints.json``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

#: Directories searched for ``<ENV_ID>.pt``, in order: wheel layout, then repository layout.
CHECKPOINT_DIRS: tuple[Path, ...] = (
    _PACKAGE_DIR / "assets" / "checkpoints",
    _PACKAGE_DIR.parent / "assets" / "checkpoints",
)

#: env id -> env ids whose checkpoint it may use when it has none of its own (same
#: keypoints, cameras and image size; the distractors are what the model must learn to ignore,
#: so a dedicated checkpoint is better when one exists).
FALLBACKS: dict[str, tuple[str, ...]] = {
    "S3K-BoxDistractors-v0": ("S3K-Box-v0",),
    "S3K-BoxPush-v0": ("S3K-Box-v0",),  # the same box, corners and camera rig
    "S3K-ShoePush-v0": ("S3K-Shoes-v0",),  # the same shoes, keypoints and framing
}


def checkpoint_candidates(env_id: str) -> list[Path]:
    """Every path :func:`default_checkpoint` tries for ``env_id``, in order of preference:
    the env's own file in each of :data:`CHECKPOINT_DIRS`, then its fallbacks' files."""
    ids = (env_id, *FALLBACKS.get(env_id, ()))
    return [directory / f"{name}.pt" for name in ids for directory in CHECKPOINT_DIRS]


def default_checkpoint(env_id: str) -> Path:
    """The shipped keypoint checkpoint of an env.

    Args:
        env_id: a Gymnasium id such as ``"S3K-CableInsert-v0"``.

    Returns:
        Path of the first existing file among :func:`checkpoint_candidates`.

    Raises:
        FileNotFoundError: no checkpoint for this env; the message names the env, every path
            that was tried, and how to train one or pass your own.
    """
    candidates = checkpoint_candidates(env_id)
    for path in candidates:
        if path.is_file():
            return path
    slug = env_id.lower().removeprefix("s3k-").removesuffix("-v0")
    tried = "\n  ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"no shipped keypoint checkpoint for {env_id}; looked for:\n  {tried}\n"
        f"Train one and put it at assets/checkpoints/{env_id}.pt, e.g.\n"
        f"  s3k generate {env_id} --samples 2000 --labelled 100 --out runs/data/{slug}\n"
        f"  s3k train --labelled runs/data/{slug} --out runs/{slug}\n"
        f"  cp runs/{slug}/model.pt assets/checkpoints/{env_id}.pt\n"
        f"or pass your own: gymnasium.make({env_id!r}, obs_mode='keypoints', "
        f"keypoint_checkpoint='runs/{slug}/model.pt')"
    )
