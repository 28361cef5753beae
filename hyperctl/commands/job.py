"""`hyperctl job ...`: list, describe, kill a batch's jobs, and read their logs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperctl import joblogs, metricstore, steering
from hyperctl.attemptfiles import seek_last_lines
from hyperctl.batches import find_batch, open_batch, resolve_batches_dir
from hyperctl.commands.jobmetrics import EXAMPLES as METRICS_EXAMPLES
from hyperctl.commands.jobmetrics import cmd_metrics
from hyperctl.commands.targets import add_targets
from hyperctl.errors import HyperctlError
from hyperctl.exitstatus import ExitStatus
from hyperctl.layout import BatchDir
from hyperctl.output import emit_json, format_duration, format_time, say, table
from hyperctl.pace import PROGRESS, progress_text
from hyperctl.spec import JobStatus
from hyperctl.steering import job_record as _job  # as jobmetrics.py knows it
from hyperctl.store import Attempt, JobRecord, Store
from hyperctl.tablefit import show
from hyperctl.unwatched import UNKNOWN, Unwatched
from hyperctl.views import job_eta

_FOLLOW_EVERY = 0.2  # seconds between looks at a followed log (as tail -f does)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    job = commands.add_parser("job", help="list, describe or kill jobs; read their logs and metrics")
    sub = job.add_subparsers(title="commands", metavar="COMMAND", required=True)
    in_batch = argparse.ArgumentParser(add_help=False)
    add_targets(in_batch)
    one = argparse.ArgumentParser(add_help=False)
    add_targets(one, job=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = sub.add_parser("list", parents=[in_batch, data_dir, as_json], help="a batch's jobs")
    p.add_argument("--status", choices=[s.value for s in JobStatus], help="only jobs in this status")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("describe", parents=[one, data_dir, as_json], help="a job and all its attempts")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser(
        "kill",
        parents=[one, data_dir],
        help="kill a job (every process it started)",
        description="Kill a running job: TERM to its whole process group and to the processes it started that "
        "left the group (setsid), KILL after its kill_grace. A pending job is killed before it starts. Killed "
        "jobs are not retried. A job that has already ended is left as it is (exit 0).",
    )
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser("logs", parents=[one, data_dir], help="a job's output")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--tail", type=whole_number(0), metavar="N", help="only the last N lines")
    p.add_argument("--stderr", action="store_true", help="its stderr instead of its stdout")
    p.add_argument("--attempt", type=whole_number(1), metavar="K", help="attempt K, from 1 (default: the last)")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser(
        "metrics",
        parents=[one, data_dir],
        help="what a job reported or printed (loss: 0.25), point by point",
        description="Every point an attempt of the job reported with hyperctl.report(), wrote to its metrics "
        "file or printed (loss: 0.25), as the daemon stored it: a row per step, a column per metric.",
        epilog=METRICS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--attempt", type=whole_number(1), metavar="K", help="attempt K, from 1 (default: the last)")
    p.add_argument("--key", metavar="NAME", help="only this metric")
    out = p.add_mutually_exclusive_group()  # one format, as compare takes one
    out.add_argument("--csv", action="store_true", help="CSV on stdout, for scripts and spreadsheets")
    out.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_metrics)


def whole_number(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `least` (else a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not '{text}'") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, not {value}")
        return value

    return parse


def _took(a: Attempt | None, now: float) -> str:
    took = a.duration(now) if a is not None else None
    return "-" if took is None else format_duration(took)


def _how(a: Attempt | None) -> str:
    if a is None:
        return "-"
    if a.exit_code is not None:
        return f"exit {a.exit_code}"
    if a.signal is not None:
        return f"signal {a.signal}"
    return a.reason or "-"


def cmd_list(args: argparse.Namespace) -> int:
    status = JobStatus(args.status) if args.status else None
    with open_batch(resolve_batches_dir(args.batches_data_dir), args.batch) as (batch_dir, store):
        unwatched = Unwatched.of(batch_dir, store)
        # With no daemon, a job's status is what its files tell: chosen by that, not by the store's.
        query = status if unwatched is None else None
        progress = metricstore.progress_of(store.conn, query)  # what each last attempt reported last
        if args.json:
            from hyperctl.views import job_view

            records = store.jobs(query)
            views = [job_view(r, batch_dir, progress.get(r.name)) for r in records]
            if unwatched is not None:
                views = [_told(unwatched, v, r) for v, r in zip(views, records)]
                views = [v for v in views if status is None or v["status"] == status.value]
            emit_json(views)
            return ExitStatus.OK
        listed = store.job_rows(query)
    now = time.time()
    rows = []
    for r in listed:
        shown, last = unwatched.see(r.name, r.status, r.last) if unwatched else (r.status.value, r.last)
        if status is None or shown == status.value:
            row = [r.name, shown, r.attempts, _how(last), last and last.host, _gpus(last), _took(last, now)]
            rows.append([*row, _progress(shown, last, progress.get(r.name))])
    headers = ["NAME", "STATUS", "ATTEMPTS", "END", "HOST", "GPUS", "DURATION", "PROGRESS"]
    if not any(row[-1] for row in rows):  # no job reports its progress: no column of dashes
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    print(table(headers, rows))
    if unwatched is not None and (note := unwatched.note()):
        say(note)
    return ExitStatus.OK


def _told(unwatched: Unwatched, view: dict[str, Any], record: JobRecord) -> dict[str, Any]:
    """The view as the job's files tell it (no daemon); no ETA once they tell it ended."""
    view = unwatched.told(view, record.name, record.status, record.last)
    return view if view["status"] == JobStatus.RUNNING.value else {**view, "eta": None}


