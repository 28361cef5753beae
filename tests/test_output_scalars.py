"""Metrics from what a job prints: `key: value` lines of its stdout (Guild's output scalars)."""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any

from hyperctl import metricstore
from hyperctl.outputscalars import OutputScalars
from hyperctl.store import Store
from tests.conftest import hyperctl, job_names, write_json

PRINTS = (
    r"printf 'starting at 12:00:01, lr: 0.1 given\nstep: 10\nloss: 0.5\nacc: 0.25\nstep: 20\nloss: nan\n"
    r"  acc : 1e-3 \nval/loss: -inf\nstep: 2.5\nt: 3\n'"
)


def run_batch(tmp_path: Path, command: str, **more: Any) -> int:
    doc = {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}], **more}
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode


def metrics(key: str | None = None, started: bool = True) -> list[dict[str, Any]]:
    """What `hyperctl job metrics b j` lists (not started: [] until the job has)."""
    args = ("--key", key) if key else ()
    listed = hyperctl("job", "metrics", "b", "j", "--json", *args)
    if not started and listed.returncode != 0:
        return []
    assert listed.returncode == 0, listed.stderr
    return [{k: v for k, v in p.items() if k != "t"} for p in json.loads(listed.stdout)]


def test_a_shell_job_that_prints_key_value_lines_gets_them_as_metrics(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, PRINTS)

    got = metrics()

    assert len(got) == 2  # the prose, `step: 2.5` (no whole step) and `t: 3` (reserved) are not metrics
    assert got[0] == {"step": 10, "loss": 0.5, "acc": 0.25}
    assert math.isnan(got[1].pop("loss")) and got[1] == {"step": 20, "acc": 0.001, "val/loss": -math.inf}
    table = hyperctl("job", "metrics", "b", "j").stdout
    assert table.splitlines()[0].split() == ["STEP", "acc", "loss", "val/loss"]  # names as printed


def test_without_a_step_line_each_metric_counts_its_own_lines(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, "printf 'loss: 3\\nloss: 2\\nacc: 0.5\\nloss: 1\\n'")

    got = metrics()
    assert [p["step"] for p in got if "loss" in p] == [0, 1, 2]
    assert [p["loss"] for p in got if "loss" in p] == [3.0, 2.0, 1.0]
    assert [p for p in got if "acc" in p] == [{"step": 0, "acc": 0.5}]


def test_the_setting_turns_it_off(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, "printf 'loss: 3\\n'", metrics={"output": False})

    assert metrics() == []


def test_patterns_replace_the_default_form(tmp_path: Path, batches: Path) -> None:
    patterns = [r"(?P<key>\w+)=(?P<value>\S+)", {"acc": r"accuracy (\d+\.\d+)%"}]
    command = "printf 'epoch 1: loss=0.5 lr=0.1\\naccuracy 97.5%% on test\\nloss: 9\\nloss=x\\n'"

    run_batch(tmp_path, command, metrics={"output": patterns})

    assert metrics() == [{"step": 0, "loss": 0.5, "lr": 0.1, "acc": 97.5}]


def test_a_bad_setting_is_refused_naming_the_field(tmp_path: Path, batches: Path) -> None:
    doc = {
        "name": "b",
        "jobs": [{"execution": {"command": "true"}}],
        "metrics": {"output": ["(?P<key>\\w+", "(\\w+)=(\\S+)", {"step": "(\\d+)"}, 3], "outptu": 1},
    }
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 2
    lines = [line.removeprefix("hyperctl: error: ") for line in result.stderr.strip().splitlines()]
    assert any(line.startswith("metrics.output[0]: is not a regular expression") for line in lines), lines
    assert "metrics.output[1]: must have the groups (?P<key>...) and (?P<value>...)" in lines
    assert any(line.startswith("metrics.output[2]: 'step' is not a metric name") for line in lines)
    assert any(line.startswith("metrics.output[3]: must be a regular expression") for line in lines)
    assert any(line.startswith("metrics.outptu: unknown key") for line in lines)
    assert "Traceback" not in result.stderr and not (batches / "b").exists()


def test_a_job_killed_mid_line_leaves_its_cut_line_out(tmp_path: Path, batches: Path) -> None:
    assert run_batch(tmp_path, "printf 'loss: 1\\nloss: 2'; kill -KILL $$") == 1

    assert metrics() == [{"step": 0, "loss": 1.0}]  # `loss: 2` may have been `loss: 25`


