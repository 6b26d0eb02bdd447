"""s3k_envs.progress.Progress and s3k_envs.training (TrainingLoop, resume_config): the
progress display and the budgeted loop shared by the keypoint and beta-VAE trainers."""

from __future__ import annotations

import dataclasses
import io
import time

import pytest

from s3k_envs.progress import Progress
from s3k_envs.training import TrainingLoop, clock_function, resume_config


def test_progress_in_a_log_writes_short_plain_lines() -> None:
    stream = io.StringIO()
    with Progress(1000, "s3k train", unit="step", stream=stream, interval=0.0) as bar:
        bar.set_postfix(loss="0.31", val_mm=None)
        for _ in range(3):
            bar.update(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in stream.getvalue()  # 3 updates + the closing line
    assert lines[0].startswith("s3k train: 10/1000 step (1%), ") and "loss=0.31" in lines[0]
    assert "val_mm" not in stream.getvalue() and all(len(line) < 100 for line in lines)


def test_progress_in_a_log_is_quiet_for_short_runs() -> None:
    stream = io.StringIO()
    bar = Progress(10_000, "s3k generate", unit="sample", stream=stream)  # a line a minute
    for _ in range(10_000):
        bar.update(1)
        bar.set_postfix(failures=0)
    bar.close()
    assert stream.getvalue() == "" and bar.n == 10_000


def test_progress_in_a_terminal_is_a_bar_and_disabled_is_silent() -> None:
    stream = io.StringIO()
    with Progress(5, "demos", unit="ep", stream=stream, terminal=True) as bar:
        bar.update(2)
        bar.set_postfix(failures=1, val_mm=None)
    text = stream.getvalue()
    assert "\r" in text and "demos" in text and "failures=1" in text and "val_mm" not in text
    quiet = io.StringIO()
    with Progress(5, "demos", stream=quiet, terminal=True, enabled=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == "" and bar.n == 5


def test_loop_counts_steps_and_periodic_events() -> None:
    loop = TrainingLoop(10, None, "cpu", log_every=3, checkpoint_every=4, val_every=5,
                        progress_bar=False)
    dues = []
    with loop:
        while loop.running():
            assert 0.0 <= loop.progress() < 1.0
            dues.append(loop.advance())
    assert loop.step == 10 and not loop.interrupted and not loop.by_time
    assert [i + 1 for i, d in enumerate(dues) if d.log] == [3, 6, 9]
    assert [i + 1 for i, d in enumerate(dues) if d.checkpoint] == [4, 8]
    assert [i + 1 for i, d in enumerate(dues) if d.validate] == [5, 10]
    assert not loop.needs_final_validation() and loop.steps_per_s() > 0


def test_loop_resumes_and_stops_at_step() -> None:
    loop = TrainingLoop(10, None, "wall", step=4, elapsed_s=30.0, stop_at_step=7,
                        val_every=5, progress_bar=False)
    with loop:
        while loop.running():
            loop.advance()
    assert loop.step == 7 and loop.start_step == 4 and loop.elapsed() >= 30.0
    assert loop.needs_final_validation()  # 7 was not a validation step
    assert TrainingLoop(10, None, "cpu", step=10, progress_bar=False).running() is False


def test_loop_time_budget_and_time_display() -> None:
    stream = io.StringIO()
    loop = TrainingLoop(10**9, 0.002, "wall", stream=stream, desc="beta-VAE")  # 0.12 s
    assert loop.by_time and loop.bar.unit == "wall s"  # the display counts budget seconds
    with loop:
        while loop.running():
            time.sleep(0.01)
            loop.advance()
    assert 0.12 <= loop.elapsed() < 5 and 1 <= loop.step < 100
    assert loop.progress() >= 1.0 and stream.getvalue() == ""  # short run: no lines
    # A resumed run whose budget is spent does not start.
    assert not TrainingLoop(10, 1.0, "cpu", elapsed_s=60.0, progress_bar=False).running()


def test_ctrl_c_ends_the_loop_cleanly() -> None:
    stream = io.StringIO()
    loop = TrainingLoop(100, None, "cpu", progress_bar=False, stream=stream)
    with loop:
        while loop.running():
            loop.advance()
            if loop.step == 3:
                raise KeyboardInterrupt
    assert loop.interrupted and loop.step == 3
    assert "interrupted at step 3; saving a checkpoint" in stream.getvalue()
    assert not loop.needs_final_validation()
    with pytest.raises(FloatingPointError), TrainingLoop(5, None, "cpu", progress_bar=False):
        raise FloatingPointError("other errors pass through")


def test_clock_and_resume_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="clock"):
        clock_function("gpu")

    @dataclasses.dataclass
    class Cfg:
        steps: int = 10
        lr: float = 1e-3
        minutes: float | None = None

    merged = resume_config(Cfg(steps=10, lr=1e-3), Cfg(steps=20, lr=5e-3, minutes=2.0),
                           ["steps", "minutes"], "runs/x")
    assert merged == Cfg(steps=20, lr=1e-3, minutes=2.0)
    assert "ignoring the new values of ['lr']" in capsys.readouterr().err
    resume_config(Cfg(), Cfg(steps=99), ["steps"], "runs/x")
    assert capsys.readouterr().err == ""