def _progress(shown: str, last: Attempt | None, progress: float | None) -> str | None:
    """`40% ETA 0:30` for a running job; the last progress an ended one reported (`60%`)."""
    return progress_text(progress, job_eta(shown == JobStatus.RUNNING.value, last, progress))


def _gpus(a: Attempt | None) -> str:
    return ",".join(map(str, a.gpus)) if a and a.gpus else "-"


def cmd_describe(args: argparse.Namespace) -> int:
    from hyperctl.views import job_view

    with open_batch(resolve_batches_dir(args.batches_data_dir), args.batch) as (batch_dir, store):
        record = _job(store, args.batch, args.job)
        attempts = store.attempts(args.job)
        unwatched = Unwatched.of(batch_dir, store)
        progress = metricstore.progress_of(store.conn, job=args.job).get(args.job)
        summaries = metricstore.summaries_of(store.conn, args.job, record.attempts) if record.attempts else {}
    status, last = record.status.value, record.last
    if unwatched is not None:  # no daemon: its last attempt as its files tell
        status, last = unwatched.see(args.job, record.status, record.last)
        attempts = [last if last is not None and a.n == last.n else a for a in attempts]
    attempt_views = [_attempt_view(batch_dir, args.job, a) for a in attempts]
    view = job_view(record, batch_dir, progress)
    if unwatched is not None and attempt_views:
        view = _told(unwatched, view, record)
        attempt_views[-1] = unwatched.told(attempt_views[-1], args.job, record.status, record.last)
    if args.json:
        emit_json({**view, "attempts": attempt_views})
        return ExitStatus.OK
    spec = record.spec
    retries = f"{spec.retry.max_retries}, on " + ", ".join(map(str, spec.retry.on))
    fields = [
        ("name", spec.name),
        ("status", status),
        ("command", spec.execution.command),
        ("params", json.dumps(spec.params)),
        ("resource", f"cpu {spec.resource.cpu:g}, ram {spec.resource.ram} MB, gpu {spec.resource.gpu}"),
        ("retries", retries),
        ("data dir", spec.execution.data_dir or str(batch_dir.job_dir(spec.name))),
    ]
    if progress is not None:
        fields.append(("progress", _progress(status, last, progress) or "-"))
    reported = {k: s.last for k, s in summaries.items() if k != PROGRESS}
    if reported:  # what a sweep is run for, beside the params: each metric's last value
        values = ", ".join(f"{k}={show(v)}" for k, v in reported.items())
        fields.append(("metrics", f"{values} (last; every point: hyperctl job metrics {args.batch} {args.job})"))
    print("\n".join(f"{k:<9} {v}" for k, v in fields))
    if not attempts:
        print("attempts  none yet")
        return ExitStatus.OK
    rows = [
        [
            v["n"],
            v["status"],
            v["host"],
            _gpus(a),
            v["pid"],
            format_time(a.started),
            _took(a, time.time()),
            _how(a),
            v["stdout"],
        ]
        for a, v in zip(attempts, attempt_views)
    ]
    headers = ["#", "STATUS", "HOST", "GPUS", "PID", "STARTED", "DURATION", "END", "STDOUT (stderr beside it)"]
    print(table(headers, rows))
    if unwatched is not None:  # this job's own note if it was left running, else the batch's
        note = unwatched.job_note(status) if record.status == JobStatus.RUNNING else unwatched.note()
        if note:
            say(note)
    return ExitStatus.OK


def _attempt_view(batch_dir: BatchDir, job: str, a: Attempt) -> dict[str, Any]:
    folder = batch_dir.attempt_dir(job, a.n, a.layout)
    return {
        **vars(a),
        "status": a.status.value,
        "stdout": str(folder / "stdout"),
        "stderr": str(folder / "stderr"),
    }


_KILL_SAYS = {  # how a kill went (steering.kill_job) -> what the CLI says
    steering.KILLED: "job {job}: {status}",
    steering.ENDED: "job {job} has already ended ({status}); nothing was running",
    steering.KILLED_OFFLINE: "no daemon ran batch {batch}; killed job {job}",
    steering.NOT_FOUND_OFFLINE: "no daemon ran batch {batch}; found no process of job {job}",
}


