"""The batch and job commands, as a user runs them: real daemons, real processes."""

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

import psutil
import pytest

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json


def batch(jobs: list[dict[str, Any]], name: str = "b", **extra: Any) -> dict[str, Any]:
    return {"name": name, "jobs": jobs, "daemon": {"port": 0}, **extra}


def job(command: str, name: str, **fields: Any) -> dict[str, Any]:
    execution = fields.pop("execution", {})
    return {"name": name, "params": fields.pop("params", {}), "execution": {"command": command, **execution}, **fields}


def job_status(batches: Path, name: str, batch_name: str = "b") -> str | None:
    """The job's status in the store; None until the daemon has made the store."""
    try:
        with sqlite3.connect(f"file:{batches / batch_name / '.hyperctl' / 'state.db'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def live_processes(pgid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            pass
    return found


@pytest.fixture
def detached(tmp_path: Path, batches: Path) -> Any:
    """Start batches with `run --detach`; whatever is left is killed at the end."""
    started: list[str] = []

    def start(doc: dict[str, Any], *options: str) -> subprocess.CompletedProcess[str]:
        config = write_json(tmp_path / f"{doc['name']}.json", doc)
        result = hyperctl("run", "--config", str(config), "--detach", *options)
        assert result.returncode == 0, result.stderr
        started.append(doc["name"])
        return result

    yield start
    for name in started:
        hyperctl("batch", "kill", name)


def test_detach_json_says_where_the_batch_runs(detached: Any, batches: Path) -> None:
    running = json.loads(detached(batch([job("sleep 60", "long")], name="runs"), "--json").stdout)

    assert (running["name"], running["status"], running["total"]) == ("runs", "running", 1)
    assert running["portal"].startswith("http://127.0.0.1:") and running["daemon_pid"] > 0
    assert running["log"] == str(batches / "runs" / ".hyperctl" / "daemon.log")


def test_detach_watch_and_the_read_only_commands(detached: Any, batches: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    jobs = [
        job("echo one; echo two; echo three; echo oops >&2", "talk"),
        job(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo released", "waits"),
        job("exit 3", "fails", max_retries=1),
    ]
    started = detached(batch(jobs))
    assert "hyperctl batch watch b" in started.stdout

    wait_for(lambda: job_status(batches, "talk") == "succeeded", "talk to end")
    listed = hyperctl("batch", "list")
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "OK/JOBS"] and row.split()[:3] == ["b", "running", "1/3"]
    assert "http://127.0.0.1:" in row

    logs = hyperctl("job", "logs", "-b", "b", "-j", "talk", "--tail", "2")
    assert logs.stdout == "two\nthree\n"
    assert hyperctl("job", "logs", "-b", "b", "-j", "talk", "--stderr").stdout == "oops\n"
    wait_for(lambda: job_status(batches, "fails") == "failed", "fails to fail twice")
    assert hyperctl("job", "logs", "-b", "b", "-j", "fails", "--attempt", "3").returncode == 2

    follower = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "job", "logs", "-b", "b", "-j", "waits", "-f"],
        stdout=subprocess.PIPE,
        text=True,
    )
    watcher = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "batch", "watch", "b"], stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.3)
    gate.touch()
    assert follower.communicate(timeout=30)[0] == "released\n"  # -f ends when the job does
    watch_err = watcher.communicate(timeout=30)[1]
    assert watcher.returncode == 1  # a job failed
    assert "hyperctl: batch b failed: 2 succeeded, 1 failed" in watch_err

    described = json.loads(hyperctl("job", "describe", "-b", "b", "-j", "fails", "--json").stdout)
    assert [(a["n"], a["status"], a["exit_code"]) for a in described["attempts"]] == [
        (1, "failed", 3),
        (2, "failed", 3),
    ]
    assert described["attempts"][1]["stdout"] == str(attempt_dir(batches, "b", "fails", 2) / "stdout")
    jobs_json = json.loads(hyperctl("job", "list", "-b", "b", "--json", "--status", "succeeded").stdout)
    assert sorted(j["name"] for j in jobs_json) == ["talk", "waits"]
    batch_json = json.loads(hyperctl("batch", "describe", "b", "--json").stdout)
    assert batch_json["status"] == "failed" and batch_json["counts"]["succeeded"] == 2
    assert batch_json["daemon_pid"] is None


def test_batch_list_shows_stray_and_damaged_folders(batches: Path, tmp_path: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("true", "ok")], name="good"))
    assert hyperctl("run", "--config", str(config)).returncode == 0
    (batches / "stray").mkdir()
    (batches / "damaged" / ".hyperctl").mkdir(parents=True)
    (batches / "damaged" / ".hyperctl" / "state.db").write_text("not a database")

    listed = hyperctl("batch", "list")
    as_json = json.loads(hyperctl("batch", "list", "--json").stdout)

    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert {b["name"]: b["status"] for b in as_json} == {"damaged": "damaged", "good": "finished", "stray": "unknown"}
    assert "not a hyperctl batch" in listed.stdout