def test_ten_thousand_points_in_one_job(tmp_path: Path, batches: Path) -> None:
    awk = "awk 'BEGIN { for (i = 0; i < 10000; i++) printf \"step: %d\\nloss: %g\\nsome text\\n\", i, i / 4 }'"
    run_batch(tmp_path, awk)

    got = metrics("loss")
    assert len(got) == 10_000 and got[-1] == {"step": 9999, "loss": 9999 / 4}
    assert [p["step"] for p in got] == list(range(10_000))


def test_a_metric_both_reported_and_printed_is_the_reported_one(tmp_path: Path, batches: Path) -> None:
    command = 'echo \'{"step": 0, "loss": 7}\' >> "$HYPERCTL_METRICS_FILE"; printf \'loss: 1\\nacc: 0.5\\n\''
    run_batch(tmp_path, command)

    assert metrics() == [{"step": 0, "loss": 7.0}, {"step": 0, "acc": 0.5}]


def test_the_step_a_step_line_set_is_where_a_later_reading_goes_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    scalars = OutputScalars()
    tail = metricstore.Tail(summaries={}, source=metricstore.OUTPUT)
    reading, lines, step = scalars.read(b"step: 4\nloss: 1\nstep: 5\n", None, {}, 1.0)
    metricstore.store(store.conn, "j", 1, tail, reading, lines)

    resumed = metricstore.tail_of(store.conn, "j", 1, metricstore.OUTPUT)  # as a restarted daemon reads on

    assert (resumed.step, resumed.offset, step) == (5, 24, 5)
    reading, _, _ = scalars.read(b"loss: 2\n", resumed.step, {"loss": 1}, 2.0)
    assert [(p.step, p.values) for p in reading.points] == [(5, {"loss": 2.0})]
    assert isinstance(store.conn, sqlite3.Connection)


def test_a_line_longer_than_a_read_is_skipped_whole(tmp_path: Path, batches: Path) -> None:
    """Its end, read on its own, looks like a scalar: it is not one."""
    script = tmp_path / "long.py"
    script.write_text("import sys\nsys.stdout.write('x' * (1 << 20) + 'loss: 9\\n' + 'loss: 1\\n')\n")
    run_batch(tmp_path, f"{sys.executable} {script}")

    assert metrics() == [{"step": 0, "loss": 1.0}]


def test_a_daemon_killed_and_resumed_goes_on_at_the_step_stdout_set(tmp_path: Path, batches: Path) -> None:
    """No scalar lost or counted twice, and the step a `step:` line set before the kill still holds."""
    import signal

    from tests.conftest import start_hyperctl, wait_for

    gate = tmp_path / "gate"
    command = f"printf 'step: 5\\nloss: 1\\n'; while [ ! -e {gate} ]; do sleep 0.02; done; printf 'loss: 2\\nacc: 3\\n'"
    doc = {"name": "b", "jobs": [{"name": "j", "execution": {"command": command}}], "daemon": {"port": 0}}
    daemon = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    wait_for(lambda: metrics(started=False) == [{"step": 5, "loss": 1.0}], "the first scalar stored, while it runs")
    daemon.send_signal(signal.SIGKILL)
    daemon.communicate()
    gate.touch()  # it prints on with no daemon

    resumed = hyperctl("batch", "resume", "b")

    assert resumed.returncode == 0, resumed.stderr
    assert metrics() == [{"step": 5, "loss": 1.0}, {"step": 5, "loss": 2.0, "acc": 3.0}]


def test_a_template_s_setting_reaches_the_batch(tmp_path: Path, batches: Path) -> None:
    doc = {
        "name": "b",
        "params": {"x": [1, 2]},
        "execution": {"command": "echo loss: {{ x }}"},
        "metrics": {"output": ["(?P<key>lo)ss: (?P<value>\\d)"]},
        "daemon": {"port": 0},
    }
    result = hyperctl("run", "--template", str(write_json(tmp_path / "t.json", doc)))

    assert result.returncode == 0, result.stderr
    for name in job_names(batches, "b"):
        listed = json.loads(hyperctl("job", "metrics", "b", name, "--json").stdout)
        assert [set(p) - {"t", "step"} for p in listed] == [{"lo"}]
