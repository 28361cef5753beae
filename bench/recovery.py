"""Crash recovery of the local backend: kill -9 the daemon mid-batch, again and again, and count what went wrong.

Three parts, each in a batches dir of its own under a temp dir that is removed at the end:

1. A batch of N jobs (default 200, 4 slots); each appends its own index to one shared log, then sleeps 0-40 ms.
   `hyperctl run --config` is started and killed with SIGKILL at a random point (seeded), K times, each time
   started again with the same command; a final `hyperctl batch resume` runs the batch to its end. For every
   start it prints when its API was about to serve (it had bound its port and saved the batch's spec) and when
   it had recovered: the first attempt it began, since a daemon starts nothing new before every job the dead
   one left running is watched again or recorded as ended. Both are read afterwards from the batch folder, so
   the benchmark does not touch the store while a daemon starts (a reader there can make it wait). Then
   the totals: jobs succeeded, lost attempts, duplicated indexes (in the log more than once), missing indexes
   (never in it), and jobs left 'running'. The goal is 0 lost / 0 duplicated / 0 missing.
2. 100 jobs of `sleep 5` on 100 slots, started with `run --detach`; once all run, the daemon is killed and
   `batch resume --detach` is timed, then how long until the new daemon watches all 100 again (it holds one
   pidfd per job it re-adopted). The store must show the same attempts and pids as before the kill, and the
   processes must be the same (start times); `batch kill` then ends them, and no job process may be left.
3. 100 jobs of `sleep 1`; the daemon is killed while all run, every job ends while no daemon runs, and then
   `batch resume` has nothing left to run: its wall time is start-up plus recording 100 ended jobs. A second
   `batch resume` of the finished batch gives the start-up floor to read it against.

Run it from the repository root (hyperctl installed, e.g. editable; Linux, as it reads /proc):

    python bench/recovery.py [--jobs N] [--kills K] [--seed S] [--running R] [--json]

This is a benchmark, not a test: it exits 1 if the goal or a check of parts 2 and 3 is not met, or a step
fails; 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    RUN_WITHIN,
    BatchFolder,
    BenchError,
    alive,
    hyperctl,
    live_group_members,
    run_cli,
    run_detached,
    signals_deferred,
    standalone_tmp,
    sweep,
    wait_for,
)

GOAL = "0 lost / 0 duplicated / 0 missing"
SLOTS = 4  # backend cpu of the main batch
POLL = 0.005  # seconds between looks at the log while a daemon runs (the store is read only once it is dead)
JITTER = 0.03  # up to this many seconds between reaching a kill's progress point and the kill
ADOPT_SLEEP = 5  # seconds each job of part 2 sleeps
ENDED_SLEEP = 1  # seconds each job of part 3 sleeps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hyperctl crash recovery: kill -9 the daemon, resume, count.")
    parser.add_argument("--jobs", type=int, default=200, metavar="N", help="jobs of the main batch (default 200)")
    parser.add_argument("--kills", type=int, default=5, metavar="K", help="kill -9s of its daemon (default 5)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the kill points (default 0)")
    parser.add_argument(
        "--running", type=int, default=100, metavar="R", help="jobs running at the kill in parts 2 and 3 (default 100)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    for name in ("jobs", "running"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.kills < 0:
        parser.error("--kills must be at least 0")
    if args.kills >= args.jobs:
        parser.error("--kills must be less than --jobs (each kill comes after a job of its own)")
    return args


# -- hyperctl and its batch folder -----------------------------------------------------------------------


def write_batch(path: Path, name: str, commands: list[dict[str, Any]], cpu: int) -> None:
    batch = {
        "name": name,
        "jobs": commands,
        "backend": {"type": "local", "conf": {"cpu": cpu}},
        "daemon": {"port": 0},  # any free port: never collides with a real daemon
    }
    path.write_text(json.dumps(batch))


class Batch(BatchFolder):
    """A batch folder read from outside: its SQLite store (read-only) and its lock."""

    def running(self) -> dict[str, tuple[int, int | None]]:
        """The jobs the store says run: name -> (attempt, pid)."""
        rows = self.query(
            "SELECT j.name, a.n, a.pid FROM jobs j JOIN attempts a ON a.job = j.name AND a.n = j.attempts"
            " WHERE j.status = 'running'"
        )
        return {name: (n, pid) for name, n, pid in rows}


# -- processes, from /proc ------------------------------------------------------------------------------


def stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name: state is [0], process group [2], start time [19]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].decode().split()


def start_ticks(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def pidfds(pid: int) -> int:
    """How many pidfds the process holds: the local backend keeps one per job it watches."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]"
    return count


