"""Hostile or mistaken input: one line naming the field, exit 2, in bounded time, nothing left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import hyperctl, read_stdout, write_json

LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
LAUGHS = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS  # 10**10 strings


def refused(result: Any, *expected: str, within: float | None = None) -> None:
    """Exit 2 and exactly one line, holding each expected part."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("hyperctl: error: "), lines[0]
    for part in expected:
        assert part in lines[0], lines[0]


def nothing_left(batches: Path) -> None:
    assert not batches.exists() or not any(batches.iterdir()), list(batches.rglob("*"))


def run_yaml(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "b.yaml"
    path.write_text(text)
    return hyperctl("run", "--config", str(path), timeout=60)


def run_batch(tmp_path: Path, doc: dict[str, Any]) -> Any:
    return hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), timeout=60)


def test_billion_laughs_under_params_is_refused_at_once(tmp_path: Path, batches: Path) -> None:
    started = time.monotonic()
    result = run_yaml(tmp_path, LAUGHS + "jobs: [{execution: {command: 'true'}, params: {x: *l9}}]\n")
    refused(result, "b.yaml: line ", "holds over 1,000,000 values, counting each use of an alias")
    assert time.monotonic() - started < 20
    nothing_left(batches)


def test_billion_laughs_in_grid_values_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "t.yml"
    template.write_text(LAUGHS + "params: {x: *l9}\nexecution: {command: 'echo {{ x }}'}\n")
    result = hyperctl("generate", "--template", str(template), "--output", "-", timeout=60)
    refused(result, "holds over 1,000,000 values")
    assert result.stdout == ""


def test_yaml_nested_past_the_depth_limit_is_one_line(tmp_path: Path, batches: Path) -> None:
    result = run_yaml(tmp_path, "a: " + "[" * 200_000 + "]" * 200_000 + "\n")  # crashed the process
    refused(result, "b.yaml: line 1 column 1003: nests lists or mappings over 1,000 levels deep")
    result = run_yaml(tmp_path, "a:\n" + "- " * 5_000 + "x\n")
    refused(result, "nests lists or mappings over 1,000 levels deep")
    nothing_left(batches)


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path: Path, batches: Path) -> None:
    result = run_yaml(tmp_path, "jobs: [{execution: {command: 'true'}, params: &a {x: [*a]}}]\n")
    refused(result, "b.yaml: line 1 column ", "an alias refers to a value that holds it")
    nothing_left(batches)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo {{ 9**99999999 }}", "computes an integer of over 100,000 bits"),
        ("echo {{ 'ab' * 10**9 }}", "makes a string of 2,000,000,000 characters"),
        ("echo {{ x.ljust(10**9) }}", "1,000,000,000 is too large a count here"),
        ("echo {{ '%999999999d' % 1 }}", "a format width or precision is too large"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}true",
            "takes over 2 s to render",
        ),
        ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "at most 128 KiB"),
        ("echo {{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "template: nests too deeply to compile"),
        ("{% if 1 %}" * 200 + "true" + "{% endif %}" * 200, "template: nests too deeply to compile"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "template: calls itself without end"),
        (
            "{% set ns = namespace(s=x) %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "makes a string of 131,072 characters",
        ),
    ],
)
def test_a_template_that_would_not_end_or_fill_memory_is_refused(
    tmp_path: Path, batches: Path, command: str, message: str
) -> None:
    started = time.monotonic()
    result = run_batch(tmp_path, {"jobs": [{"params": {"x": "a"}, "execution": {"command": command}}]})
    refused(result, "jobs[0].execution.command: ", message)
    assert time.monotonic() - started < 20
    nothing_left(batches)


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path, batches: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("jobs:\n" + "- {execution: {command: 'true'}}\n" * 100_000)  # 3.3 MB
    refused(hyperctl("run", "--config", str(big)), "big.yaml: is over 2 MB, the most a YAML file may be")
    huge = tmp_path / "huge.json"
    huge.write_text('{"jobs": [' + ",".join(['{"execution": {"command": "true"}}'] * 320_000) + "]}")  # 11 MB
    refused(hyperctl("run", "--config", str(huge)), "huge.json: is over 10 MB, the most a batch or template file")
    refused(hyperctl("run", "--config", "/dev/zero", timeout=20), "/dev/zero: is over 10 MB")
    nothing_left(batches)


