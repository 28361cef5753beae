"""Scalars a job prints (Guild's output scalars): lines of its stdout such as `loss: 0.25` become
metrics, as if the job had reported them.

By default a line that is only `KEY: NUMBER` is one (KEY a name such as `loss`, `val_acc` or
`train/loss`; NUMBER an integer, a decimal, NaN or inf). A `step: N` line sets the step of the
scalars that follow it; before any, a metric's step counts its own lines from 0. The batch file
may give patterns instead (`metrics: {output: [...]}`): each a regular expression matched in
each line, with the groups `key` and `value`, or `{NAME: PATTERN}` whose `value` group (or only
group) is the value of metric NAME.

Stdout may be large and mostly not scalars: the default form is found by one compiled
expression over a whole block (no Python work per line that cannot match).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hyperctl.metricsfile import RESERVED, STEPS, Point, Reading

KEY = r"[A-Za-z_][\w.\-/]*"
NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?))"
# The default form, searched in "\n" + text: the literal newline first lets the regex engine
# skip to line starts at C speed (a `^` with re.M tries every position).
_DEFAULT = re.compile(rf"\n[ \t]*(?P<key>{KEY})[ \t]*:[ \t]*(?P<value>{NUMBER})[ \t]*\r?(?=\n)")
STEP = "step"

# A pattern of the batch file: a regex string, or {NAME: regex}.
PatternSetting = str | dict[str, str]


@dataclass(frozen=True)
class Pattern:
    """One of the batch file's patterns, compiled: a fixed metric name, or None (its key group)."""

    regex: re.Pattern[str]
    name: str | None


def pattern_problem(item: Any) -> str | None:
    """Why a batch file's pattern cannot be used (None: it can)."""
    if isinstance(item, dict):
        if len(item) != 1 or not all(isinstance(k, str) and isinstance(v, str) for k, v in item.items()):
            return "must be a regular expression, or {NAME: expression} with one name"
        name, text = next(iter(item.items()))
        if not re.fullmatch(KEY, name) or name in RESERVED:
            return f"{name!r} is not a metric name (letters, digits, _ . - /; t and step are reserved)"
        regex, why = _compiled(text)
        if regex is None:
            return why
        if "value" not in regex.groupindex and regex.groups != 1:
            return "must have a group (?P<value>...), or exactly one group: the value"
        return None
    if not isinstance(item, str):
        return "must be a regular expression, or {NAME: expression} with one name"
    regex, why = _compiled(item)
    if regex is None:
        return why
    if not {"key", "value"} <= set(regex.groupindex):
        return "must have the groups (?P<key>...) and (?P<value>...)"
    return None


def _compiled(text: str) -> tuple[re.Pattern[str] | None, str]:
    try:
        return re.compile(text, re.MULTILINE), ""
    except re.error as e:
        return None, f"is not a regular expression: {e}"


class OutputScalars:
    """How scalars are found in a job's stdout: the default form, or the batch file's patterns."""

    def __init__(self, patterns: list[PatternSetting] | None = None) -> None:
        self.patterns: list[Pattern] | None = None
        if patterns is not None:
            self.patterns = []
            for item in patterns:
                name, text = next(iter(item.items())) if isinstance(item, dict) else (None, item)
                self.patterns.append(Pattern(re.compile(text, re.MULTILINE), name))

    @classmethod
    def of(cls, setting: bool | list[PatternSetting]) -> OutputScalars | None:
        """From the batch file's `metrics.output` (None: off)."""
        if setting is False:
            return None
        return cls(None if setting is True else setting)

    def find(self, text: str) -> list[tuple[str, str]]:
        """Every (key, value text) in text (whole lines), in the order printed."""
        if self.patterns is None:
            return [(m["key"], m["value"]) for m in _DEFAULT.finditer("\n" + text)]
        found: list[tuple[int, int, str, str]] = []
        for i, pattern in enumerate(self.patterns):
            for m in _in_lines(pattern.regex, text):
                key = pattern.name or m["key"]
                value = m["value"] if "value" in pattern.regex.groupindex else m[1]
                if key is not None and value is not None:
                    found.append((m.start(), i, key, value))
        found.sort()
        return [(key, value) for _, _, key, value in found]

    def read(
        self, data: bytes, step: int | None, counts: dict[str, int], now: float
    ) -> tuple[Reading, bytes, int | None]:
        """The scalars of the whole lines at the start of data (stdout from where reading stands):
        the reading (its points, the bytes used), those points as JSON lines to store (ended by
        a `{"step": N}` line when a `step:` line set the step: where a later reading goes on
        from), and the step then. step is the step a `step:` line set before (None: none did);
        counts, each metric's points before (its step when none is set), is brought up to date."""
        end = data.rfind(b"\n") + 1
        reading = Reading(used=end)
        if end == 0:
            return reading, b"", step
        found = self.find(data[:end].decode("utf-8", errors="replace"))
        if not found:
            return reading, b"", step
        rows: list[dict[str, Any]] = []
        point: dict[str, Any] | None = None
        for key, text in found:
            value = _number(text)
            if value is None:
                continue
            if key == STEP:
                if math.isfinite(value) and value == int(value) and int(value) in STEPS:
                    step, point = int(value), None
                continue
            if key in RESERVED:
                continue
            at = counts.get(key, 0) if step is None else step
            counts[key] = counts.get(key, 0) + 1
            if point is None or point["step"] != at or key in point:
                point = {"t": now, "step": at}
                rows.append(point)
            point[key] = value
        reading.points = [Point(now, row["step"], {k: v for k, v in row.items() if k not in RESERVED}) for row in rows]
        lines = [json.dumps(row, separators=(",", ":")) for row in rows]
        if step is not None:
            lines.append(json.dumps({STEP: step}))
        return reading, ("\n".join(lines) + "\n").encode() if lines else b"", step


def last_step(stored: bytes) -> int | None:
    """The step a `step:` line set, as read() left it at the end of a stored chunk (None: none)."""
    last = stored.rstrip(b"\n").rpartition(b"\n")[2]
    try:
        obj = json.loads(last)
    except ValueError:
        return None
    if isinstance(obj, dict) and list(obj) == [STEP] and isinstance(obj[STEP], int):
        return int(obj[STEP])
    return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _in_lines(regex: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The matches of regex in text, each within one line (a match that spans lines is searched
    again in its first line alone)."""
    pos = 0
    while (m := regex.search(text, pos)) is not None:
        if "\n" not in m[0]:
            yield m
            pos = m.end() if m.end() > m.start() else m.end() + 1
            continue
        start = text.rfind("\n", 0, m.start()) + 1
        stop = text.find("\n", m.start())
        yield from regex.finditer(text, start, stop)
        pos = stop + 1
