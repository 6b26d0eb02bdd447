"""The machinery of ``tests/test_readme_results.py``: loading result files and the
:class:`Claim` (README text whose numbers are read from ``benchmarks/results/``).

``one`` and ``rows`` read through :func:`doc` of this module, so a test that swaps ``doc``
(to record or change what is read) patches it here.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"


# ---------------------------------------------------------------------------- loading
@functools.cache
def doc(stem: str) -> dict[str, Any]:
    """``benchmarks/results/<stem>.json``."""
    return json.loads((RESULTS / f"{stem}.json").read_text(encoding="utf-8"))


def rows(stem: str, key: str = "rows", **where: Any) -> list[dict[str, Any]]:
    """The rows (``doc[key]``) of a result file whose fields equal ``where``."""
    return [r for r in doc(stem)[key] if all(_equal(r.get(k), v) for k, v in where.items())]


def one(stem: str, key: str = "rows", **where: Any) -> dict[str, Any]:
    """The single row of ``rows(stem, key, **where)``."""
    found = rows(stem, key, **where)
    assert len(found) == 1, f"{stem}.json {key}: {len(found)} rows match {where}"
    return found[0]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b)
    return a == b


def span(values: Iterable[float]) -> tuple[float, float]:
    values = list(values)
    return min(values), max(values)


def minus(text: str) -> str:
    """The README's typographic minus sign."""
    return text.replace("-", "\u2212")


def hundreds(x: float) -> str:
    """``1,300`` for 1261: a step count rounded to hundreds."""
    return f"{round(x, -2):,.0f}"


# ---------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    """README text ``template`` whose fields come from ``values()`` (a dict)."""

    name: str
    template: str
    values: Callable[[], dict[str, Any]] = field(default=lambda: {})

    def text(self) -> str:
        return self.template.format(**self.values())


def table(name: str, template: str, items: Sequence[tuple[str, Callable[[], dict[str, Any]]]]
          ) -> list[Claim]:
    """One claim per table row: ``items`` = (row id, values of that row)."""
    return [Claim(f"{name}[{rid}]", template, values) for rid, values in items]