def test_batch_kill_stops_everything(detached: Any, batches: Path) -> None:
    stubborn = "sh -c 'trap \"\" TERM; sleep 60' & trap '' TERM; sleep 60"
    jobs = [job(stubborn, "stubborn", execution={"kill_grace": 1}), job("sleep 60", "plain"), job("true", "later")]
    detached(batch(jobs, backend={"conf": {"cpu": 2}}))
    wait_for(
        lambda: job_status(batches, "plain") == "running" and job_status(batches, "stubborn") == "running",
        "both to run",
    )
    with sqlite3.connect(batches / "b" / ".hyperctl" / "state.db") as db:
        pids = [pid for (pid,) in db.execute("SELECT pid FROM attempts")]

    killed = hyperctl("batch", "kill", "b")

    assert killed.returncode == 0, killed.stderr
    assert all(live_processes(pid) == [] for pid in pids)
    assert {n: job_status(batches, n) for n in ("stubborn", "plain", "later")} == {
        "stubborn": "killed",
        "plain": "killed",
        "later": "pending",
    }
    assert json.loads(hyperctl("batch", "describe", "b", "--json").stdout)["status"] == "killed"


def test_after_kill_9_batch_kill_finds_the_orphans(batches: Path, tmp_path: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("sleep 60", "orphan")]))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.DEVNULL
    )
    wait_for(lambda: job_status(batches, "orphan") == "running", "the job to run")
    with sqlite3.connect(batches / "b" / ".hyperctl" / "state.db") as db:
        pid = wait_for(lambda: db.execute("SELECT pid FROM attempts").fetchone()[0], "its pid")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    assert live_processes(pid), "the job outlives its daemon"

    killed = hyperctl("batch", "kill", "b")

    assert killed.returncode == 0, killed.stderr
    assert "killed 1 job it had left running: orphan" in killed.stderr
    assert live_processes(pid) == []
    assert job_status(batches, "orphan") == "killed"


def test_resume_and_retry(batches: Path, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    jobs = [
        job("true", "fine"),
        job(f"[ -e {flag} ]", "broken"),
        job("sleep 60", "slow", execution={"timeout": 0.3}),
    ]
    config = write_json(tmp_path / "b.json", batch(jobs))
    assert hyperctl("run", "--config", str(config)).returncode == 1
    flag.touch()

    failed_only = hyperctl("batch", "retry", "b", "--job", "broken")
    assert failed_only.returncode == 1  # slow is still timed out
    assert "retrying 1 job of batch b: broken" in failed_only.stderr
    assert "batch b: 1 job to run" in failed_only.stderr
    assert (job_status(batches, "broken"), job_status(batches, "slow")) == ("succeeded", "timeout")

    resumed = hyperctl("batch", "resume", "b")
    assert resumed.returncode == 1  # nothing to run: slow stays timed out
    retried = hyperctl("batch", "retry", "b")
    assert retried.returncode == 1 and "retrying 1 job of batch b: slow" in retried.stderr
    with sqlite3.connect(batches / "b" / ".hyperctl" / "state.db") as db:
        assert dict(db.execute("SELECT name, attempts FROM jobs")) == {"fine": 1, "broken": 2, "slow": 2}

    both = hyperctl("batch", "retry", "b", "--job", "fine", "broken")  # as README writes it: --job JOB ...
    assert both.returncode == 1 and "retrying 2 jobs of batch b: fine, broken" in both.stderr


def test_a_second_ctrl_c_kills_at_once(batches: Path, tmp_path: Path) -> None:
    stubborn = "trap '' TERM; sleep 60"
    config = write_json(tmp_path / "b.json", batch([job(stubborn, "s", execution={"kill_grace": 60})]))
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: job_status(batches, "s") == "running", "the job to run")
    time.sleep(0.2)  # its trap is set
    run.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert run.poll() is None, "the first Ctrl-C waits for the grace period"
    run.send_signal(signal.SIGINT)

    assert run.wait(timeout=20) == 130  # well before the 60 s grace
    assert "killing the running jobs now" in run.communicate()[1]
    assert job_status(batches, "s") == "pending"  # interrupted, not killed on purpose: resume runs it


def test_commands_that_need_a_daemon_say_so(batches: Path, tmp_path: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("true", "done")]))
    assert hyperctl("run", "--config", str(config)).returncode == 0

    cases = {
        ("job", "logs", "-b", "b", "-j", "nope"): "hyperctl: error: batch 'b' has no job named 'nope'\n",
        ("batch", "describe", "nope"): f"hyperctl: error: no batch named 'nope' in {batches} (batches: b)\n",
        ("job", "list", "-b", "../b"): f"hyperctl: error: no batch named '../b' in {batches} (batches: b)\n",
    }
    for argv, message in cases.items():
        result = hyperctl(*argv)
        assert (result.returncode, result.stderr) == (2, message), argv
    ended = hyperctl("batch", "kill", "b")
    assert ended.returncode == 0 and "has already ended (finished)" in ended.stderr
    ended = hyperctl("job", "kill", "-b", "b", "-j", "done")  # as batch kill: nothing to do
    assert (ended.returncode, ended.stderr) == (
        0,
        "hyperctl: job done has already ended (succeeded); nothing was running\n",
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [("finished", 0), ("running", 0), ("interrupted", 130), ("failed", 1), ("killed", 1), ("damaged", 1)],
)
def test_one_exit_code_for_each_batch_status(status: str, code: int) -> None:
    """`run` and `batch watch` end with the same code for the same status."""
    from hyperctl.exitstatus import for_batch
    from hyperctl.spec import BatchStatus

    assert for_batch(status) == code
    if status in {s.value for s in BatchStatus}:
        assert for_batch(BatchStatus(status)) == code
