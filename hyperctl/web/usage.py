"""What running jobs use on this machine, sampled only while a page shows it.

Per job: CPU % and RSS of its attempt's processes (psutil, over the attempt's session: the
launcher leads one, and what it starts stays in it unless it calls setsid). Per GPU: utilization
and memory from nvidia-smi, where there is one; per job, the GPU memory its processes hold.

A sample is taken when the machines part is asked for and the last one is older than EVERY
seconds: with no page open, nothing is sampled. psutil's cpu_percent() measures since its
previous call on the same Process object (the first answers 0), so the objects are kept between
samples, and a first sample (or one after a long pause) looks twice, PRIME seconds apart.
psutil reads /proc: it runs in a thread; nvidia-smi runs as an asyncio subprocess with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field

import psutil

from hyperctl.backends.sshscripts import USAGE_APPS_QUERY, USAGE_GPU_QUERY

EVERY = 5.0  # seconds: a page asking more often gets the last sample
STALE = 30.0  # seconds: an older sample is no base for a CPU %: looked at twice again
PRIME = 0.5  # seconds between the two looks of a first sample
SMI_TIMEOUT = 5.0  # seconds nvidia-smi may take, else the GPUs are "not sampled" with why
GPU_QUERY = tuple(USAGE_GPU_QUERY.split())  # what SSH machines are asked too (sshscripts.usage)
APPS_QUERY = tuple(USAGE_APPS_QUERY.split())


@dataclass
class JobUse:
    """An attempt's processes, now."""

    cpu: float = 0.0  # percent of one core, summed over its processes
    rss: int = 0  # bytes
    processes: int = 0
    gpu_memory: int | None = None  # MiB its processes hold on GPUs (nvidia-smi's compute apps)


@dataclass
class GpuUse:
    index: int
    utilization: float | None  # percent; None where nvidia-smi says N/A
    memory_used: int | None  # MiB
    memory_total: int | None


@dataclass
class Snapshot:
    taken: float  # time.time()
    jobs: dict[str, JobUse] = field(default_factory=dict)
    gpus: list[GpuUse] = field(default_factory=list)
    gpu_note: str | None = None  # why the GPUs were not sampled (nvidia-smi failed); None: fine, or none here


class Sampler:
    """Samples of the running attempts of this machine, each at most EVERY seconds apart."""

    def __init__(self) -> None:
        # pid -> its Process (kept: cpu_percent() measures since the last call) and its session
        self._processes: dict[int, tuple[psutil.Process, int]] = {}
        self._last: Snapshot | None = None
        self._last_at = 0.0  # monotonic
        self._last_jobs: dict[str, int] = {}
        self._lock: asyncio.Lock | None = None

    async def snapshot(self, pids: dict[str, int]) -> Snapshot:
        """What each job (name -> its attempt's pid, which leads its session) and each GPU use."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # two pages at once: one sample
            now = time.monotonic()
            if self._last is not None and now - self._last_at < EVERY and pids == self._last_jobs:
                return self._last
            loop = asyncio.get_running_loop()
            gpus = asyncio.ensure_future(gpu_snapshot())
            if self._last is None or now - self._last_at > STALE or set(pids) - set(self._last_jobs):
                await loop.run_in_executor(None, self._measure, pids)  # the base of each CPU %
                await asyncio.sleep(PRIME)
            jobs = await loop.run_in_executor(None, self._measure, pids)
            found, apps, note = await gpus
            for name, use in jobs.items():
                held = [apps[pid] for pid in self._pids_of(pids[name]) if pid in apps]
                use.gpu_memory = sum(held) if held else None
            self._last = Snapshot(time.time(), jobs, found, note)
            self._last_at, self._last_jobs = time.monotonic(), dict(pids)
            return self._last

    def _pids_of(self, leader: int) -> list[int]:
        return [pid for pid, (_, session) in self._processes.items() if session == leader]

    def _measure(self, pids: dict[str, int]) -> dict[str, JobUse]:
        """One look at every process of the attempts' sessions (a scan of /proc)."""
        job_of = {pid: name for name, pid in pids.items()}
        uses = {name: JobUse() for name in pids}
        seen: dict[int, tuple[psutil.Process, int]] = {}
        for pid in psutil.pids() if job_of else []:
            try:
                session = os.getsid(pid)
            except OSError:  # gone meanwhile
                continue
            if session not in job_of:
                continue
            process = self._processes.get(pid, (None, 0))[0]
            try:
                if process is None or not process.is_running():  # is_running: not a reused pid
                    process = psutil.Process(pid)
                with process.oneshot():
                    cpu = process.cpu_percent(None)
                    rss = process.memory_info().rss
            except psutil.Error:
                continue
            seen[pid] = (process, session)
            use = uses[job_of[session]]
            use.cpu += cpu
            use.rss += rss
            use.processes += 1
        self._processes = seen
        return uses


async def gpu_snapshot() -> tuple[list[GpuUse], dict[int, int], str | None]:
    """Each GPU's use, the GPU memory (MiB) each process holds, and why they could not be read
    (None: read, or no nvidia-smi here, which says there is nothing to read)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], {}, None
    gpus_out, why = await _run(smi, *GPU_QUERY)
    if gpus_out is None:
        return [], {}, why
    apps_out, _ = await _run(smi, *APPS_QUERY)
    return parse_gpus(gpus_out), parse_apps(apps_out or ""), None


def parse_gpus(out: str) -> list[GpuUse]:
    """nvidia-smi's GPU_QUERY answer: one GPU a line."""
    gpus = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 4 and cells[0].isdigit():
            gpus.append(GpuUse(int(cells[0]), _number(cells[1]), _whole(cells[2]), _whole(cells[3])))
    return gpus


def parse_apps(out: str) -> dict[int, int]:
    """nvidia-smi's APPS_QUERY answer: the GPU memory (MiB) each pid holds, over all GPUs."""
    apps: dict[int, int] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == 2 and cells[0].isdigit() and _whole(cells[1]) is not None:
            apps[int(cells[0])] = apps.get(int(cells[0]), 0) + (_whole(cells[1]) or 0)
    return apps


async def _run(*argv: str) -> tuple[str | None, str]:
    """A command's stdout, or None and why (it failed, or took longer than SMI_TIMEOUT)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as e:
        return None, f"nvidia-smi: {e.strerror or e}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SMI_TIMEOUT)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None, f"nvidia-smi did not answer within {SMI_TIMEOUT:g} s"
    if proc.returncode != 0:
        said = " ".join(err.decode(errors="replace").split())[:200]
        return None, f"nvidia-smi failed (exit {proc.returncode})" + (f": {said}" if said else "")
    return out.decode(errors="replace"), ""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # [N/A], [Not Supported]
        return None


def _whole(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None else None
