"""Throughput of tiny jobs on the local backend: hyperctl against xargs (and GNU parallel) on this machine.

Runs N jobs of `true` with S slots through `hyperctl run` and through its peers, and prints the median
wall time of each, jobs per second, and hyperctl's ratio to `xargs -P S` and to `xargs ... sh -c true`.
It also times a 1-job batch (hyperctl's start-up floor) to split fixed cost from per-job cost.

Run it from the repository root (hyperctl installed, e.g. editable):

    python bench/local_throughput.py [--jobs N] [--slots S] [--repeat R] [--json]

This is a benchmark, not a test: it fails only if a tool exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import settle

GOAL_RATIO = 1.3  # hyperctl may take at most this many times as long as `xargs -P S`

HYPERCTL = "hyperctl"
HYPERCTL_1 = "hyperctl (1 job)"
XARGS = "xargs -P"
XARGS_SH = "xargs sh -c"
PARALLEL = "GNU parallel"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hyperctl local throughput against xargs and GNU parallel.")
    parser.add_argument("--jobs", type=int, default=1000, metavar="N", help="jobs of `true` per run (default 1000)")
    parser.add_argument("--slots", type=int, default=2, metavar="S", help="jobs at once (default 2)")
    parser.add_argument("--repeat", type=int, default=3, metavar="R", help="runs of each tool; the median counts")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    for name in ("jobs", "slots", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def timed(cmd: list[str], stdin: bytes | None = None) -> float:
    """Wall seconds from start to exit of cmd; output is thrown away so no terminal I/O is measured."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:6])} ... exited {proc.returncode}")
    return elapsed


def write_batch(path: Path, jobs: int, slots: int) -> None:
    batch = {
        "name": "bench-throughput",
        "jobs": [{"params": {}, "execution": {"command": "true"}} for _ in range(jobs)],
        "backend": {"type": "local", "conf": {"cpu": slots}},
        "daemon": {"port": 0},  # any free port: runs never collide with each other or a real daemon
    }
    path.write_text(json.dumps(batch))


def hyperctl_runner(config: Path, workdir: Path) -> Callable[[], float]:
    def run() -> float:
        # A fresh batches dir each time: in an old one every job has succeeded and would be skipped.
        batches = Path(tempfile.mkdtemp(prefix="batches-", dir=workdir))
        # Removed with workdir at the end, not now: deleting thousands of files keeps the disk busy
        # (online discard) well after rmtree returns, and would slow whatever runs next.
        cmd = [sys.executable, "-m", "hyperctl", "run", "--config", str(config), "--batches-data-dir", str(batches)]
        return timed(cmd)

    return run


def gnu_parallel() -> str | None:
    """The path of GNU parallel, or None; moreutils ships a different `parallel` that takes other options."""
    path = shutil.which("parallel")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "GNU parallel" in out else None


