"""The Slurm backend's `backend.conf`, and the sbatch options each job gets from it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hyperctl.spec import Execution, Resource
from hyperctl.validation import Problems, Section, at_least, unsendable

# Slurm's own time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$")
# What `time`, `partition`... become on sbatch's command line (they are left out when not set:
# the site's defaults apply).
_OPTIONS = {
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "reservation": "--reservation",
    "constraint": "--constraint",
}
ARRAY_MODES = ("auto", "never")
GPU_OPTIONS = ("gres", "gpus")
# Slurm enforces a time limit on a cycle of about 30-60 s: the backstop a job with its own
# timeout gets is that much later than hyperctl's (which is the one that counts).
_BACKSTOP = 120.0


@dataclass(frozen=True)
class SlurmConf:
    """The Slurm backend's settings (see README, "Slurm")."""

    options: tuple[str, ...] = ()  # partition, account, ... as sbatch options
    time: str | None = None  # the time limit of a job that has no timeout of its own
    sbatch_args: tuple[str, ...] = ()  # as the user gives them, after ours (so theirs win)
    setup: tuple[str, ...] = ()  # shell lines run before the launcher, in the job's shell
    max_jobs: int = 200  # hyperctl's attempts pending + running in Slurm at once
    arrays: str = "auto"
    array_max: int = 1000  # tasks in one array at most (also capped by the site's MaxArraySize)
    max_running: int | None = None  # an array's %N throttle
    poll_min: float = 2.0  # squeue backoff, seconds
    poll_max: float = 60.0
    exit_read_timeout: float = 120.0  # how long an ended job may lack its exitcode file (shared storage lag)
    gpu_option: str = "gres"
    requeue: bool = False

    def sbatch_options(self, resource: Resource, execution: Execution) -> tuple[str, ...]:
        """What one job's sbatch line says besides its files and name: equal for jobs that may share an array."""
        options = [*self.options, "--nodes=1", "--ntasks=1", f"--cpus-per-task={max(1, math.ceil(resource.cpu))}"]
        if resource.ram:
            options.append(f"--mem={resource.ram}M")
        if resource.gpu:
            options.append(f"--gres=gpu:{resource.gpu}" if self.gpu_option == "gres" else f"--gpus={resource.gpu}")
        if execution.timeout is not None:
            options.append(f"--time={math.ceil((execution.timeout + execution.kill_grace + _BACKSTOP) / 60)}")
        elif self.time is not None:
            options.append(f"--time={self.time}")
        options.append("--requeue" if self.requeue else "--no-requeue")
        return (*options, *self.sbatch_args)


def parse_conf(conf: dict[str, Any]) -> SlurmConf:
    """`backend.conf` of the Slurm backend; ConfigError naming each field that is wrong."""
    problems = Problems()
    sec = Section(conf, "backend.conf", problems)
    options: list[str] = []
    for key, flag in _OPTIONS.items():
        value = sec.get(key, "string", None, check=_one_word)
        if value:
            options.append(f"{flag}={value}")
    time = sec.get("time", "string", None, check=_time)
    sbatch_args = _strings(sec, "sbatch_args")
    setup = _strings(sec, "setup")
    max_jobs = sec.get("max_jobs", "integer", 200, check=at_least(1))
    arrays = sec.get("arrays", "string", "auto", check=_one_of(ARRAY_MODES))
    array_max = sec.get("array_max", "integer", 1000, check=at_least(1))
    max_running = sec.get("max_running", "integer", None, check=at_least(1))
    poll = sec.section("poll")
    poll_min = poll.get("min", "number", 2.0, check=at_least(0.1))
    poll_max = poll.get("max", "number", 60.0, check=at_least(0.1))
    poll.done()
    exit_read_timeout = sec.get("exit_read_timeout", "number", 120.0, check=at_least(0))
    gpu_option = sec.get("gpu_option", "string", "gres", check=_one_of(GPU_OPTIONS))
    requeue = sec.get("requeue", "boolean", False)
    sec.done()
    if poll_min is not None and poll_max is not None and poll_max < poll_min:
        problems.add(poll.at("max"), f"must be at least poll.min ({poll_min:g}), not {poll_max:g}")
    problems.raise_if_any()
    return SlurmConf(
        tuple(options),
        time,
        sbatch_args,
        setup,
        max_jobs,
        arrays,
        array_max,
        max_running,
        float(poll_min),
        float(poll_max),
        float(exit_read_timeout),
        gpu_option,
        requeue,
    )


def _strings(sec: Section, key: str) -> tuple[str, ...]:
    values = sec.get(key, "list", [])
    good = []
    for i, value in enumerate(values or []):
        why = "must be a string" if not isinstance(value, str) else unsendable(value)
        if why:
            sec.problems.add(f"{sec.at(key)}[{i}]", why)
        else:
            good.append(value)
    return tuple(good)


def _one_word(value: str) -> str | None:
    if not value or any(c.isspace() for c in value) or unsendable(value):
        return "must be one word (no spaces)"
    return None


def _time(value: str) -> str | None:
    return None if _TIME.match(value) else 'must be a Slurm time limit ("04:00:00", "90", "2-00:00:00")'


def _one_of(choices: tuple[str, ...]) -> Any:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}, not '{v}'"
