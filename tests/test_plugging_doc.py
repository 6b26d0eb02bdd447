"""Every command and Python snippet of docs/plugging-into-your-env.md runs as written, at tiny
sizes (few samples, a few training steps), in a fresh working directory that holds the doc's
example module ``my_envs.py``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugging-into-your-env.md"
EXAMPLES = REPO / "docs" / "examples"
S3K = Path(sys.executable).with_name("s3k")

#: (pattern, replacement) that shrink a command; nothing else is changed.
TINY = [
    (r"--samples \d+", "--samples 4"),
    (r"--rollout-steps \d+", "--rollout-steps 2"),
    (r"--minutes [\d.]+", "--steps 2"),
]


def doc_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of the fenced code blocks of a markdown text, in order."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(\w+)\n(.*?)^```", text, flags=re.S | re.M)]


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    lines = [line.split(" #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def tiny(command: str) -> str:
    for pattern, replacement in TINY:
        command = re.sub(pattern, replacement, command)
    return command


def test_the_doc_has_commands_and_snippets() -> None:
    blocks = doc_blocks(DOC.read_text())
    commands = [c for lang, code in blocks if lang == "bash" for c in shell_commands(code)]
    assert sum(c.startswith("s3k ") for c in commands) >= 10
    assert sum(lang == "python" for lang, _ in blocks) >= 4
    assert tiny("s3k generate X --samples 300 --rollout-steps 30") == \
        "s3k generate X --samples 4 --rollout-steps 2"


@pytest.mark.timeout(1200)
def test_every_command_and_snippet_runs(tmp_path: Path) -> None:
    """Blocks run in document order in one directory (later ones use earlier outputs)."""
    if not S3K.exists():
        pytest.skip("the s3k console script is not installed")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLES / "my_envs.py", work / "my_envs.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("MUJOCO_GL", "egl")
    ran = 0
    for lang, code in doc_blocks(DOC.read_text()):
        if lang == "bash":
            for command in shell_commands(code):
                if command.startswith("export "):
                    for assignment in shlex.split(command)[1:]:
                        key, _, value = assignment.partition("=")
                        env[key] = value
                    continue
                argv = shlex.split(tiny(command))
                assert argv[0] == "s3k", f"the doc runs something else than s3k: {command}"
                done = subprocess.run([str(S3K), *argv[1:]], cwd=work, env=env,
                                      capture_output=True, text=True, timeout=600, check=False)
                assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
                ran += 1
        elif lang == "python":
            done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=600, check=False)
            assert done.returncode == 0, f"{code}\n{done.stdout}\n{done.stderr}"
            assert done.stdout.strip(), f"a snippet that prints nothing:\n{code}"
            ran += 1
    assert ran >= 14
