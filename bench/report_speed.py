"""What reporting a metric costs a job: hyperctl.report() beside MLflow and Weights & Biases.

    python bench/report_speed.py [--quick]

Each tool records 3 metrics per call (loss, acc, lr, with a step) from a fresh process, as a
training loop would: the median of the calls' own times, and calls per second over a loop of
calls timed as a whole. The peers, each to the local store a user gets without a server:
`mlflow.log_metrics` to MLflow's default SQLite store and to its file store (kept for old
setups: MLFLOW_ALLOW_FILE_STORE), `wandb.log` offline. They run from a virtualenv of their own,
built on first use under ~/.cache/hyperctl-bench (mlflow-skinny, sqlalchemy, alembic, wandb).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = Path.home() / ".cache" / "hyperctl-bench" / "metrics-peers"
PACKAGES = ("mlflow-skinny", "sqlalchemy", "alembic", "wandb")
TOOLS = ("hyperctl", "mlflow (SQLite store)", "mlflow (file store)", "wandb (offline)")


def _setup(tool: str, where: Path) -> Any:
    """A function recording one step of 3 metrics with `tool`, set up as a job would (not timed)."""
    if tool == "hyperctl":
        os.environ["HYPERCTL_METRICS_FILE"] = str(where / "metrics")
        import hyperctl

        return lambda i: hyperctl.report(loss=1.0 / (i + 1), acc=i * 1e-6, lr=0.01, step=i)
    if tool.startswith("mlflow"):
        import mlflow

        if "file" in tool:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            mlflow.set_tracking_uri((where / "mlruns").as_uri())
        else:
            mlflow.set_tracking_uri(f"sqlite:///{where / 'mlflow.db'}")
        mlflow.start_run()
        return lambda i: mlflow.log_metrics({"loss": 1.0 / (i + 1), "acc": i * 1e-6, "lr": 0.01}, step=i)
    import wandb

    os.environ["WANDB_SILENT"] = "true"
    wandb.init(project="bench", dir=str(where), mode="offline")
    return lambda i: wandb.log({"loss": 1.0 / (i + 1), "acc": i * 1e-6, "lr": 0.01}, step=i)


def measure(tool: str, calls: int) -> dict[str, float]:
    """In this process: median µs per call (each timed), then calls/s over `calls` more in one loop."""
    from time import perf_counter_ns

    with tempfile.TemporaryDirectory(prefix="hyperctl-bench-report-") as tmp:
        record = _setup(tool, Path(tmp))
        record(0)  # the first call opens files, starts runs: not what a loop pays per step
        times = []
        for i in range(1, calls + 1):
            start = perf_counter_ns()
            record(i)
            times.append(perf_counter_ns() - start)
        times.sort()
        start = perf_counter_ns()
        for i in range(calls + 1, 2 * calls + 1):
            record(i)
        took = (perf_counter_ns() - start) / 1e9
        return {"median_us": times[len(times) // 2] / 1000, "calls_per_s": calls / took, "calls": calls}


def ensure_peers() -> Path:
    """The peers' python, building their virtualenv first if need be; RuntimeError saying why not."""
    python, built = VENV / "bin" / "python", VENV / ".built"
    if built.exists():
        return python
    print(f"bench: building the metrics peers' virtualenv in {VENV} ...", file=sys.stderr, flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["?"]
            raise RuntimeError(f"cannot install {' '.join(PACKAGES)} in {VENV}: {lines[-1]}")
    built.write_text("\n".join(PACKAGES) + "\n")
    return python


def run(tool: str, calls: int, python: str = sys.executable) -> dict[str, float]:
    """measure() in a fresh process of `python`: a tool's imports and state never meet another's."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--tool", tool, "--calls", str(calls)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{tool}: {(proc.stderr.strip().splitlines() or ['exit ' + str(proc.returncode)])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def figures(quick: bool) -> dict[str, Any]:
    """Every tool's figures (a peer that could not run: its reason instead)."""
    result: dict[str, Any] = {"hyperctl": run("hyperctl", 20_000 if quick else 100_000)}
    try:
        python = str(ensure_peers())
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return {**result, **{tool: {"error": str(e)} for tool in TOOLS[1:]}}
    for tool in TOOLS[1:]:
        calls = 3_000 if tool.startswith("wandb") else 200  # MLflow's calls take milliseconds
        try:
            result[tool] = run(tool, calls // 4 if quick else calls, python)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            result[tool] = {"error": str(e)}
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tool", choices=TOOLS, help=argparse.SUPPRESS)  # one tool, in this process
    parser.add_argument("--calls", type=int, default=10_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tool:
        print(json.dumps(measure(args.tool, args.calls)))
    else:
        print(json.dumps(figures(args.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
