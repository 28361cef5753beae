"""The local backend: each attempt is a detached process group on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from hyperctl import privatefs
from hyperctl.attemptfiles import FileEnd, read_end
from hyperctl.backends import procfs
from hyperctl.backends.base import (
    IDENTITY_ENV,
    LAUNCHER,
    LAUNCHER_ENV,
    MAX_PARAMS_ARG,
    PARAMS_ENV,
    Executor,
    Handle,
    Launch,
    Machine,
)
from hyperctl.errors import ConfigError
from hyperctl.jobsidelib import add_to_pythonpath, write_job_side_lib
from hyperctl.validation import Problems, Section, above, at_least, is_kind


def detect_gpus() -> tuple[int, ...]:
    """GPU indices nvidia-smi reports; none when it is missing or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if out.returncode != 0:
        return ()
    return tuple(int(line) for line in out.stdout.split() if line.strip().isdigit())


def parse_gpus(sec: Section, key: str = "gpu") -> tuple[int, ...]:
    """`gpu`: a list of indices, a count, or "auto" (nvidia-smi); none when absent."""
    sec.ignore(key)
    value = sec.data.get(key)
    where = sec.at(key)
    if value is None:
        return ()
    if value == "auto":
        return detect_gpus()
    if is_kind(value, "integer") and value >= 0:
        return tuple(range(value))
    if isinstance(value, list) and all(is_kind(v, "integer") and v >= 0 for v in value):
        if len(set(value)) != len(value):
            sec.problems.add(where, "lists a GPU twice")
        return tuple(value)
    sec.problems.add(where, 'must be a list of GPU indices, a count, or "auto"')
    return ()


def total_ram_mb() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20


# Only where pidfds are missing, for a job a previous daemon started (not our child).
_REATTACHED_CHECK_EVERY = 1.0
# A process a job left outside its process group (`setsid cmd &`) is looked for this long after
# a job ends (one /proc scan serves every job ending meanwhile), gets TERM, then KILL after the
# grace: a job's processes end with it, as under a cluster scheduler.
_STRAYS_LOOKED_FOR_AFTER = 1.0
_STRAY_GRACE = 10.0

Attempt = tuple[str, ...]  # the values of IDENTITY_ENV: batch, job, attempt number


