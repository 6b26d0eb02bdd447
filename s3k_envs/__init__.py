"""s3k_envs: multi-view MuJoCo manipulation envs with calibrated cameras and S3K keypoints.

``import s3k_envs`` registers the envs (``S3K-Box-v0``, ``S3K-BoxDistractors-v0``, ...) with
Gymnasium and, on Linux without a display, selects MuJoCo's headless EGL backend (macOS has no
EGL: MuJoCo's default CGL needs no display there; Windows uses WGL).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping


def default_gl_backend(platform: str, environ: Mapping[str, str]) -> str | None:
    """The ``MUJOCO_GL`` value to default to: ``"egl"`` on Linux without a display and
    without a user choice, else None (keep MuJoCo's own default: GLFW with a display, CGL on
    macOS, WGL on Windows). ``platform`` is a ``sys.platform`` value."""
    if platform.startswith("linux") and not environ.get("DISPLAY") and "MUJOCO_GL" not in environ:
        return "egl"
    return None


if default_gl_backend(sys.platform, os.environ) == "egl":
    os.environ["MUJOCO_GL"] = "egl"  # must be set before mujoco creates a GL context
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from s3k_envs.registration import ENV_SPECS, register_envs  # noqa: E402  (after MUJOCO_GL)
from s3k_envs.wrappers import multiview as _multiview  # noqa: E402, F401  (registers S3K-Pusher-v0)

register_envs()

__version__ = "0.1.0"
__all__ = ["ENV_SPECS", "__version__", "default_gl_backend", "register_envs"]
