"""The Python API (`from hyperctl import Batch`) as a user's script drives it: a real `python
script.py` process, real daemons, real jobs that report metrics."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperctl.rows import Rows
from tests.conftest import REPO, wait_for

# A job: reports its loss three times, says so on stdout and stderr; with a gate, waits for it first.
JOB = """
import os, sys, time
import hyperctl
params = hyperctl.get_job_params()
gate = params.get("gate")
while gate and not os.path.exists(gate):
    time.sleep(0.02)
for step in range(3):
    hyperctl.report(loss=params["lr"] * (3 - step), step=step)
print("trained", params["lr"])
print("a warning", file=sys.stderr)
"""


def run_script(tmp_path: Path, code: str, *args: str, timeout: float = 90) -> dict[str, Any]:
    """Run code as a user's script (`python script.py ARGS`): what it printed last, as JSON."""
    script = tmp_path / "script.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def job_command(tmp_path: Path) -> str:
    (tmp_path / "job.py").write_text(JOB)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'job.py'))}"


SWEEP = """
import json, sys
from hyperctl import Batch

command = sys.argv[1]
config = {
    "name": "sweep",
    "daemon": {"port": 0},
    "jobs": [{"name": f"lr-{lr}", "params": {"lr": lr}, "execution": {"command": command}} for lr in (0.5, 2.0)],
}
batch = Batch.run(config)  # in the foreground: returns when every job has ended
out = {"status": batch.status, "len": len(batch), "names": [job.name for job in batch], "jobs": {}}
for job in batch:
    summary = job.summary()["loss"]
    out["jobs"][job.name] = {
        "status": job.status,
        "params": job.params,
        "points": [(row["step"], row["loss"]) for row in job.metrics()],
        "columns": job.metrics().columns,
        "only": job.metrics(key="loss").columns,
        "summary": [summary.last, summary.min, summary.min_step, summary.count],
        "stdout": job.logs(),
        "stderr": job.logs(stderr=True),
        "kill": job.kill(),  # it has ended: left as it is
    }
again = Batch("sweep")
out["reopened"] = [again.status, "lr-0.5" in again, "nope" in again, again.wait(timeout=5)]
print(json.dumps(out))
"""


def test_a_script_runs_a_sweep_and_reads_statuses_params_metrics_and_logs(tmp_path: Path, batches: Path) -> None:
    out = run_script(tmp_path, SWEEP, job_command(tmp_path))

    assert out["status"] == "finished"
    assert out["len"] == 2 and out["names"] == ["lr-0.5", "lr-2.0"]
    assert out["reopened"] == ["finished", True, False, "finished"]
    first = out["jobs"]["lr-0.5"]
    assert first["status"] == "succeeded" and first["params"] == {"lr": 0.5}
    assert first["points"] == [[0, 1.5], [1, 1.0], [2, 0.5]]
    assert first["columns"] == ["step", "t", "loss"] and first["only"] == ["step", "t", "loss"]
    assert first["summary"] == [0.5, 0.5, 2, 3]
    assert first["stdout"] == "trained 0.5\n" and first["stderr"] == "a warning\n"
    assert first["kill"] == "succeeded"
    assert out["jobs"]["lr-2.0"]["points"] == [[0, 6.0], [1, 4.0], [2, 2.0]]
    assert (batches / "sweep" / "lr-0.5").is_dir()  # the same batch folder `hyperctl run` makes


