"""SSH throughput: N x `true` on 2 network-namespace sshd hosts x 4 slots, beside GNU parallel --sshlogin.

Needs root, `ip netns` and openssh-server (as the test suite does); it starts its own sshd hosts
(tests/sshhosts.py) and removes them at the end. Run from the repository root:

    python bench/ssh_throughput.py [--jobs N] [--repeat R] [--json]

A benchmark, not a test: the goal is >= 150 jobs/s, printed beside what GNU parallel does on the
same hosts when it is installed (apt-get install -y parallel).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import as_installed, settle  # noqa: E402

from tests.sshhosts import Host, ssh_hosts  # noqa: E402

GOAL = 150.0  # jobs per second
SLOTS = 4  # per host


def run_hyperctl(hosts: list[Host], jobs: int, tmp: Path, n: int | str) -> float:
    machines = [h.machine(cpu=SLOTS) for h in hosts]
    doc = {
        "name": f"ssh-bench-{n}",
        "jobs": [{"params": {}, "execution": {"command": "true"}} for _ in range(jobs)],
        "backend": {"type": "remote", "conf": {"machines": machines, "known_hosts": str(hosts[0].known_hosts)}},
        "daemon": {"port": 0},
    }
    config = tmp / f"batch-{n}.json"
    config.write_text(json.dumps(doc))
    argv = [sys.executable, "-m", "hyperctl", "run", "--config", str(config), "--batches-data-dir", str(tmp / "b")]
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench: hyperctl run failed: {done.stderr[-500:]}")
    return took


def run_parallel(hosts: list[Host], jobs: int) -> float | None:
    if (
        shutil.which("parallel") is None
        or b"GNU parallel" not in subprocess.run(["parallel", "--version"], capture_output=True).stdout
    ):
        return None
    ssh = f"ssh -i {hosts[0].key_file} -o UserKnownHostsFile={hosts[0].known_hosts} -o BatchMode=yes"
    argv = ["parallel", "--will-cite", "--ssh", ssh]
    for h in hosts:
        argv += ["--sshlogin", f"{SLOTS}/{h.user}@{h.address}"]
    argv += ["true", ":::"] + [str(i) for i in range(jobs)]
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs of `true` (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    as_installed()
    tmp = Path(tempfile.mkdtemp(prefix="hyperctl-bench-ssh-"))
    os.chmod(tmp, 0o755)
    (tmp / "hosts").mkdir()
    try:
        with ssh_hosts(2, tmp / "hosts") as hosts:
            ours, theirs, ones = [], [], []
            for n in range(args.repeat):  # interleaved, so drift hits both alike
                settle()
                ones.append(run_hyperctl(hosts, 1, tmp, f"one-{n}"))  # start-up and one job
                settle()
                ours.append(run_hyperctl(hosts, args.jobs, tmp, n))
                settle()
                other = run_parallel(hosts, args.jobs)
                if other is not None:
                    theirs.append(other)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "jobs": args.jobs,
        "hosts": 2,
        "slots_per_host": SLOTS,
        "hyperctl_s": statistics.median(ours),
        "hyperctl_jobs_per_s": args.jobs / statistics.median(ours),
        "one_job_s": statistics.median(ones),
        # What each job adds once the daemon runs: the time less that of a one-job batch.
        "per_job_ms": (statistics.median(ours) - statistics.median(ones)) / (args.jobs - 1) * 1000,
        "parallel_s": statistics.median(theirs) if theirs else None,
        "goal_jobs_per_s": GOAL,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.jobs} x `true` on 2 hosts x {SLOTS} slots, median of {args.repeat}")
        print(
            f"hyperctl:      {result['hyperctl_s']:.2f} s  {result['hyperctl_jobs_per_s']:.0f} jobs/s (with start-up)"
        )
        print(
            f"               one-job batch {result['one_job_s']:.2f} s; each further job {result['per_job_ms']:.1f} ms "
            f"({1000 / result['per_job_ms']:.0f} jobs/s once started)"
        )
        if theirs:
            print(f"GNU parallel:  {result['parallel_s']:.2f} s  {args.jobs / result['parallel_s']:.0f} jobs/s")
        else:
            print("GNU parallel:  not installed")
        met = "met" if result["hyperctl_jobs_per_s"] >= GOAL else "NOT met"
        per_job = "met" if result["per_job_ms"] <= 1000 / GOAL else "NOT met"
        print(f"goal: >= {GOAL:.0f} jobs/s with start-up: {met}; <= {1000 / GOAL:.1f} ms per job: {per_job}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