def test_job_counts_are_capped_before_anything_is_expanded(tmp_path: Path, batches: Path) -> None:
    many = {"jobs": [{"execution": {"command": "true"}}] * 100_001}
    refused(run_batch(tmp_path, many), "jobs: lists 100,001 jobs: a batch may have at most 100,000")
    grid = tmp_path / "grid.yml"
    grid.write_text("params:\n" + "".join(f"  p{i}: [0,1,2,3,4,5,6,7,8,9]\n" for i in range(10)))
    grid.write_text(grid.read_text() + "execution: {command: 'true'}\n")
    refused(
        hyperctl("run", "--template", str(grid), timeout=20),
        "params: the grid makes 10,000,000,000 jobs: a batch may have at most 100,000",
    )
    trials = tmp_path / "random.yml"
    trials.write_text("strategy: random\nnum_trials: 1000000000\nparams: {a: [1]}\nexecution: {command: 'true'}\n")
    refused(
        hyperctl("generate", "--template", str(trials), "--output", "-", timeout=20),
        "num_trials: a batch may have at most 100,000 jobs, not 1,000,000,000",
    )
    nothing_left(batches)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs: [{execution: {command: 'true'}, resource: {cpu: 1" + "0" * 400 + "}}]", "jobs[0].resource.cpu: is too"),
        ("jobs: [{execution: {command: 'true'}, resource: {gpu: 1000000000}}]", "resource: asks 1000000000 GPUs"),
        ("jobs: [{execution: {command: 'true', env: {1: x}}}]", "jobs[0].execution.env: key 1 must be a string"),
        ("jobs: [{execution: {command: 'true'}, params: {1: x}}]", "jobs[0].params: key 1 must be a string"),
    ],
)
def test_numbers_and_keys_yaml_reads_are_one_line(tmp_path: Path, batches: Path, text: str, message: str) -> None:
    refused(run_yaml(tmp_path, text + "\n"), message)
    nothing_left(batches)


# Each document holds a value that the job, its shell or the daemon's socket could not take.
NUL, SURROGATE = "\u0000", "\ud800"
UNSENDABLE = {
    "command NUL": ({"command": f"echo a{NUL}b"}, {}, "jobs[0].execution.command: holds a NUL byte"),
    "command surrogate": ({"command": f"echo {SURROGATE}"}, {}, "jobs[0].execution.command: holds a lone surrogate"),
    "param NUL": ({"command": "echo {{ x }}"}, {"x": f"a{NUL}"}, "command: uses params.x, which holds a NUL byte"),
    "param surrogate": ({"command": "echo {{ x[0] }}"}, {"x": [SURROGATE]}, "uses params.x, which holds a lone"),
    "env value": ({"command": "true", "env": {"A": f"a{NUL}"}}, {}, "jobs[0].execution.env.A: holds a NUL byte"),
    "env surrogate": ({"command": "true", "env": {"A": SURROGATE}}, {}, "execution.env.A: holds a lone surrogate"),
    "data_dir": ({"command": "true", "data_dir": f"d{NUL}"}, {}, "jobs[0].execution.data_dir: holds a NUL byte"),
    "working_dir": ({"command": "true", "working_dir": SURROGATE}, {}, "execution.working_dir: holds a lone"),
    "long command": ({"command": "echo " + "a" * 131_072}, {}, "jobs[0].execution.command: is 131,077 bytes long"),
    "long env": ({"command": "true", "env": {"A": "a" * 131_070}}, {}, "execution.env.A: is 131,072 bytes long"),
    "long render": ({"command": "echo {{ x }}"}, {"x": "a" * 131_072}, "command: renders to more than 131,072 bytes"),
}


