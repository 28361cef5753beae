"""The batch folder: where a batch's jobs keep what they make, and where hyperctl keeps its records.

    <batches data dir>/<batch>/
        <job>/                          the job's data dir by default: only what the job makes
        .hyperctl/                      hyperctl's own; a job name cannot start with '.'
            state.db  batch.json  lock  daemon.log
            jobs/<job>/params.json
            jobs/<job>/attempt-<n>/{stdout,stderr,metrics,exitcode}
            lib/<version>/hyperctl/     the job-side module, on local jobs' PYTHONPATH

A job that empties its data dir (`rm -rf "$HYPERCTL_JOB_DATA_DIR"/*`) cannot reach its own
logs and exit codes there. On an SSH host the same tree stands under `remote_root`.

The batch token is not in this tree, which every job of the batch can read: it is in a private
folder of the user's, `$XDG_STATE_HOME/hyperctl/tokens/` (`~/.local/state/...` by default), in a
file named for the batch folder's real path (batches before it kept it in `.hyperctl/token`).
Every folder and file here is private (privatefs.py).

Batches made before this layout (hyperctl 0.1.0) kept the records inside the job's folder
(`<job>/params.json`, `<job>/attempt-<n>/`); each attempt in the store says which layout it
was started with, so their logs are found where they were written.
"""

from __future__ import annotations

import functools
import hashlib
import os
from enum import IntEnum
from pathlib import Path

from hyperctl import privatefs

INTERNAL = ".hyperctl"
# What a remote attempt sends home at its end (collect.py), exitcode last: its metrics file too.
ATTEMPT_FILES = ("stdout", "stderr", "metrics", "exitcode")


def live_copy(attempt_dir: Path, name: str) -> Path:
    """Where a running remote attempt's file `name` is copied as it grows (backends/mirror.py)."""
    return attempt_dir / f"{name}.live"


class Layout(IntEnum):
    """Where an attempt's records are, relative to the batch folder."""

    IN_JOB_DIR = 1  # hyperctl 0.1.0: beside what the job makes
    APART = 2  # under .hyperctl/jobs/: out of the job's reach

    # Relative POSIX paths as strings, not path objects: they are on the way of every job's start
    # and of every job's view.
    def records(self, job: str) -> str:
        """The folder of a job's records (params file, attempt folders)."""
        return job if self is Layout.IN_JOB_DIR else f"{INTERNAL}/jobs/{job}"

    def attempt(self, job: str, n: int) -> str:
        return f"{self.records(job)}/attempt-{n}"

    def params(self, job: str) -> str:
        return f"{self.records(job)}/params.json"


CURRENT = Layout.APART


def layout_of(value: int | None) -> Layout:
    """An attempt's layout as the store keeps it (NULL: written before the store knew layouts)."""
    return Layout.IN_JOB_DIR if value is None else Layout(value)


class BatchDir:
    """One batch's folder: the only place that knows where each of its files is."""

    def __init__(self, batches_dir: Path, name: str) -> None:
        self.path = batches_dir / name
        self.name = name
        self.internal = self.path / INTERNAL
        self.db = self.internal / "state.db"
        self.legacy_token_file = self.internal / "token"  # where older batches keep it (moved on a run)
        self.lock_file = self.internal / "lock"
        self.spec_file = self.internal / "batch.json"
        self.daemon_log = self.internal / "daemon.log"

    @functools.cached_property
    def key(self) -> str:
        """What tells this batch from any other, whatever their names: a digest of its real path."""
        return hashlib.sha256(os.path.realpath(self.path).encode(errors="surrogateescape")).hexdigest()[:32]

    @functools.cached_property
    def token_file(self) -> Path:
        """The batch token: out of the batch folder, which its jobs can read (see the module's doc)."""
        return token_folder() / self.key

    def create(self) -> None:
        """Make (or check) the batch folder and its .hyperctl, private to the user (privatefs)."""
        privatefs.make_dirs(self.internal, self.path.parent)

    def job_dir(self, job: str) -> Path:
        """The job's own folder: its data dir unless the batch file gives another."""
        return self.path / job

    def attempt_dir(self, job: str, n: int, layout: Layout = CURRENT) -> Path:
        return self.path / layout.attempt(job, n)

    def params_file(self, job: str, layout: Layout = CURRENT) -> Path:
        return self.path / layout.params(job)

    def rename_job(self, old: str, new: str) -> bool:
        """Give a job's folders (what it made, with the records 0.1.0 kept there, and its records
        under .hyperctl/jobs/) its new name; False, with nothing moved, when one of the new name
        is there already. Safe to repeat after a crash: a folder moved before stays moved."""
        moves = [
            (self.job_dir(old), self.job_dir(new)),
            (self.path / CURRENT.records(old), self.path / CURRENT.records(new)),
        ]
        moves = [(source, target) for source, target in moves if source.exists()]
        if any(target.exists() for _, target in moves):
            return False
        for source, target in moves:
            os.rename(source, target)
        return True


def has_records(internal: Path) -> bool:
    """Whether a batch's own folder (.hyperctl) shows that the batch has run: its spec, or a job's records."""
    jobs = internal / "jobs"
    return (internal / "batch.json").exists() or (jobs.is_dir() and any(jobs.iterdir()))


def state_home() -> Path:
    """$XDG_STATE_HOME, or ~/.local/state when it is unset, empty or relative (the XDG spec: a
    relative one is invalid and must be ignored; it would also put tokens under the current folder)."""
    value = os.environ.get("XDG_STATE_HOME", "")
    return Path(value) if os.path.isabs(value) else Path(os.path.expanduser("~/.local/state"))


def token_folder() -> Path:
    """The user's private folder of batch tokens."""
    return state_home() / "hyperctl" / "tokens"
