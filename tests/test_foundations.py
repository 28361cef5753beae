"""A job's identity, where its records live, and the store's schema version: what every later
capability trusts. Real runs, a real daemon killed with -9, a real batch folder of hyperctl 0.1.0."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperctl import __version__
from hyperctl.store import SCHEMA_VERSION
from tests.conftest import REPO, attempt_dir, hyperctl, job_names, wait_for, write_json

OLD_RELEASE = REPO / "tests" / "fixtures" / "release-0.1.0"


def sweep(values: list[float], log: Path) -> dict[str, Any]:
    """A sweep over lr: each job notes that it ran, and leaves its result in its data dir."""
    command = f"echo {{{{ lr }}}} >> {log}; echo {{{{ lr }}}} > result.txt"
    jobs = [{"params": {"lr": v}, "execution": {"command": command}} for v in values]
    return {"name": "b", "jobs": jobs, "daemon": {"port": 0}}


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_a_grown_reordered_or_shrunk_sweep_runs_exactly_its_new_jobs(tmp_path: Path, batches: Path) -> None:
    log, config = tmp_path / "runs.log", tmp_path / "sweep.json"
    write_json(config, sweep([0.1, 0.2], log))
    assert hyperctl("run", "--config", str(config)).returncode == 0
    first = job_names(batches, "b")

    write_json(config, sweep([0.05, 0.1, 0.2, 0.4], log))  # grown at the front and at the end
    grown = hyperctl("run", "--config", str(config))

    assert grown.returncode == 0, grown.stderr
    assert sorted(ran(log)) == ["0.05", "0.1", "0.2", "0.4"]
    assert "2 jobs to run, 2 already succeeded" in grown.stderr
    assert "2 skipped: they already succeeded with the same command and params" in grown.stderr
    assert job_names(batches, "b")[1:3] == first  # the same jobs, by the same names, wherever they stand

    write_json(config, sweep([0.4, 0.2, 0.05, 0.1], log))  # reordered
    reordered = hyperctl("run", "--config", str(config))

    assert reordered.returncode == 0, reordered.stderr
    assert len(ran(log)) == 4
    assert "0 jobs to run, 4 already succeeded" in reordered.stderr

    write_json(config, sweep([0.4, 0.05, 0.1], log))  # a value removed
    shrunk = hyperctl("run", "--config", str(config))

    assert shrunk.returncode == 0, shrunk.stderr
    assert len(ran(log)) == 4
    assert "1 job of an earlier run no longer in the batch file: left out of the batch" in shrunk.stderr
    assert hyperctl("job", "list", "-b", "b", "--json").stdout.count('"name"') == 3
    # Each job's folder holds that job's result only, and the removed job's folder is kept.
    for name in first:
        lr = re.match(r"lr-([0-9.]+)-", name)
        assert lr is not None, name
        assert (batches / "b" / name / "result.txt").read_text() == f"{lr.group(1)}\n"
    assert sorted(p.name for p in (batches / "b").iterdir() if not p.name.startswith(".")) == sorted(
        [*job_names(batches, "b"), first[1]]
    )


def test_a_job_that_empties_its_data_dir_keeps_its_logs_and_runs_once_across_a_crash(
    tmp_path: Path, batches: Path
) -> None:
    """The common `rm -rf "$OUT"/*` cannot reach hyperctl's records: after kill -9 of the daemon
    and a resume, the job is recorded from its real exit code, not run a second time."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    command = (
        f'echo run >> {log}; echo old > "$HYPERCTL_JOB_DATA_DIR/stale"; echo starting; '
        f'rm -rf "$HYPERCTL_JOB_DATA_DIR"/* "$HYPERCTL_JOB_DATA_DIR"/.[!.]*; '
        f"while [ ! -e {gate} ]; do sleep 0.02; done; echo made > out.txt; echo finished"
    )
    config = write_json(
        tmp_path / "b.json", {"name": "b", "jobs": [{"name": "wipes", "execution": {"command": command}}]}
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches)},
    )
    wait_for(lambda: ran(log) == ["run"] and not (batches / "b" / "wipes" / "stale").exists(), "the wipe")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    gate.touch()
    records = attempt_dir(batches, "b", "wipes")
    wait_for(lambda: (records / "exitcode").exists(), "the job to end while no daemon runs")

    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 0, resumed.stderr
    assert ran(log) == ["run"], "the job ran once"
    described = hyperctl("job", "describe", "-b", "b", "-j", "wipes", "--json")
    assert '"attempts": [' in described.stdout and '"n": 2' not in described.stdout
    assert hyperctl("job", "logs", "-b", "b", "-j", "wipes").stdout == "starting\nfinished\n"
    assert (batches / "b" / "wipes" / "out.txt").read_text() == "made\n"
    assert sorted(os.listdir(batches / "b" / "wipes")) == ["out.txt"]  # the data dir holds what the job made


