"""The batch (and job) a command is about is given the same way everywhere: positionally or with -b/-j."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import hyperctl, write_json


@pytest.fixture
def ran(tmp_path: Path, batches: Path) -> Path:
    doc = {
        "name": "sweep",
        "jobs": [{"name": "one", "execution": {"command": "echo out-of-one"}}],
        "daemon": {"port": 0},
    }
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    assert result.returncode == 0, result.stderr
    return batches


@pytest.mark.parametrize(
    "forms",
    [
        [["job", "list", "sweep", "--json"], ["job", "list", "-b", "sweep", "--json"]],
        [["job", "describe", "sweep", "one", "--json"], ["job", "describe", "-b", "sweep", "-j", "one", "--json"]],
        [["job", "logs", "sweep", "one"], ["job", "logs", "-b", "sweep", "one"], ["job", "logs", "-j", "one", "sweep"]],
        [["batch", "describe", "sweep", "--json"], ["batch", "describe", "-b", "sweep", "--json"]],
        [["hosts", "sweep", "--json"], ["hosts", "-b", "sweep", "--json"]],
    ],
)
def test_each_form_names_the_same_thing(ran: Path, forms: list[list[str]]) -> None:
    outputs = []
    for argv in forms:
        result = hyperctl(*argv)
        assert result.returncode == 0, (argv, result.stderr)
        outputs.append(result.stdout)
    assert outputs[0].strip() and all(out == outputs[0] for out in outputs), outputs
    if forms[0][:2] == ["job", "logs"]:
        assert outputs[0] == "out-of-one\n"
    elif "--json" in forms[0]:
        json.loads(outputs[0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["job", "logs", "sweep"], "which job? give it: BATCH JOB (or -b BATCH -j JOB)"),
        (["job", "list"], "which batch? give it: BATCH (or -b BATCH)"),
        (["job", "logs", "-b", "sweep", "-j", "one", "extra"], "unexpected argument 'extra'"),
        (["batch", "describe", "-b", "sweep", "other"], "unexpected argument 'other'"),
    ],
)
def test_a_missing_or_extra_name_is_a_usage_error(ran: Path, argv: list[str], message: str) -> None:
    result = hyperctl(*argv)
    assert result.returncode == 2
    assert result.stderr.startswith(f"hyperctl: error: {message}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
