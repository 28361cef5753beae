"""Metrics of remote jobs, against real sshd hosts: live while the job runs (over the machine's
own connection), whole once it ends, from report() and from stdout's scalars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json
from tests.sshhosts import Host, hosts_for_module
from tests.test_ssh import job, remote_batch

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")

REMOTE_ROOT = f".hyperctl-test-metrics-{os.getpid()}"
REPORT = '/usr/bin/python3 -S -c "import hyperctl; hyperctl.report(loss={})"'  # no hyperctl installed there


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found


def start(shared: Path, hosts: list[Host], command: str, **more: Any) -> subprocess.Popen[str]:
    doc = {**remote_batch(hosts, [job(command, name="m")], remote_root=REMOTE_ROOT), **more}
    config = write_json(shared / "b.json", doc)
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )


def metrics() -> list[dict[str, Any]]:
    listed = hyperctl("job", "metrics", "r", "m", "--json")
    if listed.returncode != 0:
        return []
    return [{k: v for k, v in p.items() if k != "t"} for p in json.loads(listed.stdout)]


def status() -> str:
    listed = hyperctl("job", "list", "-b", "r", "--json")
    return str(json.loads(listed.stdout)[0]["status"]) if listed.returncode == 0 else ""


def test_a_running_remote_job_s_metrics_are_live_and_whole_at_its_end(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    gate = shared / "gate"
    command = (
        f"{REPORT.format(0.5)}; echo 'acc: 0.75'; while [ ! -e {gate} ]; do sleep 0.05; done; "
        f"{REPORT.format(0.25)}; printf 'acc: 0.875\\nacc: 0.9'"  # the last line is never whole
    )
    run = start(shared, hosts, command)

    wait_for(lambda: metrics() == [{"step": 0, "loss": 0.5}, {"step": 0, "acc": 0.75}], "live metrics", 20)
    assert status() == "running"  # seen while it runs, before anything came home
    assert not (attempt_dir(batches, "r", "m") / "stdout").exists()
    gate.touch()

    assert run.wait(timeout=30) == 0, run.communicate()[1]
    assert metrics() == [
        {"step": 0, "loss": 0.5},
        {"step": 0, "loss": 0.25},
        {"step": 0, "acc": 0.75},
        {"step": 1, "acc": 0.875},
    ]
    home = attempt_dir(batches, "r", "m")
    on_host = hosts[0].home / REMOTE_ROOT / "r" / ".hyperctl" / "jobs" / "m" / "attempt-1"
    assert (home / "metrics").read_bytes() == (on_host / "metrics").read_bytes()
    assert sorted(p.name for p in home.iterdir()) == ["exitcode", "metrics", "stderr", "stdout"]  # no live copies left


def test_a_remote_job_s_metrics_come_home_when_it_ends_fast(hosts: list[Host], shared: Path, batches: Path) -> None:
    run = start(shared, hosts, f"{REPORT.format(2)}; echo 'loss: 3'; echo 'acc: 1'", metrics={"output": False})

    assert run.wait(timeout=30) == 0, run.communicate()[1]
    assert metrics() == [{"step": 0, "loss": 2.0}]  # stdout's scalars off: `acc` is not one


def test_live_metrics_survive_a_dropped_connection(hosts: list[Host], shared: Path, batches: Path) -> None:
    """The connection drops while the job runs: the copies go on from where they stood, and at the
    end nothing is lost or counted twice."""
    gate, more = shared / "gate", shared / "more"
    command = (
        f"echo 'loss: 1'; while [ ! -e {more} ]; do sleep 0.05; done; echo 'loss: 2'; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; echo 'loss: 3'"
    )
    run = start(shared, hosts, command)
    wait_for(lambda: metrics() == [{"step": 0, "loss": 1.0}], "live metrics", 20)
    for session in psutil.Process(hosts[0].sshd_pid).children():  # the daemon's connection, as a dropped link would
        session.kill()
    more.touch()

    wait_for(lambda: len(metrics()) == 2, "live metrics after the drop", 20)
    gate.touch()

    assert run.wait(timeout=30) == 0, run.communicate()[1]
    assert metrics() == [{"step": i, "loss": float(i + 1)} for i in range(3)]


def test_a_remote_job_s_report_through_the_api_lands_in_its_file_on_the_host(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    from hyperctl.daemon.auth import Tokens
    from tests.conftest import batch_token, wait_for_portal
    from tests.test_report_api import post

    gate = shared / "gate"
    run = start(shared, hosts, f"while [ ! -e {gate} ]; do sleep 0.05; done")
    portal = wait_for_portal(run)
    wait_for(lambda: status() == "running", "the remote job to run")

    sent = post(portal, "m", Tokens(batch_token(batches, "r")).for_job("m"), b'{"step": 2, "loss": 0.125}')

    assert sent == (200, {"job": "m", "attempt": 1, "points": 1})
    wait_for(lambda: metrics() == [{"step": 2, "loss": 0.125}], "the point, live from the host", 20)
    gate.touch()
    assert run.wait(timeout=30) == 0, run.communicate()[1]
    on_host = hosts[0].home / REMOTE_ROOT / "r" / ".hyperctl" / "jobs" / "m" / "attempt-1" / "metrics"
    assert [json.loads(line)["loss"] for line in on_host.read_text().splitlines()] == [0.125]
    assert metrics() == [{"step": 2, "loss": 0.125}]
