"""The jobs compare reads: of one or several batches, each job's attributes, params and the
summaries of its attempt's metrics, held column by column so that a column of 100,000 jobs is
one list.

Read in bulk, one query per batch: the jobs, their attempt and, joined to them, each metric's
summary, so SQLite hands back a row per job with every column in the batch's order (no loop in
Python over the summaries). A batch with more metrics than a query joins well is read as
summary rows instead, into a value per job of each metric it has (a job that reports names of
its own would otherwise cost a column per name for every job).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Optional

from hyperctl.comparegrammar import ATTR, PARAM, Ref
from hyperctl.layout import BatchDir
from hyperctl.metricstore import REPORT, SOURCES
from hyperctl.spec import JobStatus
from hyperctl.store import Store
from hyperctl.storefaults import fault_of

# A summary column of metric_summaries, by what a column asks of a metric (its stat, its step or not).
SUMMARY = {
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
_NAN_TEXT = "nan"  # what the joined query gives for a NaN (NULL there is: no such metric)
JOINED_MOST = 30  # metrics (of a source) joined in one query; a batch with more is read as rows
_ATTRIBUTES = ("name", "status", "attempt", "host", "started", "ended", "exit_code")  # as read, in order


@dataclass
class _Batch:
    """One batch's metrics for its jobs (those from `start`, `count` of them): a column per metric
    and summary column (joined), or per metric a dict of job index to value (read as rows; with
    several summary columns, a list of them in `stats` order)."""

    start: int
    count: int
    stats: list[str]
    columns: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_job: dict[str, dict[int, Any]] | None = None

    def names(self) -> set[str]:
        """The metrics some job of the batch has a value of (at its attempt)."""
        if self.by_job is not None:
            return set(self.by_job)
        last = ((key, values) for (key, stat), values in self.columns.items() if stat == "last")
        return {key for key, values in last if any(v is not None for v in values)}

    def values(self, key: str, stat: str) -> list[Any]:
        if self.by_job is None:
            return self.columns.get((key, stat)) or [None] * self.count
        found = self.by_job.get(key)
        if not found:
            return [None] * self.count
        jobs = range(self.start, self.start + self.count)
        if len(self.stats) == 1:
            return list(map(found.get, jobs))
        at = self.stats.index(stat)
        return [None if (v := found.get(i)) is None else v[at] for i in jobs]


class Jobs:
    """The jobs of the batches, column by column (a list per attribute, a dict per job of its
    params, a list per metric and summary column), in the batches' order."""

    def __init__(self, stats: list[str]) -> None:
        self.stats = stats  # the summary columns read of each metric (`last` always)
        self.attrs: dict[str, list[Any]] = {key: [] for key in ("batch", *_ATTRIBUTES)}
        self.params: list[dict[str, Any]] = []
        self.batches: list[_Batch] = []
        self.cache: dict[tuple[str, str, str, bool], list[Any]] = {}
        self._param_names: list[str] | None = None
        self._metric_names: set[str] | None = None
        self.notes: list[str] = []  # for a person: a batch whose daemon died

    def __len__(self) -> int:
        return len(self.params)

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
        stat = SUMMARY[ref.stat, ref.step]
        if len(self.batches) == 1:
            return self.batches[0].values(name, stat)
        return list(chain.from_iterable(b.values(name, stat) for b in self.batches))

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
        if self._metric_names is None:
            self._metric_names = set().union(*(b.names() for b in self.batches))
        return self._metric_names

    def read(self, batch_dir: BatchDir, n: int | None) -> None:
        """Add the batch's jobs in its order, each with attempt n (None: its last) and that
        attempt's metrics. With a number n, jobs without that attempt are left out."""
        store = Store(batch_dir.db, readonly=True)  # a StoreError (damaged, newer) says what, in one line
        try:
            self._read(batch_dir, store, n)
        except sqlite3.Error as e:
            raise fault_of(batch_dir.db, e) from None
        finally:
            store.close()

    def _read(self, batch_dir: BatchDir, store: Store, n: int | None) -> None:
        conn = store.conn
        args: tuple[Any, ...] = () if n is None else (n,)
        pairs = conn.execute(
            "SELECT DISTINCT key, source FROM metric_summaries" + ("" if n is None else " WHERE n = ?"), args
        ).fetchall()
        joined = pairs if len(pairs) <= JOINED_MOST else []
        select, joins, join_args = _joined(joined, self.stats, "j.attempts" if n is None else "a.n")
        status = "j.status" if n is None else "a.status"  # the job's (pending again for a retry), or that attempt's
        rows = conn.execute(
            f"SELECT j.name, {status}, a.n, a.host, a.started, a.ended, a.exit_code,"
            f" COALESCE(json_extract(j.spec, '$.params'), '{{}}'){select}"
            f" FROM jobs j {'LEFT JOIN' if n is None else 'JOIN'} attempts a"
            f" ON a.job = j.name AND a.n = {'j.attempts' if n is None else '?'}{joins} ORDER BY j.position",
            args + join_args,
        ).fetchall()
        if n is None:
            rows = _as_files_tell(batch_dir, store, rows, self.notes)
        start, count = len(self), len(rows)
        keys = list(dict.fromkeys(key for key, _ in joined))
        columns = list(zip(*rows)) or [()] * (len(_ATTRIBUTES) + 1 + len(keys) * len(self.stats))
        for key, values in zip(_ATTRIBUTES, columns):
            self.attrs[key] += values
        self.attrs["batch"] += [batch_dir.name] * count
        # One C-decoder call for every job's params, not one call each.
        self.params += json.loads("[" + ",".join(columns[len(_ATTRIBUTES)]) + "]")
        self._param_names = self._metric_names = None
        batch = _Batch(start, count, self.stats)
        if joined:
            metric_columns = iter(columns[len(_ATTRIBUTES) + 1 :])
            for key in keys:
                for stat in self.stats:
                    column: list[Any] = list(next(metric_columns))
                    if stat in _REAL and _NAN_TEXT in column:
                        column = [_NAN if v == _NAN_TEXT else v for v in column]
                    batch.columns[key, stat] = column
        elif pairs:
            summaries = conn.execute(
                f"SELECT job, n, source, key, {', '.join(self.stats)} FROM metric_summaries"
                + ("" if n is None else " WHERE n = ?"),
                args,
            )
            batch.by_job = self._by_job(start, summaries)
        self.batches.append(batch)

    def _by_job(self, start: int, summaries: Iterable[tuple[Any, ...]]) -> dict[str, dict[int, Any]]:
        """Of summary rows (job, n, source, key and self.stats), those of each job's attempt from
        `start` on, a metric both reported and printed as reported (metricstore.SOURCES): per
        metric, its value by job index."""
        index = {name: i for i, name in enumerate(self.attrs["name"][start:], start)}
        attempt = self.attrs["attempt"]
        found: dict[str, dict[int, Any]] = {}
        reals = [stat in _REAL for stat in self.stats]
        for job, n, source, key, *values in summaries:
            i = index.get(job)
            if i is None or attempt[i] != n:
                continue
            by_job = found.setdefault(key, {})
            if source == REPORT or i not in by_job:
                kept = [_NAN if v is None and real else v for v, real in zip(values, reals)]  # SQLite: NaN is NULL
                by_job[i] = kept[0] if len(kept) == 1 else kept
        return found


