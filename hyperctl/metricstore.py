"""What jobs reported, in the batch's store: each metrics file's bytes by attempt and offset
(the points, decoded when asked), and a summary per attempt and metric (metricsfile.Summary).

A chunk and the summaries it changes are written in one transaction, so that a daemon killed
at any moment leaves the store at a whole chunk: the next one reads the file on from there, and
no point is lost or counted twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass

from hyperctl.metricsfile import Point, Summary, read_new, summarize

_SUMMARY_COLUMNS = "last, last_step, min, min_step, max, max_step, count"
_NAN = float("nan")


@dataclass
class Tail:
    """Where the reading of one attempt's metrics file stands."""

    offset: int = 0  # bytes of the file in the store
    lines: int = 0  # whole lines in those bytes
    summaries: dict[str, Summary] | None = None


def tail_of(conn: sqlite3.Connection, job: str, n: int) -> Tail:
    """Where an earlier daemon left the reading of attempt n of job (a new one: the start)."""
    offset, lines = conn.execute(
        "SELECT COALESCE(MAX(offset + length(data)), 0), COALESCE(SUM(lines), 0) FROM metric_chunks"
        " WHERE job = ? AND n = ?",
        (job, n),
    ).fetchone()
    return Tail(offset, lines, summaries_of(conn, job, n))


def add(conn: sqlite3.Connection, job: str, n: int, tail: Tail, data: bytes) -> int:
    """Take in the whole lines at the start of data (the file's bytes from tail.offset on): store
    them with the summaries they change, in one transaction; move tail on. Returns how many
    bytes were taken (0: no whole line yet)."""
    reading = read_new(data, tail.lines)
    if reading.used == 0:
        return 0
    lines = data.count(b"\n", 0, reading.used)
    summaries = {k: Summary(*astuple(v)) for k, v in (tail.summaries or {}).items()}  # the store's until committed
    summarize(reading.points, summaries)
    with conn:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO metric_chunks (job, n, offset, lines, data) VALUES (?, ?, ?, ?, ?)",
            (job, n, tail.offset, lines, data[: reading.used]),
        )
        conn.executemany(
            f"INSERT OR REPLACE INTO metric_summaries (job, n, key, {_SUMMARY_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job, n, key, *astuple(s)) for key, s in summaries.items()],
        )
    tail.offset += reading.used
    tail.lines += lines
    tail.summaries = summaries
    return reading.used


def summaries_of(conn: sqlite3.Connection, job: str, n: int) -> dict[str, Summary]:
    rows = conn.execute(
        f"SELECT key, {_SUMMARY_COLUMNS} FROM metric_summaries WHERE job = ? AND n = ? ORDER BY key", (job, n)
    )
    # SQLite keeps a NaN as NULL: a NULL value here was a NaN (a step never is).
    return {
        key: Summary(_nan(last), last_step, _nan(least), min_step, _nan(most), max_step, count)
        for key, last, last_step, least, min_step, most, max_step, count in rows
    }


def _nan(value: float | None) -> float:
    return _NAN if value is None else value


def points_of(conn: sqlite3.Connection, job: str, n: int) -> list[Point]:
    """Every point attempt n of job reported, in order."""
    points: list[Point] = []
    lines = 0
    for data, count in conn.execute(
        "SELECT data, lines FROM metric_chunks WHERE job = ? AND n = ? ORDER BY offset", (job, n)
    ):
        points += read_new(data, lines).points
        lines += count
    return points
