"""What a new user meets on the way from a sweep to its best params: job metrics, compare and
the Python API as README tells them, and the slips such a user makes (a misspelt metric or
status, both formats at once, one expression where a list was meant)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, hyperctl, write_json
from tests.test_api import API, Runs
from tests.test_compare_api import get, served

# A shell job that prints its loss (stdout scalars) and writes its progress into its metrics file.
PRINTS_AND_WRITES = """for i in 0 1 2; do
  echo "step: $i"; echo "loss: 0.$((5 - i))"
  echo "{\\"step\\": $i, \\"progress\\": 0.$((i + 3))}" >> "$HYPERCTL_METRICS_FILE"
done"""
REPORTS = "python3 -c 'import hyperctl; [hyperctl.report(loss=1 / (s + 2), acc=s / 4) for s in range(3)]'"


def run_batch(tmp_path: Path, jobs: dict[str, str]) -> None:
    doc = {
        "name": "b",
        "jobs": [
            {"name": name, "params": {"lr": i / 10}, "execution": {"command": command}}
            for i, (name, command) in enumerate(jobs.items(), 1)
        ],
        "daemon": {"port": 0},
    }
    done = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    assert done.returncode == 0, done.stderr


def test_job_metrics_of_a_job_that_prints_its_loss_and_writes_its_progress_is_one_row_per_step(
    tmp_path: Path, batches: Path
) -> None:
    run_batch(tmp_path, {"mixed": PRINTS_AND_WRITES})

    shown = hyperctl("job", "metrics", "b", "mixed")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "STEP  loss  progress",
        "   0   0.5       0.3",
        "   1   0.4       0.4",
        "   2   0.3       0.5",
    ]
    as_json = hyperctl("job", "metrics", "b", "mixed", "--json")
    points = [{k: v for k, v in p.items() if k != "t"} for p in json.loads(as_json.stdout)]
    assert points == [  # one history, in step order: a step's reported points first
        {"step": 0, "progress": 0.3},
        {"step": 0, "loss": 0.5},
        {"step": 1, "progress": 0.4},
        {"step": 1, "loss": 0.4},
        {"step": 2, "progress": 0.5},
        {"step": 2, "loss": 0.3},
    ]


def test_job_metrics_of_a_misspelt_metric_names_what_the_job_reported(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS, "quiet": "true"})

    for key in ((), ("--key", "loss")):  # an ended attempt that reported nothing: no "yet", no error
        none = hyperctl("job", "metrics", "b", "quiet", *key)
        assert (none.returncode, none.stderr) == (0, "hyperctl: job quiet: attempt 1 has reported no metrics\n")

    misspelt = hyperctl("job", "metrics", "b", "j", "--key", "los")
    assert misspelt.returncode == 2
    assert misspelt.stdout == ""
    said = "job j: attempt 1 reported no metric named 'los' (did you mean 'loss'? it reported: acc, loss)"
    assert misspelt.stderr == f"hyperctl: error: {said}\n"
    script = (
        "from hyperctl import Batch\n"
        "try:\n"
        "    Batch('b')['j'].metrics(key='los')\n"
        "except Exception as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == said + "\n"  # the Python API says it as the command does


def test_job_metrics_takes_one_format_and_its_help_shows_examples(tmp_path: Path, batches: Path) -> None:
    both = hyperctl("job", "metrics", "b", "j", "--csv", "--json")
    assert both.returncode == 2
    assert both.stderr.splitlines()[-1] == (
        "hyperctl job metrics: error: argument --json: not allowed with argument --csv"
    )

    shown = hyperctl("job", "metrics", "--help")
    assert shown.returncode == 0
    assert "examples:\n  hyperctl job metrics my-sweep lr-0.1 " in shown.stdout
    assert "  hyperctl job metrics my-sweep lr-0.1 --key loss " in shown.stdout
    listed = hyperctl("job", "--help").stdout  # where a user looks for it: printed metrics are there too
    assert "metrics   what a job reported or printed (loss: 0.25), point by point\n" in listed
    assert "    job       list, describe or kill jobs; read their logs and metrics\n" in hyperctl("--help").stdout


def test_compare_where_a_misspelt_status_or_text_against_a_metric_is_an_error_naming_it(
    tmp_path: Path, batches: Path
) -> None:
    run_batch(tmp_path, {"j": REPORTS, "k": REPORTS})

    misspelt = hyperctl("compare", "b", "--where", "status=succeded")
    assert (misspelt.returncode, misspelt.stdout) == (2, "")
    assert misspelt.stderr == (
        "hyperctl: error: filter 'status=succeded': no status 'succeded' (did you mean 'succeeded'? "
        "statuses: pending, running, succeeded, failed, killed, timeout, lost, unknown)\n"
    )
    text = hyperctl("compare", "b", "--where", "acc>high")
    assert (text.returncode, text.stdout) == (2, "")
    assert text.stderr == "hyperctl: error: filter 'acc>high': 'high' is not a number, and acc is a metric\n"
    kept = hyperctl("compare", "b", "--where", "status!=failed", "--where", "acc>0.4", "-c", "=lr")
    assert kept.stdout.splitlines() == ["name   lr", "j     0.1", "k     0.2"]


def test_a_script_gives_compare_one_column_sort_or_filter_as_a_string(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS, "k": REPORTS, "m": REPORTS})
    script = (
        "from hyperctl import Batch\n"
        "rows = Batch('b').compare('=lr,max acc', sort='-lr', where='lr>0.1', top=2)\n"
        "print(rows.columns, [(r['name'], r['lr']) for r in rows])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    assert done.stdout == "['name', 'lr', 'max acc'] [('m', 0.3), ('k', 0.2)]\n"


def test_the_best_job_of_a_batch_where_no_job_succeeded_says_so_not_that_the_metric_is_missing(
    tmp_path: Path, batches: Path
) -> None:
    doc = {
        "name": "b",
        "scheduler": {"objective": "max acc"},
        "jobs": [{"name": "j", "execution": {"command": "echo 'acc: 0.9'; exit 1"}}],
        "daemon": {"port": 0},
    }
    ran = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    assert ran.returncode == 1
    assert "  best: none: no job has succeeded\n" in ran.stderr
    described = hyperctl("batch", "describe", "b")
    assert described.stdout.splitlines()[-1] == "best         none: no job has succeeded"


def test_compare_shows_a_long_job_name_whole_and_on_a_narrow_terminal_keeps_its_end(
    tmp_path: Path, batches: Path
) -> None:
    name = "learning_rate-0.03836522179791265_max_depth-2_note-baseline-0310e39b0053"  # as a sweep names it
    run_batch(tmp_path, {name: REPORTS})

    piped = hyperctl("compare", "b", "-c", "acc")
    assert piped.stdout.splitlines()[1].split() == [name, "0.5"]  # what `job metrics b NAME` takes
    narrow = hyperctl("compare", "b", "-c", "acc", env={"COLUMNS": "50"})
    shown = narrow.stdout.splitlines()[1].split()[0]
    assert shown == "learning_rate-0.038365…-baseline-0310e39b0053"
    assert len(narrow.stdout.splitlines()[1]) <= 50


def test_the_api_s_metrics_of_a_misspelt_key_is_a_404_naming_what_the_attempt_reported(runs: Runs) -> None:  # noqa: F811
    portal, token = served(runs)

    assert get(portal, f"{API}/job/a/metrics", token, key="los") == (
        404,
        {"error": "job a: attempt 1 reported no metric named 'los' (did you mean 'loss'? it reported: acc, loss)",
         "status": 404},
    )  # fmt: skip


def test_compare_of_an_attempt_no_job_has_says_so(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS})

    shown = hyperctl("compare", "b", "--attempt", "2")
    assert (shown.returncode, shown.stderr) == (0, "hyperctl: no job has an attempt 2\n")


def test_job_describe_shows_the_last_value_of_each_metric_and_where_to_see_every_point(
    tmp_path: Path, batches: Path
) -> None:
    run_batch(tmp_path, {"j": REPORTS, "quiet": "true"})

    described = hyperctl("job", "describe", "b", "j")
    assert described.returncode == 0
    assert "\nmetrics   acc=0.5, loss=0.25 (last; every point: hyperctl job metrics b j)\n" in described.stdout
    assert "metrics" not in hyperctl("job", "describe", "b", "quiet").stdout  # none reported: no line


def test_try_shows_what_the_script_reported_before_a_sweep_is_run(tmp_path: Path) -> None:
    code = "import hyperctl\nfor i in range(3): hyperctl.report(loss=1 / (i + 1), acc=i / 4)\n"
    tried = hyperctl("try", "--data-dir", str(tmp_path / "out"), "--", sys.executable, "-c", code)
    assert tried.returncode == 0
    assert tried.stderr.splitlines() == [
        f"hyperctl: data dir {tmp_path / 'out'}",
        "hyperctl: reported acc=0.5, loss=0.3333 (last values; 3 points)",
    ]  # not `hyperctl.report: not inside a hyperctl job`
    shell = hyperctl("try", "--", "sh", "-c", 'echo \'{"loss": 0.25}\' >> "$HYPERCTL_METRICS_FILE"')
    assert shell.stderr.splitlines()[-1] == "hyperctl: reported loss=0.25 (last values; 1 point)"


def test_the_metrics_example_run_as_its_command_says_names_its_best_job_as_compare_shows_it(batches: Path) -> None:
    ran = hyperctl("run", "--template", "examples/metrics/template.yml", cwd=REPO)
    assert ran.returncode == 0, ran.stderr
    best = "lr-0.1_width-64-bc17cb794696 acc=0.9352 (max of 6 succeeded jobs' last acc)"
    assert ran.stderr.splitlines()[-1] == f"  best: {best}"
    compared = hyperctl("compare", "metrics", "--max", "acc", "--top", "1", "-c", "acc")
    assert compared.stdout.splitlines()[1].split() == ["lr-0.1_width-64-bc17cb794696", "0.9352"]


def test_compare_heads_a_metric_named_as_an_attribute_last_name_even_alone(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"a": "echo 'status: 0'", "b": "echo 'status: 1'"})  # a shell job's own status line

    shown = hyperctl("compare", "b", "-c", "last status")
    assert shown.stdout.splitlines() == ["name  last status", "a               0", "b               1"]
    as_json = json.loads(hyperctl("compare", "b", "-c", "last status", "--json").stdout)
    assert as_json["columns"] == ["name", "last status"]  # `status` is the job's status


def test_compare_takes_its_batches_with_b_as_every_command_does(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS})

    given = hyperctl("compare", "-b", "b", "-c", "acc")
    assert (given.returncode, given.stdout.splitlines()) == (0, ["name  acc", "j     0.5"])
    none = hyperctl("compare")
    assert (none.returncode, none.stderr) == (
        2,
        "hyperctl: error: which batch? give it: BATCH [BATCH ...] (or -b BATCH, again for more)\n",
    )
    csv_first = hyperctl("compare", "--csv", "b")
    assert (csv_first.returncode, csv_first.stderr) == (
        2,
        "hyperctl: error: which batch? give it: BATCH [BATCH ...] (or -b BATCH, again for more); "
        "--csv took 'b' for its file: give --csv FILE after the batches\n",
    )


def test_a_template_run_as_a_batch_and_a_batch_run_as_a_template_say_which_it_is(batches: Path) -> None:
    as_batch = hyperctl("run", "--config", "examples/metrics/template.yml", cwd=REPO)
    assert (as_batch.returncode, as_batch.stderr) == (
        2,
        "hyperctl: error: jobs: required; this looks like a template (params, no jobs): "
        "hyperctl run --template FILE, or Batch.run(..., template=True)\n",
    )
    as_template = hyperctl("run", "--template", "examples/quickstart/batch.json", cwd=REPO)
    assert (as_template.returncode, as_template.stderr) == (
        2,
        "hyperctl: error: jobs: a batch's key, not a template's; this looks like a batch: "
        "hyperctl run --config FILE, or Batch.run(...) without template=True\n",
    )
    assert not batches.exists() or not any(batches.iterdir())  # nothing started, nothing left behind


def test_job_list_job_describe_and_compare_name_a_job_s_duration_alike(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS})

    assert "duration" in hyperctl("compare", "b").stdout.splitlines()[0].split()
    assert "DURATION" in hyperctl("job", "list", "b").stdout.splitlines()[0].split()  # it was TOOK
    described = hyperctl("job", "describe", "b", "j").stdout.splitlines()
    assert "DURATION" in next(line for line in described if line.startswith("#")).split()


def test_compare_of_a_misspelt_column_or_attribute_suggests_the_name(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"j": REPORTS})

    misspelt = hyperctl("compare", "b", "--where", "stauts=succeeded")
    assert (misspelt.returncode, misspelt.stderr) == (
        2,
        "hyperctl: error: filter 'stauts=succeeded': no job has a param or metric named 'stauts' "
        "(did you mean 'status'? params: lr; metrics: acc, loss)\n",
    )
    assert "(did you mean 'acc'? " in hyperctl("compare", "b", "-c", "max accc").stderr


def test_a_job_name_typed_without_its_digest_gets_the_names_that_begin_so(tmp_path: Path, batches: Path) -> None:
    run_batch(tmp_path, {"lr-0.1-3f2a9c1b7d4e": REPORTS, "lr-0.2-aa": REPORTS, "lr-0.2-bb": REPORTS})

    one = hyperctl("job", "metrics", "b", "lr-0.1")
    assert (one.returncode, one.stderr) == (
        2,
        "hyperctl: error: batch 'b' has no job named 'lr-0.1' (did you mean 'lr-0.1-3f2a9c1b7d4e'?)\n",
    )
    several = hyperctl("job", "describe", "b", "lr-0.2")
    assert several.stderr == (
        "hyperctl: error: batch 'b' has no job named 'lr-0.2' (jobs whose names begin so: lr-0.2-aa, lr-0.2-bb)\n"
    )
    assert hyperctl("job", "logs", "b", "nope").stderr == "hyperctl: error: batch 'b' has no job named 'nope'\n"
