"""Reading an attempt's metrics file (reporting.py writes it): new bytes at a time, by offset.

Only whole lines are read: a last line without its newline is a point still being written (or
one a killed job left cut), read once it is whole, never half. A line that is not a JSON object
of numbers is skipped and counted, never the end of the rest. Summaries (last, min, max, their
steps, count) are kept per metric as points come, so that listing and comparing never go back
over every point.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

RESERVED = ("t", "step")


@dataclass
class Point:
    t: float | None
    step: int
    values: dict[str, float]


@dataclass
class Summary:
    """One metric of one attempt: its last value, its least and greatest, each at its step."""

    last: float
    last_step: int
    min: float
    min_step: int
    max: float
    max_step: int
    count: int = 1

    def add(self, value: float, step: int) -> None:
        self.last, self.last_step = value, step
        self.count += 1
        if math.isnan(value):
            return  # NaN is kept as the last value, never as the least nor the greatest
        if math.isnan(self.min) or value < self.min:
            self.min, self.min_step = value, step
        if math.isnan(self.max) or value > self.max:
            self.max, self.max_step = value, step


@dataclass
class Reading:
    """What one read of new bytes gave: the points, how many bytes it used, lines it skipped."""

    points: list[Point] = field(default_factory=list)
    used: int = 0
    skipped: int = 0


def read_new(data: bytes, lines_before: int = 0) -> Reading:
    """Parse the whole lines at the start of data (bytes from the file's last offset on). A line
    without a step (a shell job's own) gets its line number in the file, from 0: lines_before is
    how many lines came before data."""
    end = data.rfind(b"\n") + 1
    reading = Reading(used=end)
    if end == 0:
        return reading
    text = data[:end].decode("utf-8", errors="replace")
    try:  # the usual case: every line good, parsed by one call of the C decoder
        objects: list[Any] = json.loads("[" + text.rstrip("\n").replace("\n", ",") + "]")
    except ValueError:
        objects = [_loads(line) for line in text.splitlines()]
    for n, obj in enumerate(objects):
        point = _point(obj, lines_before + n)
        if point is None:
            reading.skipped += 1
        else:
            reading.points.append(point)
    return reading


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _point(obj: Any, n: int) -> Point | None:
    if not isinstance(obj, dict):
        return None
    step = obj.get("step", n)
    t = obj.get("t")
    if isinstance(step, bool) or not isinstance(step, int) or (t is not None and not _is_number(t)):
        return None
    values = {k: float(v) for k, v in obj.items() if k not in RESERVED and _is_number(v)}
    return Point(float(t) if t is not None else None, step, values) if values else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarize(points: list[Point], summaries: dict[str, Summary]) -> None:
    """Fold points into summaries (metric -> Summary), in the order they were reported."""
    for point in points:
        for key, value in point.values.items():
            summary = summaries.get(key)
            if summary is None:
                summaries[key] = Summary(value, point.step, value, point.step, value, point.step)
            else:
                summary.add(value, point.step)
