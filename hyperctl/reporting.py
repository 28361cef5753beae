"""report(): what a job measured, appended to its attempt's metrics file. Stdlib only; also sent
to SSH hosts, so jobs report where hyperctl is not installed.

The file is the truth (the daemon reads it by offset): one JSON object per line,

    {"t": 1764264000.123, "step": 3, "loss": 0.25, "acc": 0.91}

`t` is when it was reported (seconds since the epoch), `step` an integer, every other key a
metric (a number; NaN and infinities are written as JSON's NaN, Infinity, -Infinity). A shell
job may append such lines itself: `echo '{"step": 1, "loss": 0.5}' >> "$HYPERCTL_METRICS_FILE"`
(without t, the point has no time). A last line without its newline (a job killed mid-write)
is not read.

report() never blocks on the network and never fails the job: a value that is not a number is
left out, and a file that cannot be written (a full disk) loses the point, each said once on
stderr.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

METRICS_ENV = "HYPERCTL_METRICS_FILE"
RESERVED = ("t", "step")
MAX_LINE_BYTES = 1 << 20  # as metricsfile's (this module stands alone where jobs run)

_fd: int | None = None
_path: str | None = None
_calls = 0  # a step for calls that give none: the calls of this process, from 0
_said: set[str] = set()
_cut = False  # the last write was cut short: the file ends in part of a line


def report(metrics: dict[str, Any] | None = None, /, step: int | None = None, **more: Any) -> None:
    """Record metrics at a step: `report(loss=0.25, acc=0.9)`, `report({"loss": 0.25}, step=3)`.

    Without a step, the step counts this process's calls to report(), from 0. Outside a job
    that hyperctl runs (no metrics file), nothing is recorded.
    """
    global _calls
    n = _calls
    _calls += 1
    try:
        values = {**metrics, **more} if metrics else more
        point: dict[str, Any] = {"t": round(time.time(), 6), "step": n if step is None else _step(step)}
        for key, value in values.items():
            number = _number(key, value)
            if number is not None:
                point[key] = number
        if len(point) > 2:
            line = json.dumps(point, separators=(",", ":")) + "\n"
            if len(line) > MAX_LINE_BYTES:  # ASCII (json's escapes): a character a byte
                raise ValueError(f"a point of {len(line)} bytes: the daemon reads lines of {MAX_LINE_BYTES} at most")
            _write(line)
    except Exception as e:  # never the job's end: a report is worth less than the job
        _say_once(type(e).__name__, f"hyperctl.report: {e}")


def _step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        try:
            if float(step) != int(step):
                raise ValueError
            step = int(step)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"step must be a whole number, not {step!r}: the point is left out") from None
    if not -(2**63) <= step < 2**63:  # what the daemon's store keeps (SQLite's integers)
        raise ValueError(f"step {step} is out of range (±2**63): the point is left out")
    return step


def _number(key: Any, value: Any) -> float | int | None:
    if not isinstance(key, str) or key in RESERVED:
        _say_once(f"key {key!r}", f"hyperctl.report: {key!r} is not a metric name (t and step are reserved): left out")
        return None
    kind = type(value)
    if kind is float or (kind is int and -(2**63) < value < 2**63):  # the usual case, first
        return value
    if isinstance(value, (str, bytes, bool)) or value is None:
        _say_once(f"value {key}", f"hyperctl.report: {key}={value!r} is not a number: left out")
        return None
    try:
        number = float(value)  # numpy and torch scalars, Decimal, Fraction; a big int
    except (TypeError, ValueError, OverflowError):
        _say_once(f"value {key}", f"hyperctl.report: {key}={value!r} is not a number: left out")
        return None
    return number if not math.isfinite(number) or number != int(number) else int(number)


def _write(line: str) -> None:
    global _fd, _path, _cut
    path = os.environ.get(METRICS_ENV)
    if not path:
        _say_once("no file", f"hyperctl.report: not inside a hyperctl job (no ${METRICS_ENV}): metrics not recorded")
        return
    if _fd is None or path != _path:  # opened once: a report costs one write
        if _fd is not None:
            os.close(_fd)
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _path, _cut = path, False
    data = b"\n" + line.encode() if _cut else line.encode()  # a cut line ends first: it never takes this one
    _cut = os.write(_fd, data) != len(data)
    if _cut:
        raise OSError(f"{path}: a short write (the disk is full?): a point was cut")


def _say_once(what: str, message: str) -> None:
    if what not in _said:
        _said.add(what)
        try:
            print(message, file=sys.stderr, flush=True)
        except (OSError, ValueError, AttributeError):
            pass  # no stderr to write to (a full disk, often the metrics file's): the note is lost, not the job
