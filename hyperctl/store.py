"""The batch folder and its SQLite (WAL) state: every state change is one transaction."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperctl import privatefs
from hyperctl.errors import HyperctlError
from hyperctl.layout import CURRENT, BatchDir, Layout, layout_of
from hyperctl.spec import BatchSpec, BatchStatus, JobSpec, JobStatus
from hyperctl.storefaults import StoreError, check_file, check_tables, fault_of, guarded

# The store's schema version (PRAGMA user_version). hyperctl 0.1.0 made version 1 and wrote no
# user_version (0, with the tables there). Each later version is one entry of _MIGRATIONS.
SCHEMA_VERSION = 4
# What jobs report (metricstore.py). A source is a file the points were read from: "report"
# (the metrics file, stored as it is) or "output" (scalars read from stdout, stored as JSON lines);
# offset..stop is the span of that file a chunk was read from.
_METRICS = """
CREATE TABLE metric_chunks (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    source TEXT NOT NULL,
    offset INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job, n, source, offset)
);
CREATE TABLE metric_summaries (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    last REAL, last_step INTEGER, min REAL, min_step INTEGER, max REAL, max_step INTEGER,
    count INTEGER NOT NULL,
    PRIMARY KEY (job, n, source, key)
);
"""
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: where an attempt's records are (NULL: in the job's folder, as 0.1.0 put them).
    2: ("ALTER TABLE attempts ADD COLUMN layout INTEGER",),
    # 2 -> 3: what jobs report (metricstore.py): the metrics files' bytes, and a summary per metric.
    3: tuple(statement for statement in _METRICS.split(";") if statement.strip()),
    # 3 -> 4: an attempt a cluster scheduler runs: its id there (Slurm's job id).
    4: ("ALTER TABLE attempts ADD COLUMN ref TEXT",),
}

_SCHEMA = (
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    spec TEXT NOT NULL,
    digest TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE attempts (
    job TEXT NOT NULL,
    n INTEGER NOT NULL,
    status TEXT NOT NULL,
    host TEXT,
    gpus TEXT,
    pid INTEGER,
    pid_started REAL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    signal INTEGER,
    reason TEXT,
    layout INTEGER,
    ref TEXT,
    PRIMARY KEY (job, n)
);
"""
    + _METRICS
)


def _create(path: Path) -> None:
    """Make the database whole under another name, then rename it: a reader (the CLI) sees no
    database or one with every table, never one half made."""
    tmp = path.with_name(f".{path.name}.new{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a crash of a process with our pid
    # Made private first: SQLite gives its -wal and -shm files the database's mode.
    os.close(privatefs.open_file(tmp, os.O_WRONLY, exclusive=True))
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    finally:
        conn.close()
    os.replace(tmp, path)


class StoreVersionError(HyperctlError):
    """The batch's store was written by a newer hyperctl than this one."""


def _connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
        # A read-only batch folder: SQLite cannot make the -shm file a WAL reader needs. Nobody
        # can write the store there either, so reading it as immutable is safe.
        conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True, isolation_level=None)
    return conn


