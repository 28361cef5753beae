"""Slurm's commands (sbatch, squeue, sacct, scancel, scontrol), run without blocking the event
loop, and what they print, parsed. One call covers many jobs: the controller's load must not
grow with the batch."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from dataclasses import dataclass

from hyperctl.errors import HyperctlError

TIMEOUT = 60.0  # a controller this slow is as good as down: the call fails and is tried again later
# Job ids per scancel or sacct call: a command line stays far below the kernel's limit.
IDS_PER_CALL = 1000
# What squeue prints of each job: its id (`123`, or `123_4` for an array task), state, why it
# waits (or ended), its node, its wait status once ended, how often Slurm requeued it, and the
# comment hyperctl gave it (last: it may hold any character). `:|`: no padding, `|` after each.
_SQUEUE_FIELDS = ("JobArrayID", "State", "Reason", "NodeList", "exit_code", "RestartCnt", "Comment")
_SQUEUE_FORMAT = ",".join(f"{field}:|" for field in _SQUEUE_FIELDS)
# Ended: what only a terminal state says (sacct's ExitCode of a running job means nothing).
TERMINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)


class SlurmError(HyperctlError):
    """A Slurm command failed: one line, what it said."""


class AccountingDisabledError(SlurmError):
    """sacct cannot answer on this cluster: no accounting storage."""


@dataclass(frozen=True)
class QueuedJob:
    """One job as squeue shows it."""

    id: str  # `123`, or `123_4` for an array task
    state: str  # PENDING, RUNNING, COMPLETED, ...
    reason: str
    node: str
    wait_status: int | None  # its batch script's, as wait(2) gives it: once it ended
    restarts: int
    comment: str


@dataclass(frozen=True)
class AccountedJob:
    """One job as sacct shows it (terminal states only are trusted)."""

    id: str
    state: str  # the first word: `CANCELLED by 0` -> CANCELLED
    exit_code: int | None
    signal: int | None


def find_programs() -> str | None:
    """Why Slurm's commands cannot be run from here: None when they can."""
    missing = [p for p in ("sbatch", "squeue", "scancel") if shutil.which(p) is None]
    if missing:
        return f"{', '.join(missing)} not found on PATH: the daemon must run where Slurm's commands do (a login node)"
    return None


async def run(*argv: str, stdin: bytes | None = None, timeout: float = TIMEOUT) -> str:
    """Run a Slurm command; its output. SlurmError with what it said when it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        raise SlurmError(f"{argv[0]}: {e.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise SlurmError(f"{argv[0]}: no answer within {timeout:.0f} s") from None
    if proc.returncode != 0:
        said = " ".join(err.decode(errors="replace").split()) or f"exit {proc.returncode}"
        if "accounting storage is disabled" in said:
            raise AccountingDisabledError(f"{argv[0]}: {said}")
        raise SlurmError(f"{argv[0]}: {said}")
    return out.decode(errors="replace")


async def sbatch(options: list[str], script: str) -> str:
    """Submit a job script; its id (an array's: the array job's id)."""
    out = await run("sbatch", "--parsable", *options, script)
    return out.strip().split(";")[0]  # `id;cluster` on a multi-cluster site


async def squeue(name: str) -> list[QueuedJob]:
    """Every job of this name (one batch), ended ones too while Slurm keeps them; array tasks one by one.
    By name, never by ids: `squeue -j` fails when every id given is unknown."""
    out = await run("squeue", "-h", "-r", "-t", "all", "--me", "--name", name, "-O", _SQUEUE_FORMAT)
    jobs = []
    for line in out.splitlines():
        fields = line.removesuffix("|").split("|", len(_SQUEUE_FIELDS) - 1)
        if len(fields) == len(_SQUEUE_FIELDS):
            job, state, reason, node, status, restarts, comment = fields
            wait_status = int(status) if status.isdigit() and state in TERMINAL else None
            jobs.append(QueuedJob(job, state, reason, node, wait_status, int(restarts or 0), comment))
    return jobs


async def sacct(name: str, since: float) -> list[AccountedJob]:
    """Every job of this name accounting knows of, since `since` (a time): AccountingDisabledError
    where the cluster keeps no accounts."""
    start = _sacct_time(since)
    out = await run("sacct", "-X", "-n", "-P", "--name", name, "-S", start, "-E", "now", "-o", "JobID,State,ExitCode")
    jobs = []
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) < 3:
            continue
        code, sig = _exit_code(fields[2])
        jobs.append(AccountedJob(fields[0], fields[1].split(" ")[0], code, sig))
    return jobs


async def scancel(ids: list[str], signal: str | None = None) -> None:
    """Signal (or, without a signal, cancel) these jobs: every process of each, its batch script too.
    Ids Slurm no longer knows are no error."""
    for start in range(0, len(ids), IDS_PER_CALL):
        chunk = ids[start : start + IDS_PER_CALL]
        argv = ["scancel", "-Q"]  # -Q: no error for a job that has just ended
        if signal is not None:
            argv += [f"--signal={signal}", "--full"]
        with contextlib.suppress(SlurmError):  # an ended job's id is refused: nothing to stop
            await run(*argv, *chunk)


async def max_array_size() -> int | None:
    """The site's MaxArraySize (an array index must stay below it), or None when scontrol cannot say."""
    try:
        out = await run("scontrol", "show", "config")
    except SlurmError:
        return None
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return None


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's `code:signal`."""
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig) or None
    except ValueError:
        return None, None


def _sacct_time(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))
