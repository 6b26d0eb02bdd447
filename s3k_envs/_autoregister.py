"""Register the S3K envs as soon as Gymnasium is imported, without importing anything heavy.

Loaded at interpreter start by ``s3k_envs_autoregister.pth`` (installed next to the package).
Gymnasium 1.x dropped its ``gymnasium.envs`` entry-point plugins, so without this a fresh
``import gymnasium; gymnasium.make("S3K-Box-v0")`` would not find our ids.

Every Python start in the environment runs the ``.pth`` line, so this file is executed from
its path (the ``.pth`` finds it with ``importlib.util.find_spec``, which does not import the
``s3k_envs`` package) and imports only ``sys`` and ``importlib.machinery``: a start that never
imports Gymnasium pays a few stat calls, not numpy + Gymnasium. The hook is a meta-path
finder that waits for ``gymnasium`` to finish importing and then calls
:func:`s3k_envs.registration.register_envs` (and registers the ``MultiViewCameras`` examples).

Failure policy: at interpreter start nothing may be printed (a broken install must not break
``pip`` or every script); a registration that fails *after* Gymnasium was imported is
reported with one warning that names the cause, instead of surfacing later only as
Gymnasium's "Environment ... doesn't exist".
"""

from __future__ import annotations

import importlib.machinery
import sys
from types import ModuleType
from typing import Any


def register_after_import() -> None:
    """Register the S3K ids (Gymnasium has just been imported); warn with the cause on failure.

    Nothing to do when ``s3k_envs`` itself is being imported (it imports Gymnasium on its way
    and registers everything at its end; importing it from here would be circular)."""
    if "s3k_envs" in sys.modules:
        return
    try:
        from s3k_envs.registration import register_envs
        from s3k_envs.wrappers.multiview import register_examples

        register_envs()
        register_examples()
    except Exception as exc:  # a broken install must not break `import gymnasium`
        import warnings

        warnings.warn(f"s3k_envs: could not register the S3K envs with Gymnasium "
                      f"({type(exc).__name__}: {exc}); `import s3k_envs` shows the full error",
                      RuntimeWarning, stacklevel=2)


class RegisterAfterGymnasium:
    """One-shot meta-path finder: lets ``gymnasium`` import normally, then registers."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        """Meta-path hook: for ``gymnasium`` only, wrap its loader so that registration runs
        right after the module body; any other name is left to the other finders."""
        if fullname != "gymnasium":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot; also prevents recursion below
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_register(module: ModuleType) -> None:
            exec_module(module)
            register_after_import()

        loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Insert the finder into ``sys.meta_path`` (once; a no-op if Gymnasium is loaded)."""
    if "gymnasium" in sys.modules:
        return
    if not any(type(f).__name__ == "RegisterAfterGymnasium" for f in sys.meta_path):
        sys.meta_path.insert(0, RegisterAfterGymnasium())


install()
