"""What `hyperctl run` shows while it runs and when it ends: a bar on a terminal, lines otherwise."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from hyperctl.attemptfiles import last_lines
from hyperctl.daemon.outcome import FAILURES
from hyperctl.daemon.runner import RunInfo, RunResult
from hyperctl.daemon.scheduler import Event
from hyperctl.objective import best_text
from hyperctl.output import format_duration, plural, visible
from hyperctl.pace import eta
from hyperctl.spec import BatchStatus, JobStatus
from hyperctl.store import Attempt

_REDRAW_EVERY = 0.1  # seconds: 10 frames a second is plenty and costs nothing
_CLOCK_EVERY = 1.0
_BAR_WIDTH = 20
# After "ok", in this order; pending is what the bar leaves.
_SHOWN = (JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.KILLED, JobStatus.LOST, JobStatus.RUNNING)
_FAILURES_NAMED = 20  # failed attempts named as they happen; the rest are counted
_NOT_SUCCEEDED_NAMED = 20  # jobs the summary names
TAILS_SHOWN = 3  # failed jobs whose stderr's last lines the summary shows
TAIL_LINES = 5


@dataclass
class FailureTail:
    """A failed job in the summary: how its last attempt ended, and the end of its stderr."""

    name: str
    status: str
    how: str  # "failed (exit 3)", "timeout", "lost"
    stderr: str | None  # the file; None when the job never got an attempt
    tail: list[str] | None  # its last lines; None when the file is missing

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "how": self.how, "stderr": self.stderr, "tail": self.tail}


class Progress:
    """Watches a run in the same process and reports it on a stream (stderr)."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.info: RunInfo | None = None
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.failed_attempts = 0  # named above the bar as they happen, up to _FAILURES_NAMED

    def say(self, line: str) -> None:
        self._write(("\r\033[K" if self.tty else "") + line + "\n")

    def _write(self, text: str) -> None:
        """Write, unless the reader has gone (`hyperctl run | head`): then the batch goes on, unseen."""
        if self.closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.closed = True

    def started(self, run: RunInfo) -> None:
        self.info = run
        self.start = time.monotonic()
        running = run.before.get(JobStatus.RUNNING.value, 0)  # left by a daemon that died: watched, not run
        todo = run.total - _ended(run.before) - running
        also = f", {running} still running from before" if running else ""
        also += f", {len(run.skipped)} already succeeded" if run.skipped else ""
        also += f", {plural(len(run.dropped), 'job')} no longer in the batch" if run.dropped else ""
        name, folder = run.batch_dir.name, run.batch_dir.path
        self.say(f"hyperctl: batch {name}: {plural(todo, 'job')} to run{also}; folder {folder}")
        if run.port_note:
            self.say(f"hyperctl: {run.port_note}")
        self.say(f"hyperctl: API at {run.portal}")
        self.say(f"hyperctl: dashboard at {run.dashboard}")
        self.draw(force=True)
        if self.tty:
            self._tick()

    def _tick(self) -> None:
        """Redraw each second so the clock and ETA move while long jobs run."""
        self.draw(force=True)
        self.timer = asyncio.get_running_loop().call_later(_CLOCK_EVERY, self._tick)

    def event(self, event: Event) -> None:
        failed = event.retry_of if event.retry_of is not None else event.status
        if failed in FAILURES:
            self._failed(event.job, failed, again=event.retry_of is not None)
        if not event.status.final:
            self.draw()
            return
        if not self.tty:
            assert self.info is not None
            # From the counts, as the bar: a job retried through the daemon (batch/retry) ends twice
            # but is one of the jobs to do.
            done = _ended(self.info.scheduler.counts_now()) - _ended(self.info.before)
            todo = self.info.total - _ended(self.info.before)
            self.say(f"[{done}/{todo}] {event.job} {event.status.value}")
        self.draw(force=event.status != JobStatus.SUCCEEDED)

    def _failed(self, job: str, status: JobStatus, again: bool) -> None:
        """Name a failed attempt above the bar (a plain line off a terminal): how it ended, where
        its stderr is. One store read per failure, none per success; the first few only."""
        self.failed_attempts += 1
        if self.failed_attempts > _FAILURES_NAMED or self.info is None:
            return
        attempts = self.info.scheduler.store.attempts(job)
        last = attempts[-1] if attempts else None
        attempt = f" attempt {last.n}" if again and last is not None else ""
        line = f"hyperctl: {job}{attempt}: {_how(status, last)}"
        if again:
            line += "; it will run again (max_retries)"
        stderr = self.info.batch_dir.attempt_dir(job, last.n, last.layout) / "stderr" if last else None
        if stderr is not None and stderr.exists():  # not for one that never ran, nor a lost one whose never came
            line += f"; stderr: {stderr}"
        self.say(line)
        if self.failed_attempts == _FAILURES_NAMED:
            self.say(f"hyperctl: the next failed attempts are counted, not named (after {_FAILURES_NAMED})")
        self.draw(force=True)

    def interrupted(self, forced: bool) -> None:
        if forced:
            self.say("hyperctl: killing the running jobs now")
        else:
            self.say("hyperctl: interrupted: stopping the running jobs (Ctrl-C again to kill them at once)")

    def draw(self, force: bool = False) -> None:
        if not self.tty or self.info is None:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < _REDRAW_EVERY:
            return
        self.last_draw = now
        scheduler = self.info.scheduler
        elapsed = now - self.start
        line = bar_line(
            scheduler.counts_now(), self.info.total, self.info.before, elapsed, scheduler.running_progress()
        )
        width = shutil.get_terminal_size().columns
        self._write("\r\033[K" + line[: width - 1])

    def finished(self, result: RunResult) -> None:
        if self.timer is not None:
            self.timer.cancel()
        lines = summary_lines(result)
        unnamed = self.failed_attempts - _FAILURES_NAMED
        if unnamed > 0:
            lines.insert(1, f"  {plural(unnamed, 'more failed attempt')} than were named while it ran")
        self._write(("\r\033[K" if self.tty else "") + "".join(line + "\n" for line in lines))