def kill_daemon(batch: Batch, pid: int) -> None:
    """SIGKILL a daemon this benchmark started (it holds the batch's lock) and wait until the lock is free."""
    if batch.daemon_pid() != pid:
        raise BenchError(f"batch {batch.name}: pid {pid} does not hold its lock")
    os.kill(pid, signal.SIGKILL)
    wait_for(f"batch {batch.name}: the killed daemon's lock to be released", lambda: batch.daemon_pid() is None)


def clean_up(batches: Path, batch: Batch, procs: list[subprocess.Popen[bytes]]) -> None:
    """Whatever happened: no daemon and no job of this batch outlives the benchmark."""
    with signals_deferred():
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        if batch.db.exists() and (batch.daemon_pid() is not None or batch.running()):
            with contextlib.suppress(BenchError):  # the clean way: the jobs' ends are recorded
                run_cli(hyperctl(batches, "batch", "kill", batch.name), timeout=30, shielded=True)
        sweep(batches)  # e.g. a daemon that was still starting, with no store yet


# -- part 1: random kills of a 200-job batch --------------------------------------------------------------


@dataclass
class Start:
    """One start of the batch's daemon, and how it ended."""

    command: str
    left_running: int  # jobs the store said were running when it started: what it had to recover
    api_up_s: float | None = None  # until it had bound its port and saved the spec, just before its API serves
    recovered_s: float | None = None  # until it began its first attempt (None: it began none)
    wall_s: float | None = None
    killed_after: int | None = None  # log lines when it was killed (None: it exited)
    running_at_kill: int | None = None
    exit_code: int | None = None
    t0: float = field(default=0.0, repr=False)
    t1: float = field(default=0.0, repr=False)


def log_lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def drive(
    cmd: list[str],
    label: str,
    batch: Batch,
    log: Path,
    procs: list[subprocess.Popen[bytes]],
    kill_at: int | None,
    rng: random.Random,
) -> Start:
    """Start a foreground daemon; kill -9 it once the log has kill_at lines (plus a random jitter), else let it end."""
    start = Start(label, left_running=len(batch.running()))
    start.t0 = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(proc)
    deadline = time.monotonic() + RUN_WITHIN
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise BenchError(f"{label}: neither killed nor ended within {RUN_WITHIN:.0f} s")
        if kill_at is not None and log_lines(log) >= kill_at:
            time.sleep(rng.uniform(0, JITTER))
            if proc.poll() is not None:
                break  # it ended during the jitter
            proc.kill()
            proc.wait(timeout=10)
            start.killed_after = log_lines(log)
            start.running_at_kill = len(batch.running())
            break
        time.sleep(POLL)
    start.t1 = time.time()
    start.wall_s = start.t1 - start.t0
    with contextlib.suppress(OSError):  # rewritten by every start once bound, just before its API serves
        saved = batch.spec_file.stat().st_mtime
        start.api_up_s = saved - start.t0 if start.t0 <= saved <= start.t1 else None
    start.exit_code = None if start.killed_after is not None else proc.wait(timeout=10)
    return start


def first_attempts(batch: Batch, starts: list[Start]) -> None:
    """Fill in recovered_s: the first attempt each start began (rows outlive the daemon that wrote them)."""
    for s in starts:
        rows = batch.query("SELECT MIN(started) FROM attempts WHERE started >= ? AND started <= ?", (s.t0, s.t1))
        first = rows[0][0] if rows else None
        s.recovered_s = None if first is None else first - s.t0


