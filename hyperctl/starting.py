"""Starting a batch, as `hyperctl run`, `batch resume` and `batch retry` do and as the Python API
(pyapi.py) does: the one code path both take, without the CLI's printing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from hyperctl import privatefs
from hyperctl.batches import daemon_pid, find_batch, load_spec, open_batch, resume_spec
from hyperctl.errors import HyperctlError, NoSuchJobError
from hyperctl.exitstatus import ExitStatus
from hyperctl.output import plural
from hyperctl.spec import BatchSpec, BatchStatus, JobStatus
from hyperctl.store import Store

if TYPE_CHECKING:  # the daemon's modules load only when a batch starts
    from hyperctl.daemon.runner import RunOptions
    from hyperctl.layout import BatchDir

DETACH_READY_WITHIN = 60  # seconds for a detached daemon to come up

# What a batch is given as: a batch file (JSON or YAML), its document, or a spec made already.
Config = Union[str, "os.PathLike[str]", dict[str, Any], BatchSpec]  # Union: Python 3.9 reads it too


def load_config(
    config: Config, name: str | None = None, template: bool = False, base_dir: Path | None = None
) -> tuple[BatchSpec, str | None]:
    """The spec to run, validated as `hyperctl run --config/--template` validates it (ConfigError),
    and its source (the file's path, to tell two batches of one name apart; None for a document).

    A document's relative paths are relative to base_dir (default: the current folder), and its
    batch is named `name`, else its `name`, else "batch".
    """
    from hyperctl.config import load_batch, load_document, parse_batch

    if isinstance(config, BatchSpec):
        return config, None
    if isinstance(config, dict):
        folder = Path(base_dir or ".").absolute()
        return parse_batch(_expanded(config, folder) if template else config, folder, "batch", name=name), None
    path = Path(config)
    source = str(path.absolute())
    if not template:
        return load_batch(path, name=name), source
    return parse_batch(_expanded(load_document(path), path.parent), path.parent, path.stem, name=name), source


def _expanded(template: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    from hyperctl.generate import expand_template

    return expand_template(template, base_dir)[0]


@dataclass
class Started:
    """A daemon started in the background: running its batch, or already done with it."""

    batch_dir: BatchDir
    daemon: subprocess.Popen[bytes]
    portal: str | None  # its API; None when the batch ended before we left (every machine down, say)
    log_start: int  # where this run's part of the daemon log starts


def start_daemon(
    spec: BatchSpec, options: RunOptions, on_spawn: Callable[[subprocess.Popen[bytes]], None] | None = None
) -> Started:
    """Start the batch's daemon in a session of its own; return once its API answers, or once the
    batch has ended if it ends at once. Config errors are raised here, before anything starts.
    on_spawn is given the daemon's process as soon as it exists (to interrupt it on Ctrl-C)."""
    from hyperctl.daemon.runner import check_spec
    from hyperctl.layout import BatchDir

    check_spec(spec)
    batch_dir = BatchDir(options.batches_dir, spec.name)
    batch_dir.create()
    holder = daemon_pid(batch_dir)
    if holder is not None:
        raise HyperctlError(f"batch '{spec.name}' is already being run by pid {holder}")
    log_path = batch_dir.daemon_log
    log_start = log_path.stat().st_size if log_path.exists() else 0  # the log goes on from run to run
    argv = [sys.executable, "-m", "hyperctl", "run", "--spec-stdin", "--batches-data-dir", str(options.batches_dir)]
    argv += ["--source", options.source or ""] + (["--name", spec.name] if options.same_batch else [])
    argv += [] if options.rerun_ended else ["--keep-ended"]
    with os.fdopen(privatefs.open_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab") as log:
        daemon = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    if on_spawn is not None:
        on_spawn(daemon)
    assert daemon.stdin is not None
    daemon.stdin.write(json.dumps(spec.to_dict()).encode())
    daemon.stdin.close()
    deadline = time.monotonic() + DETACH_READY_WITHIN
    while time.monotonic() < deadline:
        code = daemon.poll()
        if code in (ExitStatus.OK, ExitStatus.JOBS_FAILED):  # the whole batch ended already
            return Started(batch_dir, daemon, None, log_start)
        if code is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise HyperctlError(f"the daemon stopped at once (exit {code}): " + " / ".join(tail))
        if batch_dir.db.exists():
            store = Store(batch_dir.db, readonly=True)
            try:
                meta = store.meta()
            finally:
                store.close()
            if meta.get("ready") == daemon.pid:  # serving, and done with what a dead daemon left
                break
        time.sleep(0.02)  # only while it starts: the batch itself runs without us
    else:
        raise HyperctlError(f"the daemon did not come up within {DETACH_READY_WITHIN} s; see {log_path}")
    if not meta.get("portal") or meta.get("status") != BatchStatus.RUNNING.value:
        return Started(batch_dir, daemon, None, log_start)  # it ended already: not "runs in the background"
    return Started(batch_dir, daemon, meta["portal"], log_start)


@dataclass
class Resumed:
    """What `batch resume` runs: the spec as the store has its jobs, and how."""

    spec: BatchSpec
    options: RunOptions
    note: str | None  # jobs edited in batch.json by hand, ignored: said once, before it runs


def resume_run(batches_dir: Path, name: str) -> Resumed:
    from hyperctl.daemon.runner import RunOptions

    batch_dir = find_batch(batches_dir, name)
    with open_batch(batches_dir, name) as (_, store):
        source = store.meta().get("source")
        spec, ignored = resume_spec(load_spec(batch_dir), store)
    note = None
    if ignored:
        note = (
            f"batch {name}: {batch_dir.spec_file} differs from the batch's store for {plural(len(ignored), 'job')} "
            f"({', '.join(ignored[:5])}{', ...' if len(ignored) > 5 else ''}): ignored, resume runs the jobs as the "
            "store has them (to change jobs, edit your batch file and `hyperctl run` it)"
        )
    options = RunOptions(batches_dir=batches_dir, source=source, same_batch=True, rerun_ended=False)
    return Resumed(spec, options, note)


def requeue(batch_dir: BatchDir, jobs: list[str] | None = None, failed_only: bool = False) -> list[str]:
    """Make jobs pending again for a retry: these (by name), else every one that did not succeed
    (failed_only: not the killed ones). Returns their names (none: nothing to retry)."""
    from hyperctl.daemon.outcome import retried

    name = batch_dir.name
    holder = daemon_pid(batch_dir)
    if holder is not None:
        raise HyperctlError(f"batch '{name}' is running (pid {holder}); retry it once it has ended")
    store = Store(batch_dir.db)
    try:
        records = {r.name: r for r in store.jobs()}
        if jobs:
            unknown = [j for j in jobs if j not in records]
            if unknown:
                raise NoSuchJobError(f"batch '{name}' has no job named '{unknown[0]}'")
            chosen = list(dict.fromkeys(jobs))
            running = [j for j in chosen if records[j].status == JobStatus.RUNNING]
            if running:  # left running by a daemon that died: a second copy would run beside it
                raise HyperctlError(
                    f"job '{running[0]}' of batch '{name}' has an attempt no daemon saw end (its daemon "
                    f"died): `hyperctl batch resume {name}` sees it to its end; retry it after"
                )
        else:
            wanted = retried(failed_only)
            chosen = [job for job, r in records.items() if r.status in wanted]
        if chosen:
            store.requeue(chosen)
        return chosen
    finally:
        store.close()
