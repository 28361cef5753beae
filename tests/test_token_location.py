"""Where the CLI looks for a batch's token, and what reading commands do when it is not there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import hyperctl, write_json


@pytest.fixture
def running(tmp_path: Path, batches: Path) -> Iterator[str]:
    """A batch whose daemon runs a long job (started with the test's XDG_STATE_HOME)."""
    doc = {"name": "r", "jobs": [{"name": "long", "execution": {"command": "sleep 60"}}], "daemon": {"port": 0}}
    result = hyperctl("run", "--config", str(write_json(tmp_path / "r.json", doc)), "--detach")
    assert result.returncode == 0, result.stderr
    yield "r"
    hyperctl("batch", "kill", "r")


def test_a_relative_xdg_state_home_is_ignored(tmp_path: Path, batches: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    doc = {"name": "rel", "jobs": [{"name": "a", "execution": {"command": "true"}}], "daemon": {"port": 0}}
    result = hyperctl(
        "run",
        "--config",
        str(write_json(tmp_path / "rel.json", doc)),
        cwd=cwd,
        env={"XDG_STATE_HOME": "state", "HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert not (cwd / "state").exists()  # not under whatever folder the command ran in
    assert len(list((home / ".local/state/hyperctl/tokens").iterdir())) == 1


def test_reading_commands_of_a_batch_whose_token_is_elsewhere(running: str, tmp_path: Path) -> None:
    other = {"XDG_STATE_HOME": str(tmp_path / "other")}
    looked = str(tmp_path / "other" / "hyperctl" / "tokens")

    described = hyperctl("batch", "describe", running, "--json", env=other)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["status"] == "running"
    [note] = described.stderr.splitlines()
    assert looked in note and "XDG_STATE_HOME" in note and "what the batch folder tells" in note

    hosts = hyperctl("hosts", running, env=other)
    assert hosts.returncode == 0, hosts.stderr
    assert "localhost" in hosts.stdout or "local" in hosts.stdout
    [note] = hosts.stderr.splitlines()
    assert looked in note

    watched = hyperctl("batch", "watch", running, env=other)
    assert watched.returncode == 2
    [line] = watched.stderr.splitlines()
    assert looked in line and "started with another XDG_STATE_HOME?" in line
