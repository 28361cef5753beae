"""Job control: retries, fail fast, and a daemon killed with -9 in the middle of a batch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import attempt_dir, hyperctl, job_names, wait_for, write_json


def batch(jobs: list[dict[str, Any]], name: str = "b", **extra: Any) -> dict[str, Any]:
    return {"name": name, "jobs": jobs, "daemon": {"port": 0}, **extra}


def job(command: str, **fields: Any) -> dict[str, Any]:
    execution = fields.pop("execution", {})
    return {"params": fields.pop("params", {}), "execution": {"command": command, **execution}, **fields}


def rows(batches: Path, query: str, name: str = "b") -> list[tuple[Any, ...]]:
    with sqlite3.connect(batches / name / ".hyperctl" / "state.db") as db:
        return db.execute(query).fetchall()


def test_retries_until_success_each_attempt_with_its_own_logs(tmp_path: Path, batches: Path) -> None:
    counter = tmp_path / "tries"
    flaky = f"echo try >> {counter}; echo attempt $HYPERCTL_ATTEMPT; [ $(wc -l < {counter}) -ge 3 ]"
    config = write_json(tmp_path / "b.json", batch([job(flaky, name="flaky", max_retries=5)]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert rows(batches, "SELECT n, status, exit_code FROM attempts ORDER BY n") == [
        (1, "failed", 1),
        (2, "failed", 1),
        (3, "succeeded", 0),
    ]
    for n in (1, 2, 3):
        assert (attempt_dir(batches, "b", "flaky", n) / "stdout").read_text() == f"attempt {n}\n"


def test_retry_only_on_listed_exit_codes_and_batch_default(tmp_path: Path, batches: Path) -> None:
    jobs = [
        job("exit 3", name="listed"),  # retried: 1 + 2 attempts
        job("exit 4", name="unlisted"),  # not retried
        job("exit 3", name="own-policy", max_retries=0),  # its own setting wins
    ]
    config = write_json(tmp_path / "b.json", batch(jobs, scheduler={"max_retries": 2, "retry_on_exit_codes": [3]}))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1
    assert dict(rows(batches, "SELECT name, attempts FROM jobs")) == {"listed": 3, "unlisted": 1, "own-policy": 1}


def test_retry_on_names_which_ends_run_again(tmp_path: Path, batches: Path) -> None:
    """Exit codes list exit codes only: a timeout or a lost job runs again only where retry_on says so."""
    jobs = [
        job("exit 3", name="code"),  # 3 is listed: retried
        job("sleep 5", name="slow", execution={"command": "sleep 5", "timeout": 0.2}),  # not listed: once
        job("sleep 5", name="slow-listed", execution={"command": "sleep 5", "timeout": 0.2}, retry_on=["timeout"]),
        job("exit 9", name="any-failure", retry_on=["failed"]),
        job("exit 4", name="older-key", retry_on_exit_codes=[4]),
        # Its whole process group killed by SIGKILL (as an OOM kill does): 137, as a shell says.
        job('[ "$HYPERCTL_ATTEMPT" = 2 ] || kill -9 0', name="oom", retry_on=[137]),
    ]
    config = write_json(tmp_path / "b.json", batch(jobs, scheduler={"max_retries": 1, "retry_on": [3, "lost"]}))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1
    assert dict(rows(batches, "SELECT name, attempts FROM jobs")) == {
        "code": 2,
        "slow": 1,
        "slow-listed": 2,
        "any-failure": 2,
        "older-key": 2,
        "oom": 2,
    }
    described = hyperctl("job", "describe", "b", "slow-listed")
    assert "retries   1, on timeout" in described.stdout


def test_retry_on_names_what_it_takes(tmp_path: Path, batches: Path) -> None:
    jobs = [job("true", retry_on=[3, "timeouts"]), job("true", retry_on=[3], retry_on_exit_codes=[3])]
    config = write_json(tmp_path / "b.json", batch(jobs))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'hyperctl: error: jobs[0].retry_on: must list exit codes (1-255) and failed, timeout, lost, not "timeouts"',
        "hyperctl: error: jobs[1].retry_on_exit_codes: give retry_on or retry_on_exit_codes, not both",
    ]
    assert not (batches / "b").exists()


def test_halt_on_failures_starts_nothing_more(tmp_path: Path, batches: Path) -> None:
    jobs = [job("exit 1") for _ in range(3)] + [job("true") for _ in range(5)]
    config = write_json(
        tmp_path / "b.json", batch(jobs, backend={"conf": {"cpu": 1}}, scheduler={"halt_on_failures": 2})
    )

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1
    assert sorted(rows(batches, "SELECT status, COUNT(*) FROM jobs GROUP BY status")) == [("failed", 2), ("pending", 6)]
    assert "halted after 2 failures (scheduler.halt_on_failures): 6 jobs not started" in result.stderr


def test_a_retry_prefers_another_gpu(tmp_path: Path, batches: Path) -> None:
    command = 'echo "$CUDA_VISIBLE_DEVICES"; [ "$HYPERCTL_ATTEMPT" -ge 2 ]'
    config = write_json(
        tmp_path / "b.json",
        batch([job(command, name="g", resource={"gpu": 1}, max_retries=1)], backend={"conf": {"gpu": [0, 1]}}),
    )

    assert hyperctl("run", "--config", str(config)).returncode == 0

    first = (attempt_dir(batches, "b", "g", 1) / "stdout").read_text()
    second = (attempt_dir(batches, "b", "g", 2) / "stdout").read_text()
    assert {first, second} == {"0\n", "1\n"}


def start_run(config: Path, batches: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches)},
    )


def test_retry_of_a_job_its_dead_daemon_left_running_is_refused(tmp_path: Path, batches: Path) -> None:
    """A second copy would run beside the first: resume sees it to its end first."""
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    command = f"echo start >> {ledger}; while [ ! -e {gate} ]; do sleep 0.05; done"
    config = write_json(tmp_path / "b.json", batch([job(command, name="long"), job("exit 1", name="fails")]))
    daemon = start_run(config, batches)
    wait_for(lambda: ledger.exists() and rows(batches, "SELECT pid FROM attempts WHERE job = 'long'"), "it to run")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()

    result = hyperctl("batch", "retry", "b", "--job", "long")

    gate.touch()
    assert result.returncode == 2
    assert result.stderr == (
        "hyperctl: error: job 'long' of batch 'b' has an attempt no daemon saw end (its daemon died): "
        "`hyperctl batch resume b` sees it to its end; retry it after\n"
    )
    assert ledger.read_text() == "start\n"


def test_kill_9_then_resume_loses_nothing_and_runs_nothing_twice(tmp_path: Path, batches: Path) -> None:
    """Jobs that ended while the daemon was dead get their real exit code; running ones are
    watched again; pending ones run; nothing runs twice."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    wait = f"while [ ! -e {gate} ]; do sleep 0.02; done"
    jobs = [
        job(f"echo quick >> {log}", name="quick"),
        job(f"echo ends-while-down >> {log}; {wait}; exit 7", name="ends-while-down"),
        job(f"echo still-running >> {log}; {wait}; sleep 0.5; echo done", name="still-running"),
        job(f"echo later >> {log}", name="later"),
        job(f"echo later2 >> {log}", name="later2"),
    ]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"conf": {"cpu": 3}}))
    daemon = start_run(config, batches)
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 3, "three jobs to start")
    # Now two jobs wait at the gate; quick has ended or is ending; later ones may have started.
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    gate.touch()
    attempt = attempt_dir(batches, "b", "ends-while-down", 1)
    wait_for(lambda: (attempt / "exitcode").exists(), "the job to end while no daemon runs")

    resumed = hyperctl("run", "--config", str(config))

    assert resumed.returncode == 1, resumed.stderr  # ends-while-down exited 7
    statuses = dict(rows(batches, "SELECT name, status FROM jobs"))
    assert statuses == {
        "quick": "succeeded",
        "ends-while-down": "failed",
        "still-running": "succeeded",
        "later": "succeeded",
        "later2": "succeeded",
    }
    assert rows(batches, "SELECT exit_code FROM attempts WHERE job = 'ends-while-down'") == [(7,)]
    assert sorted(log.read_text().split()) == sorted(["quick", "ends-while-down", "still-running", "later", "later2"])
    assert (attempt_dir(batches, "b", "still-running", 1) / "stdout").read_text() == "done\n"
    assert rows(batches, "SELECT COUNT(*) FROM attempts") == [(5,)]