def _version(conn: sqlite3.Connection) -> int:
    """The schema version: 0 for an empty database, 1 for one made by hyperctl 0.1.0."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
        return 1
    return int(version)


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        from hyperctl import __version__

        raise StoreVersionError(
            f"{path}: the batch's store is version {version}, newer than this hyperctl {__version__} "
            f"reads (version {SCHEMA_VERSION}); upgrade hyperctl. Nothing was changed"
        )


def _upgrade(path: Path) -> None:
    """Migrate the store for a reader, which opens it read-only once it is current."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise HyperctlError(f"{path}: cannot open the batch's store to upgrade it: {e}") from None
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        _migrate(conn, path)
    finally:
        conn.close()


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the store to SCHEMA_VERSION in one transaction; a newer store is refused untouched."""
    try:
        conn.execute("BEGIN IMMEDIATE")  # the version is read again under the write lock
    except sqlite3.OperationalError as e:
        raise HyperctlError(f"{path}: the batch's store needs an upgrade, and it cannot be written: {e}") from None
    version = 1
    try:
        version = _version(conn)
        _refuse_newer(version, path)
        if version == 0:  # an empty file: made whole here (executescript would commit first)
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
        else:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as e:  # a read-only file or folder, a full disk
        conn.execute("ROLLBACK")
        raise HyperctlError(
            f"{path}: the batch's store is version {version} and needs an upgrade to version {SCHEMA_VERSION}, "
            f"which failed: {e}; nothing was changed"
        ) from None
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@dataclass
class Attempt:
    """One run of a job: where, when, and how it ended."""

    n: int
    status: JobStatus
    host: str | None = None
    gpus: list[int] = field(default_factory=list)
    pid: int | None = None
    pid_started: float | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    layout: Layout = CURRENT  # where its records are (layout.py)
    ref: str | None = None  # its id in a cluster scheduler (Slurm's job id), where one runs it

    def duration(self, now: float) -> float | None:
        """Seconds it ran (so far, while it runs); None before it started, or when it ended at an
        unknown time (lost)."""
        if self.started is None or (self.ended is None and self.status.final):
            return None
        return (self.ended or now) - self.started


@dataclass
class JobRecord:
    """A job as the store knows it: its spec, status and latest attempt."""

    spec: JobSpec
    status: JobStatus
    attempts: int
    last: Attempt | None

    @property
    def name(self) -> str:
        return self.spec.name


_POSITION_NAME = re.compile(r"job-\d{4,}")  # what hyperctl 0.1.0 named an unnamed job
_ATTEMPT_COLUMNS = "n, status, host, gpus, pid, pid_started, started, ended, exit_code, signal, reason, layout, ref"
_SELECT_JOBS = (
    "SELECT j.spec, j.status, j.attempts, "
    + ", ".join(f"a.{c.strip()}" for c in _ATTEMPT_COLUMNS.split(","))
    + " FROM jobs j LEFT JOIN attempts a ON a.job = j.name AND a.n = j.attempts"
)


_STATUSES = {s.value: s for s in JobStatus}  # a dict lookup: JobStatus(value) costs more, by the 100,000


def _attempt(row: tuple[Any, ...]) -> Attempt:
    n, status, host, gpus, pid, pid_started, started, ended, exit_code, sig, reason, layout, ref = row
    gpus = json.loads(gpus) if gpus and gpus != "[]" else []
    return Attempt(
        n,
        _STATUSES[status],
        host,
        gpus,
        pid,
        pid_started,
        started,
        ended,
        exit_code,
        sig,
        reason,
        layout_of(layout),
        ref,
    )


@dataclass
class JobRow:
    """A job's line in a listing: its status and latest attempt, without its spec (cheap by the 10,000)."""

    name: str
    status: JobStatus
    attempts: int
    last: Attempt | None


@dataclass
class Synced:
    """What a new run of a batch found in its store."""

    kept: list[str]  # succeeded before with the same spec: not run again
    dropped: list[str]  # no longer in the batch: out of the store (their folders stay)