DETACHED = """
import json, os, sys, time
from hyperctl import Batch

command, gate = sys.argv[1], sys.argv[2]
config = {
    "name": "bg",
    "daemon": {"port": 0},
    "jobs": [
        {"name": "quick", "params": {"lr": 1.0}, "execution": {"command": command}},
        {"name": "slow", "params": {"lr": 1.0, "gate": gate}, "execution": {"command": command, "kill_grace": 1}},
    ],
}
batch = Batch.run(config, detach=True)  # returns once its daemon runs it in the background
out = {"started": batch.status}
try:
    batch.wait(timeout=0.2)
except TimeoutError as e:
    out["timeout"] = str(e)
slow = batch["slow"]
while slow.status != "running":
    time.sleep(0.02)
out["killed"] = slow.kill()
out["ended"] = batch.wait()
out["statuses"] = {job.name: job.status for job in batch}
open(gate, "w").close()
out["retried"] = batch.retry(detach=True)  # what did not succeed: slow
out["after retry"] = batch.wait(timeout=60)
out["slow"] = [slow.status, slow.attempts, [row["loss"] for row in slow.metrics()], slow.metrics(attempt=1)]
out["nothing to retry"] = batch.retry()
print(json.dumps(out))
"""


def test_a_script_runs_a_batch_in_the_background_kills_a_job_waits_and_retries(tmp_path: Path, batches: Path) -> None:
    out = run_script(tmp_path, DETACHED, job_command(tmp_path), str(tmp_path / "gate"))

    assert out["started"] == "running"
    assert out["timeout"] == "batch bg still runs after 0.2 s"
    assert out["killed"] == "killed"
    assert out["ended"] == "failed"
    assert out["statuses"] == {"quick": "succeeded", "slow": "killed"}
    assert out["retried"] == ["slow"]
    assert out["after retry"] == "finished"
    assert out["slow"] == ["succeeded", 2, [3.0, 2.0, 1.0], []]  # attempt 1 was killed before it reported
    assert out["nothing to retry"] == []


KILLED = """
import json, sys, time
from hyperctl import Batch

command, gate = sys.argv[1], sys.argv[2]
job = {"name": "slow", "params": {"lr": 1.0, "gate": gate}, "execution": {"command": command, "kill_grace": 1}}
batch = Batch.run({"name": "k", "daemon": {"port": 0}, "jobs": [job]}, detach=True)
while batch["slow"].status != "running":
    time.sleep(0.02)
out = {"kill": batch.kill()}  # returns once its daemon has gone
out["after"] = [batch["slow"].status, batch.summary.daemon_pid, batch.wait(timeout=1)]
out["again"] = batch.kill()  # it has ended: left as it is
print(json.dumps(out))
"""


def test_a_script_kills_a_batch_running_in_the_background(tmp_path: Path, batches: Path) -> None:
    out = run_script(tmp_path, KILLED, job_command(tmp_path), str(tmp_path / "gate"))

    assert out == {"kill": "killed", "after": ["killed", None, "killed"], "again": "killed"}


ERRORS = """
import json
import hyperctl
from hyperctl import Batch

out = {}
try:
    Batch.run({"name": "bad", "jobs": [{"execution": {}}, {"execution": {"command": "true"}, "resourse": {}}]})
except hyperctl.ConfigError as e:
    out["config"] = e.problems
try:
    Batch("nope")
except hyperctl.NoSuchBatchError as e:
    out["batch"] = str(e)
batch = Batch.run({"name": "ok", "daemon": {"port": 0}, "jobs": [{"name": "j", "execution": {"command": "true"}}]})
try:
    batch["nope"]
except KeyError as e:
    out["job"] = [str(e), isinstance(e, hyperctl.NoSuchJobError), isinstance(e, hyperctl.HyperctlError)]
try:
    batch["j"].logs(attempt=2)
except hyperctl.HyperctlError as e:
    out["attempt"] = str(e)
print(json.dumps(out))
"""


def test_a_script_gets_typed_errors_with_the_cli_s_one_line_messages(tmp_path: Path, batches: Path) -> None:
    out = run_script(tmp_path, ERRORS)

    assert out["config"] == [
        "jobs[0].execution.command: required",
        "jobs[1].resourse: unknown key (did you mean 'resource'?)",
    ]
    assert not (batches / "bad").exists()  # nothing started, nothing left behind
    assert out["batch"].startswith(f"no batch named 'nope' in {batches} (batches: ")
    assert out["job"] == ["batch 'ok' has no job named 'nope'", True, True]
    assert out["attempt"] == "job 'j' has attempts 1 to 1, not 2"


