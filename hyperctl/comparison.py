"""The compare table: one row per job of one or several batches, its params beside what it reported.

Read in bulk (comparedata.py: one query per batch, never per job, never a point) and kept column
by column, so a 100,000-job batch compares in under a second. No HTTP and no printing here: the
CLI (commands/compare.py), the API and the Python API show the Table.
"""

from __future__ import annotations

import csv
import gc
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any

from hyperctl.comparedata import SUMMARY, Jobs, Reader, read_jobs
from hyperctl.comparegrammar import (
    ATTR,
    ATTRIBUTES,
    METRIC,
    PARAM,
    PLAIN,
    CompareError,
    Filter,
    Ref,
    SortKey,
    parse_columns,
    parse_filter,
    parse_sort,
)
from hyperctl.layout import BatchDir


@dataclass
class Table:
    """What compare shows: headers, and the cells column by column (str, int, float or None; NaN
    is a float NaN); rows, one dict per row keyed by the headers, are made when asked."""

    columns: list[str]
    cells: list[list[Any]]  # one list per header, all as long
    kinds: dict[str, str] = field(default_factory=dict)  # header -> "duration" or "time": how to show it
    attempt: str = "last"
    notes: list[str] = field(default_factory=list)  # one line each, for a person (stderr): a dead daemon's batch
    shows: dict[str, Ref] = field(default_factory=dict)  # header -> what it shows (a param, a metric: a chart)

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in zip(*self.cells)]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}

    def write_csv(self, f: IO[str]) -> None:
        """Every row, full precision (a float as Python writes it back exactly), None as empty."""
        out = csv.writer(f)
        out.writerow(self.columns)
        out.writerows(zip(*self.cells))


_KINDS = {"duration": "duration", "started": "time", "ended": "time"}


def compare(
    batch_dirs: list[BatchDir],
    columns: list[str] | None = None,
    *,
    sort: Iterable[str] = (),
    where: Iterable[str] = (),
    top: int | None = None,
    all_params: bool = False,
    attempt: str = "last",
    reader: Reader | None = None,
) -> Table:
    """The compare table of these batches' jobs (see comparegrammar for the expressions).

    Default columns: batch (when several), name, status, duration, host, the params whose value
    differs between the rows (every param with all_params), and each metric's last value. Rows
    keep the batches' order unless sorted; a missing or NaN value sorts last either way. attempt:
    "last", or a number K (only the jobs that have an attempt K). A bad expression, or one that
    names nothing the jobs have, raises CompareError naming it; nothing is read before the
    expressions are parsed. reader: how the jobs are read (comparedata.read_jobs; the dashboard
    keeps what it read while the stores do not change).
    """
    chosen = parse_columns(columns) if columns else None
    keys = [parse_sort(text) for text in sort]
    filters = [parse_filter(text) for text in where]
    if top is not None and top < 0:
        raise CompareError(f"top: must be 0 or more, not {top}")
    n = _attempt_number(attempt)
    with _no_gc():
        return _compare(batch_dirs, chosen, keys, filters, top, all_params, attempt, n, reader)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Without the cyclic collector, which would walk the young objects again and again while
    hundreds of thousands of rows are made (a third of the time at 100,000 jobs); none of them
    form cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compare(
    batch_dirs: list[BatchDir],
    chosen: list[Ref] | None,
    keys: list[SortKey],
    filters: list[Filter],
    top: int | None,
    all_params: bool,
    attempt: str,
    n: int | None,
    reader: Reader | None,
) -> Table:
    asked = (chosen or []) + [k.ref for k in keys] + [f.ref for f in filters]
    stats = sorted({SUMMARY[r.stat, r.step] for r in asked if r.kind == METRIC} | {"last"})
    jobs = (reader or read_jobs)(batch_dirs, n, stats)
    params, metrics = set(jobs.param_names()), jobs.metric_names()

    labels = {ref.label: ref for ref in chosen or () if ref.label}  # `--sort -best` of `-c 'max acc as best'`

    def resolve(ref: Ref, what: str) -> Ref:
        named = labels.get(ref.key) if ref.kind == PLAIN else None
        return (named or ref).resolve(params, metrics, what)

    kept = list(range(len(jobs)))
    for f in filters:
        values = jobs.column(f.checked(resolve(f.ref, f"filter '{f.text}'")).ref)
        kept = [i for i in kept if f.keeps(values[i])]
    resolved = [SortKey(resolve(k.ref, f"sort key '{k.ref.text}'"), k.descending) for k in keys]
    several = len(batch_dirs) > 1
    if chosen is None:
        refs = _default_columns(jobs, kept, several, all_params)
    else:
        refs = [ref.resolve(params, metrics, f"column '{ref.text}'") for ref in chosen]
        refs = _identity(refs, several) + list({_same(r): r for r in refs}.values())
    for key in reversed(resolved):
        kept = _sorted(kept, jobs.column(key.ref), key.descending)
    if top is not None:
        kept = kept[:top]
    headers = _headers(refs)
    cells = [_picked(values, kept) for values in map(jobs.column, refs)]
    kinds = {h: _KINDS[r.key] for h, r in zip(headers, refs) if r.kind == ATTR and r.key in _KINDS}
    return Table(headers, cells, kinds, attempt, jobs.notes, dict(zip(headers, refs)))