class LocalExecutor(Executor):
    """Runs attempts as children of the daemon, each in a session of its own."""

    kind = "local"

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.base_env = dict(os.environ)  # os.environ decodes on every read; copy it once
        self.umask = f"{privatefs.user_umask():03o}"  # the jobs' own (the launcher's files are private)
        self._running: dict[Attempt, Handle] = {}
        self._launchers: set[int] = set()  # our children that are launchers (not strays)
        self._strays: dict[int, list[int]] = {}  # launcher pid -> its strays, found by a kill of it
        self._ending: set[int] = set()  # strays sent TERM, not yet reaped
        self._sweep: asyncio.TimerHandle | None = None
        self._lib: str | None = None

    async def prepare(self) -> dict[str, str]:
        # Only the daemon adopts orphans (not every process that makes an executor, such as a
        # test's, which would never reap them).
        procfs.become_subreaper()
        return {}

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> LocalExecutor:
        problems = Problems()
        sec = Section(conf, "backend.conf", problems)
        cpu = sec.get("cpu", "number", os.cpu_count() or 1, check=above(0))
        ram = sec.get("ram", "integer", None, check=at_least(0))
        gpus = parse_gpus(sec)
        max_jobs = sec.get("max_jobs", "integer", None, check=at_least(1))
        sec.done()
        if problems.lines:
            raise ConfigError(problems.lines)
        return cls(Machine("localhost", cpu, total_ram_mb() if ram is None else ram, gpus, max_jobs=max_jobs))

    def machines(self) -> list[Machine]:
        return [self.machine]

    def check_job(self, execution: Any) -> str | None:
        if execution.working_dir and not os.path.isdir(execution.working_dir):
            return f"working_dir: no such folder: {execution.working_dir}"
        if execution.shell and shutil.which(execution.shell) is None:
            return f"shell: no program '{execution.shell}' here"
        return None

    async def _spawn(self, launch: Launch) -> Handle:
        execution = launch.execution
        env = {**self.base_env, **launch.env}
        await prepare_here(launch, env, self._lib or self._make_lib(launch.batch_dir.internal))
        pid = os.posix_spawn(
            "/bin/sh",
            [
                "/bin/sh",
                "-c",
                LAUNCHER,
                "hyperctl-job",
                launch.command,
                str(launch.attempt_dir),
                launch.working_dir,
                str(launch.params_file),
                self.umask,
                execution.shell or "",
            ],
            env,
            # /dev/null until the launcher opens the job's own files: files, never pipes, so a
            # job printing gigabytes never waits for a reader.
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1),
                (os.POSIX_SPAWN_DUP2, 0, 2),
            ],
            setsid=True,  # its own session and process group: survives us, and is killed as one
            # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: `yes | head -1`
            # in a job would never end. Jobs get the defaults, as in any shell.
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
        # The spawn time stands for the process start time (which /proc gives only to 10 ms, at a
        # cost per job): with the pid it tells the job from a later process that reuses the pid.
        self._launchers.add(pid)
        handle = self._new_handle(launch, pid, time.time())
        self._watch(handle)
        return handle

    def _make_lib(self, internal: Path) -> str:
        self._lib = write_job_side_lib(internal / "lib")
        return self._lib

    def _new_handle(self, launch: Launch, pid: int, pid_started: float | None) -> Handle:
        handle = super()._new_handle(launch, pid, pid_started)
        self._running[_attempt(launch)] = handle
        return handle

    def _exited(self, handle: Handle, exit_code: int | None, sig: int | None, ended: float | None = None) -> None:
        super()._exited(handle, exit_code, sig, ended)
        self._running.pop(_attempt(handle.launch), None)
        if handle.group in self._launchers:
            self._launchers.discard(handle.group)
            self._sweep_soon()
        else:  # started by an earlier daemon: its strays went to init, not to us
            for pid in _carrying(_attempt(handle.launch)):
                self._end_stray(pid)

    async def close(self) -> None:
        """End what ended jobs left behind now (no later sweep will), within the grace."""
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_strays()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STRAY_GRACE
        while self._ending and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for pid in self._ending:
            _kill_quietly(pid)

    def _sweep_soon(self) -> None:
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(_STRAYS_LOOKED_FOR_AFTER, self._sweep_strays)

    def _sweep_strays(self) -> None:
        """End the processes ended jobs left behind: orphans adopted by us (we are a subreaper)
        whose attempt no longer runs; reap those that have ended."""
        self._sweep = None
        # Strays a kill found are the kill's to end: forgotten once none of them is left.
        self._strays = {k: v for k, v in self._strays.items() if any(procfs.alive(p) for p in v)}
        being_killed = {pid for strays in self._strays.values() for pid in strays}
        for pid in procfs.children(os.getpid()):
            if pid in self._launchers or pid in self._ending or pid in being_killed:
                continue
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    continue  # it had ended: reaped
            except ChildProcessError:
                continue
            attempt = procfs.markers(pid, IDENTITY_ENV)
            if attempt is not None and attempt not in self._running:
                self._end_stray(pid)

    def _end_stray(self, pid: int) -> None:
        loop = asyncio.get_running_loop()
        self._ending.add(pid)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        killer = loop.call_later(_STRAY_GRACE, _kill_quietly, pid)

        def ended() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            killer.cancel()  # before the pid can be reused
            self._ending.discard(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._sweep_soon()  # its own children are ours now

        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return  # gone already, or no pidfds here: the next sweep reaps it
        loop.add_reader(pidfd, ended)

    def _watch(self, handle: Handle) -> None:
        """Call _exited when the child ends: a pidfd on the event loop, no polling."""
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(handle.group)
        except (AttributeError, OSError):  # no pidfd (not Linux, or a kernel before 5.3)
            threading.Thread(target=self._wait_blocking, args=(loop, handle), daemon=True).start()
            return

        def on_readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._reap(handle, os.waitpid(handle.group, 0)[1])

        loop.add_reader(pidfd, on_readable)

    def _wait_blocking(self, loop: asyncio.AbstractEventLoop, handle: Handle) -> None:
        status = os.waitpid(handle.group, 0)[1]
        loop.call_soon_threadsafe(self._reap, handle, status)

    def _reap(self, handle: Handle, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        self._exited(handle, code if code >= 0 else None, -code if code < 0 else None)

    async def _signal(self, handle: Handle, sig: int) -> None:
        try:
            os.killpg(handle.group, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if not procfs.available():
            return
        # And what left the group but carries the attempt's identity (`setsid cmd &`).
        strays = [pid for pid in _carrying(_attempt(handle.launch)) if _group_of(pid) != handle.group]
        self._strays[handle.group] = strays
        for pid in strays:
            _kill_quietly(pid, sig)

    async def _group_alive(self, handle: Handle) -> bool:
        if any(procfs.alive(pid) for pid in self._strays.get(handle.group, ())):
            return True  # a process the job left outside its group, found by the kill
        try:
            os.killpg(handle.group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        if not procfs.available():
            return True  # kill(0) said so
        # Zombies count too for kill(0): orphans wait for init to reap them, which in some
        # containers is slow or never. Only a live member means the job is not yet over.
        return handle.group in procfs.live_groups()

    async def _reattach(self, launch: Launch, pid: int | None, pid_started: float | None) -> Handle | None:
        if not procfs.available():
            return None
        markers = {k: launch.env[k] for k in LAUNCHER_ENV}
        if pid is None:  # the daemon died before it saved the pid
            pid = procfs.find_launcher({k: launch.env[k] for k in IDENTITY_ENV})
        if pid is None or not procfs.is_launcher(pid, markers, pid_started):
            return None
        handle = self._new_handle(launch, pid, pid_started)
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here (old kernel, seccomp): look every second
            args = (loop, handle, markers)
            threading.Thread(target=self._watch_blocking, args=args, daemon=True).start()
            return handle
        # Checked again now that the pidfd pins the process: the pid cannot be reused under us.
        if not procfs.is_launcher(pid, markers, pid_started):
            os.close(pidfd)
            return None

        def on_readable() -> None:  # not our child: no wait status, its exitcode file tells
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._exit_from_files(handle, read_end(launch.attempt_dir))

        loop.add_reader(pidfd, on_readable)
        return handle

    def _watch_blocking(self, loop: asyncio.AbstractEventLoop, handle: Handle, markers: dict[str, str]) -> None:
        while procfs.is_launcher(handle.group, markers, handle.pid_started):
            time.sleep(_REATTACHED_CHECK_EVERY)
        end = read_end(handle.launch.attempt_dir)
        loop.call_soon_threadsafe(self._exit_from_files, handle, end)

    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        return _read(launch.attempt_dir / name)

    async def _attempt_end(self, launch: Launch) -> FileEnd | None:
        return read_end(launch.attempt_dir)  # with the file's mtime: when the attempt ended


async def prepare_here(launch: Launch, env: dict[str, str], lib: str, params_in_env: bool = True) -> None:
    """What an attempt whose files are on this machine's file system (or storage shared with
    the machine it runs on) needs before its launcher starts: its folders, params, assets, and
    the job-side library on env's PYTHONPATH."""
    execution = launch.execution
    _make_attempt_dir(launch)
    if execution.data_dir:  # the user's folder, as given (a link, perhaps shared): only made when missing
        os.makedirs(launch.data_dir, privatefs.FOLDER_MODE, exist_ok=True)
    else:  # in the batch folder: hyperctl's to make, private
        _make_private_dir(launch.data_dir, launch.batch_dir.path)
    if not params_in_env or len(launch.params_json) > MAX_PARAMS_ARG:
        # Not passed on (too long for the environment), or nothing to pass it: written here.
        fd = privatefs.open_file(launch.params_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            f.write(launch.params_json + "\n")
    else:  # the launcher writes it (never an argument, which `ps` shows every user)
        env[PARAMS_ENV] = launch.params_json
    if execution.assets:  # copies, as on a remote machine: a job that changes one changes only its own
        await asyncio.get_running_loop().run_in_executor(None, _copy_assets, execution.assets, launch.working_dir)
    add_to_pythonpath(env, lib)


def _attempt(launch: Launch) -> Attempt:
    return tuple(launch.env.get(k, "") for k in IDENTITY_ENV)


def _carrying(attempt: Attempt) -> list[int]:
    """The live processes that carry this attempt's identity in their environment."""
    return [pid for pid, who in procfs.identities(IDENTITY_ENV).items() if who == attempt]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def _make_private_dir(path: str | Path, base: Path) -> None:
    """A private folder under base (privatefs), as cheap as it gets when the parent is there (the
    usual case): this is per job."""
    try:
        privatefs.make_dir(path)
    except FileNotFoundError:
        privatefs.make_dirs(path, base)


def _make_attempt_dir(launch: Launch) -> None:
    path = launch.attempt_dir
    _make_private_dir(path.parent, launch.batch_dir.path)  # the job's records folder
    try:
        os.mkdir(path, privatefs.FOLDER_MODE)
    except FileExistsError:  # a job that left the batch and came back: that run's end is not this one's
        privatefs.check_ours(path, os.lstat(path), folder=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path / "exitcode")


def _copy_assets(assets: list[str], into: str) -> None:
    for source in assets:
        target = os.path.join(into, os.path.basename(source.rstrip("/")))
        if os.path.exists(target) and os.path.samefile(source, target):
            continue  # the job runs where its asset already is
        if os.path.isdir(source):
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=_special_files)
        else:
            shutil.copy2(source, target)


def _special_files(folder: str, names: list[str]) -> set[str]:
    """What an asset folder holds that is no file, folder nor link (a device, a FIFO, a socket):
    not copied (reading /dev/zero never ends)."""
    special = set()
    for name in names:
        mode = os.lstat(os.path.join(folder, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            special.add(name)
    return special


def _read(path: Path, limit: int = 4096) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return None
