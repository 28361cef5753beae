"""Usage errors show the command's own usage; resume and retry print the run's summary as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import hyperctl, write_json


def test_an_argument_a_command_does_not_take_shows_that_commands_usage(batches: Path) -> None:
    result = hyperctl("batch", "resume", "b", "--bogus")

    assert result.returncode == 2
    assert result.stderr.startswith("usage: hyperctl batch resume ")
    assert result.stderr.splitlines()[-1] == "hyperctl batch resume: error: unrecognized arguments: --bogus"


def test_resume_and_retry_print_the_runs_summary_as_json_with_why_jobs_did_not_start(
    tmp_path: Path, batches: Path
) -> None:
    flag = tmp_path / "fixed"
    jobs = [{"name": f"j{i}", "execution": {"command": f"[ -e {flag} ]"}} for i in range(3)]
    doc = {
        "name": "b",
        "jobs": jobs,
        "daemon": {"port": 0},
        "backend": {"conf": {"cpu": 1}},
        "scheduler": {"halt_on_failures": 1, "max_retries": 0},
    }

    run = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), "--json")

    assert run.returncode == 1
    assert "halted after 1 failure (scheduler.halt_on_failures): 2 jobs not started" in run.stderr
    summary = json.loads(run.stdout)
    assert (summary["halted"], summary["counts"]["pending"]) == (
        "halted after 1 failure (scheduler.halt_on_failures)",
        2,
    )

    resumed = hyperctl("batch", "resume", "b", "--json")  # halts again at once: j1 fails
    assert resumed.returncode == 1
    assert json.loads(resumed.stdout)["halted"] == "halted after 1 failure (scheduler.halt_on_failures)"

    flag.touch()
    retried = hyperctl("batch", "retry", "b", "--json")
    assert retried.returncode == 0, retried.stderr
    summary = json.loads(retried.stdout)
    assert (summary["status"], summary["counts"]["succeeded"], summary["halted"]) == ("finished", 3, None)


def test_help_says_what_is_true_now() -> None:
    top = " ".join(hyperctl("--help").stdout.split())
    kill = " ".join(hyperctl("job", "kill", "--help").stdout.split())

    assert "on this machine or on SSH hosts" in top
    assert "left the group (setsid)" in kill
