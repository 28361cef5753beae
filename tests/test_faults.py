"""Faults of the batch's store and folder: a full disk, a damaged or empty state.db, files that are
folders, an internal error. Each ends in one line, loses nothing and is recoverable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperctl.backends.base import Handle, Launch, Machine
from hyperctl.backends.local import LocalExecutor
from hyperctl.daemon.scheduler import Scheduler
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchSpec, BatchStatus, Execution, JobSpec, JobStatus
from hyperctl.store import Store
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
    described = hyperctl("batch", "describe", "full")
    assert (
        "cannot use the batch's store: database or disk is full; `hyperctl batch resume full` goes on"
        in described.stdout
    )

    resumed = hyperctl("batch", "resume", "full")
    assert resumed.returncode == 0, resumed.stderr
    jobs = _jobs(batches, "full")
    assert {name: s for name, (s, _) in jobs.items()} == dict.fromkeys(jobs, "succeeded")
    assert jobs["long"][1] == 1 and jobs["short"][1] == 1  # nothing ran twice
    assert "stopped" not in hyperctl("batch", "describe", "full").stdout


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


def _damage_by_sql(sql: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute(sql)
            conn.commit()

    return damage


def _overwrite(offset: int, data: bytes) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        with open(db, "r+b") as f:
            f.seek(offset)
            f.write(data)

    return damage


def _make_folder(db: Path) -> None:
    db.unlink()
    db.mkdir()


DAMAGES = {
    "empty": lambda db: db.write_bytes(b""),
    "truncated": lambda db: os.truncate(db, 10_000),
    "garbage header": _overwrite(0, b"\xde\xad" * 50),
    "a folder": _make_folder,
    "unknown job status": _damage_by_sql("UPDATE jobs SET status = 'weird' WHERE name = 'a'"),
    "unknown attempt status": _damage_by_sql("UPDATE attempts SET status = 'weird'"),
    "unknown batch status": _damage_by_sql("UPDATE meta SET value = '\"weird\"' WHERE key = 'status'"),
    "bad json": _damage_by_sql("UPDATE meta SET value = '{' WHERE key = 'status'"),
    "missing table": _damage_by_sql("DROP TABLE attempts"),
}
COMMANDS = [
    ("job", "list", "-b", "dmg"),
    ("job", "describe", "-b", "dmg", "-j", "a"),
    ("job", "logs", "-b", "dmg", "-j", "a"),
    ("job", "kill", "-b", "dmg", "-j", "a"),
    ("batch", "describe", "dmg"),
    ("batch", "watch", "dmg"),
    ("batch", "resume", "dmg"),
    ("batch", "retry", "dmg"),
    ("run", "--config", "{config}"),
]


READERS = {"list", "describe", "logs", "watch"}
_BOOKKEEPING = ("lock", "daemon.log", "state.db-wal", "state.db-shm")  # the pid of the last daemon, its log


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
        if p.name not in _BOOKKEEPING
    }


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_store_is_one_line_from_every_command_and_nothing_runs_again(
    batches: Path, tmp_path: Path, damage: str
) -> None:
    config = write_json(
        tmp_path / "b.json",
        {
            "name": "dmg",
            "jobs": [
                {"name": "a", "execution": {"command": "echo a"}},
                {"name": "b", "execution": {"command": "echo b"}},
            ],
        },
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    db = batches / "dmg" / ".hyperctl" / "state.db"
    for leftover in (db.with_name("state.db-wal"), db.with_name("state.db-shm")):
        leftover.unlink(missing_ok=True)
    DAMAGES[damage](db)
    before = _snapshot(batches / "dmg")
    refused = set()
    for command in COMMANDS:
        args = [a.format(config=config) for a in command]
        result = hyperctl(*args, timeout=30)
        assert "Traceback" not in result.stderr, args
        if result.returncode == 0 and command[1] in READERS:
            continue  # it read nothing of the damaged part (a job's rows, or the batch's meta)
        assert (result.returncode, result.stdout) == (2, ""), (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "the batch's store is damaged: " in lines[0], (args, result.stderr)
        assert "nothing was changed" in lines[0]
        assert _snapshot(batches / "dmg") == before, args  # nothing ran again, nothing was written
        refused.add(command[:2])
    assert ("job", "list") in refused or ("batch", "describe") in refused


def test_a_lost_store_of_a_batch_that_ran_is_refused(batches: Path, tmp_path: Path) -> None:
    """With no store at all, its records still there: not a new batch (it would run all again)."""
    config = write_json(
        tmp_path / "b.json", {"name": "lost", "jobs": [{"name": "a", "execution": {"command": "true"}}]}
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    for path in (batches / "lost" / ".hyperctl").glob("state.db*"):
        path.unlink()
    result = hyperctl("run", "--config", str(config))
    assert result.returncode == 2
    assert "the batch's store is damaged: it is missing" in result.stderr
    assert not (batches / "lost" / ".hyperctl" / "jobs" / "a" / "attempt-2").exists()


@pytest.mark.parametrize("name", ["token", "lock"])
def test_a_folder_in_place_of_the_token_or_lock_is_one_line(batches: Path, tmp_path: Path, name: str) -> None:
    config = write_json(tmp_path / "b.json", {"name": "f", "jobs": [{"name": "a", "execution": {"command": "true"}}]})
    assert hyperctl("run", "--config", str(config)).returncode == 0
    batch_dir = BatchDir(batches, "f")
    path = batch_dir.token_file if name == "token" else batch_dir.lock_file
    path.unlink()
    path.mkdir()
    for args in (("batch", "resume", "f"), ("run", "--config", str(config))):
        result = hyperctl(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    path.rmdir()  # the clean-up of the fixture reads the lock


def test_a_read_only_batch_folder_can_still_be_read(small_disk: Path, tmp_path: Path) -> None:
    """On a file system mounted read-only (root ignores file modes), SQLite cannot make the -shm
    file a WAL reader needs: the store is read as immutable."""
    config = write_json(
        tmp_path / "b.json", {"name": "ro", "jobs": [{"name": "a", "execution": {"command": "echo hi"}}]}
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    listed = hyperctl("job", "list", "-b", "ro")
    assert listed.returncode == 0, listed.stderr
    assert "succeeded" in listed.stdout
    described = hyperctl("batch", "describe", "ro")
    assert described.returncode == 0 and "finished" in described.stdout, described.stderr
    logs = hyperctl("job", "logs", "-b", "ro", "-j", "a")
    assert (logs.returncode, logs.stdout) == (0, "hi\n"), logs.stderr


def test_resume_after_a_hand_edit_of_batch_json_never_runs_a_succeeded_job_again(batches: Path, tmp_path: Path) -> None:
    config = write_json(
        tmp_path / "b.json",
        {"name": "ed", "jobs": [{"name": "a", "execution": {"command": "echo a"}}]},
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    spec_file = batches / "ed" / ".hyperctl" / "batch.json"
    spec = json.loads(spec_file.read_text())
    spec["jobs"][0]["execution"]["command"] = "echo edited"
    spec["jobs"].append({**spec["jobs"][0], "name": "added"})
    spec_file.write_text(json.dumps(spec))
    result = hyperctl("batch", "resume", "ed")
    assert result.returncode == 0, result.stderr
    assert "differs from the batch's store for 2 jobs (added, a): ignored" in result.stderr
    assert _jobs(batches, "ed") == {"a": ("succeeded", 1)}
    assert not (batches / "ed" / ".hyperctl" / "jobs" / "a" / "attempt-2").exists()
    assert json.loads(spec_file.read_text())["jobs"][0]["execution"]["command"] == "echo a"  # as the store has it


def test_a_disk_that_fills_while_a_job_starts_loses_neither_the_job_nor_its_end(small_disk: Path) -> None:
    """The disk fills between the job's start and the store's note of its pid (the interleaving a
    loaded machine gives the test above now and then): the job is still watched, the run waits for
    it, and its end is recorded once space is back, not left `running` for resume to call lost."""
    flag = small_disk.parent / "end"
    job = JobSpec("j", {}, Execution(f"while [ ! -e {flag} ]; do sleep 0.05; done"))
    fillers: list[Path] = []

    class FillsTheDiskOnStart(LocalExecutor):
        async def start(self, launch: Launch) -> Handle:
            handle = await super().start(launch)
            fillers.append(_fill(small_disk))  # before the scheduler saves the pid
            return handle

    async def main() -> tuple[BatchStatus, JobStatus, tuple[JobStatus, int | None] | None]:
        batch_dir = BatchDir(small_disk / "batches", "s")
        batch_dir.internal.mkdir(parents=True)
        store = Store(batch_dir.db)
        try:
            store.sync_jobs([job])
            executor = FillsTheDiskOnStart(Machine("localhost", cpu=1, ram=0))
            scheduler = Scheduler(BatchSpec(name="s", jobs=[job]), batch_dir, store, executor, {}, lambda _: "t")
            await scheduler.start()
            while not scheduler.fault:  # the store could not save the pid: the disk is full
                await scheduler.wait_change(scheduler.version, 10)
            assert fillers and not scheduler.done.done()  # the job runs, and the run waits for it
            flag.touch()  # it ends while the disk is full
            status = await asyncio.wait_for(scheduler.done, 30)
            fillers[0].unlink()
            scheduler.record_unrecorded()  # as the daemon does at the end
            record = store.job("j")
            assert record is not None
            return status, record.status, record.last and (record.last.status, record.last.exit_code)
        finally:
            store.close()

    status, job_status, last = asyncio.run(main())
    assert status == BatchStatus.FAILED  # it stopped starting jobs: the batch did not finish
    assert (job_status, last) == (JobStatus.SUCCEEDED, (JobStatus.SUCCEEDED, 0))


def test_a_resume_on_a_full_disk_says_so_in_one_line(small_disk: Path, tmp_path: Path) -> None:
    batches = small_disk / "batches"
    gate = tmp_path / "gate"
    doc = {"name": "full", "jobs": [{"name": "j", "execution": {"command": f"[ -e {gate} ]"}}]}
    assert hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc))).returncode == 1
    batch_json = batches / "full" / ".hyperctl" / "batch.json"
    before = batch_json.read_bytes()
    filler = _fill(small_disk)

    resumed = hyperctl("batch", "resume", "full")

    assert resumed.returncode != 0
    assert "Traceback" not in resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1, resumed.stderr
    assert "full" in resumed.stderr, resumed.stderr
    assert batch_json.read_bytes() == before  # nothing half written
    filler.unlink()
    gate.touch()
    assert hyperctl("batch", "retry", "full").returncode == 0  # once there is room


def test_a_spec_that_cannot_be_written_is_one_line_and_leaves_no_part_behind(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", {"name": "s", "jobs": [{"name": "j", "execution": {"command": "true"}}]})
    assert hyperctl("run", "--config", str(config)).returncode == 0
    internal = batches / "s" / ".hyperctl"
    (internal / "batch.json").unlink()
    (internal / "batch.json").mkdir()  # what a full disk does to a write, with no disk to fill

    again = hyperctl("run", "--config", str(config))

    assert again.returncode == 2
    assert (
        again.stderr == f"hyperctl: error: {internal / 'batch.json'}: cannot write the batch's spec: Is a directory\n"
    )
    assert not list(internal.glob(".batch.json.tmp*"))
