"""Showing things to people (tables, times) and to scripts (JSON)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# What a terminal would act on rather than show (escape sequences, bells, carriage returns): shown
# as escapes, so that a job's output printed by hyperctl cannot retitle, clear or recolour it.
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}


def visible(text: str) -> str:
    """text with its control characters (tab aside) shown as \\xNN."""
    return text.translate(_VISIBLE)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; None shows as '-'."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def emit_json(value: Any) -> None:
    """Indented for a person at a terminal; compact for a script (the C encoder: 10,000 jobs in
    a tenth of the time)."""
    sys.stdout.write(json.dumps(value, indent=2 if sys.stdout.isatty() else None) + "\n")


def say(message: str) -> None:
    """A note for the person at the terminal: stderr, so stdout stays for data."""
    print(f"hyperctl: {message}", file=sys.stderr)