INTERRUPTED = """
import sys
from hyperctl import Batch

command, gate = sys.argv[1], sys.argv[2]
job = {"name": "slow", "params": {"lr": 1.0, "gate": gate}, "execution": {"command": command, "kill_grace": 1}}
Batch.run({"name": "ctrl-c", "daemon": {"port": 0}, "jobs": [job]})
"""


def test_ctrl_c_while_a_script_runs_a_batch_interrupts_it_as_hyperctl_run_does(tmp_path: Path, batches: Path) -> None:
    from hyperctl import Batch, HyperctlError

    def running() -> bool:
        try:
            return Batch("ctrl-c")["slow"].status == "running"
        except HyperctlError:  # not there yet
            return False

    script = tmp_path / "script.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen(
        [sys.executable, str(script), job_command(tmp_path), str(tmp_path / "gate")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(running, "the job to run")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()

    assert "KeyboardInterrupt" in stderr
    batch = Batch("ctrl-c")
    assert batch.status == "interrupted" and batch["slow"].status == "pending"  # resume() runs it again
    (tmp_path / "gate").touch()
    assert batch.resume().status == "finished"


def test_rows_to_pandas_names_the_package_to_install_where_pandas_is_not(tmp_path: Path) -> None:
    rows = Rows([{"name": "a", "loss": 0.5}, {"name": "b", "acc": 1.0}])
    assert rows.columns == ["name", "loss", "acc"] and rows == [{"name": "a", "loss": 0.5}, {"name": "b", "acc": 1.0}]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install pandas"):
            rows.to_pandas()
    else:
        frame = rows.to_pandas()
        assert list(frame.columns) == ["name", "loss", "acc"] and len(frame) == 2


def test_import_hyperctl_loads_the_standard_library_alone(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import hyperctl"], capture_output=True, text=True, timeout=30
    )
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    ours = {name for name in loaded if name.startswith("hyperctl")}
    assert ours == {"hyperctl", "hyperctl.errors", "hyperctl.jobside", "hyperctl.reporting"}, ours
    heavy = {"tornado", "yaml", "sqlite3", "_sqlite3", "jinja2", "paramiko", "asyncio", "subprocess"}
    assert not loaded & heavy, loaded & heavy


def test_the_job_side_hyperctl_works_where_hyperctl_s_dependencies_are_not(tmp_path: Path) -> None:
    """A host with python3 alone (no site-packages: -S): the job-side lib as it is shipped there
    still reports and reads params, and the Python API says what it needs."""
    from hyperctl.jobsidelib import job_side_lib

    _, files = job_side_lib()
    package = tmp_path / "lib" / "hyperctl"
    package.mkdir(parents=True)
    for name, text in files.items():
        (package / name).write_text(text)
    (tmp_path / "params.json").write_text('{"lr": 0.1}')
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(tmp_path / "lib"),
        "HYPERCTL_JOB_NAME": "j",
        "HYPERCTL_JOB_PARAMS_FILE": str(tmp_path / "params.json"),
        "HYPERCTL_METRICS_FILE": str(tmp_path / "metrics"),
    }
    code = (
        "from hyperctl import *\n"
        "import hyperctl\n"
        "hyperctl.report(loss=hyperctl.get_job_params()['lr'])\n"
        "try:\n"
        "    hyperctl.Batch\n"
        "except ImportError as e:\n"
        "    print('no Batch here:', e.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30
    )

    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "metrics").read_text())["loss"] == 0.1
    assert done.stdout.startswith("no Batch here: ")


def test_the_metrics_example_runs_and_its_script_names_the_best_job(batches: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/metrics/compare.py"], capture_output=True, text=True, cwd=REPO, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "batch metrics: finished, 6 jobs"
    assert done.stdout.splitlines()[-1].startswith("best: lr-0.1_width-64-")
