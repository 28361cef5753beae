"""`hyperctl hosts` and the machines of `batch describe`: state, running jobs, GPUs, CPU and RAM in use."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from hyperctl.backends.base import Machine
from hyperctl.backends.local import LocalExecutor
from hyperctl.batches import daemon_pid
from hyperctl.client import ApiError, Client
from hyperctl.commands.hosts import machine_line, state_text
from hyperctl.daemon.app import make_app
from hyperctl.daemon.auth import Tokens
from hyperctl.daemon.listener import InFlight
from hyperctl.daemon.scheduler import Scheduler
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchSpec, BatchStatus, Execution, JobSpec, Resource
from hyperctl.store import Store
from tests.conftest import batch_token, hyperctl, wait_for, write_json

GPU_BOX = {"type": "local", "conf": {"cpu": 4, "ram": 1000, "gpu": [0, 1]}}


def gpu_batch(name: str = "h") -> dict[str, Any]:
    """Two sleepers holding one GPU each, one CPU-only sleeper, and a GPU job that must wait."""
    jobs = [
        {"name": "g1", "resource": {"gpu": 1, "ram": 100}, "execution": {"command": "sleep 60"}},
        {"name": "g2", "resource": {"gpu": 1, "cpu": 0.5}, "execution": {"command": "sleep 60"}},
        {"name": "c1", "resource": {"cpu": 1}, "execution": {"command": "sleep 60"}},
        {"name": "waits", "resource": {"gpu": 1}, "execution": {"command": "true"}},
    ]
    return {"name": name, "jobs": jobs, "backend": GPU_BOX, "daemon": {"port": 0}}


def running(batches: Path, name: str = "h") -> set[str]:
    try:
        with sqlite3.connect(f"file:{batches / name / '.hyperctl' / 'state.db'}?mode=ro", uri=True) as db:
            return {n for (n,) in db.execute("SELECT name FROM jobs WHERE status = 'running'")}
    except sqlite3.OperationalError:
        return set()


def hosts_json(name: str = "h") -> list[dict[str, Any]]:
    result = hyperctl("hosts", "-b", name, "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_hosts_shows_running_jobs_and_their_gpus(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "h.json", gpu_batch())
    assert hyperctl("run", "--config", str(config), "--detach").returncode == 0
    try:
        wait_for(lambda: running(batches) == {"g1", "g2", "c1"}, "three jobs to run")

        [box] = hosts_json()
        table = hyperctl("hosts", "-b", "h")
        described = hyperctl("batch", "describe", "h")
        described_json = json.loads(hyperctl("batch", "describe", "h", "--json").stdout)
    finally:
        hyperctl("batch", "kill", "h")

    assert box == {
        "name": "localhost",
        "cpu": 4,
        "ram": 1000,
        "gpus": [0, 1],
        "state": "up",
        "reason": None,
        "jobs": [{"name": "c1", "gpus": []}, {"name": "g1", "gpus": [0]}, {"name": "g2", "gpus": [1]}],
        "gpus_in_use": [0, 1],
        "cpu_used": 2.5,
        "ram_used": 100,
    }
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["MACHINE", "STATE", "JOBS", "GPUS", "IN", "USE", "CPU", "RAM"]
    assert row.split() == ["localhost", "up", "3:", "c1,", "g1,", "g2", "0,1", "of", "0,1", "2.5/4", "100/1000", "MB"]
    line = "  localhost  up; jobs 3: c1, g1, g2; GPUs in use 0,1 of 0,1; CPU 2.5/4; RAM 100/1000 MB"
    assert line in described.stdout.splitlines()
    assert described_json["machines"] == [box]  # the same view as hosts


def test_without_a_daemon_the_store_tells_the_running_jobs(tmp_path: Path, batches: Path) -> None:
    """Its daemon killed -9, the jobs run on: hosts shows them from the store, state unknown;
    once they are killed, none."""
    config = write_json(tmp_path / "h.json", gpu_batch())
    assert hyperctl("run", "--config", str(config), "--detach").returncode == 0
    try:
        wait_for(lambda: running(batches) == {"g1", "g2", "c1"}, "three jobs to run")
        daemon = json.loads(hyperctl("batch", "describe", "h", "--json").stdout)["daemon_pid"]
        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: daemon_pid(BatchDir(batches, "h")) is None, "the daemon to die")

        [orphaned] = hosts_json()
        table = hyperctl("hosts", "-b", "h").stdout
    finally:
        hyperctl("batch", "kill", "h")  # with no daemon: finds and kills the jobs it left
    [ended] = hosts_json()

    assert (orphaned["state"], orphaned["reason"]) == (None, None)
    assert [j["name"] for j in orphaned["jobs"]] == ["c1", "g1", "g2"]
    assert (orphaned["gpus_in_use"], orphaned["cpu_used"], orphaned["ram_used"]) == ([0, 1], 2.5, 100)
    assert table.splitlines()[1].split()[:3] == ["localhost", "-", "3:"]
    assert (ended["state"], ended["jobs"], ended["gpus_in_use"], ended["cpu_used"]) == (None, [], [], 0)
    assert ended["gpus"] == [0, 1] and ended["cpu"] == 4
    line = "  localhost  -; jobs 0; GPUs in use none of 0,1; CPU 0/4; RAM 0/1000 MB"
    assert line in hyperctl("batch", "describe", "h").stdout.splitlines()


def test_unknown_batch_is_one_line_and_exit_2(batches: Path) -> None:
    result = hyperctl("hosts", "-b", "nope")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"hyperctl: error: no batch named 'nope' in {batches} (batches: none)\n"


def test_help_says_what_it_shows() -> None:
    result = hyperctl("hosts", "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: hyperctl hosts")
    assert "running jobs" in result.stdout and "GPUs" in result.stdout


def test_the_api_shows_a_machine_down_with_its_reason(tmp_path: Path) -> None:
    """A machine in backoff (as the SSH backend reports one that cannot be reached) is down, with why;
    its running job still shows. Driven in-process: a local batch has no machine to lose."""
    job = JobSpec("j", {}, Execution("sleep 60"), Resource(gpu=1))
    batch_dir = BatchDir(tmp_path, "s")
    batch_dir.internal.mkdir(parents=True)
    store = Store(batch_dir.db)
    store.sync_jobs([job])
    tokens = Tokens("secret")

    async def main() -> list[dict[str, Any]]:
        executor = LocalExecutor(Machine("box", cpu=2, ram=0, gpus=(0, 1)))
        scheduler = Scheduler(BatchSpec(name="s", jobs=[job]), batch_dir, store, executor, {}, tokens.for_job)
        await scheduler.start()
        [sock] = bind_sockets(0, address="127.0.0.1")
        server = HTTPServer(make_app(scheduler, tokens, InFlight()))
        server.add_sockets([sock])
        try:
            await asyncio.wait_for(_until(lambda: "j" in scheduler.running), 30)
            assert executor.on_machine_down is not None
            executor.on_machine_down("box", "cannot connect to 127.0.0.1:1:\nconnection refused")
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/hyperctl/api/machine"
            response = await AsyncHTTPClient().fetch(url, headers={"Authorization": "Bearer secret"})
            return list(json.loads(response.body)["machines"])
        finally:
            server.stop()
            await scheduler.stop(BatchStatus.KILLED, grace=0)

    [box] = asyncio.run(main())
    store.close()

    assert (box["state"], box["reason"]) == ("down", "cannot connect to 127.0.0.1:1:\nconnection refused")
    assert box["jobs"] == [{"name": "j", "gpus": [0]}] and box["gpus_in_use"] == [0]
    assert state_text(box) == "down: cannot connect to 127.0.0.1:1: connection refused"  # one line
    assert machine_line(box).startswith("down: cannot connect to 127.0.0.1:1: connection refused; jobs 1: j;")


def test_the_api_needs_the_batch_token(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "h.json", gpu_batch())
    assert hyperctl("run", "--config", str(config), "--detach").returncode == 0
    try:
        portal = json.loads(hyperctl("batch", "describe", "h", "--json").stdout)["portal"]
        job_token = Tokens(batch_token(batches, "h")).for_job("g1")  # genuine, but reads only its job

        with pytest.raises(ApiError) as refused:
            Client(portal, job_token).machines()
        machines = Client(portal, batch_token(batches, "h")).machines()
    finally:
        hyperctl("batch", "kill", "h")

    assert refused.value.status == 401
    assert [m["name"] for m in machines] == ["localhost"]


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


def test_without_a_daemon_the_machines_come_from_the_store_not_from_asking_again(tmp_path: Path, batches: Path) -> None:
    """`gpu: auto` runs nvidia-smi in the daemon, once: `hosts` and `batch describe` show what it
    found, and run nothing themselves."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "nvidia-smi-ran"
    (fake / "nvidia-smi").write_text(f"#!/bin/sh\necho ran >> {marker}\nprintf '0\\n1\\n'\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    doc = {
        "name": "h",
        "jobs": [{"execution": {"command": "true"}}],
        "backend": {"type": "local", "conf": {"cpu": 2, "ram": 500, "gpu": "auto"}},
        "daemon": {"port": 0},
    }
    config = write_json(tmp_path / "h.json", doc)
    assert hyperctl("run", "--config", str(config), env=env).returncode == 0
    assert marker.exists()  # the daemon asked
    marker.unlink()

    shown = hyperctl("hosts", "-b", "h", "--json", env=env)
    described = hyperctl("batch", "describe", "h", "--json", env=env)

    assert shown.returncode == 0, shown.stderr
    assert described.returncode == 0, described.stderr
    assert not marker.exists(), "a reading command ran nvidia-smi"
    [box] = json.loads(shown.stdout)
    assert (box["name"], box["cpu"], box["ram"], box["gpus"], box["state"]) == ("localhost", 2, 500, [0, 1], None)
    assert json.loads(described.stdout)["machines"] == [box]


def test_a_store_from_before_machines_were_saved_shows_the_ones_it_reached(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "h.json", {**gpu_batch(), "jobs": [{"execution": {"command": "true"}}]})
    assert hyperctl("run", "--config", str(config)).returncode == 0
    with sqlite3.connect(batches / "h" / ".hyperctl" / "state.db") as db:  # as an older hyperctl left it
        db.execute("DELETE FROM meta WHERE key = 'machines'")
        found = {"localhost": {"cpu": 4, "ram": 1000, "gpus": [0, 1]}}
        db.execute("INSERT INTO meta (key, value) VALUES ('capacity', ?)", (json.dumps(found),))

    [box] = hosts_json()

    assert (box["name"], box["cpu"], box["ram"], box["gpus"], box["state"], box["jobs"]) == (
        "localhost",
        4,
        1000,
        [0, 1],
        None,
        [],
    )
