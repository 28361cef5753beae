"""Finding batches in the data dir and reading them without their daemon."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hyperctl.errors import HyperctlError, NoSuchBatchError
from hyperctl.errors import NoSuchJobError as NoSuchJobError  # its home before errors.py had it
from hyperctl.layout import BatchDir
from hyperctl.spec import BackendSpec, BatchSpec, BatchStatus, JobStatus
from hyperctl.store import Store
from hyperctl.storefaults import StoreDamagedError


class NoDaemonError(HyperctlError):
    """A command that changes a batch needs its daemon, and it is not running."""


def resolve_batches_dir(option: str | None) -> Path:
    value = option or os.environ.get("HYPERCTL_BATCHES_DATA_DIR") or "~/hyperctl-batches-data-dir"
    return Path(os.path.expanduser(value)).absolute()


def daemon_pid(batch_dir: BatchDir) -> int | None:
    """The pid of the daemon that holds the batch's lock, or None when no daemon runs it."""
    try:
        fd = os.open(batch_dir.lock_file, os.O_RDONLY | os.O_NOFOLLOW)  # a link is no lock of ours
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:  # held: a daemon is alive (the lock dies with its process)
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        return None
    finally:
        os.close(fd)


@dataclass
class BatchSummary:
    """One line of `batch list`: a batch as its folder tells it, or why it cannot."""

    name: str
    path: Path
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    portal: str | None = None
    daemon_pid: int | None = None
    problem: str | None = None
    note: str | None = None  # no daemon drives it: what its jobs' files told, and what to do

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "path": str(self.path), "total": self.total}


def summarize(batch_dir: BatchDir) -> BatchSummary:
    """What the folder says of its batch; a damaged or foreign folder is reported, not raised."""
    if not batch_dir.db.exists():
        return BatchSummary(batch_dir.name, batch_dir.path, "unknown", problem="not a hyperctl batch (no state)")
    note = None
    try:
        store = Store(batch_dir.db, readonly=True)
        try:
            meta, counts = store.meta(), store.counts()
            if counts.get(JobStatus.RUNNING.value) or meta.get("status") == BatchStatus.RUNNING.value:
                counts, note = _unwatched_counts(batch_dir, store, counts)
        finally:
            store.close()
    except StoreDamagedError as e:
        return BatchSummary(batch_dir.name, batch_dir.path, "damaged", problem=str(e))
    except HyperctlError as e:  # a store newer than this hyperctl, or one it cannot upgrade
        return BatchSummary(batch_dir.name, batch_dir.path, "unknown", problem=str(e))
    pid = daemon_pid(batch_dir)
    status = meta.get("status") or "unknown"
    if status == "running" and pid is None:
        status = "interrupted"  # its daemon died without saying so
    return BatchSummary(
        name=batch_dir.name,
        path=batch_dir.path,
        status=status,
        counts=counts,
        started=meta.get("started"),
        ended=meta.get("ended"),
        portal=meta.get("portal") if pid else None,
        daemon_pid=pid,
        note=note,
    )


def _unwatched_counts(batch_dir: BatchDir, store: Store, counts: dict[str, int]) -> tuple[dict[str, int], str | None]:
    """The counts as the jobs' files tell them when no daemon drives the batch (unwatched.py),
    and the note that says so; as they are while a daemon does."""
    from hyperctl.unwatched import Unwatched

    unwatched = Unwatched.of(batch_dir, store)
    if unwatched is None:
        return counts, None
    counts = dict(counts)
    for row in store.job_rows(JobStatus.RUNNING):
        shown, _ = unwatched.see(row.name, row.status, row.last)
        if shown != row.status.value:
            counts[row.status.value] -= 1
            counts[shown] = counts.get(shown, 0) + 1
    return counts, unwatched.note()


def list_batches(batches_dir: Path) -> list[BatchSummary]:
    if not batches_dir.is_dir():
        return []
    folders = sorted(p for p in batches_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [summarize(BatchDir(batches_dir, p.name)) for p in folders]


def find_batch(batches_dir: Path, name: str) -> BatchDir:
    batch_dir = BatchDir(batches_dir, name)
    if "/" in name or name in (".", "..") or not batch_dir.db.exists():
        known = ", ".join(b.name for b in list_batches(batches_dir) if b.problem is None) or "none"
        raise NoSuchBatchError(f"no batch named '{name}' in {batches_dir} (batches: {known})")
    return batch_dir


def load_spec(batch_dir: BatchDir) -> BatchSpec:
    """The normalized spec the batch was last run with."""
    try:
        return BatchSpec.from_dict(json.loads(batch_dir.spec_file.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HyperctlError(f"batch '{batch_dir.name}': cannot read its spec {batch_dir.spec_file}: {e}") from None


_SETTINGS: dict[Path, tuple[tuple[int, int], BatchSpec]] = {}  # spec file -> (its stat, its settings)


def load_settings(batch_dir: BatchDir) -> BatchSpec:
    """The spec the batch was last run with, without its jobs (backend, daemon, scheduler...): what
    a page shows of a batch, read again only when the file changes (a 10,000-job spec takes a
    quarter of a second to read whole)."""
    path = batch_dir.spec_file
    try:
        st = os.stat(path)
    except OSError as e:
        raise HyperctlError(f"batch '{batch_dir.name}': cannot read its spec {path}: {e}") from None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _SETTINGS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        settings = BatchSpec.from_dict({**json.loads(path.read_text()), "jobs": []})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HyperctlError(f"batch '{batch_dir.name}': cannot read its spec {path}: {e}") from None
    if len(_SETTINGS) >= 256:
        _SETTINGS.clear()
    _SETTINGS[path] = (stamp, settings)
    return settings


def resume_spec(spec: BatchSpec, store: Store) -> tuple[BatchSpec, list[str]]:
    """The spec a resume runs: batch.json's settings, and the jobs the store has, as it has them.

    The store is what knows which job ran and how; batch.json is a copy for the daemon. A job
    whose command, params, env or folders were edited in batch.json by hand keeps its spec in the
    store (what succeeded never runs again), as do jobs taken out of batch.json; jobs added there
    are not run. Returns that spec and the names of the jobs whose edits were ignored.
    """
    stored = store.job_digests()
    if not stored:  # the first run stopped before its jobs were in the store
        return spec, []
    given = {job.name: job for job in spec.jobs}
    jobs = []
    ignored = [name for name in given if name not in dict(stored)]
    for name, digest in stored:
        job = given.get(name)
        if job is None or job.digest() != digest:
            record = store.job(name)
            assert record is not None
            job = record.spec
            if name in given:
                ignored.append(name)
        jobs.append(job)
    return replace(spec, jobs=jobs), ignored


def runs_here(batch_dir: BatchDir) -> bool:
    """Whether the batch's jobs run on this machine (their files are in the batch folder as they
    grow; a remote job's come home when it ends)."""
    try:
        kind = json.loads(batch_dir.spec_file.read_text())["backend"]["type"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return BackendSpec(type=kind).runs_here


@contextmanager
def open_batch(batches_dir: Path, name: str) -> Iterator[tuple[BatchDir, Store]]:
    """The batch folder and its store, read-only: safe while its daemon writes."""
    batch_dir = find_batch(batches_dir, name)
    store = Store(batch_dir.db, readonly=True)  # StoreError: one line
    try:
        yield batch_dir, store
    finally:
        store.close()
