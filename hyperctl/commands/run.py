"""`hyperctl run`: run a batch in the foreground, or start its daemon in the background."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hyperctl import exitstatus
from hyperctl.errors import HyperctlError
from hyperctl.exitstatus import ExitStatus
from hyperctl.output import emit_json, say
from hyperctl.spec import BatchSpec

if TYPE_CHECKING:  # the daemon's modules load only when a command needs them
    from hyperctl.daemon.runner import RunOptions
    from hyperctl.layout import BatchDir


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run",
        parents=[data_dir],
        help="run a batch and wait for it (or --detach)",
        description="Run a batch: start its daemon and API, run every job, and exit when all have ended. "
        "Exit status: 0 all jobs succeeded, 1 some did not, 2 bad usage or config, 130 interrupted. "
        "Running the same batch again skips the jobs that already succeeded with the same spec.",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="a batch file (JSON or YAML)")
    source.add_argument("--template", metavar="FILE", help="a template: expand it and run the jobs in one step")
    source.add_argument("--spec-stdin", action="store_true", help=argparse.SUPPRESS)  # a detached daemon's input
    run.add_argument("--name", help="the batch name (default: the batch's `name`, else the file name)")
    run.add_argument("--detach", action="store_true", help="run in the background; print how to watch it")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("--source", help=argparse.SUPPRESS)
    run.add_argument("--keep-ended", action="store_true", help=argparse.SUPPRESS)  # a detached resume
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from hyperctl.batches import resolve_batches_dir
    from hyperctl.daemon.runner import RunOptions
    from hyperctl.starting import load_config

    if args.spec_stdin:
        spec = BatchSpec.from_dict(json.load(sys.stdin))
        source = args.source
    else:
        spec, source = load_config(args.template or args.config, name=args.name, template=bool(args.template))
    options = RunOptions(
        batches_dir=resolve_batches_dir(args.batches_data_dir),
        source=source,
        same_batch=args.name is not None,
        rerun_ended=not args.keep_ended,
    )
    if args.detach:
        return detach(spec, options, args.json)
    return run_in_foreground(spec, options, args.json)


def run_in_foreground(spec: BatchSpec, options: RunOptions, as_json: bool) -> int:
    import logging

    from hyperctl.daemon.runner import run_batch
    from hyperctl.progress import Progress, failure_tails, halted_text

    logging.basicConfig(format="hyperctl: %(message)s", level=logging.WARNING)

    progress = Progress(sys.stderr, sys.stderr.isatty())
    result = run_batch(spec, options, progress)
    progress.finished(result)
    if as_json:
        tails, more = failure_tails(result)
        emit_json(
            {
                "name": result.batch_dir.name,
                "status": result.status.value,
                "path": str(result.batch_dir.path),
                "counts": result.counts,
                "skipped": result.skipped,
                "elapsed": round(result.elapsed, 3),
                "not_succeeded": [r.name for r in result.not_succeeded],
                "failures": [tail.to_dict() for tail in tails],  # the first few, with their stderr's last lines
                "failures_more": more,
                # Why jobs were left unstarted, as the text summary says it (null when none was).
                "halted": halted_text(result.halted_after) if result.halted_after is not None else None,
                "machines_down": result.machines_down,
                "fault": result.fault,
                # The best job by scheduler.objective (null without one, or when no job reported its metric).
                "best": result.best.to_dict(result.objective) if result.best and result.objective else None,
            }
        )
    return exitstatus.for_batch(result.status)


def _emit_summary(batch_dir: BatchDir, **more: str | None) -> None:
    from hyperctl.batches import summarize

    emit_json({**summarize(batch_dir).to_dict(), "log": str(batch_dir.daemon_log), **more})


def _dashboard_link(batch_dir: BatchDir) -> str | None:
    """A one-time login link to the daemon's pages, asked of it as `batch dashboard` asks; None
    when it cannot be asked (it has ended meanwhile): `batch dashboard` asks again later."""
    from hyperctl.client import live_client

    try:
        return live_client(batch_dir).dashboard_link()
    except HyperctlError:
        return None


def _ended_at_once(
    daemon: subprocess.Popen[bytes], log_path: Path, log_start: int, as_json: BatchDir | None = None
) -> int:
    """A detached batch that ended before we left: what it said, and its exit status (and, given
    its folder, the batch as JSON on stdout)."""
    try:
        code = daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = ExitStatus.JOBS_FAILED
    with open(log_path, "rb") as log:
        log.seek(log_start)
        sys.stderr.write(log.read().decode(errors="replace"))
    if as_json is not None:
        _emit_summary(as_json)
    return int(code)


def detach(spec: BatchSpec, options: RunOptions, as_json: bool = False) -> int:
    """Start the daemon in a session of its own; return once its API answers. With as_json, the
    batch as `batch list --json` shows it goes to stdout, whether it runs or ended at once."""
    from hyperctl.batches import resolve_batches_dir
    from hyperctl.starting import start_daemon

    started = start_daemon(spec, options)
    batch_dir, log_path = started.batch_dir, started.batch_dir.daemon_log
    if started.portal is None:  # the whole batch ended already: say how
        return _ended_at_once(started.daemon, log_path, started.log_start, batch_dir if as_json else None)
    data_dir = "" if options.batches_dir == resolve_batches_dir(None) else f" --batches-data-dir {options.batches_dir}"
    say(f"batch {spec.name} runs in the background (pid {started.daemon.pid}, API at {started.portal})")
    link = _dashboard_link(batch_dir)
    if as_json:
        _emit_summary(batch_dir, dashboard=link)
        return ExitStatus.OK
    if link is not None:
        say(f"dashboard at {link}")
    print(
        f"  hyperctl batch watch {spec.name}{data_dir}\n"
        f"  hyperctl job list {spec.name}{data_dir}\n"
        f"  hyperctl batch kill {spec.name}{data_dir}\n"
        f"  log: {log_path}"
    )
    return ExitStatus.OK
