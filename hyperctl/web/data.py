"""What the pages show, read from the batches' folders and stores with the functions the CLI
uses (batches.summarize, overview, comparison.compare): no second reading of a store here.

The job table is a compare (its grammar: columns, sort keys), filtered by status and by text,
and cut into pages: a 10,000-job batch sends the browser one page of rows, never all of them.
"""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hyperctl.batches import BatchSummary, list_batches
from hyperctl.comparedata import Jobs, read_jobs
from hyperctl.comparegrammar import STATUSES
from hyperctl.comparison import Table, compare
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.overview import Overview, overview
from hyperctl.spec import JobStatus
from hyperctl.tablefit import show_column

PAGE_SIZE = 100  # rows a page of the job table shows
STATUS_ORDER = ("succeeded", "running", "pending", "failed", "timeout", "killed", "lost", "unknown")


@dataclass
class BatchRow:
    """A line of the batch list."""

    summary: BatchSummary
    overview: Overview | None  # None: its folder cannot be read (summary.problem says why)

    @property
    def bar(self) -> list[tuple[str, int, float]]:
        return status_bar(self.summary.counts)


def status_bar(counts: dict[str, int]) -> list[tuple[str, int, float]]:
    """A stacked bar of jobs by status: (status, count, percent of all), in STATUS_ORDER."""
    total = sum(counts.values()) or 1
    return [(s, counts[s], 100.0 * counts[s] / total) for s in ordered(counts) if counts[s]]


def ordered(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER))


def batch_rows(batches_dir: Path) -> list[BatchRow]:
    rows = []
    for summary in list_batches(batches_dir):
        found = None
        if summary.problem is None:
            try:
                found = overview(BatchDir(batches_dir, summary.name), summary)
            except (HyperctlError, OSError) as e:  # its spec unreadable: the row says why
                summary.problem = str(e)
        rows.append(BatchRow(summary, found))
    return sorted(rows, key=lambda r: -(r.summary.started or 0))  # the latest first


@dataclass
class TableQuery:
    """What the batch page's table shows: kept in the page's URL, so a link shows the same."""

    sort: str = ""  # a compare sort key: -acc, name
    status: str = ""  # only the jobs in this status
    text: str = ""  # only the rows with a cell holding this text (any case)
    columns: str = ""  # compare columns, comma-separated ("" : the default ones)
    page: int = 1
    where: list[str] = field(default_factory=list)  # compare filters, all kept (`=lr>=0.01`): a brush's

    @classmethod
    def of(cls, arguments: dict[str, str], where: list[str] | None = None) -> TableQuery:
        query = cls(
            sort=arguments.get("sort", "").strip(),
            status=arguments.get("status", "").strip(),
            text=arguments.get("q", "").strip(),
            columns=arguments.get("columns", "").strip(),
            where=[w.strip() for w in where or () if w.strip()],
        )
        page = arguments.get("page", "1")
        query.page = int(page) if page.isdigit() and int(page) > 0 else 1
        if query.status and query.status not in STATUSES:
            raise HyperctlError(f"status: no status '{query.status}' (statuses: {', '.join(STATUSES)})")
        return query

    def url(self, **changed: Any) -> str:
        """The query string of this view with some of it changed (a sort, a page)."""
        values = {**vars(self), **changed}
        pairs = {
            "sort": values["sort"],
            "status": values["status"],
            "q": values["text"],
            "columns": values["columns"],
            "page": values["page"] if values["page"] != 1 else "",
            "where": values["where"],
        }
        return "?" + urlencode({k: v for k, v in pairs.items() if v}, doseq=True)

    def sorted_by(self, header: str) -> str:
        """The sort a click on a column's header asks for (a header is a compare expression):
        ascending, then descending on a second click."""
        return f"-{header}" if self.sort == header else header


@dataclass
class JobTable:
    """A page of the job table."""

    headers: list[str]
    numeric: list[bool]
    cells: list[list[str]]  # shown: row by row, as text
    names: list[str]  # each row's job
    statuses: list[str]
    total: int  # rows matching (all pages)
    page: int
    pages: int
    query: TableQuery
    all_jobs: int = 0
    notes: list[str] = field(default_factory=list)