def test_job_logs_says_when_a_log_file_is_missing(tmp_path: Path, batches: Path) -> None:
    config = write_json(
        tmp_path / "b.json", {"name": "b", "jobs": [{"name": "j", "execution": {"command": "echo hi"}}]}
    )
    assert hyperctl("run", "--config", str(config)).returncode == 0
    (attempt_dir(batches, "b", "j") / "stdout").unlink()

    logs = hyperctl("job", "logs", "-b", "b", "-j", "j")
    empty_stderr = hyperctl("job", "logs", "-b", "b", "-j", "j", "--stderr")

    assert logs.returncode != 0 and logs.stdout == ""
    assert logs.stderr == (
        f"hyperctl: error: job 'j': attempt 1 left no stdout ({attempt_dir(batches, 'b', 'j') / 'stdout'} "
        "is missing: deleted?)\n"
    )
    assert (empty_stderr.returncode, empty_stderr.stdout) == (0, "")  # empty, not missing


def old_batch(batches: Path) -> Path:
    """A batch folder as hyperctl 0.1.0 left it: job-NNNN names, records in the job folders, schema 1."""
    batches.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(OLD_RELEASE / "old-sweep", batches / "old-sweep"))


def schema_version(folder: Path) -> int:
    with sqlite3.connect(folder / ".hyperctl" / "state.db") as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_batch_of_the_release_before_lists_describes_shows_logs_resumes_and_retries(batches: Path) -> None:
    folder = old_batch(batches)
    assert schema_version(folder) == 0  # 0.1.0 wrote none

    listed = hyperctl("batch", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"old-sweep\s+failed\s+1/3\s+1 pending, 1 failed", listed.stdout), listed.stdout
    assert schema_version(folder) == SCHEMA_VERSION  # migrated at its first open, by a reading command
    assert hyperctl("batch", "describe", "old-sweep").returncode == 0
    jobs = hyperctl("job", "list", "-b", "old-sweep")
    assert [line.split()[:2] for line in jobs.stdout.splitlines()[1:]] == [
        ["job-0000", "succeeded"],
        ["job-0001", "failed"],
        ["job-0002", "pending"],
    ]
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", "job-0000").stdout == "hello 0.1\n"
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", "job-0000", "--stderr").stdout == "warn\n"

    resumed = hyperctl("batch", "resume", "old-sweep")  # the pending job runs; the others keep their end
    assert resumed.returncode == 1, resumed.stderr
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", "job-0002").stdout == "later 0.3\n"
    assert (attempt_dir(batches, "old-sweep", "job-0002") / "exitcode").read_text() == "0\n"

    retried = hyperctl("batch", "retry", "old-sweep", "--failed")
    assert retried.returncode == 1, retried.stderr  # it fails again, as it did
    logs = [hyperctl("job", "logs", "-b", "old-sweep", "-j", "job-0001", "--attempt", str(n)).stdout for n in (1, 2)]
    assert logs == ["failing 0.2\n", "failing 0.2\n"]
    # The old attempt stays where 0.1.0 wrote it; the new one goes where records go now.
    assert (folder / "job-0001" / "attempt-1" / "exitcode").read_text() == "3\n"
    assert (attempt_dir(batches, "old-sweep", "job-0001", 2) / "exitcode").read_text() == "3\n"
    described = hyperctl("job", "describe", "-b", "old-sweep", "-j", "job-0001", "--json").stdout
    assert str(folder / "job-0001" / "attempt-1" / "stdout") in described
    assert str(attempt_dir(batches, "old-sweep", "job-0001", 2) / "stdout") in described


