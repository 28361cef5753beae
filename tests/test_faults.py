"""Faults of the batch's store and folder: a full disk, a damaged or empty state.db, files that are
folders, an internal error. Each ends in one line, loses nothing and is recoverable."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import hyperctl, start_hyperctl, wait_for, write_json


def _jobs(batches: Path, batch: str) -> dict[str, tuple[str, int]]:
    """Each job's status and attempts, as the store has them ({} before the store is made)."""
    path = batches / batch / ".hyperctl" / "state.db"
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {name: (status, n) for name, status, n in db.execute("SELECT name, status, attempts FROM jobs")}


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A batches data dir on a 2 MB tmpfs of its own (we are root in CI), to fill for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        monkeypatch.setenv("HYPERCTL_BATCHES_DATA_DIR", str(mount / "batches"))
        yield mount
    finally:
        from tests.conftest import kill_leftovers

        kill_leftovers(mount / "batches")
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_a_full_disk_stops_new_starts_keeps_running_jobs_and_resume_goes_on(small_disk: Path, tmp_path: Path) -> None:
    batches = small_disk / "batches"
    flags = tmp_path / "flags"
    flags.mkdir()
    wait = "while [ ! -e {f} ]; do sleep 0.05; done"
    config = write_json(
        tmp_path / "b.json",
        {
            "name": "full",
            "backend": {"type": "local", "conf": {"cpu": 2}},
            "jobs": [
                {"name": "long", "execution": {"command": wait.format(f=flags / "long") + "; echo long"}},
                # It writes nothing: the disk is full when it ends.
                {"name": "short", "execution": {"command": wait.format(f=flags / "short")}},
                {"name": "later1", "execution": {"command": "echo later1"}},
                {"name": "later2", "execution": {"command": "echo later2"}},
            ],
        },
    )
    proc = start_hyperctl("run", "--config", str(config))
    try:
        wait_for(lambda: _jobs(batches, "full").get("short", ("", 0))[0] == "running", "both jobs to run")
        wait_for(lambda: _jobs(batches, "full")["long"][0] == "running", "both jobs to run")
        filler = _fill(small_disk)
        (flags / "short").touch()  # its end comes while the disk is full
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "no new job starts" in line:
                break
        assert "full" in seen[-1] and "batch resume full" in seen[-1], seen
        time.sleep(0.3)
        assert proc.poll() is None  # the long job runs on: not killed, and the run waits for it
        filler.unlink()
        (flags / "long").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = "".join(seen) + err
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "stopped starting jobs:" in err and "is full" in err
    jobs = _jobs(batches, "full")
    assert jobs["long"] == ("succeeded", 1)
    assert jobs["later1"][1] == 0 and jobs["later2"][1] == 0  # never started

    resumed = hyperctl("batch", "resume", "full")
    assert resumed.returncode == 0, resumed.stderr
    jobs = _jobs(batches, "full")
    assert {name: s for name, (s, _) in jobs.items()} == dict.fromkeys(jobs, "succeeded")
    assert jobs["long"][1] == 1 and jobs["short"][1] == 1  # nothing ran twice


def test_a_full_disk_at_start_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    config = write_json(tmp_path / "b.json", {"name": "x", "jobs": [{"name": "a", "execution": {"command": "true"}}]})
    filler = _fill(small_disk)
    result = hyperctl("run", "--config", str(config), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    filler.unlink()
    again = hyperctl("run", "--config", str(config), timeout=60)
    assert again.returncode == 0, again.stderr


def test_an_internal_error_before_an_attempt_is_not_retried_in_a_loop(batches: Path, tmp_path: Path) -> None:
    config = write_json(
        tmp_path / "b.json",
        {"name": "loop", "scheduler": {"max_retries": 2}, "jobs": [{"name": "a", "execution": {"command": "true"}}]},
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    with contextlib.closing(sqlite3.connect(batches / "loop" / ".hyperctl" / "state.db")) as db:
        db.execute("UPDATE jobs SET status = 'pending'")  # as `batch retry` leaves it
        db.execute("CREATE TRIGGER boom BEFORE INSERT ON attempts BEGIN SELECT RAISE(ABORT, 'boom'); END")
        db.commit()
    result = hyperctl("batch", "resume", "loop", timeout=20)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) < 10, result.stderr
    assert "the batch's store is damaged: boom" in result.stderr
