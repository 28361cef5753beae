"""A job's processes end with it, even those that left its process group (`setsid cmd &`):
they carry the attempt's identity, and hyperctl finds and ends them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import hyperctl, process_alive, start_hyperctl, wait_for, write_json


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def test_a_setsid_process_ends_with_its_job(tmp_path: Path, batches: Path) -> None:
    pids = tmp_path / "pids"
    # `setsid` leaves the job's process group and session; `nohup ... &` stays in it.
    command = f"setsid sleep 300 & echo $! >> {pids}; setsid sh -c 'sleep 301 & wait' & echo $! >> {pids}; true"
    doc = {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}], "daemon": {"port": 0}}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    assert len(pids_in(pids)) == 2
    assert [pid for pid in pids_in(pids) if process_alive(pid)] == []


def test_job_kill_ends_a_setsid_process_too(tmp_path: Path, batches: Path) -> None:
    pids = tmp_path / "pids"
    command = f"setsid sh -c 'trap \"\" TERM; sleep 300' & echo $! > {pids}; sleep 300"
    doc = {
        "name": "b",
        "jobs": [{"name": "j", "execution": {"command": command, "kill_grace": 0.5}}],
        "daemon": {"port": 0},
    }
    run = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    try:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), "the job to start its stray")
        (stray,) = pids_in(pids)

        killed = hyperctl("job", "kill", "b", "j")

        assert killed.returncode == 0, killed.stderr
        assert not process_alive(stray)  # it ignored TERM: KILL after the grace
        assert run.wait(timeout=60) == 1
    finally:
        run.kill()


def test_a_stray_ends_soon_after_its_job_while_the_batch_goes_on(tmp_path: Path, batches: Path) -> None:
    pids, gate = tmp_path / "pids", tmp_path / "gate"
    jobs = [
        {"name": "leaves", "execution": {"command": f"setsid sleep 300 & echo $! > {pids}"}},
        {"name": "goes-on", "execution": {"command": f"while [ ! -e {gate} ]; do sleep 0.05; done"}},
    ]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}}
    run = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    try:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), "the job to start its stray")
        (stray,) = pids_in(pids)
        wait_for(lambda: not process_alive(stray), "the stray to be ended", deadline=10)
        assert run.poll() is None  # by the daemon, while the batch runs
        gate.touch()
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()


def test_batches_of_one_name_in_two_data_dirs_never_end_each_other_s_jobs(tmp_path: Path, batches: Path) -> None:
    """The identity a job's processes carry names its batch by folder, not by name: a kill of a
    job in one data dir leaves a job of the same names in another alone."""
    gate = tmp_path / "gate"
    runs = []
    try:
        for n in (1, 2):
            pid_file = tmp_path / f"pid-{n}"
            waits = f"echo $$ > {pid_file}; while [ ! -e {gate} ]; do sleep 0.05; done"
            doc = {"name": "b", "jobs": [{"name": "j", "execution": {"command": waits}}], "daemon": {"port": 0}}
            config = write_json(tmp_path / f"b{n}.json", doc)
            runs.append(start_hyperctl("run", "--config", str(config), "--batches-data-dir", str(tmp_path / f"d{n}")))
            wait_for(lambda f=pid_file: f.exists() and f.read_text().strip(), f"batch {n}'s job to run")
        (first,) = pids_in(tmp_path / "pid-1")

        killed = hyperctl("job", "kill", "b", "j", "--batches-data-dir", str(tmp_path / "d2"))

        assert killed.returncode == 0, killed.stderr
        assert runs[1].wait(timeout=60) == 1
        assert process_alive(first)
        gate.touch()
        assert runs[0].wait(timeout=60) == 0
    finally:
        for run in runs:
            run.kill()
