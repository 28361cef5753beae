"""A daemon killed with -9 while its jobs run: the views show what the jobs' files say, and that
no daemon drives the batch; resume records each end at the time the job ended, not when it looked."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json
from tests.sshhosts import Host, hosts_for_module
from tests.test_ssh import REMOTE_ROOT, remote_batch
from tests.test_ssh import job as remote_job

HINT = "hyperctl batch resume b"


def job(command: str, name: str) -> dict[str, Any]:
    return {"name": name, "params": {}, "execution": {"command": command}}


def attempt_rows(batches: Path) -> dict[str, tuple[Any, ...]]:
    """Each job's attempt: status, pid, exit code, end (one attempt each here)."""
    db = batches / "b" / ".hyperctl" / "state.db"
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        query = "SELECT job, status, pid, exit_code, ended FROM attempts"
        return {job: tuple(rest) for job, *rest in conn.execute(query)}


def started(rows: dict[str, tuple[Any, ...]]) -> bool:
    return bool(rows.get("ends", (0, 0))[1] and rows.get("runs-on", (0, 0))[1]) and rows["quick"][0] == "succeeded"


def start_run(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_the_daemon(batches: Path, run: subprocess.Popen[bytes]) -> None:
    """kill -9 the process that holds the batch's lock (its pid is in the lock file)."""
    pid = int((batches / "b" / ".hyperctl" / "lock").read_text())
    assert pid == run.pid
    os.kill(pid, signal.SIGKILL)
    run.wait()


def dead_daemon_batch(tmp_path: Path, batches: Path) -> tuple[Path, float]:
    """Batch b, its daemon killed -9: `quick` succeeded before, `ends` exited 3 after (at the time
    returned), `runs-on` runs until the file returned exists."""
    gate, gate2 = tmp_path / "gate", tmp_path / "gate2"
    jobs = [
        job("true", "quick"),
        job(f"while [ ! -e {gate} ]; do sleep 0.02; done; echo why >&2; exit 3", "ends"),
        job(f"while [ ! -e {gate2} ]; do sleep 0.02; done", "runs-on"),
    ]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}, "backend": {"conf": {"cpu": 3}}}
    config = write_json(tmp_path / "b.json", doc)
    run = start_run(config)
    wait_for(lambda: started(attempt_rows(batches)), "two jobs to run (their pids saved) and one to succeed")
    kill_the_daemon(batches, run)
    gate.touch()  # `ends` ends while no daemon watches; `runs-on` goes on
    exitcode = attempt_dir(batches, "b", "ends") / "exitcode"
    ended = wait_for(
        lambda: exitcode.exists() and exitcode.read_text() == "3\n" and exitcode.stat().st_mtime, "its end"
    )
    return gate2, ended


def test_views_of_a_batch_whose_daemon_died_show_what_the_files_say(tmp_path: Path, batches: Path) -> None:
    _, ended = dead_daemon_batch(tmp_path, batches)

    listed = hyperctl("job", "list", "-b", "b")
    as_json = {v["name"]: v for v in json.loads(hyperctl("job", "list", "-b", "b", "--json").stdout)}
    described = hyperctl("job", "describe", "-b", "b", "-j", "ends")
    described_json = json.loads(hyperctl("job", "describe", "-b", "b", "-j", "ends", "--json").stdout)
    batch = hyperctl("batch", "describe", "b")
    batch_json = json.loads(hyperctl("batch", "describe", "b", "--json").stdout)
    batches_listed = hyperctl("batch", "list")
    watched = hyperctl("batch", "watch", "b", timeout=30)

    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["ends"][1:4] == ["failed", "1", "exit"] and rows["ends"][4] == "3"
    assert rows["runs-on"][1] == "running" and rows["quick"][1] == "succeeded"
    note = (
        "hyperctl: no daemon drives batch b; of the 2 jobs it left running, 1 ended, 1 still running "
        f"(read from their files): {HINT} records them and goes on\n"
    )
    assert listed.stderr == note
    assert (as_json["ends"]["status"], as_json["ends"]["exit_code"], as_json["ends"]["ended"]) == ("failed", 3, ended)
    assert HINT in as_json["ends"]["note"]
    assert as_json["runs-on"]["status"] == "running" and "note" not in as_json["runs-on"]
    assert "\nstatus    failed\n" in described.stdout
    assert described.stderr == (
        f"hyperctl: no daemon drives batch b: its exitcode file tells how and when it ended; {HINT} takes it over\n"
    )
    assert (described_json["status"], described_json["ended"]) == ("failed", ended)
    assert [(a["status"], a["exit_code"], a["ended"]) for a in described_json["attempts"]] == [("failed", 3, ended)]
    assert "\nstatus       interrupted\n" in batch.stdout
    assert "\njobs         3: 1 running, 1 succeeded, 1 failed\n" in batch.stdout
    assert batch.stderr == note
    assert "; jobs 1: runs-on; GPUs in use -; CPU 1/3;" in batch.stdout  # the job that ended holds nothing
    assert batch_json["counts"]["failed"] == 1 and batch_json["counts"]["running"] == 1 and batch_json["note"]
    assert batches_listed.stdout.splitlines()[1].split()[:5] == ["b", "interrupted", "1/3", "1", "running,"]
    assert batches_listed.stderr == note
    assert watched.returncode == 130  # interrupted, as the batch's status says: no wait, no spin
    assert watched.stderr == "hyperctl: batch b interrupted: 1 running, 1 succeeded, 1 failed\n" + note