@pytest.mark.parametrize(
    "command", [["batch", "list"], ["job", "list", "-b", "old-sweep"], ["batch", "resume", "old-sweep"]]
)
def test_a_store_newer_than_this_hyperctl_is_refused_untouched(batches: Path, command: list[str]) -> None:
    folder = old_batch(batches)
    db = folder / ".hyperctl" / "state.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}  # SQLite's -wal and -shm files are not there

    result = hyperctl(*command)

    newer = f"newer than this hyperctl {__version__} reads (version {SCHEMA_VERSION})"
    message = f"the batch's store is version 99, {newer}; upgrade hyperctl"
    assert message in result.stderr or message in result.stdout, (result.stdout, result.stderr)
    if command[:2] != ["batch", "list"]:  # list shows the batch's problem on its line, and goes on
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    after = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    assert after.pop("state.db-wal", b"") == b""  # a reader's empty write-ahead log, if any: nothing written
    after.pop("state.db-shm", None)
    assert after == before


def test_job_logs_of_an_attempt_that_could_not_start_says_why(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "a-file").write_text("")
    jobs = [{"name": "j", "execution": {"command": "echo hi", "data_dir": str(tmp_path / "a-file" / "out")}}]
    config = write_json(tmp_path / "b.json", {"name": "b", "jobs": jobs})
    assert hyperctl("run", "--config", str(config)).returncode == 1

    logs = hyperctl("job", "logs", "-b", "b", "-j", "j")

    assert logs.returncode == 2
    assert logs.stderr.startswith("hyperctl: error: job 'j': attempt 1 has no stdout: could not start: ")
    assert "Not a directory" in logs.stderr and logs.stderr.count("\n") == 1


def test_running_the_batch_file_of_the_release_before_again_runs_nothing_twice(tmp_path: Path, batches: Path) -> None:
    """0.1.0 named unnamed jobs by position: the same jobs, named for what they run now, keep
    their results, attempts and folders."""
    folder = old_batch(batches)
    config = Path(shutil.copy(OLD_RELEASE / "old-sweep.json", tmp_path / "old-sweep.json"))

    again = hyperctl("run", "--config", str(config), "--name", "old-sweep")

    assert again.returncode == 1, again.stderr  # the job that failed runs again, and fails again
    assert "2 jobs to run, 1 already succeeded" in again.stderr
    assert "halted after 1 failure (" in again.stderr  # the third waits: halt_on_failures 1
    names = job_names(batches, "old-sweep")
    assert [n.split("-")[0] for n in names] == ["lr", "lr", "lr"]
    described = [hyperctl("job", "describe", "-b", "old-sweep", "-j", n, "--json").stdout for n in names]
    assert [d.count('"n": ') for d in described] == [1, 2, 0]
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", names[0]).stdout == "hello 0.1\n"
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", names[1], "--attempt", "1").stdout == "failing 0.2\n"
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", names[1], "--attempt", "2").stdout == "failing 0.2\n"
    assert not (folder / "job-0000").exists() and (folder / names[0] / "attempt-1" / "stdout").exists()
    assert f'"name": "{names[0]}"' in described[0]  # the job's own record says its new name too


def start_run(config: Path, batches: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches)},
    )


def test_a_job_back_in_the_batch_is_not_ended_by_its_earlier_runs_exit_code(tmp_path: Path, batches: Path) -> None:
    """Shrunk and grown again, a sweep gives a job its name and records folder back: the exit code
    its earlier run left there says nothing of the new run, which here dies with the daemon."""
    hold, started = tmp_path / "hold", tmp_path / "started"
    command = f"touch {started}; while [ -e {hold} ]; do sleep 0.02; done"  # quick unless held
    jobs = [{"params": {"x": x}, "execution": {"command": command}} for x in (1, 2)]
    config = write_json(tmp_path / "b.json", {"name": "b", "jobs": jobs})
    shrunk = write_json(tmp_path / "shrunk.json", {"name": "b", "jobs": jobs[1:]})
    assert hyperctl("run", "--config", str(config)).returncode == 0
    name = job_names(batches, "b")[0]
    assert hyperctl("run", "--config", str(shrunk), "--name", "b").returncode == 0  # x=1 leaves
    assert (attempt_dir(batches, "b", name) / "exitcode").read_text() == "0\n"  # its records stay

    hold.touch()
    started.unlink()
    daemon = start_run(config, batches, "--name", "b")  # x=1 is back, as attempt 1 again
    wait_for(started.exists, "the job to start again")
    pid = wait_for(lambda: rows_of(batches, "SELECT pid FROM attempts WHERE job = ?", name)[0][0], "its pid")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    os.killpg(pid, signal.SIGKILL)  # the job dies too, leaving no exit code of its own
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "the job to be gone")
    hold.unlink()

    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 1, resumed.stderr
    assert rows_of(batches, "SELECT status FROM jobs WHERE name = ?", name) == [("lost",)]


