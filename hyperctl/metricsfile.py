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
import re
import sys
from dataclasses import dataclass, field
from typing import Any

RESERVED = ("t", "step")
STEPS = range(-(2**63), 2**63)  # the steps the store keeps (SQLite's integers): a line with another is no point


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
    # Read for summaries alone (read_new(..., points=False)): each metric's values and steps.
    columns: dict[str, tuple[list[float], list[int]]] | None = None


def read_new(data: bytes, lines_before: int = 0, points: bool = True) -> Reading:
    """Parse the whole lines at the start of data (bytes from the file's last offset on). A line
    without a step (a shell job's own) gets its line number in the file, from 0: lines_before is
    how many lines came before data. Without points, each metric's values and steps instead:
    all that summaries need, at a fraction of the cost (the daemon reads every point so)."""
    end = data.rfind(b"\n") + 1
    reading = Reading(used=end)
    if end == 0:
        return reading
    text = data[:end].decode("utf-8", errors="replace")
    try:  # the usual case: every line good, parsed by one call of the C decoder
        # The newlines stay (a string open across one is refused, as JSON has no raw newline in a
        # string), and there must be an object a line: two broken lines never make one point.
        objects: list[Any] = json.loads("[" + text.rstrip("\n").replace("\n", ",\n") + "]")
        if len(objects) != text.count("\n"):
            raise ValueError
    except ValueError:
        objects = [_loads(line) for line in text.split("\n")[:-1]]
    if _HALF_CHARACTER.search(text):  # rare: one C search over the text tells
        objects = [_whole_names(obj) for obj in objects]
    if not points:
        reading.columns, reading.skipped = _columns(objects, lines_before)
        return reading
    for n, obj in enumerate(objects):
        point = _point(obj, lines_before + n)
        if point is None:
            reading.skipped += 1
        else:
            reading.points.append(point)
    return reading


# A JSON escape of half a character (a lone surrogate, "\ud800"): a name holding one is no text
# that a store, a terminal or a file can hold, and is left out (the line's other metrics are kept).
_HALF_CHARACTER = re.compile(r"\\u[dD][89a-fA-F]")


def _whole_names(obj: Any) -> Any:
    if type(obj) is not dict:
        return obj
    return {k: v for k, v in obj.items() if _is_text(k)}


