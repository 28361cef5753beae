"""The programs run on SSH hosts, run here by /bin/sh: their syntax, and the wire protocol end to end.

What collect() prints is what AttemptReader files: checked on this machine's shell, with no
SSH in between (the SSH tests cover the rest).
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

import pytest

from hyperctl.backends import sshscripts
from hyperctl.backends.collect import AttemptReader, extract
from hyperctl.backends.sshscripts import RemotePaths
from hyperctl.jobsidelib import job_side_lib


def paths_in(folder: Path) -> RemotePaths:
    batch = PurePosixPath(folder) / "batch's dir"  # a quote in a path: every value is quoted
    job, records = batch / "j", batch / ".hyperctl" / "jobs" / "j"
    return RemotePaths(job, records / "attempt-1", records / "params.json", job, job)


def every_script(folder: Path) -> dict[str, str]:
    paths = paths_in(folder)
    send_home = sshscripts.collect(paths, ["*.csv"], ["data.txt"])
    return {
        "set_up": sshscripts.set_up("~/.hyperctl", job_side_lib(), True),
        "upload": sshscripts.upload(paths),
        "spawn": sshscripts.spawn(
            paths, "echo 'hi'", PurePosixPath("/lib"), send_home, "0022", {"HYPERCTL_JOB_NAME": "j"}, "bash"
        ),
        "reattach": sshscripts.reattach(42, {"HYPERCTL_JOB_NAME": "j"}, send_home),
        "collect": send_home,
        "collect_nothing": sshscripts.collect(paths, False, []),
        "follow": sshscripts.follow(paths.attempt / "stdout", 42, 10, None, True),
        "tail": sshscripts.follow(paths.attempt / "stdout", 42, 0, 5, False),
        "read_file": sshscripts.read_file(paths.attempt / "exitcode"),
        "kill": sshscripts.kill(42, 15, {"HYPERCTL_JOB_NAME": "j", "HYPERCTL_ATTEMPT": "1"}),
        "group_alive": sshscripts.group_alive(42, {"HYPERCTL_JOB_NAME": "j", "HYPERCTL_ATTEMPT": "1"}),
        "ping": sshscripts.ping(),
    }


@pytest.mark.parametrize("name", sorted(every_script(Path("/tmp"))))
def test_every_program_is_valid_sh(name: str, tmp_path: Path) -> None:
    script = every_script(tmp_path)[name]
    checked = subprocess.run(["/bin/sh", "-n", "-c", script], capture_output=True, text=True)
    assert checked.returncode == 0, f"{name}: {checked.stderr}\n{script}"


def received(script: str, attempt_dir: Path) -> AttemptReader:
    """Run script here, feed what it prints to an AttemptReader in small chunks, as a channel would."""
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True).stdout
    reader = AttemptReader(attempt_dir)
    for i in range(0, len(out), 7):
        reader.feed(out[i : i + 7])
    return reader


def test_collect_sends_what_the_reader_files(tmp_path: Path) -> None:
    paths = paths_in(tmp_path / "host")
    attempt = Path(paths.attempt)
    attempt.mkdir(parents=True)
    (attempt / "stdout").write_bytes(b"out\nmore\n")
    (attempt / "stderr").write_bytes(b"")
    (attempt / "exitcode").write_text("3\n")
    Path(paths.data).mkdir(parents=True)
    (Path(paths.data) / "result.csv").write_text("a,b\n")
    (Path(paths.data) / "skip.log").write_text("no\n")
    home = tmp_path / "home" / "j"
    records = tmp_path / "home" / ".hyperctl" / "jobs" / "j" / "attempt-1"

    reader = received(sshscripts.collect(paths, ["*.csv"], []), records)
    tar = reader.finish()

    assert reader.exit_code() == 3
    assert (records / "stdout").read_bytes() == b"out\nmore\n"
    assert (records / "stderr").read_bytes() == b""  # empty, and there: not mistaken for one removed
    assert tar is not None
    extract(tar, home)
    assert sorted(p.name for p in home.iterdir()) == ["result.csv"]


def test_collect_of_a_0_1_attempt_leaves_its_records_out_of_the_data(tmp_path: Path) -> None:
    """hyperctl 0.1.0 kept the records inside the job's folder: they never come home as data."""
    job = PurePosixPath(tmp_path / "host" / "j")
    paths = RemotePaths(job, job / "attempt-1", job / "params.json", job, job)
    Path(paths.attempt).mkdir(parents=True)
    (Path(paths.attempt) / "exitcode").write_text("0\n")
    (Path(job) / "params.json").write_text("{}\n")
    (Path(job) / "made.txt").write_text("x\n")
    home = tmp_path / "home" / "j"
    (home / "attempt-1").mkdir(parents=True)

    reader = received(sshscripts.collect(paths, True, []), home / "attempt-1")
    tar = reader.finish()

    assert tar is not None
    extract(tar, home)
    assert sorted(p.name for p in home.iterdir()) == ["attempt-1", "made.txt"]


def test_collect_of_a_silent_job_sends_only_its_exit_code(tmp_path: Path) -> None:
    paths = paths_in(tmp_path / "host")
    attempt = Path(paths.attempt)
    attempt.mkdir(parents=True)
    for name in ("stdout", "stderr"):
        (attempt / name).touch()
    (attempt / "exitcode").write_text("0\n")
    home = tmp_path / "home"

    reader = received(sshscripts.collect(paths, False, []), home)

    assert reader.finish() is None
    assert reader.exit_code() == 0
    assert sorted(p.name for p in home.iterdir()) == ["exitcode", "metrics", "stderr", "stdout"]  # empty ones made too
