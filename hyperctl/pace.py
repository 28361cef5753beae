"""How far jobs and batches are, and when they will end at the pace so far.

A job tells its progress by reporting the metric `progress` (hyperctl.report(progress=0.4)),
from 0 (nothing done) to 1 (all done); a value outside that is taken as the nearest end of it,
and NaN as no report.
"""

from __future__ import annotations

import math

from hyperctl.output import format_duration

PROGRESS = "progress"  # the metric a job reports its progress as


def fraction(value: float | None) -> float | None:
    """A reported progress as 0..1 (clamped); None for none, or NaN."""
    if value is None or math.isnan(value):
        return None
    return min(1.0, max(0.0, value))


_ETA_MAX = 100 * 365 * 86400.0  # seconds: an ETA beyond a century is none


def eta(elapsed: float | None, done: float, total: float) -> float | None:
    """Seconds left if the rest goes at the pace of the `elapsed` seconds that did `done` of
    `total` (fractions count); None before anything is done, or once all is."""
    if elapsed is None or done <= 0 or done >= total:
        return None
    left = elapsed / done * (total - done)
    return left if left < _ETA_MAX else None  # a pace that far (or infinitely) off says nothing


def progress_text(progress: float | None, left: float | None) -> str | None:
    """`40% ETA 0:30` (`40%` when no ETA is known); None when no progress was reported."""
    if progress is None:
        return None
    shown = f"{math.floor(progress * 100):.0f}%"  # floor: never 100% before the end
    return shown if left is None else f"{shown} ETA {format_duration(left)}"
