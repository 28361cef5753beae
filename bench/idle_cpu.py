"""CPU use of an idle daemon: what hyperctl costs while 100 long jobs run and nothing else happens.

Starts a batch of N jobs of `sleep 60` on N slots with `hyperctl run --detach`, waits until the store shows
every job running, then reads the daemon's CPU time (user + system, from psutil) over a window of S seconds
and prints it as a percentage of one core, with its wake-ups (voluntary context switches) per second. Then
`hyperctl batch kill` ends the batch, and the benchmark checks that no process of any job is left (the process
groups of the attempts' pids). Everything lives in a temp batches dir that is removed at the end.

Run it from the repository root (hyperctl and psutil installed; Linux, as it reads /proc):

    python bench/idle_cpu.py [--jobs N] [--seconds S] [--json]

This is a benchmark, not a test: it exits 1 if the goal is not met or a step fails, 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from common import (
    BatchFolder,
    BenchError,
    hyperctl,
    live_group_members,
    run_cli,
    run_detached,
    signals_deferred,
    standalone_tmp,
    sweep,
    wait_for,
)

GOAL_PERCENT = 1.0  # the daemon may use at most this much of one core while its jobs just run
JOB_SLEEP = 60  # seconds each job sleeps: it must outlast the start, the window and some slack
NAME = "bench-idle-cpu"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU use of the hyperctl daemon while its jobs run.")
    parser.add_argument(
        "--jobs", type=int, default=100, metavar="N", help="jobs of `sleep 60`, all at once (default 100)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="measuring window (default 10)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not 0 < args.seconds <= JOB_SLEEP - 20:
        parser.error(f"--seconds must be above 0 and at most {JOB_SLEEP - 20} (the jobs sleep {JOB_SLEEP} s)")
    return args


class Batch(BatchFolder):
    """A batch folder read from outside: its SQLite store (read-only) and its lock."""

    def running_pids(self) -> list[int | None]:
        """The pid of every job the store says runs (None: not saved yet)."""
        rows = self.query(
            "SELECT a.pid FROM jobs j JOIN attempts a ON a.job = j.name AND a.n = j.attempts WHERE j.status = 'running'"
        )
        return [pid for (pid,) in rows]

    def attempt_pids(self) -> set[int]:
        return {pid for (pid,) in self.query("SELECT pid FROM attempts WHERE pid IS NOT NULL")}


def clean_up(batches: Path, batch: Batch) -> None:
    """Whatever happened: no daemon and no job of this batch outlives the benchmark."""
    with signals_deferred():
        if batch.db.exists() and (batch.daemon_pid() is not None or batch.running_pids()):
            with contextlib.suppress(BenchError):  # the clean way: the jobs' ends are recorded
                run_cli(hyperctl(batches, "batch", "kill", batch.name), timeout=30, shielded=True)
        sweep(batches)  # e.g. a daemon that was still starting, with no store yet


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    batches, config = tmp / "batches", tmp / "batch.json"
    jobs = [{"params": {}, "execution": {"command": f"sleep {JOB_SLEEP}"}} for _ in range(args.jobs)]
    batch_spec = {
        "name": NAME,
        "jobs": jobs,
        "backend": {"type": "local", "conf": {"cpu": args.jobs}},
        "daemon": {"port": 0},  # any free port: never collides with a real daemon
    }
    config.write_text(json.dumps(batch_spec))
    batch = Batch(batches, NAME)
    try:
        detach_s = run_detached(batches, config)
        pid = batch.meta().get("pid")
        if not isinstance(pid, int) or batch.daemon_pid() != pid:
            raise BenchError(f"the daemon's pid in the store ({pid}) does not hold the batch's lock")

        def all_running() -> bool:
            pids = batch.running_pids()
            if len(pids) == args.jobs and None not in pids:
                return True
            if set(batch.counts()) - {"pending", "running"} or batch.daemon_pid() is None:
                raise BenchError(f"not every job is running, and never will be ({batch.describe()})")
            return False

        up_s = wait_for(f"{args.jobs} jobs running", all_running, detail=batch.describe)
        groups = batch.attempt_pids()  # each attempt is a process group led by its launcher
        daemon = psutil.Process(pid)
        time.sleep(1.0)  # let the last start's work (and its store writes) settle before the window opens
        cpu0, ctx0, t0 = daemon.cpu_times(), daemon.num_ctx_switches(), time.monotonic()
        time.sleep(args.seconds)
        cpu1, ctx1, t1 = daemon.cpu_times(), daemon.num_ctx_switches(), time.monotonic()
        window = t1 - t0
        user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
        still_running = len(batch.running_pids())
        if still_running != args.jobs or not daemon.is_running():
            raise BenchError(f"the batch changed during the window: {still_running} of {args.jobs} jobs running")
        code, kill_s, err = run_cli(hyperctl(batches, "batch", "kill", NAME))
        if code != 0:
            raise BenchError(f"batch kill exited {code}: {err}")
        with contextlib.suppress(BenchError):
            wait_for("the killed jobs' processes to end", lambda: not live_group_members(groups), within=15)
        left = live_group_members(groups)
        percent = (user + system) / window * 100
        return {
            "jobs": args.jobs,
            "job_sleep_s": JOB_SLEEP,
            "python": sys.version.split()[0],
            "run_detach_s": round(detach_s, 4),
            "all_running_after_s": round(up_s, 4),
            "window_s": round(window, 3),
            "cpu_user_s": round(user, 4),
            "cpu_system_s": round(system, 4),
            "cpu_percent_of_one_core": round(percent, 3),
            "wakeups_per_s": round((ctx1.voluntary - ctx0.voluntary) / window, 1),
            "involuntary_switches_per_s": round((ctx1.involuntary - ctx0.involuntary) / window, 1),
            "batch_kill_s": round(kill_s, 4),
            "statuses_after_kill": batch.counts(),
            "daemon_left": batch.daemon_pid() is not None,
            "job_processes_left": len(left),
            "goal": {"cpu_percent_max": GOAL_PERCENT, "actual": round(percent, 3), "met": percent <= GOAL_PERCENT},
        }
    finally:
        clean_up(batches, batch)


def print_report(r: dict[str, Any]) -> None:
    n = r["jobs"]
    print(f"daemon of {n} jobs of `sleep {r['job_sleep_s']}`, all running, over {r['window_s']:.1f} s")
    print(
        f"(run --detach returned after {r['run_detach_s']:.2f} s; all {n} running"
        f" {r['all_running_after_s']:.2f} s later)"
    )
    print()
    print(
        f"CPU: {r['cpu_user_s']:.3f} s user + {r['cpu_system_s']:.3f} s system"
        f" = {r['cpu_percent_of_one_core']:.2f} % of one core"
    )
    print(f"wake-ups: {r['wakeups_per_s']:.1f}/s voluntary, {r['involuntary_switches_per_s']:.1f}/s involuntary")
    statuses = ", ".join(f"{c} {s}" for s, c in sorted(r["statuses_after_kill"].items())) or "none"
    print(
        f"batch kill: {r['batch_kill_s']:.2f} s; statuses {statuses};"
        f" daemon left: {'yes' if r['daemon_left'] else 'no'}; job processes left: {r['job_processes_left']}"
    )
    goal = r["goal"]
    print(f"goal: ≤ {GOAL_PERCENT:g} % of one core: {goal['actual']:.2f} %, {'met' if goal['met'] else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = standalone_tmp("idle")
    try:
        print(f"bench: {args.jobs} jobs, measuring for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        result = measure(args, tmp)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    clean = result["job_processes_left"] == 0 and not result["daemon_left"]
    return 0 if result["goal"]["met"] and clean else 1


if __name__ == "__main__":
    sys.exit(main())