def _ended(counts: Mapping[str, int]) -> int:
    return sum(n for status, n in counts.items() if JobStatus(status).final)


def bar_line(
    counts: Mapping[str, int], total: int, before: Mapping[str, int], elapsed: float, running_progress: float = 0.0
) -> str:
    """`[####......] 40/100  38 ok, 2 failed, 4 running  0:12 ETA 0:18`, for what changed since `before`
    (the counts when this run began: jobs that had ended then are left out). running_progress is
    the running jobs' reported progress summed: the bar and the ETA count it as jobs' worth done."""
    todo = total - _ended(before)
    done = max(0, _ended(counts) - _ended(before))
    worth = min(done + running_progress, todo)
    filled = int(_BAR_WIDTH * worth / todo) if todo else _BAR_WIDTH
    since = {s.value: counts.get(s.value, 0) - (before.get(s.value, 0) if s.final else 0) for s in JobStatus}
    shown = {"ok": since[JobStatus.SUCCEEDED.value]}
    shown.update((s.value, since[s.value]) for s in _SHOWN if since[s.value] > 0)
    line = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{todo}  "
    line += ", ".join(f"{n} {what}" for what, n in shown.items()) + f"  {format_duration(elapsed)}"
    left = eta(elapsed, worth, todo) if done < todo else None
    if left is not None:
        line += f" ETA {format_duration(left)}"
    return line


