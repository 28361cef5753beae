"""A table for a person at a terminal: values shown short (numbers to 4 significant digits), long
text cut with …, and as many columns as the terminal's width holds, the others named."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperctl.output import format_duration, format_time, visible

CELL_MOST = 60  # a longer value is cut even when the width allows it: a table is not a dump (--csv is);
# not a job's name (nor its batch's), which is what one copies into `job metrics`, `job logs`
TEXT_LEAST = 12  # a text column is cut down to this before columns are left out
NAME_LEAST = 40  # and a job's name (or batch) to this: cut shorter, names would look alike
GAP = "  "


def show_number(value: float) -> str:
    """4 significant digits; a whole number as it is (up to a million); nan, inf, -inf."""
    return str(int(value)) if value.is_integer() and -1e6 < value < 1e6 else f"{value:.4g}"


def _show_numbers(values: list[float]) -> list[str]:
    """show_number of each value, formatted in C: "%.4g" is show_number's text but for the whole
    numbers from 10,000 to a million (1.235e+05 where 123456 is wanted) and -0, mended after."""
    cells = list(map(_G4.__mod__, values))
    for i in [i for i, cell in enumerate(cells) if "e" in cell or cell == "-0"]:
        cells[i] = show_number(values[i])
    return cells


_G4 = "%.4g"


def show_text(text: str) -> str:
    return text if text.isprintable() else visible(text)


_SHOW: dict[type, Callable[[Any], str]] = {
    float: show_number,
    int: str,
    bool: lambda v: "true" if v else "false",
    str: show_text,
    type(None): lambda v: "-",
}


def show(value: Any) -> str:
    """A value as a table cell: None as '-', numbers short, text with its control characters escaped."""
    return _SHOW.get(type(value), lambda v: show_text(str(v)))(value)


_KIND: dict[str, Callable[[Any], str]] = {
    "duration": lambda v: "-" if v is None else format_duration(v),
    "time": format_time,
}


def show_column(values: list[Any], kind: str | None = None) -> list[str]:
    """Cells of a column: by its kind (duration, time), else by each value's type; a column of one
    type in one pass, and the values that repeat (a status, a host, a param) shown once."""
    types = set(map(type, values))
    if kind is None and types == {float}:
        return _show_numbers(values)  # a metric: mostly distinct values
    if kind is None and types == {str} and "".join(values).isprintable():
        return values  # names, hosts: shown as they are
    shower = _KIND[kind] if kind else (_SHOW[types.pop()] if len(types) == 1 and next(iter(types)) in _SHOW else show)
    memo: dict[Any, str] = {}
    return [memo[v] if v in memo else memo.setdefault(v, shower(v)) for v in values]


def terminal_width() -> int | None:
    """The width to fit: $COLUMNS when set, else the terminal's; None when stdout is no terminal
    (a pipe or a file gets every column)."""
    given = os.environ.get("COLUMNS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


@dataclass
class Fitted:
    """The table as text, and the headers of the columns that did not fit (in the order left out)."""

    text: str
    left_out: list[str] = field(default_factory=list)


def cut(text: str, width: int) -> str:
    """text in width characters at most, … marking a cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def cut_middle(text: str, width: int) -> str:
    """text in width characters at most, … in its middle: a job's name keeps its end, the digest
    that tells it from its like (`learning_rate-0.0383…_max_depth-2-0310e39b00b1`)."""
    if len(text) <= width:
        return text
    head = max(width - 1, 0) // 2
    return text[:head] + "…" + text[len(text) - (max(width - 1, 0) - head) :]


def fit(
    headers: Sequence[str],
    columns: Sequence[list[str]],
    numeric: Sequence[bool],
    width: int | None,
    keep: int = 1,
    drop_first: Sequence[str] = (),
) -> Fitted:
    """Render columns of cells (numbers right-aligned) within width: long text cut first (to
    TEXT_LEAST; the first `keep` columns, which say which row it is, whole when they fit, else in
    their middle to NAME_LEAST), then columns
    left out: those named in drop_first, then from the right; the first `keep` always stay."""
    natural = [max([len(h), *map(len, cells)]) for h, cells in zip(headers, columns)]
    natural = [w if i < keep else min(CELL_MOST, w) for i, w in enumerate(natural)]
    widths = list(natural)
    shown = list(range(len(headers)))
    left_out: list[str] = []

    def total() -> int:
        return sum(widths[i] for i in shown) + len(GAP) * (len(shown) - 1)

    if width is not None:
        least = [w if numeric[i] else min(w, NAME_LEAST if i < keep else TEXT_LEAST) for i, w in enumerate(natural)]
        while total() > width:
            wide = max(shown, key=lambda i: widths[i] - least[i])
            if widths[wide] <= least[wide]:
                break
            widths[wide] -= min(widths[wide] - least[wide], total() - width)
        order = [headers.index(h) for h in drop_first if h in headers[keep:]]
        order += [i for i in reversed(range(keep, len(headers))) if i not in order]
        for i in order:
            if total() <= width:
                break
            shown.remove(i)
            left_out.append(headers[i])
    kept = []
    for i in shown:
        cells, w = [headers[i], *columns[i]], widths[i]
        if max(map(len, cells)) > w:
            cells = [(cut_middle if i < keep else cut)(cell, w) for cell in cells]
        kept.append(cells)
    # A row is one %-format of its cells (padded in C): a 100,000-row table in a few C loops.
    line = GAP.join(f"%{'' if numeric[i] else '-'}{widths[i]}s" for i in shown)
    text = "\n".join(map(str.rstrip, map(line.__mod__, zip(*kept))))
    return Fitted(text, left_out)