def job_table(batch_dir: BatchDir, query: TableQuery) -> tuple[JobTable, Table]:
    """The rows of the batch's job table that match the query, the query's page of them shown."""
    table = _matching(batch_dir, query)
    total = len(table.cells[0]) if table.cells else 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(query.page, pages)
    start = (page - 1) * PAGE_SIZE
    shown = [values[start : start + PAGE_SIZE] for values in table.cells]
    text = [show_column(values, table.kinds.get(h)) for h, values in zip(table.columns, shown)]
    numeric = [h in table.kinds or _numbers(values) for h, values in zip(table.columns, table.cells)]
    at = table.columns.index("name")
    status_at = table.columns.index("status") if "status" in table.columns else None
    rows = [list(row) for row in zip(*text)]
    return (
        JobTable(
            headers=table.columns,
            numeric=numeric,
            cells=rows,
            names=shown[at],
            statuses=shown[status_at] if status_at is not None else [""] * len(rows),
            total=total,
            page=page,
            pages=pages,
            query=query,
            notes=table.notes,
        ),
        table,
    )


def _numbers(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(type(v) in (int, float) for v in present)


class ReadCache:
    """What the job table read of each batch, kept while its store does not change: another sort,
    filter or page of a 10,000-job table costs no read. SQLite's `data_version` (of a connection
    kept open for it) moves with every commit of any other connection: exact, and cheap to ask.
    A batch with running jobs is read each time (their durations move, and a dead daemon's jobs
    are seen as their files tell)."""

    def __init__(self, most: int = 4) -> None:
        self.most = most
        self._lock = threading.Lock()
        # (store, attempt, stats) -> (connection, its data_version then, the store's inode, the jobs read)
        self._kept: OrderedDict[tuple[str, int | None, tuple[str, ...]], tuple[sqlite3.Connection, int, int, Jobs]]
        self._kept = OrderedDict()

    def __call__(self, batch_dirs: list[BatchDir], n: int | None, stats: list[str]) -> Jobs:
        if len(batch_dirs) != 1:
            return read_jobs(batch_dirs, n, stats)
        db = batch_dirs[0].db
        key = (str(db), n, tuple(stats))
        try:
            inode = os.stat(db).st_ino
            with self._lock:
                kept = self._kept.pop(key, None)
                if kept is not None and kept[2] != inode:  # the batch was made anew
                    kept[0].close()
                    kept = None
                conn = kept[0] if kept else sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
                (version,) = conn.execute("PRAGMA data_version").fetchone()
                if kept is not None and kept[1] == version:
                    self._kept[key] = kept
                    return kept[3]
        except (OSError, sqlite3.Error):
            return read_jobs(batch_dirs, n, stats)  # its faults are read_jobs' to say
        jobs = read_jobs(batch_dirs, n, stats)
        if JobStatus.RUNNING.value in jobs.attrs["status"]:
            conn.close()
            return jobs
        with self._lock:
            self._kept[key] = (conn, version, inode, jobs)
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)[1][0].close()
        return jobs


READS = ReadCache()


def _matching(batch_dir: BatchDir, query: TableQuery) -> Table:
    columns = [query.columns] if query.columns else None
    where = ([f"status={query.status}"] if query.status else []) + query.where
    sort = [query.sort] if query.sort else []
    table = compare([batch_dir], columns, sort=sort, where=where, reader=READS)
    if query.text:
        wanted = query.text.lower()
        shown = [show_column(values, table.kinds.get(h)) for h, values in zip(table.columns, table.cells)]
        kept = [i for i, row in enumerate(zip(*shown)) if any(wanted in cell.lower() for cell in row)]
        table = Table(
            table.columns, [[values[i] for i in kept] for values in table.cells], table.kinds, notes=table.notes
        )
    return table


def export(table: Table, form: str) -> tuple[str, str]:
    """Every matching row, as the table shows its columns: CSV (full precision) or JSON (NaN and
    infinities as null)."""
    if form == "json":
        return "application/json", json.dumps(finite(table.to_dict()), allow_nan=False)
    out = io.StringIO()
    table.write_csv(out)
    return "text/csv; charset=utf-8", out.getvalue()


def finite(value: Any) -> Any:
    """value with NaN and infinities as None: JSON has none (a chart leaves a gap)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
