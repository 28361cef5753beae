"""Templates: grid and random expansion, and writing the batch file safely."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hyperctl.errors import ConfigError
from hyperctl.generate import expand_template
from tests.conftest import hyperctl

RANDOM = {
    "strategy": "random",
    "num_trials": 50,
    "seed": 7,
    "params": {
        "lr": {"loguniform": [1e-4, 1e-1]},
        "dropout": {"uniform": [0.1, 0.5]},
        "layers": {"randint": [1, 3]},
        "opt": ["adam", "sgd"],
    },
    "execution": {"command": "python train.py --lr {{ lr }}"},
}


def test_grid_is_the_cartesian_product_in_key_order() -> None:
    batch, seed = expand_template(
        {
            "params": {"a": [1, 2], "b": ["x", "y", "z"]},
            "execution": {"command": "true"},
            "name": "g",
            "daemon": {"port": 0},
        }
    )
    assert [tuple(j["params"].values()) for j in batch["jobs"]] == [
        (1, "x"),
        (1, "y"),
        (1, "z"),
        (2, "x"),
        (2, "y"),
        (2, "z"),
    ]
    assert seed is None and batch["name"] == "g" and batch["daemon"] == {"port": 0}


def test_random_same_seed_same_jobs_within_bounds() -> None:
    first, seed = expand_template(RANDOM)
    again, _ = expand_template(json.loads(json.dumps(RANDOM)))
    other, _ = expand_template({**RANDOM, "seed": 8})

    params = [j["params"] for j in first["jobs"]]
    assert seed == 7 and len(params) == 50
    assert first == again and first != other
    assert all(1e-4 <= p["lr"] <= 1e-1 and 0.1 <= p["dropout"] <= 0.5 for p in params)
    assert {p["layers"] for p in params} == {1, 2, 3}  # both ends included
    assert {p["opt"] for p in params} == {"adam", "sgd"}
    # loguniform: about as many draws in each decade
    decades = [math.floor(math.log10(p["lr"])) for p in params]
    assert all(decades.count(d) >= 5 for d in (-4, -3, -2))


def test_random_without_seed_reports_the_one_it_used() -> None:
    template = {k: v for k, v in RANDOM.items() if k != "seed"}
    batch, seed = expand_template(template)
    assert seed is not None
    assert expand_template({**template, "seed": seed})[0] == batch


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"params": {"a": 0.1}, "execution": {"command": "x"}}, "params.a: must be a list of values, not number"),
        ({"params": {"a": []}, "execution": {"command": "x"}}, "params.a: an empty list gives no jobs"),
        ({"params": {"a": {"uniform": [0, 1]}}, "execution": {"command": "x"}}, "params.a: a distribution needs"),
        ({**RANDOM, "params": {"a": {"normal": [0, 1]}}}, "params.a: a distribution is one of"),
        ({**RANDOM, "params": {"a": {"loguniform": [0, 1]}}}, "params.a.loguniform: loguniform needs low > 0"),
        ({**RANDOM, "params": {"a": {"randint": [1.5, 3]}}}, "params.a.randint: must be [low, high], two integers"),
        ({**RANDOM, "params": {"a": {"uniform": [3, 1]}}}, "params.a.uniform: low 3 is above high 1"),
        ({k: v for k, v in RANDOM.items() if k != "num_trials"}, "num_trials: required with strategy: random"),
        ({**RANDOM, "strategy": "bayes"}, "strategy: must be one of grid, random"),
        ({"params": {"a": [1]}}, "execution.command: required"),
        ({"params": {"a": [1]}, "execution": {"command": "x {{ b }}"}}, "execution.command: 'b' is not a param"),
        ({"params": {"a": [1]}, "execution": {"command": "x"}, "paramz": 1}, "paramz: unknown key (did you mean"),
    ],
)
def test_template_errors_name_the_field(template: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        expand_template(template)
    assert any(line.startswith(message) for line in e.value.problems), e.value.problems


def test_output_to_stdout_and_no_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("params: {a: [1, 2]}\nexecution: {command: 'echo {{ a }}'}\n")
    existing = tmp_path / "batch.json"
    existing.write_text("precious")

    to_stdout = hyperctl("generate", "--template", "t.yml", "--output", "-", cwd=tmp_path)
    refused = hyperctl("generate", "--template", "t.yml", "--output", "batch.json", cwd=tmp_path)

    assert to_stdout.returncode == 0
    assert len(json.loads(to_stdout.stdout)["jobs"]) == 2
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"hyperctl: error: {Path('batch.json')}: exists; pass --force to overwrite it"
    assert existing.read_text() == "precious"

    forced = hyperctl("generate", "--template", "t.yml", "--output", "batch.json", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and len(json.loads(existing.read_text())["jobs"]) == 2


def test_json_output_has_a_job_per_line(tmp_path: Path) -> None:
    """What one edits and diffs by hand; and written by json's C encoder (fast at 100,000 jobs)."""
    (tmp_path / "t.yml").write_text("name: s\nparams: {a: [1, 2]}\nexecution: {command: 'echo {{ a }}'}\n")

    out = hyperctl("generate", "--template", "t.yml", "--output", "-", cwd=tmp_path).stdout

    jobs = json.loads(out)["jobs"]
    assert [line.strip().rstrip(",") for line in out.splitlines() if '"params"' in line] == [
        json.dumps(job) for job in jobs
    ]
    assert [job["params"] for job in jobs] == [{"a": 1}, {"a": 2}]


def test_yaml_output(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("params: {a: [1, 2]}\nexecution: {command: 'echo {{ a }}'}\n")
    assert hyperctl("generate", "--template", "t.yml", "--output", "b.yaml", cwd=tmp_path).returncode == 0
    assert "command: echo {{ a }}" in (tmp_path / "b.yaml").read_text()


def test_yaml_output_writes_every_job_whole(tmp_path: Path) -> None:
    """No YAML aliases: editing one job of the file edits that job only."""
    (tmp_path / "t.yml").write_text("params: {a: [1, 2]}\nexecution: {command: 'echo {{ a }}', env: {X: '1'}}\n")
    assert hyperctl("generate", "--template", "t.yml", "--output", "b.yaml", cwd=tmp_path).returncode == 0
    text = (tmp_path / "b.yaml").read_text()
    assert "&" not in text and "*" not in text
    assert text.count("command: echo {{ a }}") == 2


def test_relative_paths_stay_relative_to_the_template(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text("params: {a: [1]}\nexecution: {command: 'true', working_dir: .}\n")
    (tmp_path / "out").mkdir()

    assert hyperctl("generate", "--template", "t.yml", "--output", "out/b.json", cwd=tmp_path).returncode == 0

    assert json.loads((tmp_path / "out" / "b.json").read_text())["jobs"][0]["execution"]["working_dir"] == str(tmp_path)
