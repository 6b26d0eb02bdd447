"""What a new user meets before any env runs: the interpreter-start hook, the wheel's contents,
the library's layering, the headless GL default, fork/render safety, render modes and the
command-line help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest

import s3k_envs
from s3k_envs import cli

REPO = Path(__file__).resolve().parents[1]
PTH = REPO / "s3k_envs" / "s3k_envs_autoregister.pth"
HEAVY = ("gymnasium", "numpy", "s3k_envs", "mujoco", "torch")


def _python(code: str, pythonpath: list[Path], sitedir: Path,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter without site-packages' ``.pth`` files (``-S``), in
    ``sitedir`` (so the checkout is not on the path by way of the working directory):
    ``pythonpath`` is its whole import path; ``sitedir`` (a folder holding the repo's ``.pth``)
    is processed first, as ``site`` does at start."""
    prelude = f"import site; site.addsitedir({str(sitedir)!r})\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return subprocess.run([sys.executable, "-S", "-c", prelude + code], env=env, cwd=sitedir,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def hook_dir(tmp_path: Path) -> Path:
    """A site directory that holds only the repository's autoregister ``.pth``."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / PTH.name).write_text(PTH.read_text())
    return site_dir


SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def test_start_hook_imports_nothing_heavy(hook_dir: Path) -> None:
    code = ("import sys, json\n"
            f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]))\n"
            "print(any(type(f).__name__ == 'RegisterAfterGymnasium' for f in sys.meta_path))")
    done = _python(code, [REPO, SITE_PACKAGES], hook_dir)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    heavy, installed = done.stdout.splitlines()
    assert json.loads(heavy) == [], f"the start hook imported {heavy}"
    assert installed == "True", "the .pth did not install its finder"


def test_start_hook_registers_when_gymnasium_is_imported(hook_dir: Path) -> None:
    code = ("import gymnasium, sys\n"
            "print('S3K-Box-v0' in gymnasium.registry, 'S3K-Pusher-v0' in gymnasium.registry)")
    done = _python(code, [REPO, SITE_PACKAGES], hook_dir)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("pythonpath", ["nothing", "no_gymnasium", "broken_gymnasium"])
def test_start_hook_is_silent_when_the_package_cannot_load(hook_dir: Path, tmp_path: Path,
                                                           pythonpath: str) -> None:
    broken = tmp_path / "broken"
    (broken / "gymnasium").mkdir(parents=True)
    (broken / "gymnasium" / "__init__.py").write_text("raise ImportError('broken gymnasium')\n")
    path = {"nothing": [], "no_gymnasium": [REPO], "broken_gymnasium": [broken, REPO]}[pythonpath]
    done = _python("print('started')", path, hook_dir)
    assert (done.returncode, done.stdout, done.stderr) == (0, "started\n", "")


def test_a_broken_registration_warns_with_its_cause(hook_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "s3k_envs"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "_autoregister.py").write_text((REPO / "s3k_envs" / "_autoregister.py").read_text())
    (fake / "registration.py").write_text("raise RuntimeError('boom in registration')\n")
    done = _python("import gymnasium\nprint('imported')", [fake.parent, SITE_PACKAGES], hook_dir)
    assert done.returncode == 0 and done.stdout == "imported\n"
    assert "RuntimeWarning" in done.stderr and "boom in registration" in done.stderr


def test_library_does_not_import_agents_or_benchmarks() -> None:
    code = ("import s3k_envs, s3k_envs.cli, s3k_envs.demo, s3k_envs.demos, s3k_envs.experts, sys\n"
            "print([m for m in sys.modules if m.split('.')[0] in ('agents', 'benchmarks')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=REPO.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_wheel_ships_the_library_only(tmp_path: Path) -> None:
    """No generic top-level ``agents`` / ``benchmarks`` packages in a researcher's
    site-packages; the start hook and the shipped checkpoints are in."""
    pytest.importorskip("hatchling", reason="the dev extras install hatchling")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"s3k_envs", "s3k_envs_autoregister.pth", "s3k_envs-0.1.0.dist-info"}, tops
    for env_id in ("S3K-Box-v0", "S3K-CableInsert-v0", "S3K-Shoes-v0"):
        assert f"s3k_envs/assets/checkpoints/{env_id}.pt" in names
    assert "s3k_envs/assets/checkpoints/S3K-BoxPush-descriptors-v0.pt" in names
    assert "s3k_envs/experts.py" in names and "s3k_envs/demos.py" in names
    metadata = zipfile.ZipFile(wheel).read("s3k_envs-0.1.0.dist-info/METADATA").decode()
    required = [line for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    for heavy in ("stable-baselines3", "tensorboard", "matplotlib"):
        assert not any(heavy in line for line in required), f"{heavy} is a hard dependency"


@pytest.mark.parametrize(("platform", "environ", "expected"), [
    ("linux", {}, "egl"),
    ("linux", {"DISPLAY": ":0"}, None),
    ("linux", {"MUJOCO_GL": "osmesa"}, None),
    ("darwin", {}, None),
    ("win32", {}, None),
])
def test_headless_gl_default_is_egl_on_linux_only(platform: str, environ: dict[str, str],
                                                  expected: str | None) -> None:
    assert s3k_envs.default_gl_backend(platform, environ) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork + EGL is a Linux matter")
def test_fork_after_rendering_raises_instead_of_hanging(make_env) -> None:
    from s3k_envs.rendering import ForkAfterRenderingError

    make_env("S3K-Box-v0").reset(seed=0)  # this process now owns a GL context
    vec = gym.vector.AsyncVectorEnv([lambda: gym.make("S3K-Box-v0", image_size=16)],
                                    context="fork")
    try:
        with pytest.raises(ForkAfterRenderingError, match="forkserver"):
            vec.reset(seed=0)
    finally:
        vec.close(terminate=True)


def test_pusher_advertises_and_accepts_only_what_it_renders() -> None:
    pytest.importorskip("mujoco")
    env = gym.make("S3K-Pusher-v0", image_size=16)
    try:
        assert env.metadata["render_modes"] == ["rgb_array"]
    finally:
        env.close()
    with pytest.raises(ValueError, match="render_mode"):
        gym.make("S3K-Pusher-v0", render_mode="human")


def test_envs_prints_angles_in_degrees_too() -> None:
    assert cli.format_option("camera_fovy", (0.6981317007977318, 0.8726646259971648)) == \
        "camera_fovy = (0.6981, 0.8727)  # rad = (40, 50) deg"
    assert cli.format_option("max_angular_speed", 1.0) == \
        "max_angular_speed = 1  # rad/s = 57.3 deg/s"
    assert cli.format_option("image_size", 128) == "image_size = 128"


@pytest.mark.parametrize("command", ["demo", "demos", "generate", "train", "evaluate", "snapshot"])
def test_every_command_has_its_own_usage_and_option_help(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: s3k {command}"), out[:80]
    # every option (a line starting with "  --") carries a help text: the line, or the next
    # one when argparse wraps, has more than the flag and its metavar
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  --") and line.strip().split()[0] != "--help":
            text = line.strip().split("  ", 1)
            wrapped = i + 1 < len(lines) and lines[i + 1].startswith(" " * 20)
            assert len(text) == 2 or wrapped, f"s3k {command}: no help for {line.strip()!r}"
