"""Facts about local processes read from /proc: process groups, and finding a job's launcher."""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterator

PROC = "/proc"
_PR_SET_CHILD_SUBREAPER = 36
# How much later than its recorded spawn time a launcher may seem to have started: /proc gives
# start times from the boot time in whole seconds, and a wall clock may be stepped meanwhile.
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

    It leads its own process group, carries the markers, and started no later than it was
    spawned: a pid reused by another process fails at least the last two. Any earlier start is
    the launcher's own: no other process could hold its pid while it ran. (The spawn time is noted
    once the spawn returns: on a loaded machine, seconds after the process began.)
    """
    fields = _stat_fields(pid)
    if fields is None or int(fields[2]) != pid or fields[0] == b"Z":
        return False
    if spawned is not None:
        started = start_time(pid)
        if started is None or started - spawned > START_TIME_TOLERANCE:
            return False
    return _environ_has(pid, markers)


def children(ppid: int) -> list[int]:
    """The children of ppid (zombies too): one scan of /proc."""
    found = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[1]) == ppid:
            found.append(int(pid))
    return found


def markers(pid: int, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """The values of these environment variables in pid's environment; None if it lacks one."""
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as f:
            entries = dict(e.partition(b"=")[::2] for e in f.read().split(b"\0"))
    except OSError:
        return None
    values = tuple(entries.get(k.encode()) for k in keys)
    return None if None in values else tuple(v.decode(errors="replace") for v in values if v is not None)


_identities: tuple[float, tuple[str, ...], dict[int, tuple[str, ...]]] = (0.0, (), {})


def identities(keys: tuple[str, ...], max_age: float = 0.02) -> dict[int, tuple[str, ...]]:
    """Every live process of ours whose environment has these variables, with their values: a
    `setsid cmd &` leaves its job's process group, not its environment. One scan of /proc serves
    every caller within max_age seconds (a batch kill of 100 jobs reads it once)."""
    global _identities
    taken, taken_keys, found = _identities
    now = time.monotonic()
    if now - taken <= max_age and taken_keys == keys:
        return found
    uid = os.getuid()
    found = {}
    for pid in _pids():
        try:
            if os.stat(f"{PROC}/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        fields = _stat_fields(pid)
        values = markers(int(pid), keys) if fields is not None and fields[0] != b"Z" else None
        if values is not None:
            found[int(pid)] = values
    _identities = (now, keys, found)
    return found


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != b"Z"


def become_subreaper() -> None:
    """Have this process adopt its orphaned descendants (not init): a job's `setsid cmd &` left
    behind becomes our child when the job ends, to be found at once and ended. Linux only; a
    no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def find_launcher(markers: dict[str, str]) -> int | None:
    """The pid of the live process-group leader carrying these markers, if any."""
    for pid in _pids():
        if is_launcher(int(pid), markers, None):
            return int(pid)
    return None