def test_resume_records_each_end_when_the_job_ended_not_when_it_looked(tmp_path: Path, batches: Path) -> None:
    gate2, ended = dead_daemon_batch(tmp_path, batches)
    gate2.touch()
    wait_for((attempt_dir(batches, "b", "runs-on") / "exitcode").exists, "the other job to end")
    runs_on_ended = (attempt_dir(batches, "b", "runs-on") / "exitcode").stat().st_mtime
    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 1, resumed.stderr  # `ends` failed
    after = attempt_rows(batches)
    assert after["ends"][0] == "failed" and after["ends"][2:] == (3, ended)  # when it ended, not when resume saw it
    assert after["runs-on"][0] == "succeeded" and after["runs-on"][3] == runs_on_ended
    assert hyperctl("job", "list", "-b", "b").stderr == ""  # a daemon recorded it all: nothing to say


def test_batch_watch_ends_when_the_daemon_it_watches_dies(tmp_path: Path, batches: Path) -> None:
    gate = tmp_path / "gate"
    doc = {"name": "b", "jobs": [job(f"while [ ! -e {gate} ]; do sleep 0.02; done", "waits")], "daemon": {"port": 0}}
    config = write_json(tmp_path / "b.json", doc)
    run = start_run(config)
    wait_for(lambda: attempt_rows(batches).get("waits", (0, 0))[1], "the job to run")
    watch = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "batch", "watch", "b"], stderr=subprocess.PIPE, text=True
    )
    assert watch.stderr is not None
    wait_for(lambda: watch.stderr.readline().startswith("[...................."), "watch to show the bar")

    kill_the_daemon(batches, run)

    assert watch.wait(timeout=20) == 130  # no hang: it says what the folder tells, and exits
    assert watch.stderr.read() == (
        "hyperctl: batch b interrupted: 1 running\n"
        "hyperctl: no daemon drives batch b; of the 1 job it left running, 1 still running "
        f"(read from their files): {HINT} records them and goes on\n"
    )
    gate.touch()


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found[0]


def test_a_remote_job_left_by_a_dead_daemon_is_unknown_and_resume_takes_its_end_from_the_host(
    host: Host, shared: Path, batches: Path
) -> None:
    gate = shared / "gate"
    doc = remote_batch([host], [remote_job(f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 5", name="j")])
    doc["name"] = "b"
    config = write_json(shared / "b.json", doc)
    run = start_run(config)
    wait_for(lambda: attempt_rows(batches).get("j", (0, 0))[1], "the remote job to run (its pid saved)")
    kill_the_daemon(batches, run)
    gate.touch()
    exitcode = host.home / REMOTE_ROOT / "b" / ".hyperctl" / "jobs" / "j" / "attempt-1" / "exitcode"
    wait_for(lambda: exitcode.exists() and exitcode.read_text() == "5\n", "the job to end on its host")

    listed = hyperctl("job", "list", "-b", "b")
    viewed = json.loads(hyperctl("job", "describe", "-b", "b", "-j", "j", "--json").stdout)

    assert listed.stdout.splitlines()[1].split()[:2] == ["j", "unknown"]
    assert listed.stderr == (
        "hyperctl: no daemon drives batch b; of the 1 job it left running, 1 on remote hosts unknown: "
        f"{HINT} records them and goes on\n"
    )
    assert viewed["status"] == "unknown" and "it runs on a remote host, which only a daemon asks" in viewed["note"]

    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 1, resumed.stderr
    assert attempt_rows(batches)["j"][0] == "failed" and attempt_rows(batches)["j"][2:] == (
        5,
        int(exitcode.stat().st_mtime),  # the host's exitcode file: when it ended there
    )
