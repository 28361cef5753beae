"""What running jobs use on SSH machines, sampled only while a page shows it (as usage.py does for
the daemon's own machine), in the same shapes (Snapshot, JobUse, GpuUse).

One command per machine per sample (sshscripts.usage), over the daemon's connection to it, within
TIMEOUT: it prints /proc/PID/stat of each process of the attempts' sessions and nvidia-smi's
answers. A job's CPU % is its processes' CPU time since the previous sample over the host's own
clock (/proc/uptime), so the network's delay does not count; a process first seen has no previous
sample: its figure is the average over its life (what ps shows). What the host prints is data: it
is parsed, never put into a shell.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hyperctl.backends.sshconn import HostUnreachableError
from hyperctl.web.usage import EVERY, JobUse, Snapshot, parse_apps, parse_gpus

TIMEOUT = 5.0  # seconds a machine may take to answer, else the part says it did not
_STAT = re.compile(r"^(\d+) \(.*\) (.*)$")

# RemoteExecutor.usage: machine, sessions, timeout -> sshscripts.usage's output, or HostUnreachableError
Ask = Callable[[str, list[int], float], Awaitable[str]]


@dataclass
class _Host:
    """One machine's last sample, and each process's CPU ticks then (the base of the next CPU %)."""

    ticks: dict[tuple[int, int], int] = field(default_factory=dict)  # (pid, start) -> utime + stime
    uptime: float | None = None
    last: Snapshot | str | None = None
    last_at: float = 0.0  # monotonic
    last_jobs: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RemoteSampler:
    """Samples of the running attempts of SSH machines, each machine at most EVERY seconds apart."""

    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}

    async def snapshots(
        self, ask: Ask, pids: dict[str, dict[str, int]], machines: list[str]
    ) -> dict[str, Snapshot | str]:
        """Each machine's sample, or why there is none (it did not answer), all asked at once."""
        found = await asyncio.gather(*(self.snapshot(ask, m, pids.get(m, {})) for m in machines))
        return dict(zip(machines, found))

    async def snapshot(self, ask: Ask, machine: str, pids: dict[str, int]) -> Snapshot | str:
        host = self._hosts.setdefault(machine, _Host())
        async with host.lock:  # two pages at once: one sample
            if host.last is not None and time.monotonic() - host.last_at < EVERY and pids == host.last_jobs:
                return host.last
            try:
                out = await ask(machine, sorted(set(pids.values())), TIMEOUT)
            except HostUnreachableError as e:  # no connection, no answer in time, an error: said
                host.last = f"not sampled: {machine} {e}"
            else:
                host.last = self._read(host, out, pids)
            host.last_at, host.last_jobs = time.monotonic(), dict(pids)
            return host.last

    def _read(self, host: _Host, out: str, pids: dict[str, int]) -> Snapshot:
        job_of = {pid: name for name, pid in pids.items()}
        uses = {name: JobUse() for name in pids}
        hz, page, uptime = 100, 4096, None
        session_of: dict[int, int] = {}
        ticks: dict[tuple[int, int], int] = {}
        section, gpu_lines, apps_lines, smi_status = "procs", [], [], 0
        for line in out.splitlines():
            words = line.split()
            if line.startswith("@clock") and len(words) == 4 and words[1].isdigit() and words[2].isdigit():
                hz, page, uptime = int(words[1]) or 100, int(words[2]), _float(words[3])
            elif line == "@gpus":
                section = "gpus"
            elif line.startswith("@smi"):
                section, smi_status = "apps", int(words[1]) if len(words) == 2 and words[1].isdigit() else 1
            elif section == "gpus":
                gpu_lines.append(line)
            elif section == "apps":
                apps_lines.append(line)
            elif (stat := _STAT.match(line)) is not None:
                rest = stat.group(2).split()  # fields 3 on: state, ppid, pgrp, session, ...
                if len(rest) < 22 or not all(rest[i].lstrip("-").isdigit() for i in (3, 11, 12, 19, 21)):
                    continue
                pid, session = int(stat.group(1)), int(rest[3])
                if session not in job_of:
                    continue
                key, used = (pid, int(rest[19])), int(rest[11]) + int(rest[12])
                ticks[key] = used
                session_of[pid] = session
                use = uses[job_of[session]]
                use.cpu += _percent(used, hz, uptime, key, host)
                use.rss += max(int(rest[21]), 0) * page
                use.processes += 1
        host.ticks, host.uptime = ticks, uptime
        gpus, note = parse_gpus("\n".join(gpu_lines)), None
        if smi_status != 0:
            said = " ".join(" ".join(gpu_lines).split())[:200]
            note, gpus = f"nvidia-smi failed (exit {smi_status})" + (f": {said}" if said else ""), []
        apps = parse_apps("\n".join(apps_lines))
        for name, leader in pids.items():
            held = [apps[pid] for pid, session in session_of.items() if session == leader and pid in apps]
            uses[name].gpu_memory = sum(held) if held else None
        return Snapshot(time.time(), uses, gpus, note)


def _percent(used: int, hz: int, uptime: float | None, key: tuple[int, int], host: _Host) -> float:
    """CPU % of one core since the previous sample; for a process new since, over its life."""
    if uptime is None:
        return 0.0
    before = host.ticks.get(key)
    if before is not None and host.uptime is not None and uptime > host.uptime:
        return round(100 * (used - before) / hz / (uptime - host.uptime), 1)
    alive = uptime - key[1] / hz
    return round(100 * used / hz / alive, 1) if alive > 0 else 0.0


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