def test_resume_says_which_jobs_it_only_watches(tmp_path: Path, batches: Path) -> None:
    """A job a dead daemon left running is watched again, not run: the header says so."""
    started, gate = tmp_path / "started", tmp_path / "gate"
    first = job(f"touch {started}; while [ ! -e {gate} ]; do sleep 0.02; done", name="first")
    jobs = [first, job("true", name="second")]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"conf": {"cpu": 1}}))
    daemon = start_run(config, batches)
    wait_for(started.exists, "the first job to start")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()

    resumed = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches)},
    )
    assert resumed.stderr is not None
    header = resumed.stderr.readline()
    gate.touch()
    rest = resumed.communicate(timeout=60)[1]

    assert resumed.returncode == 0, header + rest
    assert header.startswith("hyperctl: batch b: 1 job to run, 1 still running from before; folder "), header
    assert rows(batches, "SELECT COUNT(*) FROM attempts") == [(2,)]


def test_a_vanished_job_is_lost_and_retried(tmp_path: Path, batches: Path) -> None:
    marker = tmp_path / "started"
    command = f"if [ $HYPERCTL_ATTEMPT = 1 ]; then touch {marker}; sleep 60; fi"
    config = write_json(tmp_path / "b.json", batch([job(command, name="v", max_retries=1)]))
    daemon = start_run(config, batches)
    wait_for(marker.exists, "the job to start")
    pid = wait_for(lambda: rows(batches, "SELECT pid FROM attempts")[0][0], "the pid to be saved")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    os.killpg(pid, signal.SIGKILL)  # the job dies with no daemon to see it, and leaves no exit code

    resumed = hyperctl("run", "--config", str(config))

    assert resumed.returncode == 0, resumed.stderr
    assert rows(batches, "SELECT n, status FROM attempts ORDER BY n") == [(1, "lost"), (2, "succeeded")]


