"""Facts about local processes read from /proc: process groups, and finding a job's launcher."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

PROC = "/proc"
# A process start time from /proc is in clock ticks; the spawn time we record may differ by
# the time posix_spawn took. Two processes with one pid within this span do not happen.
START_TIME_TOLERANCE = 2.0


def available() -> bool:
    return os.path.isdir(PROC)


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state is [0], pgrp [2])."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces or parens: the fields follow the last ')'.
    return stat[stat.rindex(b")") + 2 :].split()


def _pids() -> Iterator[str]:
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            yield entry.name


_live_groups: tuple[float, frozenset[int]] = (0.0, frozenset())


def live_groups(max_age: float = 0.02) -> frozenset[int]:
    """The process groups with a live (not zombie) member; one /proc scan serves every caller
    within max_age seconds, so killing 100 jobs at once reads /proc once, not 100 times."""
    global _live_groups
    taken, groups = _live_groups
    now = time.monotonic()
    if now - taken > max_age:
        found = set()
        for pid in _pids():
            fields = _stat_fields(pid)
            if fields is not None and fields[0] != b"Z":
                found.add(int(fields[2]))
        groups = frozenset(found)
        _live_groups = (now, groups)
    return groups


def start_time(pid: int) -> float | None:
    """When pid started (seconds since the epoch), from its start time in ticks since boot."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    try:
        with open(f"{PROC}/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _environ_has(pid: int | str, markers: dict[str, str]) -> bool:
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as f:
            entries = set(f.read().split(b"\0"))
    except OSError:
        return False
    return all(f"{k}={v}".encode() in entries for k, v in markers.items())


def is_launcher(pid: int, markers: dict[str, str], spawned: float | None) -> bool:
    """Whether pid is, still, the launcher that these environment markers name.

    It leads its own process group, carries the markers, and started when it was spawned:
    a pid reused by another process fails at least the last two.
    """
    fields = _stat_fields(pid)
    if fields is None or int(fields[2]) != pid or fields[0] == b"Z":
        return False
    if spawned is not None:
        started = start_time(pid)
        if started is None or abs(started - spawned) > START_TIME_TOLERANCE:
            return False
    return _environ_has(pid, markers)


def find_launcher(markers: dict[str, str]) -> int | None:
    """The pid of the live process-group leader carrying these markers, if any."""
    for pid in _pids():
        if is_launcher(int(pid), markers, None):
            return int(pid)
    return None
