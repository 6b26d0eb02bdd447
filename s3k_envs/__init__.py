"""s3k_envs: multi-view MuJoCo manipulation envs with calibrated cameras and S3K keypoints.

``import s3k_envs`` registers the envs (``S3K-Box-v0``, ``S3K-BoxDistractors-v0``, ...) with
Gymnasium and, when no display is available, selects MuJoCo's headless EGL backend.
"""

from __future__ import annotations

import os

if not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl"  # must be set before mujoco creates a GL context
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from s3k_envs.registration import ENV_SPECS, register_envs
from s3k_envs.wrappers import multiview as _multiview  # noqa: F401  (registers S3K-Pusher-v0)

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_SPECS", "__version__", "register_envs"]
