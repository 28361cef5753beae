"""Finding batches in the data dir and reading them without their daemon."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchSpec
from hyperctl.store import Store


class NoSuchBatchError(HyperctlError):
    """The named batch is not in the data dir."""


class NoSuchJobError(HyperctlError):
    """The named job is not in the batch."""


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

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "path": str(self.path), "total": self.total}


def summarize(batch_dir: BatchDir) -> BatchSummary:
    """What the folder says of its batch; a damaged or foreign folder is reported, not raised."""
    if not batch_dir.db.exists():
        return BatchSummary(batch_dir.name, batch_dir.path, "unknown", problem="not a hyperctl batch (no state)")
    try:
        store = Store(batch_dir.db, readonly=True)
        try:
            meta, counts = store.meta(), store.counts()
        finally:
            store.close()
    except (sqlite3.Error, ValueError) as e:
        return BatchSummary(batch_dir.name, batch_dir.path, "damaged", problem=f"cannot read its state: {e}")
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
    )


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


@contextmanager
def open_batch(batches_dir: Path, name: str) -> Iterator[tuple[BatchDir, Store]]:
    """The batch folder and its store, read-only: safe while its daemon writes."""
    batch_dir = find_batch(batches_dir, name)
    try:
        store = Store(batch_dir.db, readonly=True)
    except sqlite3.Error as e:
        raise HyperctlError(f"batch '{name}': cannot read its state: {e}") from None
    try:
        yield batch_dir, store
    finally:
        store.close()