Reader = Callable[[list[BatchDir], Optional[int], list[str]], Jobs]  # batches, attempt n, stats -> their jobs


def read_jobs(batch_dirs: list[BatchDir], n: int | None, stats: list[str]) -> Jobs:
    """The batches' jobs, each with attempt n (None: its last) and these summary columns."""
    jobs = Jobs(stats)
    for batch_dir in batch_dirs:
        jobs.read(batch_dir, n)
    return jobs


def _joined(pairs: list[tuple[str, str]], stats: list[str], attempt: str) -> tuple[str, str, tuple[Any, ...]]:
    """The select list, joins and their arguments that give each metric's stats for a job's
    attempt (the query's column `attempt`), a column per metric and stat in the order of pairs'
    metrics and of stats: the first source's where a job has it (SOURCES), else the other's; a
    NaN as _NAN_TEXT, so that NULL is a job without the metric."""
    sources: dict[str, list[str]] = {}
    for key, source in pairs:
        sources.setdefault(key, []).append(source)
    select: list[str] = []
    joins: list[str] = []
    args: list[str] = []
    for key, found in sources.items():
        aliases = []
        for source in (s for s in SOURCES if s in found):
            alias = f"m{len(joins)}"
            joins.append(
                f" LEFT JOIN metric_summaries {alias}"
                f" ON {alias}.job = j.name AND {alias}.n = {attempt} AND {alias}.source = ? AND {alias}.key = ?"
            )
            args += [source, key]
            aliases.append(alias)
        for stat in stats:
            exprs = [
                f"IIF({a}.job IS NULL, NULL, IFNULL({a}.{stat}, '{_NAN_TEXT}'))" if stat in _REAL else f"{a}.{stat}"
                for a in aliases
            ]
            select.append(exprs[0] if len(exprs) == 1 else f"COALESCE({', '.join(exprs)})")
    return "".join(", " + s for s in select), "".join(joins), tuple(args)


def _scalar(value: Any) -> Any:
    """A param's value as a table holds it: a list or an object as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


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
