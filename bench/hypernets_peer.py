"""The tool hyperctl replaces, Hypernets' hyperctl 0.3.2 from PyPI, as a peer of the local case (run.py --hypernets).

It runs in a virtualenv of its own, built on first use and kept under ~/.cache/hyperctl-bench. Its batch
is the shape 0.3.2 reads (its BatchApplication.load): `job_command` for every job, `server` {host, port}
and `scheduler` {interval (ms, default 5000), exit_on_finish (default true: `run` returns once every job
has ended)}; the later `execution` and `daemon` keys make 0.3.2 fail (KeyError: 'job_command').
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import BenchError
from local_throughput import hyperctl_runner, write_batch

VERSION = "0.3.2"
VENV = Path.home() / ".cache" / "hyperctl-bench" / f"hypernets-{VERSION}"
DEFAULT_JOBS = 10  # at its default interval each job costs a 5 s tick or two: a few jobs say enough

ONE_MS = f"Hypernets {VERSION}, 1 ms"
ONE_MS_1 = f"Hypernets {VERSION}, 1 ms (1 job)"
DEFAULT = f"Hypernets {VERSION}, 5 s"
DEFAULT_1 = f"Hypernets {VERSION}, 5 s (1 job)"
HYPERCTL_FEW = f"hyperctl ({DEFAULT_JOBS} jobs)"  # ours on the same few jobs, for a ratio


def ensure() -> Path:
    """Its `hyperctl` executable, building the virtualenv first if need be; BenchError saying why it could not.

    The whole `pip install hypernets==0.3.2` (~500 MB, under a minute here) rather than only what its CLI
    uses: that is what its users run, and the CLI imports numpy, pandas and scikit-learn anyway
    (hypernets.utils), so leaving out the rest (lightgbm, ipython, ...: ~70 MB) would change neither
    the time nor its start-up.
    """
    exe, built = VENV / "bin" / "hyperctl", VENV / ".built"
    if built.exists():
        return exe
    python = str(VENV / "bin" / "python")
    steps = {
        "venv": [sys.executable, "-m", "venv", "--clear", str(VENV)],  # --clear: a build cut short starts again
        "pip install": [python, "-m", "pip", "install", "--quiet", f"hypernets=={VERSION}"],
        "hyperctl --help": [str(exe), "--help"],  # imports all that `run` does
    }
    print(f"bench: building the Hypernets {VERSION} virtualenv in {VENV} ...", file=sys.stderr, flush=True)
    for step, cmd in steps.items():
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BenchError(f"cannot build the Hypernets {VERSION} virtualenv in {VENV}: {e}") from None
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["?"]
            why = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1])
            raise BenchError(f"cannot build the Hypernets {VERSION} virtualenv in {VENV}: {step}: {why}")
    built.write_text(f"hypernets=={VERSION}\n")
    return exe


def free_port() -> int:
    """A port free now: it listens on a fixed one (8060) by default, and on every interface, whatever its host."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runner(exe: Path, workdir: Path, jobs: int, interval_ms: int | None) -> Callable[[], float]:
    """Wall seconds of one `hyperctl run` of `jobs` x `true` (interval None: its default), start to exit."""

    def run() -> float:
        # Fresh each time: 0.3.2 keeps the batch's files in the batches dir itself, and skips jobs done there.
        # TMPDIR: it leaves two folders per job in the temp dir; here they go with workdir.
        root = Path(tempfile.mkdtemp(prefix="hypernets-", dir=workdir))
        (root / "tmp").mkdir()
        scheduler: dict[str, object] = {"exit_on_finish": True}
        if interval_ms is not None:
            scheduler["interval"] = interval_ms
        batch = {
            "name": "bench-hypernets",
            "job_command": "true",
            "jobs": [{"name": f"job-{i:04d}", "params": {}} for i in range(jobs)],
            "server": {"host": "127.0.0.1", "port": free_port()},  # host: only the address it gives its jobs
            "scheduler": scheduler,
            "backend": {"type": "local", "conf": {}},
        }
        config, log = root / "batch.json", root / "log"
        config.write_text(json.dumps(batch))
        cmd = [str(exe), "run", "--config", str(config), "--batches-data-dir", str(root / "batches")]
        env = {**os.environ, "TMPDIR": str(root / "tmp")}
        within = 120 + 3 * (jobs + 2) * (interval_ms or 5000) / 1000
        start = time.perf_counter()
        with open(log, "wb") as out:
            try:
                code = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, timeout=within
                ).returncode
            except subprocess.TimeoutExpired:
                raise BenchError(f"Hypernets {VERSION}: {jobs} jobs not done within {within:.0f} s") from None
        took = time.perf_counter() - start
        # It exits 0 whether its jobs succeeded or not: count them.
        done = len(list((root / "batches").glob("*.succeed")))
        if code != 0 or done != jobs:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise BenchError(f"Hypernets {VERSION}: exit {code}, {done}/{jobs} jobs succeeded: {tail}")
        return took

    return run


def runners(exe: Path, workdir: Path, jobs: int, slots: int) -> dict[str, Callable[[], float]]:
    """Its runs beside ours: at 1 ms on the same `jobs` as ours, at its default on DEFAULT_JOBS, one job at each."""
    few = workdir / f"batch-{DEFAULT_JOBS}.json"
    write_batch(few, DEFAULT_JOBS, slots)
    return {
        ONE_MS: runner(exe, workdir, jobs, 1),
        ONE_MS_1: runner(exe, workdir, 1, 1),
        HYPERCTL_FEW: hyperctl_runner(few, workdir),
        DEFAULT: runner(exe, workdir, DEFAULT_JOBS, None),
        DEFAULT_1: runner(exe, workdir, 1, None),
    }
