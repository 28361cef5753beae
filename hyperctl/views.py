"""What the API and the CLI show of a job, a batch or its machines: plain dicts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from hyperctl.layout import BatchDir
from hyperctl.pace import eta
from hyperctl.spec import JobSpec, JobStatus, Resource
from hyperctl.store import Attempt, JobRecord, Store

if TYPE_CHECKING:  # types only: the CLI's views need not load the backends
    from hyperctl.backends.base import Handle, Machine
    from hyperctl.unwatched import Unwatched


def job_view(record: JobRecord, batch_dir: BatchDir, progress: float | None = None) -> dict[str, Any]:
    """A job; `progress` is the last its last attempt reported (0..1, pace.fraction), if any."""
    spec = record.spec
    job_dir = f"{batch_dir.path}{os.sep}{spec.name}"  # a string, not a Path: 100,000 of them add up
    data_dir = spec.execution.data_dir or job_dir
    view: dict[str, Any] = {
        "name": spec.name,
        "status": record.status.value,
        "params": spec.params,
        "command": spec.execution.command,
        "resource": vars(spec.resource),
        "data_dir": data_dir,
        "working_dir": spec.execution.working_dir or data_dir,
        "attempts": record.attempts,
    }
    last = record.last
    if last is not None:
        attempt_dir = f"{batch_dir.path}{os.sep}{last.layout.attempt(spec.name, last.n)}{os.sep}"
        view.update(
            host=last.host,
            gpus=last.gpus,
            pid=last.pid,
            started=last.started,
            ended=last.ended,
            exit_code=last.exit_code,
            signal=last.signal,
            reason=last.reason,
            stdout=attempt_dir + "stdout",
            stderr=attempt_dir + "stderr",
        )
    view.update(progress=progress, eta=job_eta(record.status == JobStatus.RUNNING, last, progress))
    return view


def job_eta(running: bool, last: Attempt | None, progress: float | None) -> float | None:
    """Seconds a running job has left at the pace of its attempt so far, by its reported progress."""
    if not running or last is None or last.started is None or progress is None:
        return None
    return eta(time.time() - last.started, progress, 1.0)


def batch_view(store: Store, batch_dir: BatchDir) -> dict[str, Any]:
    meta = store.meta()
    counts = store.counts()
    return {
        "name": batch_dir.name,
        "status": meta.get("status"),
        "path": str(batch_dir.path),
        "total": sum(counts.values()),
        "counts": counts,
        "started": meta.get("started"),
        "ended": meta.get("ended"),
        "portal": meta.get("portal"),
        "pid": meta.get("pid"),
    }


class Placed(NamedTuple):
    """A running attempt: which machine and GPUs it holds, and what it asked for."""

    job: str
    machine: str
    gpus: tuple[int, ...]
    resource: Resource


def placed_by_daemon(running: dict[str, Handle], specs: dict[str, JobSpec]) -> list[Placed]:
    """Where each running attempt is: for one a cluster placed, its node once it runs (until then the cluster)."""
    return [
        Placed(name, h.host or h.launch.machine.name, h.gpus or h.launch.gpus, specs[name].resource)
        for name, h in running.items()
    ]


def placed_in_store(store: Store, unwatched: Unwatched | None = None) -> list[Placed]:
    """The running jobs as the store records them: each attempt's host and GPUs (no daemon needed).
    With no daemon (unwatched), the ones whose files say they ended are left out."""
    return [
        Placed(r.name, r.last.host or "", tuple(r.last.gpus), r.spec.resource)
        for r in store.jobs(JobStatus.RUNNING)
        if r.last is not None and (unwatched is None or unwatched.still_runs(r.name, r.status, r.last))
    ]


def machine_record(machine: Machine) -> dict[str, Any]:
    """A machine as the store keeps it and machines_view reads it: what it offers, as known now
    (known False: a host not reached yet, whose capacity is the conf's or a placeholder)."""
    if machine.places:  # a cluster: what it offers is its scheduler's business
        return {"name": machine.name, "cpu": None, "ram": None, "gpus": [], "known": True}
    return {
        "name": machine.name,
        "cpu": machine.cpu,
        "ram": machine.ram,
        "gpus": list(machine.gpus),
        "known": machine.known,
    }


def machines_in_store(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The machines as the batch's daemon last saved them (machine_record), with no need to reach
    them nor to read their conf; from a store older than that, the ones it had reached."""
    if "machines" in meta:
        return list(meta["machines"])
    return [{"name": name, **found, "known": True} for name, found in (meta.get("capacity") or {}).items()]


def machines_view(
    machines: list[dict[str, Any]], placed: Iterable[Placed], down: dict[str, str] | None
) -> list[dict[str, Any]]:
    """Each machine (machine_record): capacity, state ("up", "down" with its reason), running jobs
    and what they use.

    `down` maps a machine to why it takes no jobs now; None when no daemon runs to know, and
    then every state is None (unknown).
    """
    on: dict[str, list[Placed]] = {}
    for p in placed:
        on.setdefault(p.machine, []).append(p)
    capacity: dict[str, dict[str, Any] | None] = {m["name"]: m for m in machines}
    # A job on a machine the spec no longer lists (it was edited since) still shows, capacity unknown.
    capacity.update((name, None) for name in sorted(set(on) - set(capacity)))
    views = []
    for name, machine in capacity.items():
        jobs = sorted(on.get(name, []), key=lambda p: p.job)
        views.append(
            {
                "name": name,
                "cpu": machine["cpu"] if machine else None,
                "ram": machine["ram"] if machine else None,
                "gpus": list(machine["gpus"]) if machine else None,
                "state": None if down is None else "down" if name in down else "up",
                "reason": (down or {}).get(name),
                "jobs": [{"name": p.job, "gpus": list(p.gpus)} for p in jobs],
                "gpus_in_use": sorted(g for p in jobs for g in p.gpus),
                "cpu_used": round(sum(p.resource.cpu for p in jobs), 6),  # no float noise from 0.1 + 0.2
                "ram_used": sum(p.resource.ram for p in jobs),
            }
        )
    return views
