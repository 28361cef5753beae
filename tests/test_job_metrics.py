"""`hyperctl job metrics`: a job's history as the store has it, whatever became of the job."""

from __future__ import annotations

import csv
import io
import json
import shlex
import sys
from pathlib import Path

from tests.conftest import hyperctl, write_json


def run_batch(tmp_path: Path, jobs: dict[str, str], **more: object) -> None:
    doc = {
        "name": "b",
        "jobs": [{"name": name, "execution": {"command": command}} for name, command in jobs.items()],
        "daemon": {"port": 0},
        **more,
    }
    hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))


def python(tmp_path: Path, name: str, code: str) -> str:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


def history(*args: str) -> list[dict[str, float]]:
    listed = hyperctl("job", "metrics", "b", *args, "--json")
    assert listed.returncode == 0, listed.stderr
    return [{k: v for k, v in p.items() if k != "t"} for p in json.loads(listed.stdout)]


def test_a_job_killed_mid_report_keeps_every_whole_point_and_never_the_cut_one(tmp_path: Path, batches: Path) -> None:
    # What a job killed in the middle of a write leaves: a last line without its end.
    cut = """printf '{"step": 1, "loss": 0.5}\\n{"step": 2, "loss": 0.25}\\n{"step": 3, "lo' >> "$HYPERCTL_METRICS_FILE"
kill -9 $$"""
    run_batch(tmp_path, {"cut": cut})

    assert history("cut") == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    listed = hyperctl("job", "list", "b")
    assert "failed" in listed.stdout


def test_ten_thousand_points_of_one_job_are_all_stored(tmp_path: Path, batches: Path) -> None:
    code = "import hyperctl\nfor i in range(10_000): hyperctl.report(loss=1 / (i + 1), acc=i / 10_000)\n"
    run_batch(tmp_path, {"long": python(tmp_path, "long", code)})

    got = history("long")
    assert len(got) == 10_000
    assert got[0] == {"step": 0, "loss": 1.0, "acc": 0.0}
    assert got[-1] == {"step": 9999, "loss": 1 / 10_000, "acc": 0.9999}
    only = history("long", "--key", "acc")
    assert [set(p) for p in only[:1]] == [{"step", "acc"}]


def test_a_retried_attempt_starts_its_steps_again_and_each_attempt_keeps_its_own(tmp_path: Path, batches: Path) -> None:
    code = (
        "import hyperctl, os, sys\n"
        "n = int(os.environ['HYPERCTL_ATTEMPT'])\n"
        "for i in range(3): hyperctl.report(loss=n * 10 + i)\n"
        "sys.exit(1 if n == 1 else 0)\n"
    )
    run_batch(tmp_path, {"flaky": python(tmp_path, "flaky", code)}, scheduler={"max_retries": 1})

    assert history("flaky") == [{"step": i, "loss": 20.0 + i} for i in range(3)]  # the last attempt
    assert history("flaky", "--attempt", "1") == [{"step": i, "loss": 10.0 + i} for i in range(3)]
    wrong = hyperctl("job", "metrics", "b", "flaky", "--attempt", "3")
    assert wrong.returncode == 2 and wrong.stderr.strip().endswith("job 'flaky' has attempts 1 to 2, not 3")


def test_csv_and_the_table_show_each_metric_in_a_column(tmp_path: Path, batches: Path) -> None:
    code = "import hyperctl\nhyperctl.report(loss=0.5)\nhyperctl.report(loss=1 / 3, Acc=0.75)\n"
    run_batch(tmp_path, {"j": python(tmp_path, "j", code)})

    as_csv = hyperctl("job", "metrics", "b", "j", "--csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["step", "t", "Acc", "loss"]
    assert [(r[0], r[2], r[3]) for r in rows[1:]] == [("0", "", "0.5"), ("1", "0.75", str(1 / 3))]
    shown = hyperctl("job", "metrics", "b", "j")
    assert shown.returncode == 0
    assert [line.split() for line in shown.stdout.splitlines()] == [
        ["STEP", "Acc", "loss"],
        ["0", "-", "0.5"],
        ["1", "0.75", "0.3333"],
    ]
