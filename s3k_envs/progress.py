"""Progress display of the long-running commands (``s3k generate``, ``s3k train``, the beta-VAE
trainer, demonstration recording).

In a terminal it is a tqdm bar. When the stream is not a terminal (a log file, a pipe, a CI
job) a bar would be redrawn ~10 times a second into one ever-growing line; there
:class:`Progress` writes instead a short plain line every :data:`PLAIN_INTERVAL_S` seconds
(``desc: 120/1000 sample (12%), 2.1 sample/s, loss=0.31``) and one when it closes, if it has
written any: a run shorter than the interval writes nothing.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

#: Seconds between plain progress lines when the stream is not a terminal.
PLAIN_INTERVAL_S = 60.0


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, StringIO)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _number(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 or abs(x) >= 100 else f"{x:.1f}"


class Progress:
    """A progress bar in a terminal, a few plain lines elsewhere, nothing when disabled.

    The part of tqdm's interface the project uses: :meth:`update`, :attr:`n`,
    :meth:`set_postfix`, :meth:`close`, and use as a context manager.

    Args:
        total: amount of work (samples, steps, or seconds of a time budget).
        desc: label in front of the bar / line.
        unit: unit of ``total`` (``"sample"``, ``"ep"``, ``"cpu s"``, ...).
        initial: amount already done (a resumed run).
        enabled: False: show nothing.
        stream: where to write; default ``sys.stderr``.
        interval: seconds between plain lines (non-terminal streams).
        terminal: force the terminal (True) or plain (False) mode; default: ask ``stream``.
        **tqdm_kwargs: further options of the tqdm bar (``smoothing``, ``bar_format``, ...).
    """

    def __init__(self, total: float, desc: str, unit: str = "it", initial: float = 0,
                 enabled: bool = True, stream: TextIO | None = None,
                 interval: float = PLAIN_INTERVAL_S, terminal: bool | None = None,
                 **tqdm_kwargs: Any) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n: float = initial
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.postfix: dict[str, Any] = {}
        self._bar: Any = None
        self._plain = False
        self._printed = False
        self._initial = initial
        self._t0 = self._last = time.monotonic()
        if not enabled:
            return
        if is_terminal(self.stream) if terminal is None else terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                             file=self.stream, dynamic_ncols=True, **tqdm_kwargs)
        else:
            self._plain = True

    def update(self, amount: float = 1) -> None:
        """Add ``amount`` of work done (may be a float, e.g. seconds)."""
        self.n += amount
        if self._bar is not None:
            self._bar.update(amount)
        elif self._plain and time.monotonic() - self._last >= self.interval:
            self._write_line()

    def set_postfix(self, **fields: Any) -> None:
        """Show ``name=value`` fields after the bar / line; a None value is left out."""
        self.postfix = {k: v for k, v in fields.items() if v is not None}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix)

    def line(self) -> str:
        """The plain progress line: ``desc: n/total unit (p%), rate unit/s, fields``."""
        parts = [f"{self.desc}: {_number(self.n)}/{_number(self.total)} {self.unit}"]
        if self.total and math.isfinite(self.total):
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        dt = time.monotonic() - self._t0
        if dt > 0:
            parts.append(f"{(self.n - self._initial) / dt:.3g} {self.unit}/s")
        parts.extend(f"{k}={v}" for k, v in self.postfix.items())
        return ", ".join(parts)

    def _write_line(self) -> None:
        self._last = time.monotonic()
        self._printed = True
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar; in plain mode write a last line if any line was written."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain and self._printed:
            self._write_line()
        self._plain = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
