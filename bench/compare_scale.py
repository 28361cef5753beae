"""`hyperctl compare` of large batches: a store of N jobs with 3 reported metrics each, built
directly with the store's own functions (no job runs), then compared in-process and by the CLI.

    python bench/compare_scale.py [--jobs 100000 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path[:0] = [str(HERE.parent)]

from hyperctl import metricstore, privatefs  # noqa: E402
from hyperctl.comparison import compare  # noqa: E402
from hyperctl.layout import BatchDir  # noqa: E402
from hyperctl.metricsfile import Point, Reading  # noqa: E402
from hyperctl.spec import BatchSpec, Execution, JobSpec  # noqa: E402
from hyperctl.store import Store, save_spec  # noqa: E402

METRICS = ("loss", "acc", "val_loss")
POINTS = 10  # per job: the summaries are what compare reads, whatever the points


def build(batches: Path, name: str, jobs: int) -> BatchDir:
    """A finished batch of `jobs` jobs (a 2-param grid), each of whose single attempt reported
    POINTS points of the 3 METRICS: jobs, attempts, chunks and summaries as the daemon writes them."""
    batch_dir = BatchDir(batches, name)
    privatefs.make_dirs(batch_dir.internal, batches)
    store = Store(batch_dir.db)
    conn = store.conn
    conn.execute("PRAGMA synchronous=OFF")  # a build, not what is measured
    specs = [
        JobSpec(f"lr-{i % 100}_depth-{i // 100}", {"lr": (i % 100) / 1000, "depth": i // 100}, Execution("true"))
        for i in range(jobs)
    ]
    store.sync_jobs(specs)
    now = time.time()
    with conn:
        conn.execute("BEGIN")
        conn.execute("UPDATE jobs SET attempts = 1, status = 'succeeded'")
        conn.executemany(
            "INSERT INTO attempts (job, n, status, host, gpus, started, ended, exit_code, layout)"
            " VALUES (?, 1, 'succeeded', 'localhost', '[]', ?, ?, 0, 2)",
            [(spec.name, now - 60 - i % 50, now) for i, spec in enumerate(specs)],
        )
    store.set_meta(status="finished", started=now - 120, ended=now)
    save_spec(batch_dir, BatchSpec(name, specs))  # a batch as `run` leaves it: `describe`, the dashboard read it
    for i, spec in enumerate(specs):
        points = [
            Point(now, step, {"loss": 1 / (step + 1 + i % 7), "acc": math.tanh((step + i % 13) / 10), "val_loss": 0.5})
            for step in range(POINTS)
        ]
        lines = "".join(json.dumps({"t": p.t, "step": p.step, **p.values}) + "\n" for p in points).encode()
        metricstore.store(conn, spec.name, 1, metricstore.Tail(summaries={}), Reading(points, len(lines)), lines)
    store.close()
    return batch_dir


def time_compare(batch_dir: BatchDir, repeat: int) -> dict[str, Any]:
    """Median seconds of compare() in this process (default columns, sorted by a metric), and of
    the CLI end to end (start-up, read, sort, every row printed into a pipe; the top 10; --csv)."""
    inproc = []
    for _ in range(repeat):
        start = time.perf_counter()
        table = compare([batch_dir], sort=["-acc"])
        inproc.append(time.perf_counter() - start)
    base = [
        sys.executable,
        "-m",
        "hyperctl",
        "compare",
        batch_dir.name,
        "--batches-data-dir",
        str(batch_dir.path.parent),
    ]
    cli = {}
    runs = {"table": [], "top": ["--top", "10"], "csv": ["--csv", "-"]}
    for label, extra in runs.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([*base, "--sort", "-acc", *extra], check=True, stdout=subprocess.DEVNULL, env=_env())
            times.append(time.perf_counter() - start)
        cli[label] = statistics.median(times)
    return {
        "rows": len(table.rows),
        "compare_s": statistics.median(inproc),
        "cli_s": cli["table"],
        "cli_top_s": cli["top"],
        "csv_s": cli["csv"],
    }


def loop_stall(batch_dir: BatchDir) -> float:
    """The IOLoop's longest wait for a 5 ms timer while compare() runs in a thread, as the API
    runs it (a C call that holds the GIL, as the decoding of every job's params, stalls it)."""
    import asyncio

    async def watch() -> float:
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, lambda: compare([batch_dir], sort=["-acc"]))
        worst = 0.0
        while not done.done():
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - start - 0.005)
        await done
        return worst

    return asyncio.run(watch())


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure(sizes: list[int], repeat: int, tmp: Path) -> dict[int, dict[str, Any]]:
    result = {}
    for jobs in sizes:
        start = time.perf_counter()
        batch_dir = build(tmp / "batches", f"compare-{jobs}", jobs)
        built = time.perf_counter() - start
        stall = statistics.median(loop_stall(batch_dir) for _ in range(3))
        result[jobs] = {**time_compare(batch_dir, repeat), "build_s": built, "loop_stall_s": stall}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100_000, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hyperctl-bench-compare-") as tmp:
        for jobs, figures in measure(args.jobs, args.repeat, Path(tmp)).items():
            print(
                f"{jobs:>7} jobs: compare() {figures['compare_s'] * 1000:.0f} ms, CLI {figures['cli_s'] * 1000:.0f} ms"
                f" (--csv {figures['csv_s'] * 1000:.0f} ms); IOLoop stalled {figures['loop_stall_s'] * 1000:.0f} ms"
                f" at most by it in a thread; store built in {figures['build_s']:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
