"""What jobs reported, in the batch's store: chunks of points by attempt, source and offset
(decoded when asked), and a summary per attempt, source and metric (metricsfile.Summary).

A source is the file the points were read from: REPORT, the metrics file report() appends to
(its bytes stored as they are), or OUTPUT, the `key: value` scalars of the job's stdout (stored
as JSON lines). A metric both reported and printed is the reported one's.

A chunk and the summaries it changes are written in one transaction, so that a daemon killed
at any moment leaves the store at a whole chunk: the next one reads the file on from there, and
no point is lost or counted twice.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import heapq
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hyperctl.errors import HyperctlError
from hyperctl.metricsfile import Point, Reading, Summary, read_new, summarize, summarize_columns
from hyperctl.pace import PROGRESS, fraction
from hyperctl.spec import JobStatus, Objective

REPORT = "report"
OUTPUT = "output"
SOURCES = (REPORT, OUTPUT)  # the first one's metric wins over a later's of the same name

_SUMMARY_COLUMNS = "last, last_step, min, min_step, max, max_step, count"
_NAN = float("nan")


@dataclass
class Tail:
    """Where the reading of one attempt's file of one source stands."""

    offset: int = 0  # bytes of the file read into the store
    lines: int = 0  # points' lines stored so far
    summaries: dict[str, Summary] | None = None
    source: str = REPORT
    step: int | None = None  # OUTPUT: the step a `step:` line of stdout set (outputscalars.py)


def tail_of(conn: sqlite3.Connection, job: str, n: int, source: str = REPORT) -> Tail:
    """Where an earlier daemon left the reading of attempt n of job (a new one: the start)."""
    offset, lines = conn.execute(
        "SELECT COALESCE(MAX(stop), 0), COALESCE(SUM(lines), 0) FROM metric_chunks"
        " WHERE job = ? AND n = ? AND source = ?",
        (job, n, source),
    ).fetchone()
    tail = Tail(offset, lines, _summaries(conn, job, n, source), source)
    if source == OUTPUT and offset:
        last = conn.execute(
            "SELECT data FROM metric_chunks WHERE job = ? AND n = ? AND source = ? ORDER BY offset DESC LIMIT 1",
            (job, n, source),
        ).fetchone()
        from hyperctl.outputscalars import last_step  # only where stdout is read for scalars

        tail.step = last_step(last[0]) if last else None
    return tail


