"""The budgeted, resumable training loop shared by the keypoint trainer (``s3k train``,
:mod:`s3k_envs.keypoints.train`) and the beta-VAE trainer (``agents.beta_vae.training``).

A run stops at ``steps`` optimiser steps or after ``minutes`` of its clock, whichever comes
first: ``"wall"`` (wall-clock time) or ``"cpu"`` (this process's CPU time summed over its
threads, which does not shrink when other programs share the machine). Time already spent by
an interrupted run counts (``elapsed_s`` of its state). :class:`TrainingLoop` counts the steps
and the time, says when a log row, a validation or a checkpoint is due, shows the progress
(:class:`~s3k_envs.progress.Progress`), and turns Ctrl-C into a clean stop so that the caller
saves a state to resume from. :class:`RunLog` is the run's ``log.csv`` (and TensorBoard) that
survives resumption; :func:`resume_config` merges a resumed run's saved settings with the new
ones.

Typical use::

    loop = TrainingLoop(cfg.steps, cfg.minutes, cfg.clock, step=step, elapsed_s=elapsed0, ...)
    with loop:                      # Ctrl-C ends the block, loop.interrupted is then True
        while loop.running():
            lr = schedule(loop.progress())
            ...one optimiser step...
            due = loop.advance()    # step += 1, bar updated
            if due.validate: ...
            if due.log: log.write({...}); loop.show(loss=...)
            if due.checkpoint: save_state(loop.step, loop.elapsed())
    save_state(loop.step, loop.elapsed())
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from s3k_envs.atomic import atomic_open
from s3k_envs.progress import Progress

#: Values of ``--clock``.
CLOCKS = ("wall", "cpu")
_Config = TypeVar("_Config")


def clock_function(clock: str) -> Callable[[], float]:
    """The time source (s) of ``--clock``: ``"wall"`` -> ``time.monotonic``, ``"cpu"`` ->
    ``time.process_time`` (CPU time of this process, all threads)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {list(CLOCKS)}, got {clock!r}")
    return time.monotonic if clock == "wall" else time.process_time


class Due(NamedTuple):
    """What is due after a step (see :meth:`TrainingLoop.advance`)."""

    log: bool
    validate: bool
    checkpoint: bool