def test_a_reused_pid_is_not_taken_for_the_job(tmp_path: Path, batches: Path) -> None:
    """The store names a pid that is alive but is not the job: the job counts as lost, not running."""
    config = write_json(tmp_path / "b.json", batch([job("true", name="j")]))
    assert hyperctl("run", "--config", str(config)).returncode == 0
    (attempt_dir(batches, "b", "j", 1) / "exitcode").unlink()
    with sqlite3.connect(batches / "b" / ".hyperctl" / "state.db") as db:  # as if it were still running
        db.execute("UPDATE jobs SET status = 'running'")
        db.execute("UPDATE attempts SET status = 'running', pid = ?", (os.getpid(),))

    resumed = hyperctl("run", "--config", str(config))

    assert resumed.returncode == 1
    assert rows(batches, "SELECT n, status FROM attempts ORDER BY n") == [(1, "lost")]


def test_random_kill_9_during_200_jobs(tmp_path: Path, batches: Path) -> None:
    """Kill the daemon at random moments, resume each time: every job succeeds exactly once."""
    import random

    log = tmp_path / "runs.log"
    jobs = [job(f"echo {{{{ i }}}} >> {log}; sleep 0.0{{{{ i % 5 }}}}", params={"i": i}) for i in range(200)]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"conf": {"cpu": 4}}))
    rng = random.Random(1)
    for _ in range(6):
        daemon = start_run(config, batches)
        time.sleep(rng.uniform(0.1, 0.6))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()

    final = hyperctl("run", "--config", str(config))

    assert final.returncode == 0, final.stderr
    lines = log.read_text().split()
    assert sorted(map(int, lines)) == list(range(200)), "every job ran exactly once"
    assert rows(batches, "SELECT DISTINCT status FROM jobs") == [("succeeded",)]
    assert rows(batches, "SELECT COUNT(*) FROM attempts WHERE status != 'succeeded'") == [(0,)]
    params_file = batches / "b" / ".hyperctl" / "jobs" / job_names(batches, "b")[7] / "params.json"
    assert json.loads(params_file.read_text()) == {"i": 7}


def held_job_left_by_a_dead_daemon(tmp_path: Path, batches: Path) -> tuple[Path, Path]:
    """Batch b: job j logs `ran` to the first path and runs until the second exists; its daemon
    was killed -9 once the job's pid was saved."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    command = f"echo ran >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done"
    config = write_json(tmp_path / "b.json", batch([job(command, name="j", max_retries=1)]))
    daemon = start_run(config, batches)
    wait_for(lambda: rows(batches, "SELECT pid FROM attempts")[0][0] if log.exists() else None, "the job to run")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    return log, gate


def test_resume_where_pidfds_are_missing(tmp_path: Path, batches: Path) -> None:
    """Old kernels and some seccomp profiles have no pidfd_open: jobs are still watched, not lost."""
    log, gate = held_job_left_by_a_dead_daemon(tmp_path, batches)
    without_pidfd = "import os, sys; del os.pidfd_open; from hyperctl.cli import main; sys.exit(main(sys.argv[1:]))"
    resumed = subprocess.Popen([sys.executable, "-c", without_pidfd, "batch", "resume", "b"], stderr=subprocess.PIPE)
    ready = "SELECT value FROM meta WHERE key = 'ready'"
    wait_for(lambda: rows(batches, ready) == [(str(resumed.pid),)], "the resumed daemon to take the job over")
    gate.touch()

    assert resumed.wait(timeout=30) == 0
    assert log.read_text() == "ran\n"
    assert rows(batches, "SELECT n, status FROM attempts") == [(1, "succeeded")]
