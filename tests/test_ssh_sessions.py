"""A host whose sshd refuses a new session (MaxSessions): the job waits for it, nothing is left running.

Its own module and host: an sshd that allows one session per connection, unlike the other
SSH tests' hosts (64).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, write_json
from tests.sshhosts import Host, ssh_hosts

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")


@pytest.fixture(scope="module")
def one_session_host() -> Iterator[Host]:
    workdir = Path(tempfile.mkdtemp(prefix="hyperctl-sessions-"))
    try:
        with ssh_hosts(1, workdir, max_sessions=1) as (host,):
            yield host
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _batch(host: Host, shared: Path, name: str, jobs: list[dict[str, Any]], max_jobs: int) -> Path:
    """A batch file of these jobs on the one-session host, max_jobs at once."""
    backend = {
        "type": "remote",
        "conf": {
            "machines": [host.machine(cpu=max_jobs, max_jobs=max_jobs)],
            "known_hosts": str(host.known_hosts),
            "remote_root": str(shared / "remote"),
        },
    }
    doc = {"name": name, "jobs": jobs, "daemon": {"port": 0}, "backend": backend}
    return write_json(shared / f"{name}.json", doc)


def test_a_session_the_host_refuses_sends_the_job_back_to_wait(
    one_session_host: Host, shared: Path, batches: Path
) -> None:
    """max_jobs 2, yet the host's sshd takes one session per connection: the second start is
    refused (a ChannelException). That job is not started, nor failed: it waits, the machine is
    down for a while, and it runs once a session is free. Every job succeeds; no attempt is left
    `running`."""
    host = one_session_host
    jobs = [{"name": f"j{i}", "execution": {"command": f"sleep 1; echo {i}"}} for i in range(3)]
    config = _batch(host, shared, "s", jobs, max_jobs=2)

    result = hyperctl("run", "--config", str(config), "--json", timeout=90)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["succeeded"] == 3
    assert f"machine {host.address} is down: " in result.stderr and "MaxSessions" in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    listed = json.loads(hyperctl("job", "list", "-b", "s", "--json").stdout)
    assert {j["name"]: (j["status"], j["attempts"]) for j in listed} == {f"j{i}": ("succeeded", 1) for i in range(3)}
    for i in range(3):
        described = json.loads(hyperctl("job", "describe", "-b", "s", "-j", f"j{i}", "--json").stdout)
        assert [a["status"] for a in described["attempts"]] == ["succeeded"]
        assert hyperctl("job", "logs", "-b", "s", "-j", f"j{i}").stdout == f"{i}\n"
    assert json.loads(hyperctl("batch", "describe", "s", "--json").stdout)["counts"]["running"] == 0


def test_a_liveness_check_the_host_refuses_is_an_answer(one_session_host: Host, shared: Path, batches: Path) -> None:
    """The job holds the connection's only session: the liveness check's own session is refused.
    A refusal is an answer, not silence: the job is not lost."""
    host = one_session_host
    backend = {
        "type": "remote",
        "conf": {
            "machines": [host.machine()],
            "known_hosts": str(host.known_hosts),
            "remote_root": str(shared / "remote"),
            "liveness_interval": 0.5,
        },
    }
    doc = {"name": "l", "jobs": [{"name": "j", "execution": {"command": "sleep 2; echo done"}}], "backend": backend}
    config = write_json(shared / "l.json", {**doc, "daemon": {"port": 0}})

    result = hyperctl("run", "--config", str(config), timeout=60)

    assert result.returncode == 0, result.stderr
    assert "does not answer" not in result.stderr, result.stderr
    described = json.loads(hyperctl("job", "describe", "-b", "l", "-j", "j", "--json").stdout)
    assert [(a["status"], a["exit_code"]) for a in described["attempts"]] == [("succeeded", 0)]
    assert hyperctl("job", "logs", "-b", "l", "-j", "j").stdout == "done\n"


def test_a_job_starts_on_the_session_the_last_one_just_freed(
    one_session_host: Host, shared: Path, batches: Path
) -> None:
    """One session per connection, one job at a time: each start follows the end of the job before
    on the same connection, while sshd may still be freeing that job's session. No start is
    refused for it (the machine is never down), and every job runs once."""
    jobs = [{"name": f"q{i}", "execution": {"command": f"echo {i}"}} for i in range(12)]
    config = _batch(one_session_host, shared, "q", jobs, max_jobs=1)

    result = hyperctl("run", "--config", str(config), "--json", timeout=90)

    assert result.returncode == 0, result.stderr
    assert "is down" not in result.stderr, result.stderr
    listed = json.loads(hyperctl("job", "list", "-b", "q", "--json").stdout)
    assert {j["name"]: (j["status"], j["attempts"]) for j in listed} == {f"q{i}": ("succeeded", 1) for i in range(12)}