class TrainingLoop:
    """Step and time budget, periodic events, progress display and Ctrl-C of a training run.

    Args:
        steps: the run's total optimiser steps (the schedule's length).
        minutes: time budget on ``clock``, minutes; None or 0: ``steps`` only.
        clock: ``"wall"`` or ``"cpu"`` (see the module docstring).
        step: steps already done (a resumed run).
        elapsed_s: seconds of ``clock`` already spent (a resumed run).
        stop_at_step: stop at this step as if interrupted (a later call resumes), or None.
        log_every, checkpoint_every: steps between log rows / checkpoints.
        val_every: steps between validations; None: never.
        progress_bar: show progress (:class:`~s3k_envs.progress.Progress`, on stderr).
        desc: label of the progress display.
        time_bar_steps_per_minute: show the budget's seconds instead of steps when the budget
            would end the run first at this many steps per minute.
        stream: where progress and the interruption note go; default ``sys.stderr``.
    """

    def __init__(self, steps: int, minutes: float | None, clock: str, *, step: int = 0,
                 elapsed_s: float = 0.0, stop_at_step: int | None = None,
                 log_every: int = 1, checkpoint_every: int = 1, val_every: int | None = None,
                 progress_bar: bool = True, desc: str = "train",
                 time_bar_steps_per_minute: float = 600.0,
                 stream: Any = None) -> None:
        self.steps = int(steps)
        self.budget_s = minutes * 60.0 if minutes else math.inf
        self.clock = clock
        self._clock = clock_function(clock)
        self.step = self.start_step = int(step)
        self.elapsed0 = float(elapsed_s)
        self.stop_at_step = stop_at_step
        self.log_every = int(log_every)
        self.checkpoint_every = int(checkpoint_every)
        self.val_every = val_every
        #: True once Ctrl-C ended the ``with`` block.
        self.interrupted = False
        self._stream = stream
        self._t0 = self._clock()
        self._wall0 = time.monotonic()
        #: Whether the progress display counts seconds of the budget (else steps).
        self.by_time = (math.isfinite(self.budget_s) and self.budget_s / 60.0
                        * time_bar_steps_per_minute < self.steps - self.step)
        if self.by_time:
            self.bar = Progress(
                round(self.budget_s), desc, unit=f"{clock} s",
                initial=min(round(self.elapsed0), round(self.budget_s)), enabled=progress_bar,
                stream=stream, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} "
                "[{elapsed}<{remaining}{postfix}]")
        else:
            self.bar = Progress(self.steps, desc, initial=self.step, enabled=progress_bar,
                                stream=stream)

    def elapsed(self) -> float:
        """Seconds of the run's clock spent so far, earlier calls included."""
        return self.elapsed0 + self._clock() - self._t0

    def wall_s_this_call(self) -> float:
        """Wall-clock seconds since this loop was created."""
        return time.monotonic() - self._wall0

    def progress(self) -> float:
        """Fraction of the run done, in [0, 1] while running: the larger of the step and the
        time fractions."""
        return max(self.step / max(self.steps, 1), self.elapsed() / self.budget_s)

    def running(self) -> bool:
        """Whether another step may run (steps, time budget and ``stop_at_step`` left)."""
        return (self.step < self.steps and self.elapsed() < self.budget_s
                and (self.stop_at_step is None or self.step < self.stop_at_step))

    def advance(self) -> Due:
        """Count one finished step, update the progress display, say what is now due."""
        self.step += 1
        if self.by_time:
            self.bar.update(min(self.elapsed(), self.budget_s) - self.bar.n)
        else:
            self.bar.update(1)
        s = self.step
        return Due(log=s % self.log_every == 0,
                   validate=self.val_every is not None and s % self.val_every == 0,
                   checkpoint=s % self.checkpoint_every == 0)

    def show(self, **fields: Any) -> None:
        """Fields shown after the progress bar (None values left out)."""
        self.bar.set_postfix(**fields)

    def needs_final_validation(self) -> bool:
        """After the loop: whether the last step has not been validated yet (the run was not
        interrupted, made progress, and did not end on a validation step)."""
        return (not self.interrupted and self.val_every is not None
                and self.step > self.start_step and self.step % self.val_every != 0)

    def steps_per_s(self) -> float:
        """Steps of this call per second of the run's clock."""
        return (self.step - self.start_step) / max(self.elapsed() - self.elapsed0, 1e-9)

    def __enter__(self) -> TrainingLoop:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> bool:
        self.bar.close()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True
            print(f"\ninterrupted at step {self.step}; saving a checkpoint to resume from",
                  file=self._stream if self._stream is not None else sys.stderr)
            return True
        return False


def resume_config(saved: _Config, new: _Config, may_change: Sequence[str],
                  out: str | Path) -> _Config:
    """The configuration of a resumed run: the saved one, with the budget and bookkeeping
    fields ``may_change`` taken from ``new``; notes on stderr which other new values are
    ignored.

    Args:
        saved, new: dataclass instances of the same type (the run's saved and new settings).
        may_change: field names that a resumed run may change (steps, minutes, ...).
        out: run directory, for the note.
    """
    merged = dataclasses.replace(saved, **{n: getattr(new, n) for n in may_change})
    old, wanted = dataclasses.asdict(merged), dataclasses.asdict(new)
    changed = [k for k, v in old.items() if wanted[k] != v]
    if changed:
        print(f"note: resuming {out} with its saved settings; ignoring the new values of "
              f"{changed}", file=sys.stderr)
    return merged


class RunLog:
    """CSV (+ TensorBoard when installed) log of a training run that survives resumption:
    on resume, rows after ``resume_step`` (written after the last checkpoint) are dropped.

    Args:
        out: run directory (``log.csv`` and ``tb/`` go there).
        columns: CSV columns; ``step`` must be one of them.
        resume_step: step of the checkpoint being resumed, or None for a fresh run.
        use_tensorboard: also write TensorBoard scalars.
    """

    def __init__(self, out: Path, columns: Sequence[str], resume_step: int | None,
                 use_tensorboard: bool = True) -> None:
        self.columns = tuple(columns)
        self.path = out / "log.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with atomic_open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.columns} for r in rows)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, self.columns)
        self.tb: Any = None
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                print("note: tensorboard is not installed; logging to log.csv only",
                      file=sys.stderr)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (missing columns empty; non-finite floats empty)."""
        self.writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        """Close the CSV file and the TensorBoard writer."""
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ""
    return v

