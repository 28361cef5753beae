"""The compare table: one row per job of one or several batches, its params beside what it reported.

Read in bulk: per batch, one query for the jobs and their attempts and one over metric_summaries
(never per job, never a point), so a 100,000-job batch compares in under a second. No HTTP
and no printing here: the CLI (commands/compare.py), the API and the Python API show the Table.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

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
from hyperctl.metricstore import REPORT
from hyperctl.spec import JobStatus
from hyperctl.store import Store
from hyperctl.storefaults import fault_of

# A summary column of metric_summaries, by what a column asks of a metric (its stat, its step or not).
_SUMMARY = {
    ("last", False): "last",
    ("last", True): "last_step",
    ("min", False): "min",
    ("min", True): "min_step",
    ("max", False): "max",
    ("max", True): "max_step",
    ("count", False): "count",
}
_REAL = {"last", "min", "max"}  # the columns of values (NULL: NaN); the others are steps and counts
_NAN = float("nan")


@dataclass
class Table:
    """What compare shows: headers, and one dict per row keyed by them (str, int, float or None;
    NaN is a float NaN)."""

    columns: list[str]
    rows: list[dict[str, Any]]
    kinds: dict[str, str] = field(default_factory=dict)  # header -> "duration" or "time": how to show it
    attempt: str = "last"
    notes: list[str] = field(default_factory=list)  # one line each, for a person (stderr): a dead daemon's batch

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}


_ATTRIBUTES = ("batch", "name", "status", "attempt", "host", "started", "ended", "exit_code")  # as read
_KINDS = {"duration": "duration", "started": "time", "ended": "time"}


class _Jobs:
    """The jobs of the batches, column by column (a list per attribute, a dict per job of its
    params and one of its metrics), so that a column of 100,000 jobs is one list comprehension."""

    def __init__(self, stats: list[str]) -> None:
        self.stats = stats  # the summary columns each metric holds (with one, the value is that column's)
        self.attrs: dict[str, list[Any]] = {key: [] for key in _ATTRIBUTES}
        self.params: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.cache: dict[tuple[str, str, str, bool], list[Any]] = {}
        self._param_names: list[str] | None = None
        self.notes: list[str] = []  # for a person: a batch whose daemon died

    def __len__(self) -> int:
        return len(self.params)

    def add(self, batch: str, rows: list[tuple[Any, ...]]) -> None:
        """Jobs: rows of name, status, attempt, host, started, ended, exit_code, params (JSON)."""
        for key, values in zip(_ATTRIBUTES[1:], zip(*rows)):
            self.attrs[key] += values
        self.attrs["batch"] += [batch] * len(rows)
        # One C-decoder call for every job's params, not one call each.
        self._param_names = None
        self.params += json.loads("[" + ",".join(row[-1] for row in rows) + "]") if rows else []
        self.metrics += [{} for _ in rows]

    def add_metrics(self, start: int, summaries: Iterable[tuple[Any, ...]]) -> None:
        """The summaries of the jobs added from `start` on: rows of job, n, source, key and
        self.stats; only those of each job's attempt, a metric both reported and printed as
        reported (metricstore.SOURCES)."""
        index = {name: i for i, name in enumerate(self.attrs["name"][start:], start)}
        attempt, metrics = self.attrs["attempt"], self.metrics
        if len(self.stats) == 1:  # the usual case (each metric's last value), in a loop of its own
            real = self.stats[0] in _REAL
            for job, n, source, key, value in summaries:
                i = index.get(job)
                if i is not None and attempt[i] == n and (source == REPORT or key not in metrics[i]):
                    metrics[i][key] = _NAN if value is None and real else value  # SQLite keeps a NaN as NULL
            return
        reals = [stat in _REAL for stat in self.stats]
        for job, n, source, key, *values in summaries:
            i = index.get(job)
            if i is not None and attempt[i] == n and (source == REPORT or key not in metrics[i]):
                metrics[i][key] = [_NAN if v is None and real else v for v, real in zip(values, reals)]

    def column(self, ref: Ref) -> list[Any]:
        """A resolved column's value for every job."""
        key = (ref.kind, ref.key, ref.stat, ref.step)
        if key not in self.cache:
            self.cache[key] = self._column(ref)
        return self.cache[key]

    def _column(self, ref: Ref) -> list[Any]:
        if ref.kind == ATTR:
            if ref.key == "duration":
                return self._durations()
            return self.attrs[ref.key]
        name = ref.key
        if ref.kind == PARAM:
            values = [p.get(name) for p in self.params]
            if {dict, list} & set(map(type, values)):
                values = [_scalar(v) for v in values]
            return values
        if len(self.stats) == 1:
            return [m.get(name) for m in self.metrics]
        at = self.stats.index(_SUMMARY[ref.stat, ref.step])
        return [None if (s := m.get(name)) is None else s[at] for m in self.metrics]

    def _durations(self) -> list[float | None]:
        now = time.time()
        a = self.attrs
        return [
            (e - s if e is not None else (now - s if status == "running" else None)) if s is not None else None
            for s, e, status in zip(a["started"], a["ended"], a["status"])
        ]  # a lost attempt's end is unknown: no duration

    def param_names(self) -> list[str]:
        """Every param, in the order the jobs have them."""
        if self._param_names is None:
            self._param_names = list(dict.fromkeys(chain.from_iterable(self.params)))
        return self._param_names

    def metric_names(self) -> set[str]:
        return set(chain.from_iterable(self.metrics))


