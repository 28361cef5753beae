"""Running remote attempts' growing files, brought home by the shell program the host runs
(sshscripts.mirror), run here by sh on real files, and appended to the live copies (mirror.py)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from hyperctl.backends import mirror


async def _run(script: str) -> tuple[int, bytes, bytes]:
    done = subprocess.run(["sh", "-c", script], capture_output=True)
    return done.returncode, done.stdout, done.stderr


def bring_home(host: Path, home: Path, names: tuple[str, ...] = ("metrics", "stdout")) -> None:
    files = [(home, PurePosixPath(host), name) for name in names]
    asyncio.run(mirror.bring_home(files, _run, lambda i: True))


def test_new_bytes_come_home_from_where_the_copies_stand(tmp_path: Path) -> None:
    host, home = tmp_path / "host dir", tmp_path / "home" / "attempt-1"
    host.mkdir()
    (host / "metrics").write_bytes(b'{"step":0,"loss":1}\n{"st')

    bring_home(host, home)  # no stdout there yet: nothing of it, and no copy

    assert (home / "metrics.live").read_bytes() == b'{"step":0,"loss":1}\n{"st'
    assert not (home / "stdout.live").exists()
    with open(host / "metrics", "ab") as f:
        f.write(b'ep":1,"loss":2}\n')
    (host / "stdout").write_bytes(b"loss: 3\n")

    bring_home(host, home)
    bring_home(host, home)  # nothing new: nothing written twice

    assert (home / "metrics.live").read_bytes() == (host / "metrics").read_bytes()
    assert (home / "stdout.live").read_bytes() == b"loss: 3\n"
    mirror.remove_live(home, ("metrics", "stdout"))
    assert sorted(p.name for p in home.iterdir()) == []


def test_a_request_brings_at_most_its_limit_and_the_rest_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, home = tmp_path / "host", tmp_path / "home"
    host.mkdir()
    data = bytes(range(256)) * 40  # 10 KiB, every byte value
    (host / "stdout").write_bytes(data)
    monkeypatch.setattr(mirror, "FILE_LIMIT", 4096)

    bring_home(host, home, ("stdout",))
    assert (home / "stdout.live").read_bytes() == data[:4096]
    bring_home(host, home, ("stdout",))
    bring_home(host, home, ("stdout",))

    assert (home / "stdout.live").read_bytes() == data


def test_a_copy_that_changed_meanwhile_is_left_alone(tmp_path: Path) -> None:
    host, home = tmp_path / "host", tmp_path / "home"
    host.mkdir()
    home.mkdir()
    (host / "metrics").write_bytes(b"abc\n")
    grown = mirror.wanted([(home / "metrics.live", PurePosixPath(host / "metrics"))])
    (home / "metrics.live").write_bytes(b"xy")  # it grew since its size was asked

    mirror.append(list(grown), b"0 4\nabc\n")

    assert (home / "metrics.live").read_bytes() == b"xy"