def peers(jobs: int, slots: int, parallel: str | None) -> dict[str, Callable[[], float]]:
    # One argument per line on stdin rather than on the command line, so any N fits in ARG_MAX.
    lines = "".join(f"{i}\n" for i in range(jobs)).encode()
    runners = {
        # `true` exec'd directly (the number is passed to it and ignored): the floor for any job runner.
        XARGS: lambda: timed(["xargs", "-P", str(slots), "-n", "1", "true"], lines),
        # A shell per job, as hyperctl runs every command through /bin/sh -c: the like-for-like peer.
        XARGS_SH: lambda: timed(["xargs", "-P", str(slots), "-I{}", "sh", "-c", "true"], lines),
    }
    if parallel is not None:
        # Same as `parallel -j S true ::: ...`, but the arguments come from stdin.
        runners[PARALLEL] = lambda: timed([parallel, "--will-cite", "-j", str(slots), "true"], lines)
    return runners


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def measure(
    args: argparse.Namespace,
    workdir: Path,
    parallel: str | None,
    extra: dict[str, Callable[[], float]] | None = None,
) -> dict[str, list[float]]:
    """Times of every tool, and of the `extra` runs (other peers) taken in the same rounds."""
    config_n, config_1 = workdir / "batch-n.json", workdir / "batch-1.json"
    write_batch(config_n, args.jobs, args.slots)
    write_batch(config_1, 1, args.slots)
    runners = {
        HYPERCTL: hyperctl_runner(config_n, workdir),
        HYPERCTL_1: hyperctl_runner(config_1, workdir),
        **peers(args.jobs, args.slots, parallel),
        **(extra or {}),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    # Round-robin, not tool by tool: drift (thermal, page cache, noisy neighbours) hits every tool alike.
    for rep in range(args.repeat):
        for name, run in runners.items():
            print(f"bench: run {rep + 1}/{args.repeat}: {name} ...", file=sys.stderr, flush=True)
            os.sync()  # what the last run wrote goes to disk now, not during this one
            settle()
            times[name].append(run())
    return times


def summarize(args: argparse.Namespace, times: dict[str, list[float]], parallel: str | None) -> dict[str, Any]:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    tools = {}
    for name, ts in times.items():
        jobs = 1 if name == HYPERCTL_1 else args.jobs
        tools[name] = {
            "median_s": round(med[name], 4),
            "runs_s": [round(t, 4) for t in ts],
            "jobs_per_s": round(jobs / med[name], 1),
            # A 1-job run against N jobs of a peer compares nothing: no ratios for it.
            "vs_xargs": None if jobs == 1 else round(ratio(med[name], med[XARGS]), 3),
            "vs_xargs_sh": None if jobs == 1 else round(ratio(med[name], med[XARGS_SH]), 3),
        }
    # Fixed start-up cost taken out, spread over the jobs; times slots because that many run at once.
    overhead_ms = (med[HYPERCTL] - med[HYPERCTL_1]) / args.jobs * args.slots * 1000
    ratio_xargs = ratio(med[HYPERCTL], med[XARGS])
    return {
        "jobs": args.jobs,
        "slots": args.slots,
        "repeat": args.repeat,
        "python": sys.version.split()[0],
        "gnu_parallel": parallel is not None,
        "tools": tools,
        "hyperctl_startup_s": round(med[HYPERCTL_1], 4),
        "hyperctl_per_job_ms": round(overhead_ms, 3),
        # The same figure for a shell per job, so the hyperctl number has something to be read against.
        "xargs_sh_per_job_ms": round(med[XARGS_SH] / args.jobs * args.slots * 1000, 3),
        "goal": {"ratio_vs_xargs": GOAL_RATIO, "actual": round(ratio_xargs, 3), "met": ratio_xargs <= GOAL_RATIO},
    }


def print_table(result: dict[str, Any]) -> None:
    n, s = result["jobs"], result["slots"]
    print(f"{n} jobs of `true`, {s} slots, median of {result['repeat']} (Python {result['python']})")
    print()
    header = f"{'tool':<18} {'median s':>9} {'jobs/s':>9} {'vs xargs -P':>12} {'vs xargs sh':>12}"
    print(header)
    print("-" * len(header))
    for name, t in result["tools"].items():
        label = f"xargs -P {s}" if name == XARGS else name
        ratios = " ".join(f"{'-':>12}" if r is None else f"{r:>11.2f}x" for r in (t["vs_xargs"], t["vs_xargs_sh"]))
        print(f"{label:<18} {t['median_s']:>9.3f} {t['jobs_per_s']:>9.1f} {ratios}")
    if not result["gnu_parallel"]:
        print(f"{PARALLEL}: not installed")
    print()
    print(f"hyperctl start-up floor (1-job batch): {result['hyperctl_startup_s']:.3f} s")
    print(
        f"hyperctl per-job cost (start-up excluded, per slot): {result['hyperctl_per_job_ms']:.2f} ms"
        f" (xargs sh -c: {result['xargs_sh_per_job_ms']:.2f} ms)"
    )
    goal = result["goal"]
    verdict = "met" if goal["met"] else "NOT met"
    print(f"goal: hyperctl <= {GOAL_RATIO} x xargs -P {s}: {goal['actual']:.2f} x, {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parallel = gnu_parallel()
    with tempfile.TemporaryDirectory(prefix="hyperctl-bench-") as tmp:
        times = measure(args, Path(tmp), parallel)
    result = summarize(args, times, parallel)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
