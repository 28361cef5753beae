"""The batch model: plain dataclasses and str Enums, stdlib only."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

JOB_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


class JobStatus(str, Enum):
    """Where a job is in its life; the last five are final."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    TIMEOUT = "timeout"
    LOST = "lost"

    @property
    def final(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


class BatchStatus(str, Enum):
    """Where a batch is in its life."""

    RUNNING = "running"
    FINISHED = "finished"  # every job succeeded
    FAILED = "failed"  # every job ended, some did not succeed
    KILLED = "killed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Resource:
    """What one job asks of a machine."""

    cpu: float = 1
    ram: int = 0  # MB
    gpu: int = 0  # a count of GPUs


@dataclass(frozen=True)
class Execution:
    """How to run a job: the shell command and where."""

    command: str
    working_dir: str | None = None  # None: the data dir; on a remote machine, a path there
    data_dir: str | None = None  # None: <batch folder>/<job name>, or its twin on the remote machine
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds
    kill_grace: float = 10.0  # seconds between TERM and KILL
    assets: list[str] = field(default_factory=list)  # local files and folders put in the working dir
    download: bool | list[str] = True  # what of a remote data dir comes home: all, nothing, these globs
    shell: str | None = None  # the program that runs the command (`bash`); None: /bin/sh


# What `retry_on` may name besides exit codes: "failed" (any non-zero exit), "timeout" (the job
# ran past its timeout) and "lost" (its machine stopped answering, or its process vanished).
RETRY_REASONS = ("failed", "timeout", "lost")


@dataclass(frozen=True)
class RetryPolicy:
    """When a job that did not succeed runs again: up to max_retries times, for the ends `on` names
    (exit codes and RETRY_REASONS; by default every failure). Killed jobs never run again."""

    max_retries: int = 0
    on: tuple[int | str, ...] = RETRY_REASONS

    def to_dict(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "on": list(self.on)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetryPolicy:
        if "on" in d:
            return cls(d.get("max_retries", 0), tuple(d["on"]))
        codes = d.get("on_exit_codes")  # a spec stored before `retry_on`: what it meant then
        return cls(d.get("max_retries", 0), RETRY_REASONS if codes is None else (*codes, "timeout", "lost"))


@dataclass(frozen=True)
class JobSpec:
    """One job of a batch, with its command already rendered."""

    name: str
    params: dict[str, Any]
    execution: Execution
    resource: Resource = Resource()
    retry: RetryPolicy = RetryPolicy()

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies every param, which costs seconds at 100,000 jobs.
        return {
            "name": self.name,
            "params": self.params,
            "execution": vars(self.execution),
            "resource": vars(self.resource),
            "retry": self.retry.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        return cls(
            name=d["name"],
            params=d["params"],
            execution=Execution(**d["execution"]),
            resource=Resource(**d["resource"]),
            retry=RetryPolicy.from_dict(d.get("retry", {})),
        )

    def digest(self) -> str:
        """A hash of what decides the job's result, to recognise it on a re-run."""
        e = self.execution
        key = [e.command, self.params, e.env, e.working_dir, e.data_dir]
        if e.shell is not None:  # only then: digests made before `shell` existed stay the same
            key.append(e.shell)
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BackendSpec:
    """Which executor runs the jobs, and its own settings (checked by it)."""

    type: str = "local"
    conf: dict[str, Any] = field(default_factory=dict)

    @property
    def runs_here(self) -> bool:
        """Whether jobs run on this machine: their working_dir and data_dir are then local paths,
        relative to the batch file; elsewhere they are paths on the machine a job runs on."""
        return self.type == "local"


@dataclass(frozen=True)
class DaemonSpec:
    """Where the daemon's HTTP API listens."""

    host: str = "127.0.0.1"
    port: int = 8060
    exit_on_finish: bool = True
    request_timeout: float = 10.0  # seconds to send a request's head or body; an idle connection's life


# How an objective ranks jobs: the mode, and which of each job's values counts ("last": the last
# one its attempt reported; "best": its least for min, its greatest for max).
OBJECTIVE_MODES = ("min", "max")
OBJECTIVE_VALUES = ("last", "best")


@dataclass(frozen=True)
class Objective:
    """The metric that names a batch's best job (`scheduler.objective`), and which way is better."""

    metric: str
    mode: str = "max"  # OBJECTIVE_MODES
    value: str = "last"  # OBJECTIVE_VALUES


@dataclass(frozen=True)
class SchedulerSpec:
    """Batch-wide scheduling rules."""

    halt_on_failures: int | None = None  # start no new job after this many failures
    objective: Objective | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "objective": vars(self.objective) if self.objective else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SchedulerSpec:
        objective = d.get("objective")
        return cls(**{**d, "objective": Objective(**objective) if objective else None})


@dataclass(frozen=True)
class MetricsSpec:
    """How jobs' metrics are found besides report(): `output` is whether the scalars a job prints
    are read (True: `key: number` lines; False: not), or the patterns that find them
    (outputscalars.py)."""

    output: bool | list[str | dict[str, str]] = True


@dataclass(frozen=True)
class BatchSpec:
    """A whole batch, validated and normalised."""

    name: str
    jobs: list[JobSpec]
    version: str | None = None
    backend: BackendSpec = BackendSpec()
    daemon: DaemonSpec = DaemonSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    metrics: MetricsSpec = MetricsSpec()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "jobs": [job.to_dict() for job in self.jobs],
            "backend": vars(self.backend),
            "daemon": vars(self.daemon),
            "scheduler": self.scheduler.to_dict(),
            "metrics": vars(self.metrics),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchSpec:
        return cls(
            name=d["name"],
            version=d.get("version"),
            jobs=[JobSpec.from_dict(j) for j in d["jobs"]],
            backend=BackendSpec(**d["backend"]),
            daemon=DaemonSpec(**d["daemon"]),
            scheduler=SchedulerSpec.from_dict(d.get("scheduler", {})),
            metrics=MetricsSpec(**d.get("metrics", {})),
        )