def summary_lines(result: RunResult) -> list[str]:
    counts = {k: v for k, v in result.counts.items() if v}
    described = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no jobs"
    took = format_duration(result.elapsed)
    lines = [f"hyperctl: batch {result.batch_dir.name} {result.status.value} in {took}: {described}"]
    if result.objective is not None:
        lines.append(f"  best: {best_text(result.objective, result.best, result.counts.get('succeeded', 0))}")
    if result.skipped:
        lines.append(f"  {len(result.skipped)} skipped: they already succeeded with the same command and params")
    if result.dropped:
        lines.append(
            f"  {plural(len(result.dropped), 'job')} of an earlier run no longer in the batch file: left out of the "
            "batch (their folders are kept)"
        )
    unfinished = [r for r in result.not_succeeded if r.status != JobStatus.PENDING]
    for record in unfinished[:_NOT_SUCCEEDED_NAMED]:
        last = record.last
        logs = f"  logs: {last and result.batch_dir.attempt_dir(record.name, last.n, last.layout)}"
        lines.append(f"  {record.name}: {_how(record.status, last)}{logs if last else ''}")
    if len(unfinished) > _NOT_SUCCEEDED_NAMED:
        lines.append(f"  ... and {len(unfinished) - _NOT_SUCCEEDED_NAMED} more (hyperctl job list)")
    tails, more = failure_tails(result)
    for tail in tails:
        if tail.tail:
            lines.append(f"  {tail.name}: last lines of its stderr:")
            lines += [f"    | {visible(line)}" for line in tail.tail]  # a job's bytes, not the terminal's
        elif tail.stderr is not None:
            missing = "its stderr is empty" if tail.tail is not None else f"its stderr is missing ({tail.stderr})"
            lines.append(f"  {tail.name}: {missing}")
    if more:
        lines.append(
            f"  {plural(more, 'more failed job')}; the stderr of each: "
            f"hyperctl job logs {result.batch_dir.name} JOB --stderr"
        )
    pending = len(result.not_succeeded) - len(unfinished)
    if result.machines_down:
        lines.append(f"  every machine is down; {plural(pending, 'job')} not started:")
        lines += [f"    {machine}: {why}" for machine, why in result.machines_down.items()]
    elif result.fault is not None:
        lines.append(f"  stopped starting jobs: {result.fault}")
        lines.append(
            f"  {plural(pending, 'job')} not started: once that is fixed, hyperctl batch resume {result.batch_dir.name}"
        )
    elif result.halted_after is not None:
        lines.append(f"  {halted_text(result.halted_after)}: {plural(pending, 'job')} not started")
    elif pending and result.status == BatchStatus.INTERRUPTED:
        lines.append(
            f"  {plural(pending, 'job')} to run again (interrupted, or not started yet): "
            f"hyperctl batch resume {result.batch_dir.name}"
        )
    return lines


def halted_text(failures: int) -> str:
    """Why a run started no more jobs, when halt_on_failures stopped it (the summary and its JSON)."""
    return f"halted after {plural(failures, 'failure')} (scheduler.halt_on_failures)"


def _how(status: JobStatus, last: Attempt | None) -> str:
    """`failed (exit 3)`, `failed (signal 9)`, `timeout`, `lost`: how a job's attempt ended."""
    if status != JobStatus.FAILED or last is None:
        return status.value
    if last.exit_code is not None:
        return f"failed (exit {last.exit_code})"
    if last.signal is not None:
        return f"failed (signal {last.signal})"
    return f"failed ({last.reason})" if last.reason else "failed"


def failure_tails(result: RunResult) -> tuple[list[FailureTail], int]:
    """The first TAILS_SHOWN failed (failed, timed-out, lost) jobs with the last lines of their
    stderr, and how many more failed. Read once, at the end: nothing per successful job."""
    failed = [r for r in result.not_succeeded if r.status in FAILURES]
    tails = []
    for record in failed[:TAILS_SHOWN]:
        last = record.last
        stderr = None
        if last is not None and last.pid is not None:  # a process ran (remote: its files came home)
            stderr = str(result.batch_dir.attempt_dir(record.name, last.n, last.layout) / "stderr")
        lines = last_lines(stderr, TAIL_LINES) if stderr else None
        tails.append(FailureTail(record.name, record.status.value, _how(record.status, last), stderr, lines))
    return tails, len(failed) - len(tails)
