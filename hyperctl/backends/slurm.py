"""The Slurm backend: each attempt is a Slurm job (or an array task) running the same launcher as
every backend, from the batch folder on storage the nodes share.

Slurm places the jobs: this backend's one machine is the cluster, holding at most `max_jobs`
attempts (pending or running in Slurm). Submissions made in one turn of the event loop go out
together: first attempts with equal options as one job array, the rest one sbatch each; signals
to many jobs go as one scancel. How each attempt fares is learned by slurmwatch.Watch: from its
files first, then one squeue for the whole batch, sacct only where that leaves a doubt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hyperctl import privatefs
from hyperctl.backends import slurmcli, slurmscript
from hyperctl.backends.base import (
    Executor,
    Exit,
    Handle,
    Launch,
    LaunchRefusedError,
    Machine,
    MachineUnavailableError,
    drop_loopback_portal,
)
from hyperctl.backends.local import prepare_here
from hyperctl.backends.slurmconf import SlurmConf, parse_conf
from hyperctl.backends.slurmwatch import Watch
from hyperctl.errors import ConfigError, HyperctlError
from hyperctl.jobsidelib import write_job_side_lib

CLUSTER = "slurm-queue"  # the one machine: where an attempt is until Slurm says which node runs it
# What sbatch says when the controller cannot be reached (not the job's fault: it waits and goes
# again) rather than when it refuses the job (the job's options are wrong: it fails, not retried).
_UNREACHABLE = ("Unable to contact", "Socket timed out", "Connection refused", "no answer within", "Zero Bytes")


@dataclasses.dataclass(eq=False)
class _Submission:
    launch: Launch
    script: Path
    options: tuple[str, ...]
    ref: asyncio.Future[str]


class SlurmExecutor(Executor):
    """Submits attempts with sbatch and follows them through their files and squeue."""

    kind = "slurm"
    files_here = True  # the batch folder is on storage the nodes share
    written_here = False  # by the nodes: NFS tells inotify here nothing of their writes

    def __init__(self, conf: SlurmConf) -> None:
        self.conf = conf
        self.machine = Machine(CLUSTER, 0.0, 0, (), max_jobs=conf.max_jobs, places=True)
        self.umask = f"{privatefs.user_umask():03o}"
        self.watch = Watch(conf, self._ended, self._placed)
        self._submissions: list[_Submission] = []
        self._signals: dict[str, set[Handle]] = {}  # signal name -> the attempts to send it to
        self._flushing: asyncio.Handle | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._lib: str | None = None
        self._array_size: int | None = None  # the site's MaxArraySize, asked once
        self._lost_on: dict[str, str] = {}  # job -> the node its last attempt was lost on: its retry goes elsewhere
        self._arrays = 0

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> SlurmExecutor:
        parsed = parse_conf(conf)
        missing = slurmcli.find_programs()
        if missing:
            raise ConfigError(f"backend.type: slurm: {missing}")
        return cls(parsed)

    def machines(self) -> list[Machine]:
        return [self.machine]

    def check_job(self, execution: Any) -> str | None:
        if execution.working_dir and not os.path.isdir(execution.working_dir):
            return f"working_dir: no such folder: {execution.working_dir}"
        return None

    # -- starting ------------------------------------------------------------
    async def start(self, launch: Launch) -> Handle:
        # Its timeout runs from when Slurm starts it (Watch arms it then), not while it waits in the queue.
        return await self._spawn(launch)

    async def _spawn(self, launch: Launch) -> Handle:
        self.watch.batch(launch.batch_dir)
        env = dict(launch.env)
        drop_loopback_portal(env)  # Slurm's nodes are other machines
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        lib = self._lib or self._make_lib(launch)
        await prepare_here(launch, env, lib, params_in_env=False)
        if not env["PYTHONPATH"]:
            env.pop("PYTHONPATH")
        script = slurmscript.write_attempt(launch, env, self.conf.setup, self.umask)
        options = self.conf.sbatch_options(launch.resource, launch.execution)
        lost_on = self._lost_on.pop(launch.job, None)
        if lost_on is not None:
            options = (f"--exclude={lost_on}", *options)
        submission = _Submission(launch, script, options, asyncio.get_running_loop().create_future())
        self._submissions.append(submission)
        self._flush_soon()
        handle = _handle(launch, await submission.ref)
        self.watch.add(handle, str(launch.attempt_dir / slurmscript.SLURM_LOG), base=launch.attempt)
        return handle

    def _make_lib(self, launch: Launch) -> str:
        self._lib = write_job_side_lib(launch.batch_dir.internal / "lib")
        return self._lib

    def _flush_soon(self) -> None:
        # After this turn of the loop: every attempt the scheduler starts now goes in one submission.
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        submissions, self._submissions = self._submissions, []
        signals, self._signals = self._signals, {}
        if submissions:
            self._track(self._submit(submissions))
        for sig, handles in signals.items():
            self._track(self._send(sig, handles))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run it apart; close() waits for it (a daemon that exits leaves no sbatch or scancel half done)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, submissions: list[_Submission]) -> None:
        """One sbatch per array (first attempts of equal options) or single job, one after another
        in the order the scheduler started them: Slurm ranks jobs by when they came, so the
        batch's order holds in its queue too."""
        units: dict[object, list[_Submission]] = {}
        for s in submissions:
            alone = self.conf.arrays != "auto" or s.launch.attempt > 1  # a retry goes alone
            units.setdefault(s if alone else s.options, []).append(s)
        if any(len(unit) > 1 for unit in units.values()) and self._array_size is None:
            self._array_size = await slurmcli.max_array_size() or 1001
        most = min(self.conf.array_max, (self._array_size or 1001) - 1)
        for unit in units.values():
            if len(unit) == 1:
                await self._submit_one(unit[0])
                continue
            for start in range(0, len(unit), most):
                await self._submit_array(unit[start : start + most])

    async def _submit_one(self, s: _Submission) -> None:
        options = [
            *self._common(),
            f"--comment={s.script}",
            "-o",
            str(s.launch.attempt_dir / slurmscript.SLURM_LOG),
            "-D",
            str(s.launch.attempt_dir),
            *s.options,
        ]
        try:
            s.ref.set_result(await slurmcli.sbatch(options, str(s.script)))
        except slurmcli.SlurmError as e:
            s.ref.set_exception(_submit_error(e))

    async def _submit_array(self, group: list[_Submission]) -> None:
        folder = group[0].launch.batch_dir.internal / "slurm"
        privatefs.make_missing_dirs(folder)
        self._arrays += 1
        name = f"array-{os.getpid()}-{self._arrays}"
        script = slurmscript.write_array(folder, name, [s.script for s in group])
        throttle = f"%{self.conf.max_running}" if self.conf.max_running else ""
        options = [
            *self._common(),
            f"--array=0-{len(group) - 1}{throttle}",
            f"--comment=@{folder / name}.list",
            "-o",
            str(folder / f"{name}-%a.log"),
            "-D",
            str(folder),
            *group[0].options,
        ]
        try:
            array = await slurmcli.sbatch(options, str(script))
        except slurmcli.SlurmError as e:
            for s in group:
                s.ref.set_exception(_submit_error(e))
            return
        for i, s in enumerate(group):
            s.ref.set_result(f"{array}_{i}")

    def _common(self) -> list[str]:
        return [f"--job-name={self.watch.name}", "--open-mode=append", "--export=ALL"]

    # -- signals ----------------------------------------------------------
    async def _signal(self, handle: Handle, sig: int) -> None:
        # Kept until the end of this turn of the loop: a batch kill is one scancel.
        self._signals.setdefault(signal.Signals(sig).name.removeprefix("SIG"), set()).add(handle)
        self._flush_soon()

    async def _send(self, sig: str, handles: set[Handle]) -> None:
        live = [h for h in handles if h.ref and not h.done.done()]  # an ended job has nothing left to signal
        running = [h.ref for h in live if h.ref and h.started is not None]
        waiting = [h.ref for h in live if h.ref and h.started is None]
        if running:
            await slurmcli.scancel(running, sig)
            if sig == "KILL":  # and the job itself, whatever is left of it
                await slurmcli.scancel(running)
        if waiting:  # not started: a signal reaches nothing; cancelled, it never starts
            await slurmcli.scancel(waiting)
        self.watch.soon()  # its end shows in squeue at once

    async def _group_alive(self, handle: Handle) -> bool:
        # Slurm ends every process of a job with it (its cgroup): nothing outlives the job's end.
        return not handle.done.done()

    # -- ends ----------------------------------------------------------------
    def _ended(self, handle: Handle, exit: Exit) -> None:
        if exit.reason == "lost" and handle.host is not None:
            self._lost_on[handle.launch.job] = handle.host
        if exit.exit_code is not None or exit.signal is not None:
            self._exited(handle, exit.exit_code, exit.signal, exit.ended)
        elif not handle.done.done():
            if handle.timer is not None:
                handle.timer.cancel()
            reason = handle.stop_reason or exit.reason
            handle.done.set_result(dataclasses.replace(exit, reason=reason))

    def continued(self, handle: Handle, launch: Launch) -> Handle:
        # The same Slurm job, run again: its script writes this attempt's files (slurmscript).
        again = _handle(launch, handle.ref)
        log = handle.launch.attempt_dir / slurmscript.SLURM_LOG
        self.watch.add(again, str(log))
        return again

    def _placed(self, handle: Handle, elapsed: float) -> None:
        self._arm_timeout(handle, elapsed)
        if self.on_placed is not None:
            self.on_placed(handle)

    # -- after a daemon's crash ---------------------------------------------
    async def recover(
        self, launch: Launch, pid: int | None, pid_started: float | None, ref: str | None = None
    ) -> Handle | Exit | None:
        self.watch.batch(launch.batch_dir)
        if launch.execution.timeout is not None:  # its timeout runs from its start in Slurm, as Watch finds it
            launch = dataclasses.replace(launch, timeout=launch.execution.timeout)
        handle = _handle(launch, ref)
        found = await self.watch.recover(handle)
        if found is None or isinstance(found, Exit):
            return found
        return handle

    async def _reattach(self, launch: Launch, pid: int | None, pid_started: float | None) -> Handle | None:
        raise NotImplementedError  # recover() above does it for every attempt of the batch at once

    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        try:
            return (launch.attempt_dir / name).read_text(errors="replace")
        except FileNotFoundError:
            return None

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=slurmcli.TIMEOUT)
        await self.watch.close()


def _handle(launch: Launch, ref: str | None) -> Handle:
    return Handle(launch, None, None, asyncio.get_running_loop().create_future(), ref=ref)


def _submit_error(e: slurmcli.SlurmError) -> HyperctlError:
    said = str(e)
    if any(words in said for words in _UNREACHABLE):
        return MachineUnavailableError(said)
    return LaunchRefusedError(said)
