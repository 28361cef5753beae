"""Metrics ingest: what the daemon costs while 100 jobs each report 1,000 points a second.

Starts a batch of N jobs on N slots with `hyperctl run --detach`; each job calls
`hyperctl.report(loss=..., acc=..., sent=time.time())` R times a second (in bursts of R/10 every
0.1 s) until told to stop. Once every job runs and reports, it reads the daemon's CPU time over a
window of S seconds (as a percentage of one core) and, every 0.1 s meanwhile, how far behind the
store is: for each job, how long the oldest point of its metrics file that the store lacks has
waited (by its `sent`). Then it ends the batch and checks that every point reported is stored.

    python bench/metrics_ingest.py [--jobs N] [--rate R] [--seconds S] [--json]

A benchmark, not a test: exits 1 if a goal is not met or a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from common import (
    BatchFolder,
    BenchError,
    hyperctl,
    run_cli,
    run_detached,
    signals_deferred,
    standalone_tmp,
    sweep,
    wait_for,
)

GOAL_PERCENT = 25.0  # of one core, for the daemon
GOAL_LAG_S = 1.0  # a point is in the store within this
NAME = "bench-metrics-ingest"
JOB = """
import os, sys, time, hyperctl
rate, stop = int(sys.argv[1]), sys.argv[2]
burst, n = rate // 10, 0
next_at = time.time()
while not os.path.exists(stop):
    for _ in range(burst):
        hyperctl.report(loss=1.0 / (n + 1), acc=n * 1e-6, sent=time.time())
        n += 1
    next_at += 0.1
    time.sleep(max(0.0, next_at - time.time()))
print("reported:", n)
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The daemon's cost of jobs reporting metrics.")
    parser.add_argument("--jobs", type=int, default=100, metavar="N", help="jobs at once (default 100)")
    parser.add_argument("--rate", type=int, default=1000, metavar="R", help="points per second per job (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="measuring window (default 10)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return parser.parse_args(argv)


class Batch(BatchFolder):
    def running(self) -> int:
        return self.counts().get("running", 0)

    def stored(self) -> dict[str, tuple[float, int]]:
        """Each job's last `sent` in the store, and its count of points."""
        rows = self.query("SELECT job, last, count FROM metric_summaries WHERE key = 'sent' AND source = 'report'")
        return {job: (last, count) for job, last, count in rows}


def behind(batch: Batch, batches: Path) -> list[float]:
    """For each job, how long its oldest point not yet in the store has waited (0: none waits).
    Not now minus the last stored point: a job the busy machine has not run for a while has
    nothing waiting, however old its last point."""
    stored = batch.stored()  # first: every point it lacks is in the files read after
    waits = []
    for job, (last, _) in stored.items():
        path = batches / NAME / ".hyperctl" / "jobs" / job / "attempt-1" / "metrics"
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - (1 << 16)))
            lines = f.read().split(b"\n")[1:-1]  # whole lines only
        now = time.time()  # after the read: every point read was sent before it
        unstored = [sent for sent in (json.loads(line)["sent"] for line in lines) if sent > last]
        waits.append(now - unstored[0] if unstored else 0.0)
    return waits


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    batches, config, script, stop = tmp / "batches", tmp / "batch.json", tmp / "job.py", tmp / "stop"
    script.write_text(JOB)
    command = f"{sys.executable} {script} {args.rate} {stop}"
    jobs = [{"name": f"j{i}", "execution": {"command": command}} for i in range(args.jobs)]
    doc = {"name": NAME, "jobs": jobs, "backend": {"type": "local", "conf": {"cpu": args.jobs}}, "daemon": {"port": 0}}
    config.write_text(json.dumps(doc))
    batch = Batch(batches, NAME)
    try:
        run_detached(batches, config)
        pid = batch.meta().get("pid")
        if not isinstance(pid, int):
            raise BenchError("no daemon pid in the store")
        wait_for(f"{args.jobs} jobs reporting", lambda: len(batch.stored()) == args.jobs, detail=batch.describe)
        daemon = psutil.Process(pid)
        time.sleep(1.0)  # the starts' own work settles before the window opens
        lags: list[float] = []
        cpu0, t0 = daemon.cpu_times(), time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.2)
            lags += behind(batch, batches)
        cpu1, t1 = daemon.cpu_times(), time.monotonic()
        window = t1 - t0
        percent = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / window * 100
        running = batch.running()
        stop.touch()
        wait_for("the jobs to end", lambda: batch.running() == 0 and batch.daemon_pid() is None, within=60)
        reported = sum(
            int((batches / NAME / ".hyperctl" / "jobs" / f"j{i}" / "attempt-1" / "stdout").read_text().split()[1])
            for i in range(args.jobs)
        )
        stored = sum(count for _, count in batch.stored().values())
        lags.sort()
        return {
            "jobs": args.jobs,
            "rate_per_job": args.rate,
            "running_in_window": running,
            "window_s": round(window, 3),
            "cpu_percent_of_one_core": round(percent, 2),
            "lag_p50_s": round(statistics.median(lags), 3),
            "lag_p99_s": round(lags[int(len(lags) * 0.99)], 3),
            "lag_max_s": round(lags[-1], 3),
            "points_reported": reported,
            "points_stored": stored,
            "goal": {
                "cpu_percent_max": GOAL_PERCENT,
                "lag_max_s": GOAL_LAG_S,
                "met": percent <= GOAL_PERCENT and lags[-1] <= GOAL_LAG_S and stored == reported,
            },
        }
    finally:
        stop.touch()
        with signals_deferred():
            if batch.db.exists() and batch.daemon_pid() is not None:
                with contextlib.suppress(BenchError):
                    run_cli(hyperctl(batches, "batch", "kill", NAME), timeout=30, shielded=True)
            sweep(batches)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = standalone_tmp("ingest")
    try:
        result = measure(args, tmp)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0 if result["goal"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
