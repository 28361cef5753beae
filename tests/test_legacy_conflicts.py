"""A key of the older Hypernets shape given again the new way is an error naming it, never merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import hyperctl, write_json


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            {"server": {"host": "127.0.0.1", "port": 0}, "daemon": {"port": 8061}},
            "hyperctl: error: server.port: given twice: here (the older Hypernets shape) and as daemon.port",
        ),
        (
            {"scheduler": {"exit_on_finish": True}, "daemon": {"port": 0, "exit_on_finish": False}},
            "hyperctl: error: scheduler.exit_on_finish: given twice: here (the older Hypernets shape) and as "
            "daemon.exit_on_finish",
        ),
    ],
)
def test_a_key_given_both_ways_is_an_error(tmp_path: Path, batches: Path, extra: dict, line: str) -> None:
    doc = {"name": "both", "jobs": [{"name": "a", "execution": {"command": "true"}}], **extra}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "both.json", doc)))

    assert (result.returncode, result.stderr.splitlines()) == (2, [line])
    assert not batches.exists()


def test_a_template_with_server_and_daemon_port_is_an_error(tmp_path: Path) -> None:
    template = {"params": {"a": [1]}, "command": "true", "server": {"port": 0}, "daemon": {"port": 1}}

    result = hyperctl("generate", "--template", str(write_json(tmp_path / "t.json", template)), "--output", "-")

    assert result.returncode == 2
    assert "server.port: given twice" in result.stderr and "daemon.port" in result.stderr