def cmd_kill(args: argparse.Namespace) -> int:
    batch_dir = find_batch(resolve_batches_dir(args.batches_data_dir), args.batch)
    kill = steering.kill_job(batch_dir, args.job)
    say(_KILL_SAYS[kill.how].format(job=args.job, batch=args.batch, status=kill.status))
    return ExitStatus.OK


def cmd_logs(args: argparse.Namespace) -> int:
    with open_batch(resolve_batches_dir(args.batches_data_dir), args.batch) as (batch_dir, store):
        record = _job(store, args.batch, args.job)
    if args.follow and args.attempt is None:
        _follow_job(batch_dir, record, args)
        return ExitStatus.OK
    n = steering.attempt_number(record, args.attempt)
    _show_attempt(batch_dir, record, n, args, args.tail)
    return ExitStatus.OK


def _follow_job(batch_dir: BatchDir, record: JobRecord, args: argparse.Namespace) -> None:
    """Follow a job to its final end: wait for it to start, then each attempt in turn, as its
    retries run (only the first one shown gets --tail)."""
    n, tail = max(record.attempts, 1), args.tail
    while True:
        now = _wait_for_attempt(batch_dir, args.job, n)
        if now is None:  # it ended without an attempt n: killed while pending
            if n == 1:
                raise HyperctlError(f"job '{args.job}' ended before it started: {_record(batch_dir, args.job)}")
            return
        _show_attempt(batch_dir, now, n, args, tail)
        tail = None
        if _wait_for_attempt(batch_dir, args.job, n + 1) is None:
            return
        ended = _how(joblogs.attempt_of(batch_dir, args.job, n))
        say(f"job {args.job}: attempt {n} ended ({ended}); attempt {n + 1} follows")
        n += 1


def _record(batch_dir: BatchDir, job: str) -> str:
    store = Store(batch_dir.db, readonly=True)
    try:
        return _job(store, batch_dir.name, job).status.value
    finally:
        store.close()


def _wait_for_attempt(batch_dir: BatchDir, job: str, n: int) -> JobRecord | None:
    """The job once it has an attempt n; None if it ends first. Waiting needs a daemon to start it."""
    while True:
        store = Store(batch_dir.db, readonly=True)
        try:
            record = _job(store, batch_dir.name, job)
            unwatched = Unwatched.of(batch_dir, store) if record.attempts < n and not record.status.final else None
        finally:
            store.close()
        if record.attempts >= n:
            return record
        if record.status.final:
            return None
        if unwatched is not None:  # no daemon: none will start it, nor record how the last attempt ended
            shown, _ = unwatched.see(job, record.status, record.last)
            if shown != UNKNOWN and JobStatus(shown).final:
                say(f"job {job}: {shown}: {unwatched.job_note(shown)}")
                return None
            raise HyperctlError(
                f"job '{job}' is {record.status.value}, and no daemon runs batch '{batch_dir.name}' to start it "
                f"(start one: hyperctl batch resume {batch_dir.name})"
            )
        time.sleep(_FOLLOW_EVERY)


def _show_attempt(batch_dir: BatchDir, record: JobRecord, n: int, args: argparse.Namespace, tail: int | None) -> None:
    """Print attempt n's output (its last `tail` lines); with args.follow, on to the attempt's end."""
    stream = "stderr" if args.stderr else "stdout"
    output = joblogs.output_of(batch_dir, record, n, stream)
    path, folder = output.path, output.folder
    out = sys.stdout.buffer
    if output.elsewhere:  # its output comes home when it ends: meanwhile the daemon reads it there
        for chunk in joblogs.from_daemon(batch_dir, record, stream, tail, args.follow):
            out.write(chunk)
            out.flush()
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - followed below
    except FileNotFoundError:
        # Every attempt that ran leaves both files, empty ones too: one missing at its end was removed.
        if joblogs.attempt_ended(batch_dir, args.job, n, folder):
            raise HyperctlError(output.missing) from None
        if not args.follow:
            return  # starting: it has not opened its output yet
        f = _wait_for_file(path, batch_dir, args.job, n, folder)
    if f is None:
        raise HyperctlError(output.missing)
    with f:
        if tail is not None:
            seek_last_lines(f, tail)
        _copy(f, out)
        if args.follow:
            while not joblogs.attempt_ended(batch_dir, args.job, n, folder):
                time.sleep(_FOLLOW_EVERY)
                _copy(f, out)
            _copy(f, out)


def _copy(f: Any, out: Any) -> None:
    while chunk := f.read(1 << 16):
        out.write(chunk)
    out.flush()


def _wait_for_file(path: Path, batch_dir: BatchDir, job: str, n: int, folder: Path) -> Any:
    while not os.path.exists(path):
        if joblogs.attempt_ended(batch_dir, job, n, folder):
            return None
        time.sleep(_FOLLOW_EVERY)
    return open(path, "rb")  # noqa: SIM115 - the caller closes it
