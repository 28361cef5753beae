"""Typed exceptions for the daemon's answers: each HTTP error a real daemon gives, as the client
raises it (one class per status, all HyperctlErrors, with the daemon's one-line message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperctl import errors
from hyperctl.client import Client, live_client
from hyperctl.layout import BatchDir
from tests.conftest import hyperctl, wait_for, write_json


@pytest.fixture
def client(tmp_path: Path, batches: Path) -> Client:
    """A live daemon's client: job `quick` has ended, job `slow` runs (and left its job token)."""
    slow = 'echo "$HYPERCTL_JOB_TOKEN" > "$HYPERCTL_JOB_DATA_DIR/token"; sleep 60'
    doc = {
        "name": "b",
        "daemon": {"port": 0},
        "jobs": [
            {"name": "quick", "execution": {"command": "true"}},
            {"name": "slow", "execution": {"command": slow, "kill_grace": 0}},
        ],
    }
    started = hyperctl("run", "--detach", "--config", str(write_json(tmp_path / "b.json", doc)))
    assert started.returncode == 0, started.stderr
    client = live_client(BatchDir(batches, "b"))
    wait_for(lambda: client.job("quick")["status"] == "succeeded", "job quick to end")
    wait_for(lambda: (batches / "b" / "slow" / "token").exists(), "job slow to run")
    return client


def test_each_error_status_of_the_daemon_is_its_own_exception(client: Client, batches: Path) -> None:
    job_token = (batches / "b" / "slow" / "token").read_text().strip()
    raised = {}
    calls = {
        "bad request": lambda: client.request("GET", "job", {"status": "bogus"}),
        "bad token": lambda: Client(client.portal, client.token + "x").jobs(),
        "another job's": lambda: Client(client.portal, job_token).job("quick"),
        "no such job": lambda: client.job("nope"),
        "kill of an ended job": lambda: client.kill_job("quick"),
        "wrong method": lambda: client.request("PUT", "job"),
    }
    for what, call in calls.items():
        with pytest.raises(errors.ApiError) as e:
            call()
        raised[what] = (type(e.value).__name__, e.value.status, str(e.value))

    assert raised == {
        "bad request": (
            "BadRequest",
            400,
            "status: must be one of pending, running, succeeded, failed, killed, timeout, lost, not 'bogus'",
        ),
        "bad token": ("Unauthorized", 401, "bad token"),
        "another job's": ("Forbidden", 403, "a job's token reads only that job"),
        "no such job": ("NotFound", 404, "no job named 'nope' in this batch"),
        "kill of an ended job": ("Conflict", 409, "job 'quick' already ended: succeeded"),
        "wrong method": ("ApiError", 405, "Method Not Allowed"),  # no class of its own: the base
    }
    for cls in (errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound, errors.Conflict):
        assert issubclass(cls, errors.ApiError) and issubclass(cls, errors.HyperctlError)
    # The job token still reads its own job: none of that changed anything.
    assert Client(client.portal, job_token).job("slow")["status"] == "running"


def test_the_typed_exceptions_are_importable_from_hyperctl_itself(client: Client) -> None:
    import hyperctl

    with pytest.raises(hyperctl.NotFound):
        client.job("nope")
    with pytest.raises(hyperctl.Conflict):
        client.kill_job("quick")
    assert client.kill_job("slow")["status"] == "killed"
