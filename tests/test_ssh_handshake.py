"""A machine whose sshd drops the connection mid-handshake (a host dying, an sshd restarting): it is
down, and every line that names why says something."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import hyperctl, write_json


@pytest.fixture
def drops_after_banner() -> Iterator[int]:
    """A port on loopback where a "server" sends an SSH banner, then closes the connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn, contextlib.suppress(OSError):
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                    conn.recv(4096)  # the client's banner, then we are gone

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_connection_closed_mid_handshake_is_named_in_one_line(
    drops_after_banner: int, tmp_path: Path, batches: Path
) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp_path / "known_hosts").touch()
    machine = {"hostname": "127.0.0.1", "port": drops_after_banner, "username": "u", "ssh_rsa_file": str(key)}
    backend = {"type": "remote", "conf": {"machines": [machine], "known_hosts": str(tmp_path / "known_hosts")}}
    jobs = [{"name": "j", "execution": {"command": "true"}}]
    config = write_json(tmp_path / "b.json", {"name": "h", "jobs": jobs, "backend": backend, "daemon": {"port": 0}})

    result = hyperctl("run", "--config", str(config), timeout=60)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    name = f"127.0.0.1:{drops_after_banner}"
    why = f"u@{name}: the connection closed during the SSH handshake"
    assert f"machine {name} is down: {why}" in result.stderr, result.stderr
    assert f"every machine is down; 1 job not started:\n    {name}: {why}\n" in result.stderr, result.stderr
    assert json.loads(hyperctl("job", "list", "-b", "h", "--json").stdout)[0]["status"] == "pending"
