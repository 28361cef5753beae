"""hyperctl.report(): a job's metrics, one JSON line per call in its attempt's metrics file."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import attempt_dir, hyperctl, write_json

JOB = """
import hyperctl
hyperctl.report(loss=0.5, acc=0.25)
hyperctl.report({"loss": float("nan"), "big": float("inf")}, step=10)
hyperctl.report(loss=0.125, name="text", flag=True)  # not numbers: left out, said once
hyperctl.report(step=3)  # nothing to record
"""


def points(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_job_reports_metrics_into_its_attempt_s_file(tmp_path: Path, batches: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    doc = {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}], "daemon": {"port": 0}}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    folder = attempt_dir(batches, "b", "j")
    got = points(folder / "metrics")
    assert [{k: v for k, v in p.items() if k != "t"} for p in got[:1]] == [{"step": 0, "loss": 0.5, "acc": 0.25}]
    assert got[1]["step"] == 10 and math.isnan(got[1]["loss"]) and got[1]["big"] == math.inf  # type: ignore[arg-type]
    assert {k: v for k, v in got[2].items() if k != "t"} == {"step": 2, "loss": 0.125}
    assert len(got) == 3 and all(isinstance(p["t"], float) for p in got)
    stderr = (folder / "stderr").read_text()
    assert "hyperctl.report: name='text' is not a number: left out" in stderr
    assert "hyperctl.report: flag=True is not a number: left out" in stderr
    assert oct(os.stat(folder / "metrics").st_mode & 0o777) == "0o600"


def test_report_outside_a_job_records_nothing_and_never_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERCTL_")}
    code = "import hyperctl\nfor i in range(3): hyperctl.report(loss=i)\nprint('went on')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "went on\n"
    assert done.stderr.count("not inside a hyperctl job") == 1


def test_a_metrics_file_that_cannot_be_written_never_fails_the_job(tmp_path: Path) -> None:
    env = {**os.environ, "HYPERCTL_METRICS_FILE": str(tmp_path / "no-such-folder" / "metrics")}
    code = "import hyperctl\nfor i in range(3): hyperctl.report(loss=i)\nprint('went on')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout == "went on\n"
    assert done.stderr.count("hyperctl.report:") == 1


def stored(batches: Path, batch: str = "b") -> list[tuple[object, ...]]:
    import contextlib
    import sqlite3

    db = batches / batch / ".hyperctl" / "state.db"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT key, last, last_step, count FROM metric_summaries ORDER BY key").fetchall()
    except sqlite3.Error:
        return []


def test_points_reach_the_store_while_the_job_runs_and_none_is_lost_or_counted_twice_over_a_kill_9(
    tmp_path: Path, batches: Path
) -> None:
    import signal

    from tests.conftest import start_hyperctl, wait_for

    gate = tmp_path / "gate"
    script = tmp_path / "job.py"
    script.write_text(
        "import hyperctl, os, time\n"
        "for i in range(3): hyperctl.report(loss=i)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "for i in range(3, 6): hyperctl.report(loss=i)\n"
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    config = write_json(tmp_path / "b.json", {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}]})
    daemon = start_hyperctl("run", "--config", str(config))
    wait_for(lambda: stored(batches) == [("loss", 2.0, 2, 3)], "the first points in the store, while the job runs")
    daemon.send_signal(signal.SIGKILL)
    daemon.communicate()
    gate.touch()  # it reports on with no daemon

    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 0, resumed.stderr
    assert stored(batches) == [("loss", 5.0, 5, 6)]
    listed = hyperctl("job", "metrics", "b", "j", "--json")
    assert [(p["step"], p["loss"]) for p in json.loads(listed.stdout)] == [(i, float(i)) for i in range(6)]
