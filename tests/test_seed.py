"""The examples users start from, exactly as they are written in the issue and the notes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import hyperctl, job_names, read_stdout

JOB_SCRIPT = """\
import hyperctl
params = hyperctl.get_job_params()
assert params
print(params)
"""

SEED_BATCH = '{"jobs": [{"params": {"learning_rate": 0.1}, "execution": {"command": "python ~/job-script.py"}}]}'

SEED_TEMPLATE = """\
params:
    learning_rate: [0.1, 0.2]
    max_depth: [3, 5]
execution:
  command: python3 main.py
"""


@pytest.mark.parametrize(
    "script",
    [
        JOB_SCRIPT,
        JOB_SCRIPT.replace("import hyperctl\n", "from hyperctl import get_job_params\n").replace(
            "hyperctl.get_job_params", "get_job_params"
        ),
    ],
    ids=["import-hyperctl", "from-import"],
)
def test_seed_batch_runs_and_keeps_stdout(tmp_path: Path, batches: Path, script: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "job-script.py").write_text(script)
    (tmp_path / "batch.json").write_text(SEED_BATCH)

    result = hyperctl("run", "--config", "./batch.json", cwd=tmp_path, env={"HOME": str(home)})

    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "batch", job_names(batches, "batch")[0]) == "{'learning_rate': 0.1}\n"
    assert "1 succeeded" in result.stderr


def test_seed_template_gives_the_four_combinations(tmp_path: Path) -> None:
    (tmp_path / "job-template.yml").write_text(SEED_TEMPLATE)

    result = hyperctl("generate", "--template", "./job-template.yml", "--output", "./batch.json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    batch = json.loads((tmp_path / "batch.json").read_text())
    combos = [job["params"] for job in batch["jobs"]]
    assert combos == [
        {"learning_rate": 0.1, "max_depth": 3},
        {"learning_rate": 0.1, "max_depth": 5},
        {"learning_rate": 0.2, "max_depth": 3},
        {"learning_rate": 0.2, "max_depth": 5},
    ]
    assert all(job["execution"]["command"] == "python3 main.py" for job in batch["jobs"])


def test_generated_file_runs_as_it_is(tmp_path: Path, batches: Path) -> None:
    """The seed template, with a main.py beside it: generate, then run the output unchanged."""
    template = SEED_TEMPLATE.replace(
        "  command: python3 main.py\n", f"  command: python3 main.py\n  working_dir: {tmp_path}\n"
    )
    (tmp_path / "job-template.yml").write_text(template)
    (tmp_path / "main.py").write_text(
        textwrap.dedent("""\
        import hyperctl
        p = hyperctl.get_job_params()
        print(p["learning_rate"] * p["max_depth"])
    """)
    )
    assert (
        hyperctl("generate", "--template", "job-template.yml", "--output", "batch.json", cwd=tmp_path).returncode == 0
    )

    result = hyperctl("run", "--config", "batch.json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    outputs = sorted(float(read_stdout(batches, "batch", job_names(batches, "batch")[i])) for i in range(4))
    assert outputs == pytest.approx([0.3, 0.5, 0.6, 1.0])


def test_run_template_expands_and_runs_in_one_step(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "sweep.yml").write_text("params: {a: [1, 2, 3]}\nexecution: {command: 'echo a={{ a }}'}\n")

    result = hyperctl("run", "--template", "sweep.yml", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert [read_stdout(batches, "sweep", job_names(batches, "sweep")[i]) for i in range(3)] == [
        "a=1\n",
        "a=2\n",
        "a=3\n",
    ]