def _scalar(value: Any) -> Any:
    """A param's value as a table holds it: a list or an object as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def compare(
    batch_dirs: list[BatchDir],
    columns: list[str] | None = None,
    *,
    sort: Iterable[str] = (),
    where: Iterable[str] = (),
    top: int | None = None,
    all_params: bool = False,
    attempt: str = "last",
) -> Table:
    """The compare table of these batches' jobs (see comparegrammar for the expressions).

    Default columns: batch (when several), name, status, duration, host, the params whose value
    differs between the rows (every param with all_params), and each metric's last value. Rows
    keep the batches' order unless sorted; a missing or NaN value sorts last either way. attempt:
    "last", or a number K (only the jobs that have an attempt K). A bad expression, or one that
    names nothing the jobs have, raises CompareError naming it; nothing is read before the
    expressions are parsed.
    """
    chosen = parse_columns(columns) if columns else None
    keys = [parse_sort(text) for text in sort]
    filters = [parse_filter(text) for text in where]
    if top is not None and top < 0:
        raise CompareError(f"top: must be 0 or more, not {top}")
    n = _attempt_number(attempt)
    with _no_gc():
        return _compare(batch_dirs, chosen, keys, filters, top, all_params, attempt, n)


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
) -> Table:
    asked = (chosen or []) + [k.ref for k in keys] + [f.ref for f in filters]
    stats = sorted({_SUMMARY[r.stat, r.step] for r in asked if r.kind == METRIC} | {"last"})
    jobs = _Jobs(stats)
    for batch_dir in batch_dirs:
        _read(batch_dir, n, jobs)
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
    picked = [[values[i] for i in kept] for values in (jobs.column(ref) for ref in refs)]
    rows = [dict(zip(headers, row)) for row in zip(*picked)] if picked else [{} for _ in kept]
    kinds = {h: _KINDS[r.key] for h, r in zip(headers, refs) if r.kind == ATTR and r.key in _KINDS}
    return Table(headers, rows, kinds, attempt, jobs.notes)


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


def _read(batch_dir: BatchDir, n: int | None, jobs: _Jobs) -> None:
    """Add the batch's jobs in its order, each with attempt n (None: its last) and that attempt's
    metrics: one query for the jobs, one over metric_summaries. With a number n, jobs without
    that attempt are left out."""
    store = Store(batch_dir.db, readonly=True)  # a StoreError (damaged, newer) says what, in one line
    which = "j.attempts" if n is None else "?"
    status = "j.status" if n is None else "a.status"  # the job's (pending again for a retry), or that attempt's
    join = "LEFT JOIN" if n is None else "JOIN"
    args: tuple[Any, ...] = () if n is None else (n,)
    try:
        rows = store.conn.execute(
            f"SELECT j.name, {status}, a.n, a.host, a.started, a.ended, a.exit_code,"
            " COALESCE(json_extract(j.spec, '$.params'), '{}')"
            f" FROM jobs j {join} attempts a ON a.job = j.name AND a.n = {which} ORDER BY j.position",
            args,
        ).fetchall()
        if n is None:
            rows = _as_files_tell(batch_dir, store, rows, jobs.notes)
        start = len(jobs)
        jobs.add(batch_dir.name, rows)
        # Every attempt's (those not asked for are fewer than a join per job would cost).
        summaries = store.conn.execute(
            f"SELECT job, n, source, key, {', '.join(jobs.stats)} FROM metric_summaries"
            + ("" if n is None else " WHERE n = ?"),
            args,
        )
        jobs.add_metrics(start, summaries)
    except sqlite3.Error as e:
        raise fault_of(batch_dir.db, e) from None
    finally:
        store.close()


def _as_files_tell(
    batch_dir: BatchDir, store: Store, rows: list[tuple[Any, ...]], notes: list[str]
) -> list[tuple[Any, ...]]:
    """With no daemon to record their ends, the jobs a dead daemon left running as their files
    tell (unwatched.py, as `job list` shows them), and its note."""
    from hyperctl.unwatched import Unwatched

    unwatched = Unwatched.of(batch_dir, store)
    if unwatched is None:
        return rows
    told = {}
    running = JobStatus.RUNNING.value
    for row in store.job_rows(JobStatus.RUNNING) if any(r[1] == running for r in rows) else ():
        shown, last = unwatched.see(row.name, row.status, row.last)
        if shown != row.status.value:
            told[row.name] = (shown, last.ended if last else None)
    if told:
        rows = [(r[0], *told[r[0]][:1], *r[2:5], told[r[0]][1], *r[6:]) if r[0] in told else r for r in rows]
    note = unwatched.note()
    if note:
        notes.append(note)
    return rows


def _identity(refs: list[Ref], several: bool) -> list[Ref]:
    """The columns that say which job a row is, unless the chosen columns have them already."""
    have = {r.key for r in refs if r.kind == ATTR}
    wanted = ("batch", "name") if several else ("name",)
    return [Ref(ATTR, key) for key in wanted if key not in have]


def _default_columns(jobs: _Jobs, kept: list[int], several: bool, all_params: bool) -> list[Ref]:
    refs = [Ref(ATTR, key) for key in (("batch",) if several else ()) + ("name", "status", "duration", "host")]
    for key in jobs.param_names():
        ref = Ref(PARAM, key)
        if all_params or _varies(jobs.column(ref), kept):
            refs.append(ref)
    shown = set(chain.from_iterable(jobs.metrics[i] for i in kept))
    return refs + [Ref(METRIC, key) for key in sorted(shown)]


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