@pytest.mark.parametrize("case", sorted(UNSENDABLE))
def test_what_would_fail_later_is_refused_now(tmp_path: Path, batches: Path, case: str) -> None:
    execution, params, message = UNSENDABLE[case]
    result = run_batch(tmp_path, {"jobs": [{"params": params, "execution": execution}]})
    refused(result, message)
    nothing_left(batches)


def test_a_daemon_host_with_a_nul_byte_is_refused(tmp_path: Path, batches: Path) -> None:
    doc = {"jobs": [{"execution": {"command": "true"}}], "daemon": {"host": "127.0.0.1\u0000x"}}
    refused(run_batch(tmp_path, doc), "daemon.host: holds a NUL byte")
    nothing_left(batches)


def test_an_env_value_just_under_the_limit_runs(tmp_path: Path, batches: Path) -> None:
    doc = {"name": "big-env", "jobs": [{"execution": {"command": "test ${#A} = 131069", "env": {"A": "a" * 131_069}}}]}
    result = run_batch(tmp_path, doc)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("asset", [".", "..", "./", "/", "FOLDER"])
def test_an_asset_that_is_the_batch_files_folder_is_refused(tmp_path: Path, batches: Path, asset: str) -> None:
    asset = str(tmp_path) if asset == "FOLDER" else asset
    doc = {"jobs": [{"execution": {"command": "true", "assets": ["b.json", asset]}}]}
    refused(run_batch(tmp_path, doc), f"jobs[0].execution.assets[1]: '{asset}' is the batch file's own folder")
    nothing_left(batches)


def test_an_unresolvable_daemon_host_leaves_nothing_behind(tmp_path: Path, batches: Path) -> None:
    doc = {"jobs": [{"execution": {"command": "true"}}], "daemon": {"host": "no-such-host.invalid"}}
    refused(run_batch(tmp_path, doc), "daemon.host: cannot listen on no-such-host.invalid")
    refused(
        hyperctl("run", "--detach", "--config", str(tmp_path / "b.json")),
        "daemon.host: cannot listen on no-such-host.invalid",
    )
    nothing_left(batches)


def test_readme_states_the_limits() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for number in ("10 MB", "2 MB", "100,000", "100 levels", "128 KiB", "2 s"):
        assert number in section, number


def test_generate_does_not_write_a_yaml_batch_that_run_would_refuse(tmp_path: Path) -> None:
    template = tmp_path / "t.yml"
    long = "x" * 3000  # 1,000 jobs of a long command: over 2 MB
    template.write_text(f"params: {{a: {list(range(1000))}}}\nexecution: {{command: 'echo {long} {{{{ a }}}}'}}\n")
    out = tmp_path / "batch.yaml"
    result = hyperctl("generate", "--template", str(template), "--output", str(out))
    refused(result, "batch.yaml: 1,000 jobs make over 2 MB of YAML, more than `run` reads: write them as JSON")
    assert not out.exists()
    assert hyperctl("generate", "--template", str(template), "--output", str(tmp_path / "b.json")).returncode == 0


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_an_asset_that_is_a_device_or_a_fifo_is_refused(tmp_path: Path, batches: Path, device: str) -> None:
    """Reading /dev/zero never ends: copied as an asset, it filled the disk."""
    if device == "fifo":
        device = str(tmp_path / "fifo")
        os.mkfifo(device)
    doc = {"name": "b", "jobs": [{"name": "a", "execution": {"command": "true", "assets": [device]}}]}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), timeout=30)

    assert result.returncode == 2
    assert result.stderr == (
        f"hyperctl: error: jobs[0].execution.assets[0]: must be a regular file or a folder: {device} is neither\n"
    )
    assert not (batches / "b").exists()


def test_an_asset_folder_is_copied_without_what_is_no_file(tmp_path: Path, batches: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("1\n")
    os.mkfifo(data / "pipe")
    doc = {"name": "b", "jobs": [{"name": "a", "execution": {"command": "ls data", "assets": [str(data)]}}]}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), timeout=30)

    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "b", "a") == "x.csv\n"
