"""How the Slurm backend learns what became of its jobs, cheaply.

The files first: a job writes its STARTED file when it starts and the launcher its exitcode
file when it ends, on storage the daemon sees; those of the live attempts are looked at every
FILE_SWEEP seconds. Then ONE squeue call for the whole batch (by job name) per cycle, every
poll.min seconds after a change and backing off to poll.max while nothing changes: it tells
the ends no file records (cancelled, time limit, out of memory, node failure, a launch that
failed). sacct only for jobs that left squeue without an exitcode file (and never again on a
cluster without accounting). The load on slurmctld does not grow with the number of jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hyperctl.attemptfiles import read_end
from hyperctl.backends import slurmcli, slurmscript
from hyperctl.backends.base import Exit, Handle
from hyperctl.backends.slurmconf import SlurmConf
from hyperctl.daemon.outcome import REQUEUED
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir

logger = logging.getLogger(__name__)

FILE_SWEEP = 0.25  # seconds between looks at the live attempts' files (a stat each)
_GROWTH = 1.5  # squeue's interval grows by this each cycle without news
_MIN_GAP = 1.0  # seconds between two squeue calls at least, however much happens
_RESUME_TRIES = 3  # squeue calls a resume makes before it gives up (the controller may be restarting)
# The end Slurm gives a job whose launcher wrote no exit code, as hyperctl names it (outcome.py):
# "timeout", "killed" and "lost" are statuses of their own; other reasons make the job failed.
_ENDS = {
    "CANCELLED": "killed",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "out of memory (Slurm: OUT_OF_MEMORY)",
    "NODE_FAIL": "lost",
    "BOOT_FAIL": "lost",
    "PREEMPTED": "lost",
}
_SIGNALS = range(1, 32)  # a wait status's low bits: a signal, else Slurm's own code (53: could not launch)


@dataclass(eq=False)
class _State:
    log: str  # Slurm's own log of the job, named in what its end says
    started: bool = False
    seen: str = ""  # its state in the last squeue
    ended: str | None = None  # the terminal state Slurm gave it, while its exitcode file is missing
    reason: str = ""
    wait_status: int | None = None
    since: float | None = None  # when it was seen ended (or gone from squeue) without an exitcode file
    file_end: Exit | None = None  # requeue on: its exit code, final once Slurm says the job ended


class Watch:
    """The live attempts of one batch in Slurm, and the loop that learns how each ends."""

    def __init__(
        self, conf: SlurmConf, ended: Callable[[Handle, Exit], None], placed: Callable[[Handle, float], None]
    ) -> None:
        self.conf = conf
        self.ended = ended
        self.placed = placed  # with how long it has run already
        self.name = ""  # every job of the batch has it: one squeue finds them all
        self.live: dict[Handle, _State] = {}
        self.base: dict[str, int] = {}  # Slurm job -> the attempt number its script numbers its runs from
        self.since = time.time()  # sacct looks back to here
        self.accounting: bool | None = None  # None: not known yet
        self.interval = conf.poll_min
        self.next_squeue = 0.0
        self.last_squeue = -_MIN_GAP
        self.squeue_calls = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._resume_queue: asyncio.Future[list[slurmcli.QueuedJob]] | None = None  # one squeue for a resume

    def batch(self, batch_dir: BatchDir) -> None:
        self.name = f"hyperctl.{batch_dir.key}"

    def add(self, handle: Handle, log: str, base: int | None = None) -> None:
        """Watch an attempt; `base`: the attempt number its job script was submitted as (None when
        not known: learned from its files or squeue), so a requeued run is told from it."""
        self.live[handle] = _State(log)
        if base is not None and handle.ref:
            self.base.setdefault(handle.ref, base)
        self.soon()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def soon(self) -> None:
        """Something happened (a submission, a signal, an end to confirm): squeue is asked again
        now (or _MIN_GAP after the last call)."""
        self.interval = self.conf.poll_min
        self.next_squeue = 0.0
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the loop ------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.live:
            self._sweep()
            due = max(self.next_squeue, self.last_squeue + _MIN_GAP)
            if self.live and loop.time() >= due:
                self.last_squeue = loop.time()
                await self._ask_squeue()
                self._sweep()
                due = max(self.next_squeue, self.last_squeue + _MIN_GAP)
            wait = max(0.0, min(FILE_SWEEP, due - loop.time()))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _sweep(self) -> None:
        """Look at each live attempt's files: started, ended; end those Slurm ended without a file."""
        now = time.monotonic()
        for handle, state in list(self.live.items()):
            folder = handle.launch.attempt_dir
            if not state.started:
                self._look_started(handle, state, folder)
            end = read_end(folder)
            if end is not None and self.conf.requeue:
                # The launcher of a run Slurm preempts writes its exit code too: only Slurm can
                # tell whether the job ended or runs again, so ask it now.
                if state.file_end is None:
                    state.file_end = Exit(end.exit_code, ended=end.ended)
                    self.soon()
            elif end is not None:
                self._finish(handle, Exit(end.exit_code, ended=end.ended))
            elif state.since is not None:
                self._decide(handle, state, now)

    def _look_started(self, handle: Handle, state: _State, folder: Path) -> None:
        path = folder / slurmscript.STARTED
        try:
            text = path.read_text(errors="replace")
            started = path.stat().st_mtime
        except FileNotFoundError:
            return
        fields = slurmscript.read_started(text)
        if handle.ref and fields.get("restarts", "").isdigit():
            self.base.setdefault(handle.ref, handle.launch.attempt - int(fields["restarts"]))
        state.started = True
        handle.host = fields.get("node") or None
        handle.gpus = tuple(int(g) for g in fields.get("gpus", "").split(",") if g.strip().isdigit())
        handle.started = started
        self.placed(handle, max(0.0, time.time() - started))

    def _decide(self, handle: Handle, state: _State, now: float) -> None:
        """It ended in Slurm (or left squeue) and no exitcode file says how: say it from Slurm's state."""
        assert state.since is not None
        ended, status = state.ended, state.wait_status
        sig = None if status is None else status & 0x7F
        if ended in _ENDS:
            self._finish(handle, Exit(None, reason=_ENDS[ended]))
        elif ended == "FAILED" and sig in _SIGNALS:  # its launcher was killed: it could write nothing
            self._finish(handle, Exit(None, signal=sig))
        elif ended == "FAILED" and sig:  # Slurm could not start it: most often, no folder for its log
            where = handle.launch.attempt_dir
            why = f"could not start in Slurm ({state.reason}, {sig}): do its nodes see {where} (shared storage)?"
            self._finish(handle, Exit(None, reason=why))
        elif now - state.since < self.conf.exit_read_timeout:
            return  # its launcher wrote an exit code that shared storage does not show yet: wait a while
        elif ended == "FAILED" and status is not None:  # never shown: Slurm's copy of it
            self._finish(handle, Exit(status >> 8))
        else:
            what = f"Slurm says {ended}" if ended else "it left Slurm's queue"
            if state.started:
                more = f"see {state.log}"
            else:  # no trace of it on disk at all
                more = (
                    f"it never wrote into {handle.launch.attempt_dir}: do its nodes see that folder (shared storage)?"
                )
            logger.warning(
                "job %s: %s but wrote no exit code within %.0f s; %s",
                handle.launch.job,
                what,
                self.conf.exit_read_timeout,
                more,
            )
            self._finish(handle, Exit(None, reason="lost"))

    def _finish(self, handle: Handle, exit: Exit) -> None:
        del self.live[handle]
        self.ended(handle, exit)

    async def _ask_squeue(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            jobs = await slurmcli.squeue(self.name)
        except HyperctlError as e:  # the controller is busy or down: the files still tell ends; ask later
            if not self._failing:
                logger.warning("squeue failed (asked again later): %s", e)
            self._failing = True
            self.interval = min(self.interval * _GROWTH, self.conf.poll_max)
            self.next_squeue = loop.time() + self.interval
            return
        self.squeue_calls += 1
        self._failing = False
        changed = self._apply(jobs)
        gone = [h for h, s in self.live.items() if s.since is not None and s.ended is None]
        if gone and self.accounting is not False:
            changed |= await self._ask_sacct(gone)
        self.interval = self.conf.poll_min if changed else min(self.interval * _GROWTH, self.conf.poll_max)
        self.next_squeue = loop.time() + self.interval

    def _apply(self, jobs: list[slurmcli.QueuedJob]) -> bool:
        """What squeue shows: ended states, and jobs it no longer shows. Whether anything changed."""
        by_id = {job.id: job for job in jobs}
        now = time.monotonic()
        changed = False
        for handle, state in list(self.live.items()):
            job = by_id.get(handle.ref or "")
            if job is None:
                if state.file_end is not None:
                    self._finish(handle, state.file_end)  # ended and gone: its file says how
                elif state.since is None:  # gone from squeue (MinJobAge passed) before we saw it end
                    state.since, changed = now, True
                continue
            if job.state != state.seen:
                state.seen, changed = job.state, True
            base = self.base.setdefault(job.id, handle.launch.attempt - job.restarts)
            if base + job.restarts > handle.launch.attempt:  # Slurm runs it again: a new attempt
                self._finish(handle, Exit(None, reason=REQUEUED, again=base + job.restarts))
                changed = True
                continue
            if state.file_end is not None and (job.state in slurmcli.TERMINAL or job.state == "COMPLETING"):
                self._finish(handle, state.file_end)
                continue
            if job.state in slurmcli.TERMINAL and state.ended is None:
                state.ended, state.reason, state.wait_status, state.since = job.state, job.reason, job.wait_status, now
        return changed

    async def _ask_sacct(self, gone: list[Handle]) -> bool:
        try:
            jobs = await slurmcli.sacct(self.name, self.since)
        except slurmcli.AccountingDisabledError:
            self.accounting = False  # never asked again: squeue and the files are all there is
            return False
        except HyperctlError as e:
            logger.warning("sacct failed: %s", e)
            return False
        self.accounting = True
        by_id = {job.id: job for job in jobs}
        changed = False
        for handle in gone:
            job = by_id.get(handle.ref or "")
            state = self.live.get(handle)
            if job is not None and state is not None and job.state in slurmcli.TERMINAL:
                state.ended, changed = job.state, True
                if job.exit_code is not None:  # sacct's code:signal, as a wait status
                    state.wait_status = (job.exit_code << 8) | (job.signal or 0)
        return changed

    # -- after a daemon's crash ---------------------------------------------
    async def recover(self, handle: Handle) -> Exit | Handle | None:
        """What became of an attempt a previous daemon submitted: its Exit when its file records
        one, None when it was never submitted, else the handle, watched from now on (the loop
        learns its end, or that it runs). Every attempt found in one squeue for the batch."""
        self.since = min(self.since, time.time() - 7 * 86400)  # sacct: back to before the crash
        folder = handle.launch.attempt_dir
        end = read_end(folder)
        if end is not None:
            return Exit(end.exit_code, ended=end.ended)
        if handle.ref is None:
            handle.ref = _ref_from_started(folder) or await self._ref_from_queue(folder)
        if handle.ref is None:
            return None  # no trace in Slurm nor on disk: the daemon died before sbatch answered
        self.add(handle, str(folder / slurmscript.SLURM_LOG))
        return handle

    async def _ref_from_queue(self, folder: Path) -> str | None:
        """The job squeue shows for this attempt (by the comment sbatch was given): for an attempt
        submitted just before a daemon died, whose id never reached the store."""
        if self._resume_queue is None:  # one call serves every attempt of the resume
            self._resume_queue = asyncio.ensure_future(self._squeue_patiently())
        jobs = await asyncio.shield(self._resume_queue)
        script = str(folder / slurmscript.SCRIPT)
        for job in jobs:
            if job.comment == script:
                return job.id
            if job.comment.startswith("@") and "_" in job.id:
                listing = _read_lines(Path(job.comment[1:]))
                index = int(job.id.rsplit("_", 1)[1])
                if index < len(listing) and listing[index] == script:
                    return job.id
        return None

    async def _squeue_patiently(self) -> list[slurmcli.QueuedJob]:
        for attempt in range(_RESUME_TRIES):
            try:
                return await slurmcli.squeue(self.name)
            except HyperctlError:
                if attempt == _RESUME_TRIES - 1:
                    raise
                await asyncio.sleep(self.conf.poll_min)
        return []


def _ref_from_started(folder: Path) -> str | None:
    try:
        fields = slurmscript.read_started((folder / slurmscript.STARTED).read_text(errors="replace"))
    except FileNotFoundError:
        return None
    if fields.get("array") and fields.get("task"):
        return f"{fields['array']}_{fields['task']}"
    return fields.get("job") or None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []
