"""hyperctl.report(progress=...): a job's progress and ETA in `job list`/`job describe`, and the
batch's ETA (`batch describe`, `batch watch`, the bar of `hyperctl run`) counting running jobs' share."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import hyperctl, wait_for, write_json

PY = shlex.quote(sys.executable)


def waiting(progress: str, gate: Path) -> dict[str, Any]:
    """A job that reports its progress, then waits for the test to create gate."""
    code = (
        f"import hyperctl, os, time\nhyperctl.report(progress={progress})\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
    )
    return {"command": f"{PY} -c {shlex.quote(code)}"}


def rows(batch: str) -> dict[str, dict[str, str]]:
    """`job list` as a user reads it: each job's row, its cells split on runs of 2+ spaces."""
    listed = hyperctl("job", "list", batch)
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    cells = [re.split(r"\s{2,}", line) for line in lines]
    return {row[0]: dict(zip(re.split(r"\s{2,}", header), row)) for row in cells}


def test_a_running_job_s_progress_and_eta_show_in_its_views_and_count_toward_the_batch_s_eta(
    tmp_path: Path, batches: Path
) -> None:
    gate = tmp_path / "gate"
    doc = {
        "name": "b",
        "daemon": {"port": 0},
        "backend": {"type": "local", "conf": {"cpu": 4}},
        "jobs": [
            {"name": "half", "execution": waiting("0.5", gate)},
            {"name": "over", "execution": waiting("1.7", gate)},  # taken as 1: done
            {"name": "under", "execution": waiting("-3", gate)},  # taken as 0
            {"name": "nan", "execution": waiting("float('nan')", gate)},  # no progress
        ],
    }
    started = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), "--detach")
    assert started.returncode == 0, started.stderr

    def progress_shown() -> dict[str, dict[str, str]] | None:
        listed = rows("b")
        return listed if listed["half"].get("PROGRESS", "-") != "-" else None

    listed = wait_for(progress_shown, "half's progress in job list")

    assert listed["half"]["STATUS"] == "running"
    assert re.fullmatch(r"50% ETA \d+:\d\d", listed["half"]["PROGRESS"]), listed
    assert listed["over"]["PROGRESS"] == "100%" and listed["under"]["PROGRESS"] == "0%"
    assert listed["nan"]["PROGRESS"] == "-"
    views = {v["name"]: v for v in json.loads(hyperctl("job", "list", "b", "--json").stdout)}
    assert views["half"]["progress"] == 0.5 and views["half"]["eta"] > 0
    assert (views["over"]["progress"], views["over"]["eta"]) == (1.0, None)
    assert (views["nan"]["progress"], views["nan"]["eta"]) == (None, None)
    described = hyperctl("job", "describe", "b", "half").stdout
    assert re.search(r"^progress +50% ETA \d+:\d\d$", described, re.M), described
    # No job has ended, yet the batch has an ETA: 1.5 jobs' worth of 4 are done.
    batch = hyperctl("batch", "describe", "b")
    assert re.search(r"^jobs +4: 4 running$", batch.stdout, re.M), batch.stdout
    assert re.search(r"^ETA +\d+:\d\d$", batch.stdout, re.M), batch.stdout
    assert json.loads(hyperctl("batch", "describe", "b", "--json").stdout)["running_progress"] == 1.5
    watch = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "batch", "watch", "b"], stderr=subprocess.PIPE, text=True
    )
    assert watch.stderr is not None
    first = watch.stderr.readline()
    assert re.match(r"\[#{7}\.{13}\] 0/4  0 ok, 4 running  \d+:\d\d ETA \d+:\d\d$", first), first

    gate.touch()

    assert watch.wait(timeout=60) == 0
    ended = rows("b")
    assert ended["half"]["STATUS"] == "succeeded" and ended["half"]["PROGRESS"] == "50%"  # what it last reported
    assert json.loads(hyperctl("job", "describe", "b", "half", "--json").stdout)["eta"] is None


def test_without_progress_job_list_has_no_progress_column(tmp_path: Path, batches: Path) -> None:
    doc = {"name": "b", "daemon": {"port": 0}, "jobs": [{"name": "j", "execution": {"command": "true"}}]}
    assert hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc))).returncode == 0

    assert "PROGRESS" not in hyperctl("job", "list", "b").stdout


def test_the_run_s_bar_fills_and_gives_an_eta_from_a_running_job_s_progress(tmp_path: Path, batches: Path) -> None:
    import pty

    gate = tmp_path / "gate"
    doc = {"name": "b", "daemon": {"port": 0}, "jobs": [{"name": "j", "execution": waiting("0.5", gate)}]}
    config = write_json(tmp_path / "b.json", doc)
    leader, follower = pty.openpty()
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stdout=follower, stderr=follower
    )
    os.close(follower)
    screen = b""
    frame = re.compile(rb"\[#{10}\.{10}\] 0/1  0 ok, 1 running  \d+:\d\d ETA \d+:\d\d")
    try:
        deadline = time.monotonic() + 30
        while not frame.search(screen) and time.monotonic() < deadline:
            screen += os.read(leader, 4096)  # the bar is redrawn every second
    finally:
        gate.touch()
        try:
            while chunk := os.read(leader, 4096):
                screen += chunk
        except OSError:  # EIO: the terminal's other side is closed
            pass
        os.close(leader)

    assert run.wait(timeout=60) == 0
    assert frame.search(screen), screen.decode(errors="replace")


def test_the_api_s_job_view_follows_a_running_job_s_progress(tmp_path: Path, batches: Path) -> None:
    from hyperctl.client import live_client
    from hyperctl.layout import BatchDir

    first, second = tmp_path / "first", tmp_path / "second"
    code = (
        "import hyperctl, os, time\n"
        "hyperctl.report(progress=0.25)\n"
        f"while not os.path.exists({str(first)!r}): time.sleep(0.02)\n"
        "hyperctl.report(progress=0.75)\n"
        f"while not os.path.exists({str(second)!r}): time.sleep(0.02)\n"
    )
    job = {"name": "j", "execution": {"command": f"{PY} -c {shlex.quote(code)}"}}
    config = write_json(tmp_path / "b.json", {"name": "b", "daemon": {"port": 0}, "jobs": [job]})
    assert hyperctl("run", "--config", str(config), "--detach").returncode == 0
    client = live_client(BatchDir(batches, "b"))
    try:
        wait_for(lambda: client.job("j")["progress"] == 0.25, "the job's view with progress 0.25")
        assert client.batch()["running_progress"] == 0.25

        first.touch()  # it reports on: the view (kept while the batch does not change) follows

        wait_for(lambda: client.job("j")["progress"] == 0.75, "the job's view with progress 0.75")
        view = client.job("j")
        assert view["status"] == "running" and view["eta"] > 0
        assert [v["progress"] for v in client.jobs()] == [0.75]
    finally:
        second.touch()
    wait_for(lambda: hyperctl("batch", "describe", "b", "--json").stdout.count('"finished"'), "the batch's end")
