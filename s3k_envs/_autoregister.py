"""Register the S3K envs as soon as Gymnasium is imported, without importing MuJoCo.

Loaded at interpreter start by ``s3k_envs_autoregister.pth`` (installed next to the package).
Gymnasium 1.x dropped its ``gymnasium.envs`` entry-point plugins, so without this a fresh
``import gymnasium; gymnasium.make("S3K-Box-v0")`` would not find our ids. The hook is a
meta-path finder that waits for ``gymnasium`` to finish importing and then calls
:func:`s3k_envs.registration.register_envs`; it costs nothing for programs that never import
Gymnasium, and any failure in it is swallowed so it can never break an interpreter.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot; also prevents recursion below
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_register(module: ModuleType) -> None:
            exec_module(module)
            try:
                from s3k_envs.registration import register_envs

                register_envs()
            except Exception:
                pass

        loader.exec_module = exec_and_register  # type: ignore[method-assign]
        return spec


if "gymnasium" not in sys.modules and not any(
    isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path
):
    sys.meta_path.insert(0, _RegisterAfterGymnasium())
