"""Benchmarks run by ``tools/benchmark.py <name>``.

Each submodule ``vidpose/benchmarks/<name>.py`` defines ``DESCRIPTION`` (one line),
``add_arguments(parser)`` and ``run(args) -> list[dict]``; every dict is one table row
(same keys in every row). ``--quick`` selects a CI-sized run. Timing goals live here and
in ``docs/benchmarks.md``, never in unit tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["format_table", "time_call"]


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], title: str = "") -> str:
    """Render rows (dicts with the same keys) as an aligned text table."""
    if not rows:
        return f"{title}\n(no rows)" if title else "(no rows)"
    keys = list(rows[0])
    cells = [[_fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) if _is_num(c) else c.ljust(w) for c, w in zip(row, widths)) for row in cells)
    return "\n".join(lines)


def _is_num(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
