"""The Slurm backend's conf: one line per problem naming the field, exit 2, nothing created; and
the sbatch options a job's resources and timeout become."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperctl.backends.slurmconf import parse_conf
from hyperctl.errors import ConfigError
from hyperctl.spec import Execution, Resource
from tests.conftest import hyperctl, write_json


def doc(conf: Any) -> dict[str, Any]:
    return {"jobs": [{"params": {}, "execution": {"command": "true"}}], "backend": {"type": "slurm", "conf": conf}}


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"max_jobs": 0}, ["backend.conf.max_jobs: must be at least 1, not 0"]),
        ({"time": "four hours"}, ['backend.conf.time: must be a Slurm time limit ("04:00:00", "90", "2-00:00:00")']),
        ({"sbatch_args": ["--exclusive", 3]}, ["backend.conf.sbatch_args[1]: must be a string"]),
        ({"sbatch_args": "--exclusive"}, ["backend.conf.sbatch_args: must be a list, not string"]),
        ({"arrays": "yes"}, ["backend.conf.arrays: must be one of auto, never, not 'yes'"]),
        ({"partiton": "gpu"}, ["backend.conf.partiton: unknown key (did you mean 'partition'?)"]),
        ({"partition": "gpu a100"}, ["backend.conf.partition: must be one word (no spaces)"]),
        ({"poll": {"min": 10, "max": 5}}, ["backend.conf.poll.max: must be at least poll.min (10), not 5"]),
        (
            {"gpu_option": "cards", "requeue": "no"},
            [
                "backend.conf.gpu_option: must be one of gres, gpus, not 'cards'",
                "backend.conf.requeue: must be a boolean, not string",
            ],
        ),
    ],
)
def test_conf_errors_name_the_field(tmp_path: Path, batches: Path, conf: dict[str, Any], expected: list[str]) -> None:
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc(conf))))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"hyperctl: error: {line}" for line in expected]
    assert not batches.exists(), "a config error creates nothing"


def test_without_slurms_commands_the_batch_is_refused_with_why(tmp_path: Path, batches: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "sh").symlink_to("/bin/sh")
    config = write_json(tmp_path / "b.json", doc({}))

    result = hyperctl("run", "--config", str(config), env={"PATH": str(bare)})

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hyperctl: error: backend.type: slurm: sbatch, squeue, scancel not found on PATH: the daemon must run "
        "where Slurm's commands do (a login node)"
    )


def test_a_jobs_resources_and_timeout_become_sbatch_options() -> None:
    conf = parse_conf({"partition": "gpu", "account": "proj42", "time": "04:00:00", "sbatch_args": ["--exclusive"]})
    resource, plain = Resource(cpu=2.5, ram=2048, gpu=2), Execution("true")

    assert conf.sbatch_options(resource, plain) == (
        "--partition=gpu",
        "--account=proj42",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=3",
        "--mem=2048M",
        "--gres=gpu:2",
        "--time=04:00:00",
        "--no-requeue",
        "--exclusive",
    )
    # A job's own timeout (with its grace and Slurm's minute of lateness) replaces the default limit.
    timed = Execution("true", timeout=3600, kill_grace=30)
    assert "--time=63" in conf.sbatch_options(Resource(), timed)
    assert "--gpus=1" in parse_conf({"gpu_option": "gpus"}).sbatch_options(Resource(gpu=1), plain)
    with pytest.raises(ConfigError):
        parse_conf({"max_jobs": "many"})