def random_kills(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    batches, log, config = tmp / "batches-kills", tmp / "kills.log", tmp / "kills.json"
    name = "bench-recovery"
    command = f'i={{{{ i }}}}; echo "$i" >> {shlex.quote(str(log))}; sleep 0.0$((i % 5))'
    jobs = [{"params": {"i": i}, "execution": {"command": command}} for i in range(args.jobs)]
    write_batch(config, name, jobs, SLOTS)
    batch = Batch(batches, name)
    rng = random.Random(args.seed)  # the progress points, then the jitter after each
    targets = sorted(rng.sample(range(1, args.jobs), args.kills))
    procs: list[subprocess.Popen[bytes]] = []
    starts: list[Start] = []
    try:
        run = hyperctl(batches, "run", "--config", str(config))
        for k, target in enumerate(targets):
            print(f"bench: start {k + 1}, kill -9 after {target} jobs ...", file=sys.stderr, flush=True)
            starts.append(drive(run, "run --config", batch, log, procs, max(target, log_lines(log) + 1), rng))
        print("bench: batch resume to the end ...", file=sys.stderr, flush=True)
        final = drive(hyperctl(batches, "batch", "resume", name), "batch resume", batch, log, procs, None, rng)
        starts.append(final)
        first_attempts(batch, starts)
        if final.exit_code != 0:
            raise BenchError(f"the final batch resume exited {final.exit_code}")
        seen = Counter(int(line) for line in log.read_text().split())
        counts = batch.counts()
        lost = batch.query("SELECT COUNT(*) FROM attempts WHERE status = 'lost'")[0][0]
        attempts = batch.query("SELECT COUNT(*) FROM attempts")[0][0]
        return {
            "jobs": args.jobs,
            "slots": SLOTS,
            "kills": args.kills,
            "seed": args.seed,
            "starts": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(s).items() if k not in ("t0", "t1")}
                for s in starts
            ],
            "succeeded": counts.get("succeeded", 0),
            "statuses": counts,
            "attempts": attempts,
            "lost_attempts": lost,
            "duplicated": sorted(i for i, n in seen.items() if n > 1),
            "missing": sorted(set(range(args.jobs)) - set(seen)),
            "left_running": counts.get("running", 0),
        }
    finally:
        clean_up(batches, batch, procs)


# -- parts 2 and 3: every job running when the daemon dies ----------------------------------------------------


def start_detached(batches: Path, batch: Batch, jobs: int, sleep: int) -> None:
    """`run --detach` of `jobs` jobs of `sleep` on as many slots."""
    config = batches.parent / f"{batch.name}.json"
    write_batch(config, batch.name, [{"params": {}, "execution": {"command": f"sleep {sleep}"}}] * jobs, jobs)
    run_detached(batches, config)


def all_running(batch: Batch, n: int) -> bool:
    """Whether all n jobs run with their pid saved; BenchError at once if one has ended or the daemon has."""
    running = batch.running()
    if len(running) == n and all(pid is not None for _, pid in running.values()):
        return True
    if set(batch.counts()) - {"pending", "running"} or batch.daemon_pid() is None:
        raise BenchError(f"not every job is running, and never will be ({batch.describe()})")
    return False


