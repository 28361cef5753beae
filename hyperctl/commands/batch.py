"""`hyperctl batch ...`: list, describe, watch, kill, resume and retry batches."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hyperctl import exitstatus
from hyperctl.batches import (
    find_batch,
    list_batches,
    resolve_batches_dir,
    summarize,
)
from hyperctl.commands.targets import add_targets
from hyperctl.errors import HyperctlError
from hyperctl.exitstatus import ExitStatus
from hyperctl.output import emit_json, format_duration, format_time, plural, say, table
from hyperctl.spec import JobStatus

if TYPE_CHECKING:
    pass

_ENDED = ("finished", "failed", "killed")
_RUN_JSON = "print the run's summary as JSON on stdout, as `run --json` does"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    batch = commands.add_parser("batch", help="list, describe, watch, kill, resume or retry batches")
    sub = batch.add_subparsers(title="commands", metavar="COMMAND", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")
    named = argparse.ArgumentParser(add_help=False)
    add_targets(named)

    p = sub.add_parser("list", parents=[data_dir, as_json], help="every batch in the data dir")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("describe", parents=[named, data_dir, as_json], help="a batch: spec, counts, times")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser("watch", parents=[named, data_dir], help="the live progress of a running batch")
    p.set_defaults(func=cmd_watch)
    p = sub.add_parser(
        "kill",
        parents=[named, data_dir],
        help="stop a batch: kill its running jobs and its daemon",
        description="Stop starting jobs, kill every running job (TERM, then KILL after its kill_grace) and stop "
        "the daemon. With no daemon (it died), the jobs it left running are found and killed directly.",
    )
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser(
        "resume",
        parents=[named, data_dir],
        help="run a batch again from where it stopped",
        description="Run the batch again with the spec it last ran with: jobs that ended while no daemon ran "
        "get their real exit code, jobs still running are watched again, pending jobs run, and jobs "
        "that succeeded are not run twice.",
    )
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--json", action="store_true", help=_RUN_JSON)
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser(
        "retry",
        parents=[named, data_dir],
        help="run a batch's failed, killed or timed-out jobs again",
        description="Make jobs pending again and resume the batch: by default every job that did not succeed; "
        "--failed leaves killed jobs out; --job picks jobs by name. A batch whose daemon runs it takes them "
        "back itself (--json: {name, retried}).",
    )
    p.add_argument("--failed", action="store_true", help="only failed, timed-out and lost jobs (not killed ones)")
    p.add_argument(
        "--job", "-j", action="extend", nargs="+", metavar="JOB", help="these jobs (--job a b, or --job a --job b)"
    )
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--json", action="store_true", help=_RUN_JSON)
    p.set_defaults(func=cmd_retry)
    p = sub.add_parser(
        "dashboard",
        parents=[named, data_dir, as_json],
        help="print a new login link to a running batch's dashboard",
        description="Ask the batch's daemon for a new one-time login link to its pages (each link works once, "
        "for 10 minutes). A batch no daemon runs has none: `hyperctl ui` serves every batch's pages, read-only.",
    )
    p.set_defaults(func=cmd_dashboard)


def cmd_list(args: argparse.Namespace) -> int:
    batches_dir = resolve_batches_dir(args.batches_data_dir)
    found = list_batches(batches_dir)
    if args.json:
        emit_json([b.to_dict() for b in found])
        return ExitStatus.OK
    if not found:
        say(f"no batches in {batches_dir}")
        return ExitStatus.OK
    rows = [
        [
            b.name,
            b.status,
            f"{b.counts.get('succeeded', 0)}/{b.total}" if b.problem is None else "-",
            _others(b.counts) or ("-" if b.problem is None else b.problem),
            format_time(b.started),
            format_time(b.ended) if b.status != "running" else "-",
            b.portal or "-",
        ]
        for b in found
    ]
    print(table(["NAME", "STATUS", "OK/JOBS", "OTHERS", "STARTED", "ENDED", "DAEMON"], rows))
    for b in found:
        if b.note:
            say(b.note)
    return ExitStatus.OK


def _others(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != JobStatus.SUCCEEDED.value)


def cmd_describe(args: argparse.Namespace) -> int:
    from hyperctl.commands.hosts import machine_line, machines_of
    from hyperctl.overview import overview

    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    found = overview(batch_dir)
    summary, machines, elapsed = found.summary, machines_of(batch_dir), found.elapsed
    view = {**found.to_dict(), "machines": machines}
    if args.json:
        emit_json(view)
        return ExitStatus.OK
    lines = [
        ("name", summary.name),
        (
            "status",
            summary.status + (f" (daemon pid {summary.daemon_pid}, {summary.portal})" if summary.portal else ""),
        ),
        ("folder", str(summary.path)),
        ("from", found.source or "-"),
        ("jobs", f"{summary.total}: " + (", ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "none")),
        ("backend", found.spec.backend.type),
        *[(f"  {m['name']}", machine_line(m)) for m in machines],
        ("started", format_time(summary.started)),
        ("ended", format_time(summary.ended) if summary.status != "running" else "-"),
        ("elapsed", format_duration(elapsed) if elapsed is not None else "-"),
    ]
    if found.eta is not None:
        lines.append(("ETA", format_duration(found.eta)))
    best = found.best_text()
    if best is not None:
        lines.append(("best", best))
    if found.stopped:
        lines.append(("stopped", f"{found.stopped}; `hyperctl batch resume {summary.name}` goes on"))
    width = max(len(k) for k, _ in lines)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in lines))
    if summary.note:
        say(summary.note)
    return ExitStatus.OK


def cmd_watch(args: argparse.Namespace) -> int:
    from hyperctl.progress import bar_line
    from hyperctl.steering import batch_views

    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    tty = sys.stderr.isatty()
    for view in batch_views(batch_dir):
        elapsed = time.time() - (view["started"] or time.time())
        line = bar_line(view["counts"], view["total"], {}, elapsed, view.get("running_progress") or 0.0)
        sys.stderr.write(("\r\033[K" + line) if tty else line + "\n")
        sys.stderr.flush()
    if tty:
        sys.stderr.write("\n")
    summary = summarize(batch_dir)
    if summary.problem is not None:  # a store it cannot read: why, not "unknown"
        raise HyperctlError(f"batch '{summary.name}': {summary.problem}")
    say(f"batch {summary.name} {summary.status}: " + (", ".join(f"{n} {s}" for s, n in summary.counts.items() if n)))
    if summary.note:
        say(summary.note)
    return exitstatus.for_batch(summary.status)


def cmd_kill(args: argparse.Namespace) -> int:
    from hyperctl.steering import KILL_WITHIN, kill_batch, wait_daemon_gone

    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    kill = kill_batch(batch_dir)
    if not kill.daemon:
        if kill.killed or kill.before not in _ENDED:
            say(
                f"no daemon ran batch {args.batch}; killed {plural(len(kill.killed), 'job')} it had left running"
                + _names(kill.killed)
            )
        else:
            say(f"batch {args.batch} has already ended ({kill.before}); nothing was running")
        return ExitStatus.OK
    say(f"killing batch {args.batch}: its running jobs get TERM, then KILL after their kill_grace")
    wait_daemon_gone(batch_dir, KILL_WITHIN)  # the daemon exits once the last job is gone
    say(f"batch {args.batch} killed")
    return ExitStatus.OK


def _names(names: list[str]) -> str:
    return (": " + ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")) if names else ""


def cmd_resume(args: argparse.Namespace) -> int:
    return _resume(resolve_batches_dir(args.batches_data_dir), args.batch, args.detach, args.json)


def _resume(batches_dir: Path, name: str, detach: bool, as_json: bool) -> int:
    from hyperctl.commands.run import detach as run_detached
    from hyperctl.commands.run import run_in_foreground
    from hyperctl.starting import resume_run

    resumed = resume_run(batches_dir, name)
    if resumed.note:
        say(resumed.note)
    if detach:
        return run_detached(resumed.spec, resumed.options, as_json)
    return run_in_foreground(resumed.spec, resumed.options, as_json)


def cmd_retry(args: argparse.Namespace) -> int:
    from hyperctl.steering import retry_jobs

    batches_dir = resolve_batches_dir(args.batches_data_dir)
    batch_dir = find_batch(batches_dir, args.batch)
    retried = retry_jobs(batch_dir, args.job, args.failed)
    chosen = retried.jobs
    if retried.by_daemon:  # a running batch: its daemon runs them now
        if args.json:
            emit_json({"name": batch_dir.name, "retried": chosen})
        elif not chosen:
            say(f"batch {batch_dir.name}: no job to retry")
        else:
            say(
                f"retrying {plural(len(chosen), 'job')} of running batch {batch_dir.name}{_names(chosen)}: its daemon "
                f"runs them (hyperctl batch watch {batch_dir.name})"
            )
        return ExitStatus.OK
    if not chosen:
        say(f"batch {args.batch}: no job to retry")
        return ExitStatus.OK
    say(f"retrying {plural(len(chosen), 'job')} of batch {args.batch}" + _names(chosen))
    return _resume(batches_dir, args.batch, args.detach, args.json)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from hyperctl.batches import NoDaemonError
    from hyperctl.client import DaemonUnreachableError, live_client

    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    try:
        url = live_client(batch_dir).dashboard_link()
    except (NoDaemonError, DaemonUnreachableError):
        raise HyperctlError(
            f"no daemon runs batch '{batch_dir.name}': `hyperctl ui` serves its pages (read-only)"
        ) from None
    if args.json:
        emit_json({"name": batch_dir.name, "url": url})
    else:
        print(url)
    return ExitStatus.OK
