"""The daemon's HTTP API against hostile clients, over raw sockets to a real daemon: a bad byte in
a token, an oversized request head, slowloris connections."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import batch_token, start_hyperctl, wait_for, wait_for_portal, write_json

TIMEOUT = 1.0  # daemon.request_timeout for these tests


@pytest.fixture
def daemon(batches: Path, tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A running batch (one job waiting for a file), its API address, and that file."""
    flag = tmp_path / "go"
    config = write_json(
        tmp_path / "b.json",
        {
            "name": "web",
            "daemon": {"port": 0, "request_timeout": TIMEOUT},
            "jobs": [{"name": "a", "execution": {"command": f"while [ ! -e {flag} ]; do sleep 0.05; done"}}],
        },
    )
    proc = start_hyperctl("run", "--config", str(config))
    try:
        url = urlsplit(wait_for_portal(proc))
        assert url.hostname is not None and url.port is not None
        yield url.hostname, url.port, flag
        flag.touch()
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _attempts(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


def _exchange(address: tuple[str, int], request: bytes, sock: socket.socket | None = None) -> tuple[int, dict]:
    """Send a request, read one whole answer: its status and JSON body."""
    sock = sock or socket.create_connection(address, timeout=10)
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed with no answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("path", ["/hyperctl/api/job/a", "/hyperctl/api/batch"])
def test_a_non_ascii_byte_in_the_token_is_401_and_the_connection_lives(
    daemon: tuple[str, int, Path], batches: Path, path: str
) -> None:
    host, port, _ = daemon
    bad = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\xe9def\r\n\r\n".encode("latin-1")
    status, body = _exchange((host, port), bad)
    assert (status, body["status"]) == (401, 401)
    token = batch_token(batches, "web")
    good = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    assert _exchange((host, port), good)[0] == 200  # and the daemon answers on


def test_a_request_head_over_64_kib_is_431_with_json(daemon: tuple[str, int, Path]) -> None:
    host, port, _ = daemon
    request = b"GET /hyperctl/api/batch HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    status, body = _exchange((host, port), request)
    assert status == 431
    assert body == {"error": "request head over 64 KiB", "status": 431}


def test_slowloris_connections_are_closed_after_the_request_timeout(daemon: tuple[str, int, Path]) -> None:
    host, port, _ = daemon
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(64)]
    try:
        for sock in socks:
            sock.sendall(b"GET /hyperctl/api/batch HTTP/1.1\r\nHost: x\r\n")  # never ends its head
        socks.append(socket.create_connection((host, port), timeout=10))  # and one that sends nothing
        start = time.monotonic()
        for sock in socks:
            assert sock.recv(1024) == b""  # closed by the daemon (recv would time out after 10 s)
        assert time.monotonic() - start < TIMEOUT + 5
    finally:
        for sock in socks:
            sock.close()


def test_a_store_damaged_under_a_running_daemon_is_503_json_not_a_traceback(
    daemon: tuple[str, int, Path], batches: Path
) -> None:
    host, port, _ = daemon
    db_path = batches / "web" / ".hyperctl" / "state.db"
    wait_for(lambda: _attempts(db_path), "the job's attempt to be in the store")  # "API at" may come first
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        db.execute("UPDATE attempts SET status = 'weird'")
        db.commit()
    token = batch_token(batches, "web")
    for path in ("/hyperctl/api/job", "/hyperctl/api/job/a"):  # a handler, and the fast path
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        status, body = _exchange((host, port), request)
        assert status == 503, body
        assert "the batch's store is damaged" in body["error"]
    with contextlib.closing(sqlite3.connect(batches / "web" / ".hyperctl" / "state.db")) as db:
        db.execute("UPDATE attempts SET status = 'running'")  # mended: the batch ends as usual
        db.commit()