def readopt(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Part 2: kill -9 with every job running; resume --detach must watch the same processes again."""
    name = "bench-recovery-adopt"
    batches, batch = tmp / f"batches-{name}", Batch(tmp / f"batches-{name}", name)
    try:
        start_detached(batches, batch, args.running, ADOPT_SLEEP)
        up_s = wait_for(f"{args.running} jobs running", lambda: all_running(batch, args.running), detail=batch.describe)
        before = batch.running()
        starts = {pid: start_ticks(pid) for _, pid in before.values() if pid is not None}
        kill_daemon(batch, batch.meta()["pid"])
        t0 = time.monotonic()
        code, detach_s, err = run_cli(hyperctl(batches, "batch", "resume", name, "--detach"))
        if code != 0:
            raise BenchError(f"batch resume --detach exited {code}: {err}")
        daemon = batch.meta()["pid"]
        polls = itertools.count(1)

        def readopted() -> bool:
            if pidfds(daemon) >= args.running:
                return True
            # Now and then (not every poll: a reader can make a starting daemon wait), fail fast if it has
            # recorded a job as ended instead, or has stopped.
            if next(polls) % 50 == 0 and (set(batch.counts()) != {"running"} or batch.daemon_pid() != daemon):
                raise BenchError(f"the new daemon did not take every job back ({batch.describe()})")
            return False

        wait_for(f"the new daemon to watch {args.running} jobs", readopted, every=0.002, detail=batch.describe)
        adopted_s = time.monotonic() - t0
        after = batch.running()
        same_in_store = sum(after.get(job) == value for job, value in before.items())
        same_process = sum(alive(pid) and start_ticks(pid) == ticks for pid, ticks in starts.items())
        kill_code, kill_s, err = run_cli(hyperctl(batches, "batch", "kill", name))
        if kill_code != 0:
            raise BenchError(f"batch kill exited {kill_code}: {err}")
        groups = set(starts)
        with contextlib.suppress(BenchError):
            wait_for("the killed jobs' processes to end", lambda: not live_group_members(groups), within=15)
        return {
            "jobs": args.running,
            "sleep_s": ADOPT_SLEEP,
            "all_running_after_s": round(up_s, 4),
            "resume_detach_s": round(detach_s, 4),
            "readopted_s": round(adopted_s, 4),
            "same_attempt_and_pid_in_store": same_in_store,
            "same_process": same_process,
            "batch_kill_s": round(kill_s, 4),
            "statuses_after_kill": batch.counts(),
            "processes_left": len(live_group_members(groups)),
        }
    finally:
        clean_up(batches, batch, [])


def ended_meanwhile(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Part 3: every job ends while no daemon runs; resume then only records them (start-up + reconciliation)."""
    name = "bench-recovery-ended"
    batches, batch = tmp / f"batches-{name}", Batch(tmp / f"batches-{name}", name)
    try:
        start_detached(batches, batch, args.running, ENDED_SLEEP)
        wait_for(f"{args.running} jobs running", lambda: all_running(batch, args.running), detail=batch.describe)
        groups = {pid for _, pid in batch.running().values() if pid is not None}
        kill_daemon(batch, batch.meta()["pid"])
        wait_for("every job to end with no daemon", lambda: not live_group_members(groups))
        code, resume_s, err = run_cli(hyperctl(batches, "batch", "resume", name))
        if code != 0:
            raise BenchError(f"batch resume exited {code}: {err}")
        counts = batch.counts()
        attempts = batch.query("SELECT COUNT(*) FROM attempts")[0][0]
        lost = batch.query("SELECT COUNT(*) FROM attempts WHERE status = 'lost'")[0][0]
        code, floor_s, err = run_cli(hyperctl(batches, "batch", "resume", name))
        if code != 0:
            raise BenchError(f"batch resume of the finished batch exited {code}: {err}")
        return {
            "jobs": args.running,
            "resume_s": round(resume_s, 4),
            "resume_finished_batch_s": round(floor_s, 4),
            "reconciliation_s": round(resume_s - floor_s, 4),
            "statuses": counts,
            "attempts": attempts,
            "lost_attempts": lost,
        }
    finally:
        clean_up(batches, batch, [])


# -- report ---------------------------------------------------------------------------------------------------


def fmt(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.3f}"


def print_report(result: dict[str, Any]) -> None:
    kills = result["kills"]
    print(
        f"{kills['jobs']} jobs ({kills['slots']} slots), kill -9 of the daemon {kills['kills']} times at random points"
        f" (seed {kills['seed']}), then batch resume to the end"
    )
    print()
    header = f"{'#':>2} {'command':<13} {'to recover':>10} {'API up s':>9} {'recovered s':>12} {'ended':>22}"
    print(header)
    print("-" * len(header))
    for i, s in enumerate(kills["starts"], 1):
        if s["killed_after"] is not None:
            end = f"kill -9: {s['killed_after']} in log, {s['running_at_kill']} run"
        else:
            end = f"exit {s['exit_code']} after {s['wall_s']:.2f} s"
        rec = fmt(s["recovered_s"], "none started")
        print(f"{i:>2} {s['command']:<13} {s['left_running']:>10} {fmt(s['api_up_s']):>9} {rec:>12} {end:>22}")
    print()
    print("to recover: jobs the store said were running at the start (left by the kill before)")
    print("API up s: from the start of the process until it had bound its port and saved the batch's spec")
    print("recovered s: from the start of the process to the first attempt it began (nothing new starts before")
    print("             every job left running is watched again or recorded as ended); row 1 is a fresh start")
    print()
    dup, miss = kills["duplicated"], kills["missing"]
    print(
        f"final: {kills['succeeded']}/{kills['jobs']} succeeded in {kills['attempts']} attempts;"
        f" {kills['lost_attempts']} lost attempts, {len(dup)} duplicated{_some(dup)}, {len(miss)} missing{_some(miss)},"
        f" {kills['left_running']} left running"
    )
    print(f"goal: {GOAL}: {'met' if result['goal_met'] else 'NOT met'}")
    if not result["checks_passed"]:
        print("parts 2 and 3 below: NOT every check passed")
    a = result["readopt"]
    print()
    print(f"{a['jobs']} jobs of `sleep {a['sleep_s']}` running when the daemon is killed (kill -9):")
    print(f"  batch resume --detach returned after {a['resume_detach_s']:.3f} s")
    print(f"  the new daemon watched all {a['jobs']} again (one pidfd each) after {a['readopted_s']:.3f} s")
    print(
        f"  store: {a['same_attempt_and_pid_in_store']}/{a['jobs']} running with the same attempt and pid;"
        f" same processes (start time): {a['same_process']}/{a['jobs']}"
    )
    print(
        f"  batch kill: {a['batch_kill_s']:.3f} s, statuses {_statuses(a['statuses_after_kill'])},"
        f" {a['processes_left']} job processes left"
    )
    e = result["ended"]
    print()
    print(f"{e['jobs']} jobs that all ended while no daemon ran, then batch resume (nothing left to run):")
    print(
        f"  {e['resume_s']:.3f} s (resume of the finished batch: {e['resume_finished_batch_s']:.3f} s,"
        f" so recording the {e['jobs']} ended jobs took {e['reconciliation_s']:.3f} s)"
    )
    print(f"  statuses {_statuses(e['statuses'])}, {e['attempts']} attempts, {e['lost_attempts']} lost")


def _some(items: list[int]) -> str:
    return f" ({', '.join(map(str, items[:10]))}{' ...' if len(items) > 10 else ''})" if items else ""


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def goal_met(kills: dict[str, Any]) -> bool:
    """Part 1: every job ran once and succeeded; no attempt lost; nothing left running."""
    return (
        kills["lost_attempts"] == 0
        and not kills["duplicated"]
        and not kills["missing"]
        and kills["left_running"] == 0
        and kills["succeeded"] == kills["jobs"]
    )


def checks_passed(readopt: dict[str, Any], ended: dict[str, Any]) -> bool:
    """Parts 2 and 3: the same processes taken back, none left after the kill; ended jobs recorded, none lost."""
    return (
        readopt["same_attempt_and_pid_in_store"] == readopt["jobs"] == readopt["same_process"]
        and readopt["processes_left"] == 0
        and ended["statuses"].get("succeeded", 0) == ended["jobs"]
        and ended["lost_attempts"] == 0
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = standalone_tmp("recovery")
    try:
        kills = random_kills(args, tmp)
        print("bench: kill -9 with every job running, resume --detach ...", file=sys.stderr, flush=True)
        readopt_result = readopt(args, tmp)
        print("bench: jobs that end while no daemon runs, then resume ...", file=sys.stderr, flush=True)
        ended = ended_meanwhile(args, tmp)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    met, passed = goal_met(kills), checks_passed(readopt_result, ended)
    result = {
        "python": sys.version.split()[0],
        "kills": kills,
        "readopt": readopt_result,
        "ended": ended,
        "goal": GOAL,
        "goal_met": met,
        "checks_passed": passed,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    return 0 if met and passed else 1


if __name__ == "__main__":
    sys.exit(main())