def _is_text(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


_NUMBERS = (float, int)  # by exact type: a bool is no number here


def _point(obj: Any, n: int) -> Point | None:
    if type(obj) is not dict:
        return None
    step = obj.get("step", n)
    t = obj.get("t")
    if type(step) is not int or step not in STEPS or (t is not None and type(t) not in _NUMBERS):
        return None
    # Every line of every job goes through here: type checks inline, no call per value.
    try:
        values = {k: v if type(v) is float else float(v) for k, v in obj.items() if type(v) in _NUMBERS}
    except OverflowError:  # an integer beyond any float: not a number a store keeps
        return None
    values.pop("t", None)
    values.pop("step", None)
    return Point(float(t) if t is not None else None, step, values) if values else None


def _columns(objects: list[Any], lines_before: int) -> tuple[Columns, int]:
    """What _point() finds in the objects, as columns (each metric's values and their steps), and
    the count of objects that are no point. The usual lines (report()'s: the same keys in each,
    every value a number) are taken a column at a time, each check a C loop over it."""
    first = objects[0] if objects else None
    if type(first) is not dict or "step" not in first or set(map(type, objects)) != {dict}:
        return _columns_by_line(objects, lines_before)
    keys, size = list(first), len(first)
    try:
        if set(map(len, objects)) != {size}:
            raise KeyError  # not the same keys in each
        steps = [o["step"] for o in objects]
        if (
            set(map(type, steps)) != {int}
            or min(steps) not in STEPS
            or max(steps) not in STEPS
            or ("t" in first and not set(map(type, [o["t"] for o in objects])) <= _NUMBER_SET)
        ):
            raise KeyError
        columns: Columns = {}
        for key in keys:
            if key in RESERVED:
                continue
            values = [o[key] for o in objects]  # a KeyError: not the same keys in each
            kinds = set(map(type, values))
            if kinds <= _NUMBER_SET:
                if int in kinds and (min(values) < -_INT_MAX or max(values) > _INT_MAX):
                    raise KeyError  # an integer the store cannot keep as one: by line, as a float
                columns[key] = (values, steps)
            elif kinds & _NUMBER_SET:
                raise KeyError  # numbers in some lines only
    except KeyError:
        return _columns_by_line(objects, lines_before)
    return columns, 0 if columns else len(objects)


_NUMBER_SET = set(_NUMBERS)
_INT_MAX = 2**63 - 1
_FLOAT_MAX = sys.float_info.max
Columns = dict[str, tuple[list[float], list[int]]]  # a metric's values, and the step of each


def _columns_by_line(objects: list[Any], lines_before: int) -> tuple[Columns, int]:
    points = [_point(obj, n) for n, obj in enumerate(objects, lines_before)]
    found = [p for p in points if p is not None]
    return _columns_of(found), len(points) - len(found)


def _columns_of(points: list[Point]) -> Columns:
    columns: Columns = {}
    for point in points:
        for key, value in point.values.items():
            column = columns.get(key)
            if column is None:
                columns[key] = column = ([], [])
            column[0].append(value)
            column[1].append(point.step)
    return columns


def summarize(points: list[Point], summaries: dict[str, Summary]) -> None:
    """Fold points into summaries (metric -> Summary), in the order they were reported."""
    summarize_columns(_columns_of(points), summaries)


def summarize_columns(columns: Columns, summaries: dict[str, Summary]) -> None:
    """Fold each metric's values (and their steps), in the order reported, into summaries."""
    for key, (values, steps) in columns.items():
        numbers, at = values, steps
        if any(map(math.isnan, values)):  # NaN is never the least nor the greatest
            kept = [i for i, v in enumerate(values) if v == v]
            numbers, at = [values[i] for i in kept], [steps[i] for i in kept]
        summary = summaries.get(key)
        if summary is None:
            summary = summaries[key] = Summary(values[-1], steps[-1], math.nan, steps[0], math.nan, steps[0], 0)
        summary.last, summary.last_step = values[-1], steps[-1]
        summary.count += len(values)
        if numbers:
            least, most = min(numbers), max(numbers)  # the first of equals, as add() keeps
            if math.isnan(summary.min) or least < summary.min:
                summary.min, summary.min_step = least, at[numbers.index(least)]
            if math.isnan(summary.max) or most > summary.max:
                summary.max, summary.max_step = most, at[numbers.index(most)]


MAX_LINE_BYTES = 1 << 20  # a longer line is no point: the daemon reads files a block of this at a time
MAX_POINTS_PER_REQUEST = 1000  # points one request of the API may add (as MLflow's log_batch caps it)


def lines_from_body(body: Any, now: float) -> tuple[bytes, int]:
    """The metrics file's lines for points sent to the API (a JSON object, or an array of them,
    as report() writes them; t is now when left out), and how many; ValueError naming what is
    wrong (`[2].loss: ...`), and then nothing is written."""
    points = body if isinstance(body, list) else [body]
    if not all(isinstance(p, dict) for p in points) or not points:
        raise ValueError("the body must be a point (a JSON object of metrics) or an array of them")
    if len(points) > MAX_POINTS_PER_REQUEST:
        raise ValueError(f"{len(points)} points in one request: at most {MAX_POINTS_PER_REQUEST}")
    lines = []
    for i, point in enumerate(points):
        where = f"[{i}]" if isinstance(body, list) else "the point"
        for key, value in point.items():
            if not _is_text(key):
                raise ValueError(f"{where}.{key!r}: not a metric name (half of a character)")
            if key == "step" and (type(value) is not int or value not in STEPS):
                raise ValueError(f"{where}.step: must be a whole number within ±2**63, not {value!r}")
            if type(value) not in _NUMBERS or (type(value) is int and abs(value) > _FLOAT_MAX):
                raise ValueError(f"{where}.{key}: must be a number, not {value!r}")
        if not set(point) - set(RESERVED):
            raise ValueError(f"{where}: no metric (a number besides t and step)")
        line = json.dumps({"t": round(now, 6), **point}, separators=(",", ":")) + "\n"
        if len(line) > MAX_LINE_BYTES:  # its names are ASCII: a character a byte
            raise ValueError(f"{where}: {len(line)} bytes as a line: at most {MAX_LINE_BYTES} (a longer is not read)")
        lines.append(line)
    return "".join(lines).encode(), len(lines)