class Store:
    """The state of one batch in SQLite; the daemon writes, the CLI may read at the same time."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        check_file(path)
        try:
            self._open(path, readonly)
        except StoreError:
            raise
        except sqlite3.Error as e:
            raise fault_of(path, e) from None

    def _open(self, path: Path, readonly: bool) -> None:
        if readonly:
            self.conn = _connect_readonly(path)
            version = _version(self.conn)
            if version != SCHEMA_VERSION and version != 0:  # 0: no tables, nothing to read or upgrade
                self.conn.close()
                _refuse_newer(version, path)
                _upgrade(path)  # older: upgraded once, then read as usual
                self.conn = _connect_readonly(path)
        else:
            # It holds every job's env and params: the user's own, private (so are -wal and -shm).
            if not privatefs.check_file(path):
                _create(path)
            for beside in (f"{path}-wal", f"{path}-shm"):
                privatefs.check_file(beside)
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout=5000")
            version = _version(self.conn)
            _refuse_newer(version, path)  # before anything is written, the journal mode included
            self.conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash of the process (not of the OS) without an fsync each.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if version != SCHEMA_VERSION:
                _migrate(self.conn, path)
        if version != 0 or not readonly:
            check_tables(self.conn, path)
            self.meta()  # a few rows: every command reads it, or writes on its word

    def close(self) -> None:
        self.conn.close()

    # -- batch ----------------------------------------------------------
    @guarded
    def set_meta(self, **values: Any) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    @guarded
    def meta(self) -> dict[str, Any]:
        meta = {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}
        if meta.get("status") is not None:
            BatchStatus(meta["status"])  # ValueError: a status this hyperctl never wrote
        return meta

    @guarded
    def batch_status(self) -> BatchStatus | None:
        value = self.meta().get("status")
        return BatchStatus(value) if value else None

    # -- jobs -----------------------------------------------------------
    @guarded
    def renamed_since_0_1(self, specs: list[JobSpec]) -> dict[str, str]:
        """Jobs that hyperctl 0.1.0 named by their position (`job-0007`) and that a job of this run
        is (the same spec digest), now that unnamed jobs are named for what they run: old -> new
        name. Not those still running: they write to their old folders."""
        new_names = {spec.name for spec in specs}
        rows = self.conn.execute("SELECT name, digest, status FROM jobs ORDER BY position").fetchall()
        legacy: dict[str, list[str]] = {}
        for name, digest, status in rows:
            if _POSITION_NAME.fullmatch(name) and name not in new_names and status != JobStatus.RUNNING.value:
                legacy.setdefault(digest, []).append(name)
        if not legacy:
            return {}
        known = {name for name, _, _ in rows}
        renamed = {}
        for spec in specs:
            if spec.name not in known and legacy.get(spec.digest()):
                renamed[legacy[spec.digest()].pop(0)] = spec.name  # repeats in their order
        return renamed

    @guarded
    def sync_jobs(
        self, specs: Iterable[JobSpec], rerun_ended: bool = True, renamed: dict[str, str] | None = None
    ) -> Synced:
        """Make the store hold exactly these jobs; says which were kept as already succeeded, and
        which left the batch.

        A job that succeeded with the same spec digest keeps its result, and so does one still
        running (a previous daemon died: the scheduler finds out what became of it). A job that
        ended otherwise runs again if rerun_ended (a new `run`), else keeps its end (`resume`).
        Changed and new jobs are pending. Jobs no longer in the batch leave the store (their
        folders stay). `renamed` (old -> new name) first gives jobs their new names, with their
        attempts (see renamed_since_0_1).
        """
        kept: list[str] = []
        names = []
        with self.conn:
            self.conn.execute("BEGIN")
            for before_name, name in (renamed or {}).items():
                self.conn.execute(
                    "UPDATE jobs SET name = ?, spec = json_set(spec, '$.name', ?) WHERE name = ?",
                    (name, name, before_name),
                )
                self.conn.execute("UPDATE attempts SET job = ? WHERE job = ?", (name, before_name))
            old = {
                name: (digest, JobStatus(status))
                for name, digest, status in self.conn.execute("SELECT name, digest, status FROM jobs")
            }
            for position, spec in enumerate(specs):
                names.append(spec.name)
                digest = spec.digest()
                before = old.get(spec.name)
                if before is None:
                    self.conn.execute(
                        "INSERT INTO jobs (name, position, spec, digest, status) VALUES (?, ?, ?, ?, ?)",
                        (spec.name, position, json.dumps(spec.to_dict()), digest, JobStatus.PENDING.value),
                    )
                    continue
                status = before[1]
                same = before[0] == digest
                if status == JobStatus.RUNNING or (same and (status == JobStatus.SUCCEEDED or not rerun_ended)):
                    if status == JobStatus.SUCCEEDED:
                        kept.append(spec.name)
                    self.conn.execute("UPDATE jobs SET position = ? WHERE name = ?", (position, spec.name))
                else:
                    self.conn.execute(
                        "UPDATE jobs SET position = ?, spec = ?, digest = ?, status = ? WHERE name = ?",
                        (position, json.dumps(spec.to_dict()), digest, JobStatus.PENDING.value, spec.name),
                    )
            gone = sorted(set(old) - set(names))
            self.conn.executemany("DELETE FROM jobs WHERE name = ?", [(n,) for n in gone])
            self.conn.executemany("DELETE FROM attempts WHERE job = ?", [(n,) for n in gone])
        return Synced(kept, gone)

    @guarded
    def jobs(self, status: JobStatus | None = None) -> list[JobRecord]:
        query = _SELECT_JOBS
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE j.status = ?"
            args = (status.value,)
        rows = self.conn.execute(query + " ORDER BY j.position", args).fetchall()
        return [self._record(row) for row in rows]

    @guarded
    def job_digests(self) -> list[tuple[str, str]]:
        """Each job's name and spec digest (what decides its result), in the batch's order."""
        return [(n, d) for n, d in self.conn.execute("SELECT name, digest FROM jobs ORDER BY position")]

    @guarded
    def job(self, name: str) -> JobRecord | None:
        row = self.conn.execute(_SELECT_JOBS + " WHERE j.name = ?", (name,)).fetchone()
        return self._record(row) if row else None

    @guarded
    def job_rows(self, status: JobStatus | None = None) -> list[JobRow]:
        query = _SELECT_JOBS.replace("j.spec,", "j.name,", 1)
        args: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE j.status = ?"
            args = (status.value,)
        rows = self.conn.execute(query + " ORDER BY j.position", args).fetchall()
        return [
            JobRow(row[0], _STATUSES[row[1]], row[2], _attempt(row[3:]) if row[3] is not None else None) for row in rows
        ]

    @staticmethod
    def _record(row: tuple[Any, ...]) -> JobRecord:
        spec, status, attempts = row[:3]
        last = _attempt(row[3:]) if row[3] is not None else None
        return JobRecord(JobSpec.from_dict(json.loads(spec)), JobStatus(status), attempts, last)

    @guarded
    def attempts(self, job: str) -> list[Attempt]:
        rows = self.conn.execute(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE job = ? ORDER BY n", (job,))
        return [_attempt(row) for row in rows]

    @guarded
    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in JobStatus}
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            counts[_STATUSES[status].value] = n  # KeyError: a status this hyperctl never wrote
        return counts

    @guarded
    def begin_attempt(self, job: str, host: str, gpus: list[int]) -> int:
        """Record a new attempt as running before its process starts, so a crash cannot hide it."""
        with self.conn:
            self.conn.execute("BEGIN")
            (n,) = self.conn.execute("SELECT attempts + 1 FROM jobs WHERE name = ?", (job,)).fetchone()
            self.conn.execute(
                "UPDATE jobs SET attempts = ?, status = ? WHERE name = ?", (n, JobStatus.RUNNING.value, job)
            )
            self.conn.execute(
                "INSERT INTO attempts (job, n, status, host, gpus, started, layout) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job, n, JobStatus.RUNNING.value, host, json.dumps(gpus), time.time(), int(CURRENT)),
            )
        return int(n)

    @guarded
    def set_handle(self, job: str, n: int, pid: int | None, pid_started: float | None, ref: str | None) -> None:
        """What tells the started attempt where it runs: its launcher's pid, or a cluster scheduler's id."""
        with self.conn:
            self.conn.execute(
                "UPDATE attempts SET pid = ?, pid_started = ?, ref = ? WHERE job = ? AND n = ?",
                (pid, pid_started, ref, job, n),
            )

    @guarded
    def set_placed(self, job: str, n: int, host: str, gpus: list[int], started: float) -> None:
        """Where and when an attempt a cluster scheduler placed began to run (it waited in its queue before)."""
        with self.conn:
            self.conn.execute(
                "UPDATE attempts SET host = ?, gpus = ?, started = ? WHERE job = ? AND n = ?",
                (host, json.dumps(gpus), started, job, n),
            )

    @guarded
    def forget_attempt(self, job: str, n: int) -> None:
        """Drop an attempt that never started (its machine was down, or the daemon died before the
        spawn); the job is pending again."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM attempts WHERE job = ? AND n = ?", (job, n))
            self.conn.execute(
                "UPDATE jobs SET attempts = ?, status = ? WHERE name = ?", (n - 1, JobStatus.PENDING.value, job)
            )

    @guarded
    def requeue(self, jobs: list[str]) -> None:
        """Make these jobs pending again (batch retry); their attempts and logs are kept."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "UPDATE jobs SET status = ? WHERE name = ?", [(JobStatus.PENDING.value, job) for job in jobs]
            )

    @guarded
    def set_status(self, job: str, status: JobStatus) -> None:
        with self.conn:
            self.conn.execute("UPDATE jobs SET status = ? WHERE name = ?", (status.value, job))

    @guarded
    def end_attempt(
        self,
        job: str,
        n: int,
        status: JobStatus,
        exit_code: int | None = None,
        signal: int | None = None,
        reason: str | None = None,
        ended: float | None = None,
    ) -> None:
        """Record an attempt's end: at `ended` (when its files say it ended), else now."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "UPDATE attempts SET status = ?, ended = ?, exit_code = ?, signal = ?, reason = ?"
                " WHERE job = ? AND n = ?",
                (status.value, time.time() if ended is None else ended, exit_code, signal, reason, job, n),
            )
            self.conn.execute("UPDATE jobs SET status = ? WHERE name = ?", (status.value, job))


def save_spec(batch_dir: BatchDir, spec: BatchSpec) -> None:
    # Owner-only: a machine's password may be in it (resume needs it to reconnect).
    try:
        privatefs.write_atomic(batch_dir.spec_file, json.dumps(spec.to_dict()) + "\n")  # compact: the C encoder
    except OSError as e:  # a full disk, a folder in its place
        raise HyperctlError(f"{batch_dir.spec_file}: cannot write the batch's spec: {e.strerror or e}") from None