def add(conn: sqlite3.Connection, job: str, n: int, tail: Tail, data: bytes) -> int:
    """Take in the whole lines at the start of data (the metrics file's bytes from tail.offset
    on): store them with the summaries they change, in one transaction; move tail on. Returns
    how many bytes were taken (0: no whole line yet)."""
    reading = read_new(data, tail.lines, points=False)
    if reading.used:
        store(conn, job, n, tail, reading, data[: reading.used])
    return reading.used


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction: store() within it writes nothing until the end (several attempts' chunks
    at one commit: a commit costs more than a chunk), and nothing at all if it fails."""
    with conn:
        conn.execute("BEGIN")
        yield


def store(conn: sqlite3.Connection, job: str, n: int, tail: Tail, reading: Reading, lines: bytes) -> None:
    """Store a reading of reading.used bytes of tail's file from tail.offset on, as lines (JSON
    lines, as a metrics file has them), with the summaries it changes, in one transaction (or in
    the one under way: transaction()); move tail on."""
    count = lines.count(b"\n")
    # Only the metrics in these lines change, and only theirs are written: a job that once reported
    # 100,000 names costs no more a chunk after. Those are copied: tail's are the store's until committed.
    keys = reading.columns.keys() if reading.columns is not None else {k for p in reading.points for k in p.values}
    summaries = dict(tail.summaries or {})
    summaries.update({k: copy.copy(summaries[k]) for k in keys if k in summaries})
    if reading.columns is not None:
        summarize_columns(reading.columns, summaries)
    else:
        summarize(reading.points, summaries)
    with contextlib.nullcontext() if conn.in_transaction else transaction(conn):
        conn.execute(
            "INSERT INTO metric_chunks (job, n, source, offset, stop, lines, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job, n, tail.source, tail.offset, tail.offset + reading.used, count, lines),
        )
        conn.executemany(
            f"INSERT OR REPLACE INTO metric_summaries (job, n, source, key, {_SUMMARY_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (job, n, tail.source, key, s.last, s.last_step, s.min, s.min_step, s.max, s.max_step, s.count)
                for key, s in ((key, summaries[key]) for key in keys)
            ],
        )
    tail.offset += reading.used
    tail.lines += count
    tail.summaries = summaries


def summaries_of(conn: sqlite3.Connection, job: str, n: int) -> dict[str, Summary]:
    """Each metric of attempt n of job, from the source that wins for it, by name."""
    merged: dict[str, Summary] = {}
    for source in reversed(SOURCES):
        merged.update(_summaries(conn, job, n, source))
    return dict(sorted(merged.items()))


def _summaries(conn: sqlite3.Connection, job: str, n: int, source: str) -> dict[str, Summary]:
    rows = conn.execute(
        f"SELECT key, {_SUMMARY_COLUMNS} FROM metric_summaries WHERE job = ? AND n = ? AND source = ? ORDER BY key",
        (job, n, source),
    )
    return {key: summary_of(row) for key, *row in rows}


def summary_of(row: tuple[Any, ...]) -> Summary:
    """A Summary from a row of _SUMMARY_COLUMNS. SQLite keeps a NaN as NULL: a NULL value there
    was a NaN (a step never is)."""
    last, last_step, least, min_step, most, max_step, count = row
    return Summary(_nan(last), last_step, _nan(least), min_step, _nan(most), max_step, count)


def _nan(value: float | None) -> float:
    return _NAN if value is None else value


def last_attempts(
    conn: sqlite3.Connection, key: str, columns: str, status: JobStatus | None = None, job: str | None = None
) -> dict[str, tuple[Any, ...]]:
    """Some columns (of _SUMMARY_COLUMNS) of metric key of each job's last attempt (of the jobs
    in status; or of one job), by job in the batch's order, from the source that wins for it:
    one query for the whole batch, and a loop that costs little by the 100,000 (NULL is NaN)."""
    query = (
        f"SELECT s.job, s.source, {columns} FROM metric_summaries s"
        " JOIN jobs j ON j.name = s.job AND s.n = j.attempts WHERE s.key = ?"
    )
    args: tuple[Any, ...] = (key,)
    if status is not None:
        query += " AND j.status = ?"
        args += (status.value,)
    if job is not None:
        query += " AND j.name = ?"
        args += (job,)
    found: dict[str, tuple[Any, ...]] = {}
    for name, source, *values in conn.execute(query + " ORDER BY j.position", args):
        if source == SOURCES[0] or name not in found:  # the first source's wins
            found[name] = tuple(values)
    return found


def progress_of(conn: sqlite3.Connection, status: JobStatus | None = None, job: str | None = None) -> dict[str, float]:
    """The last progress (0..1, pace.fraction) each job's last attempt reported, of the jobs in
    status (or of one job)."""
    found = ((name, fraction(last)) for name, (last,) in last_attempts(conn, PROGRESS, "last", status, job).items())
    return {name: value for name, value in found if value is not None}


@dataclass
class Best:
    """The job an objective names best: its value of the metric, at which step, among how many."""

    job: str
    value: float
    step: int
    among: int  # succeeded jobs with a value of the metric (not NaN)

    def to_dict(self, objective: Objective) -> dict[str, Any]:
        return {
            "job": self.job,
            "metric": objective.metric,
            "mode": objective.mode,
            "which": objective.value,  # each job's last value, or its best
            "value": self.value,
            "step": self.step,
            "among": self.among,
        }


def best_job(conn: sqlite3.Connection, objective: Objective) -> Best | None:
    """The succeeded job whose last attempt has the best value of the objective's metric (its
    last value, or its least or greatest with value "best"); the first in the batch's order on a
    tie. NaN never wins. None when no succeeded job reported the metric."""
    lower = objective.mode == "min"
    column = "last" if objective.value == "last" else "min" if lower else "max"
    found = last_attempts(conn, objective.metric, f"s.{column}, s.{column}_step", JobStatus.SUCCEEDED)
    best: Best | None = None
    among = 0
    for job, (value, step) in found.items():
        if value is None:  # NaN (SQLite keeps it as NULL)
            continue
        among += 1
        if best is None or (value < best.value if lower else value > best.value):
            best = Best(job, value, step, 0)
    if best is not None:
        best.among = among
    return best


def points_of(conn: sqlite3.Connection, job: str, n: int) -> list[Point]:
    """Every point attempt n of job reported, in order: each source's points in their order, the
    two sources merged by step (a job that prints `loss: 0.5` and reports its progress reads as one
    history); of a metric both reported and printed, the reported points."""
    by_source: dict[str, list[Point]] = {}
    for source in SOURCES:
        points: list[Point] = by_source.setdefault(source, [])
        lines = 0
        for data, count in conn.execute(
            "SELECT data, lines FROM metric_chunks WHERE job = ? AND n = ? AND source = ? ORDER BY offset",
            (job, n, source),
        ):
            points += read_new(data, lines).points
            lines += count
    reported = {key for point in by_source[REPORT] for key in point.values}
    printed = []
    for point in by_source[OUTPUT]:
        values = {k: v for k, v in point.values.items() if k not in reported}
        if values:
            printed.append(Point(point.t, point.step, values))
    if not printed:
        return by_source[REPORT]
    return list(heapq.merge(by_source[REPORT], printed, key=lambda p: p.step))  # a step's reported points first


def points_of_metric(points: list[Point], key: str, job: str, n: int, ended: bool) -> list[Point]:
    """The points that hold metric `key`. Of an ended attempt, a key it never reported is an error
    naming the metrics it did report (a misspelt name shows); a running one may report it later."""
    found = [p for p in points if key in p.values]
    if found or not ended or not points:
        return found
    known = sorted({k for p in points for k in p.values})
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise HyperctlError(
        f"job {job}: attempt {n} reported no metric named '{key}' ({hint}it reported: {', '.join(known)})"
    )