def test_a_run_that_leaves_out_a_job_still_running_is_refused(tmp_path: Path, batches: Path) -> None:
    """A job with other params is another job: the old one, left running by a dead daemon, would
    run on unwatched beside it. It is seen to its end first."""
    gate, log = tmp_path / "gate", tmp_path / "runs.log"
    command = f"echo {{{{ t }}}} >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done"
    config = write_json(
        tmp_path / "b.json", {"name": "b", "jobs": [{"params": {"t": 1}, "execution": {"command": command}}]}
    )
    daemon = start_run(config, batches)
    wait_for(lambda: ran(log) == ["1"], "the job to start")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    [old] = job_names(batches, "b")
    write_json(config, {"name": "b", "jobs": [{"params": {"t": 2}, "execution": {"command": command}}]})

    refused = hyperctl("run", "--config", str(config))

    assert refused.returncode == 2
    assert refused.stderr == (
        f"hyperctl: error: batch 'b': 1 job of an earlier run, not in this batch file, may still run ({old}): "
        "`hyperctl batch resume b` sees them to their end first, or `hyperctl batch kill b` ends them\n"
    )
    assert ran(log) == ["1"] and job_names(batches, "b") == [old]
    gate.touch()
    assert hyperctl("batch", "resume", "b").returncode == 0
    again = hyperctl("run", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert ran(log) == ["1", "2"]


def test_a_run_that_changes_a_job_still_running_is_refused(tmp_path: Path, batches: Path) -> None:
    """Its old attempt's end would be recorded as the changed job's: it is seen to its end first."""
    gate, log = tmp_path / "gate", tmp_path / "runs.log"
    job = {"name": "long", "execution": {"command": f"echo v1 >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done"}}
    config = write_json(tmp_path / "b.json", {"name": "b", "jobs": [job]})
    daemon = start_run(config, batches)
    wait_for(lambda: ran(log) == ["v1"], "the job to start")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    job["execution"]["command"] = f"echo v2 >> {log}"  # type: ignore[index]
    write_json(config, {"name": "b", "jobs": [job]})

    refused = hyperctl("run", "--config", str(config))

    assert refused.returncode == 2
    assert refused.stderr == (
        "hyperctl: error: batch 'b': 1 job changed in this batch file while an attempt from before may still run "
        "(long): `hyperctl batch resume b` sees it to its end first (or `hyperctl batch kill b` ends it); "
        "then run this file\n"
    )
    gate.touch()
    assert hyperctl("batch", "resume", "b").returncode == 0
    again = hyperctl("run", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert ran(log) == ["v1", "v2"]


def test_a_0_1_jobs_records_of_later_attempts_follow_it_to_its_new_name(batches: Path, tmp_path: Path) -> None:
    folder = old_batch(batches)
    assert hyperctl("batch", "resume", "old-sweep").returncode == 1  # job-0002 runs, its records go to .hyperctl/jobs
    config = Path(shutil.copy(OLD_RELEASE / "old-sweep.json", tmp_path / "old-sweep.json"))

    assert hyperctl("run", "--config", str(config), "--name", "old-sweep").returncode == 1

    names = job_names(batches, "old-sweep")
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", names[2]).stdout == "later 0.3\n"
    assert hyperctl("job", "logs", "-b", "old-sweep", "-j", names[0]).stdout == "hello 0.1\n"
    assert not (folder / ".hyperctl" / "jobs" / "job-0002").exists()


def rows_of(batches: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(batches / "b" / ".hyperctl" / "state.db")) as db:
        return db.execute(query, args).fetchall()


def test_job_logs_tail_reads_lines_longer_than_its_blocks(tmp_path: Path, batches: Path) -> None:
    """--tail reads back from the end block by block (64 KiB): a line over several blocks comes whole."""
    command = "head -c 200000 /dev/zero | tr '\\000' x; echo; echo last"
    config = write_json(tmp_path / "b.json", {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}]})
    assert hyperctl("run", "--config", str(config)).returncode == 0

    tails = [hyperctl("job", "logs", "-b", "b", "-j", "j", "--tail", str(n)).stdout for n in (0, 1, 2, 3)]

    assert tails[:2] == ["", "last\n"]
    assert tails[2] == tails[3] == "x" * 200_000 + "\nlast\n"