def _picked(values: list[Any], kept: list[int]) -> list[Any]:
    """The values of the kept rows, in their order (in C: a 100,000-row column at a time)."""
    if len(kept) < 2:
        return [values[i] for i in kept]
    if len(kept) == len(values) and kept[-1] == len(values) - 1 and kept == list(range(len(values))):
        return list(values)
    return list(operator.itemgetter(*kept)(values))


def _attempt_number(attempt: str) -> int | None:
    if attempt == "last":
        return None
    try:
        n = int(attempt)
    except ValueError:
        n = 0
    if n < 1:
        raise CompareError(f"attempt: must be 'last' or a whole number from 1, not '{attempt}'")
    return n


def _identity(refs: list[Ref], several: bool) -> list[Ref]:
    """The columns that say which job a row is, unless the chosen columns have them already."""
    have = {r.key for r in refs if r.kind == ATTR}
    wanted = ("batch", "name") if several else ("name",)
    return [Ref(ATTR, key) for key in wanted if key not in have]


def _default_columns(jobs: Jobs, kept: list[int], several: bool, all_params: bool) -> list[Ref]:
    refs = [Ref(ATTR, key) for key in (("batch",) if several else ()) + ("name", "status", "duration", "host")]
    for key in jobs.param_names():
        ref = Ref(PARAM, key)
        if all_params or _varies(jobs.column(ref), kept):
            refs.append(ref)
    shown = [key for key in sorted(jobs.metric_names()) if _any_value(jobs.column(Ref(METRIC, key)), kept)]
    return refs + [Ref(METRIC, key) for key in shown]


def _any_value(values: list[Any], kept: list[int]) -> bool:
    return any(values[i] is not None for i in kept)


def _varies(values: list[Any], kept: list[int]) -> bool:
    return bool(kept) and any(values[i] != values[kept[0]] for i in kept)


def _same(ref: Ref) -> tuple[str, str, str, bool, str | None]:
    """What a column shows, however it was written (`loss`, `last loss`): given twice, shown once."""
    return ref.kind, ref.key, ref.stat, ref.step, ref.label


def _headers(refs: list[Ref]) -> list[str]:
    """Each column's header: as Ref.header has it; where two would be alike (a param, a metric and
    an attribute of one name), the param's is =NAME and the metric's last value's `last NAME`; a
    metric named as an attribute (a job that prints `status: 0`) is `last NAME` always, since NAME
    is the attribute to --sort, --where and a reader."""
    plain = [ref.header for ref in refs]
    headers: list[str] = []
    for ref, header in zip(refs, plain):
        if not ref.label and (plain.count(header) > 1 or ref.kind == METRIC and header in ATTRIBUTES):
            if ref.kind == PARAM:
                header = "=" + header
            elif ref.kind == METRIC and header == ref.key:
                header = "last " + header
        if header in headers:
            raise CompareError(
                f"column '{ref.text or header}': a second column headed '{header}' (name one 'as' another)"
            )
        headers.append(header)
    return headers


def _sorted(kept: list[int], values: list[Any], descending: bool) -> list[int]:
    """Stable: the rows with a value by it (numbers before text), then those without (None, NaN)
    as they were."""
    valued = [i for i in kept if (v := values[i]) is not None and v == v]  # NaN != NaN
    missing = [i for i in kept if (v := values[i]) is None or v != v] if len(valued) < len(kept) else []
    if all(type(values[i]) in (int, float) for i in valued):
        valued.sort(key=values.__getitem__, reverse=descending)
    else:  # numbers before text, whichever the direction
        valued.sort(key=lambda i: (isinstance(values[i], str) != descending, values[i]), reverse=descending)
    return valued + missing
