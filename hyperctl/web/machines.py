"""The machines part of a batch page: each machine, up or down and why, its running jobs, the GPUs
they hold, and what they use now (usage.py).

A daemon's own batch is read from its scheduler (machines_view: state known, and its jobs
sampled: local ones by usage.py, those on SSH machines by remoteuse.py, each machine that is up);
any other batch as `hyperctl hosts` reads it (commands/hosts.machines_of: from its daemon if one
runs, else from its store, state unknown), not sampled. The part has a URL of its own
(machines.html's `data-src`): the batch page paints without waiting for a sample, and the page's
script asks for it every usage.EVERY seconds while the page is visible; nobody looking, nothing is
sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hyperctl.backends.ssh import RemoteExecutor
from hyperctl.commands.hosts import cpu_text, gpus_text, machines_of, ram_text
from hyperctl.web.pages import PartHandler
from hyperctl.web.remoteuse import RemoteSampler
from hyperctl.web.site import Site
from hyperctl.web.usage import GpuUse, JobUse, Sampler, Snapshot

NOT_UP = "not sampled: the machine is down"
NO_DAEMON = "not sampled: no daemon runs this batch here"
CLUSTER_NODE = "not sampled: a node of the cluster (its scheduler's tools tell its use)"


@dataclass
class JobLine:
    name: str
    gpus: str
    use: JobUse | None


@dataclass
class MachineLine:
    """A machine as the part shows it: the facts of `hyperctl hosts`, and what its jobs use now."""

    name: str
    state: str  # up, down, unknown
    reason: str | None  # why it is down, or why its state is unknown
    gpus_in_use: str
    cpu: str  # asked of what it offers
    ram: str
    jobs: list[JobLine] = field(default_factory=list)
    cpu_percent: float | None = None  # its jobs' processes, summed
    rss: int | None = None
    gpus: list[GpuUse] = field(default_factory=list)
    gpu_note: str | None = None  # why its GPUs were not sampled (nvidia-smi failed)
    not_sampled: str | None = None  # why nothing was sampled


def machine_lines(
    views: list[dict[str, Any]], samples: dict[str, Snapshot | str], otherwise: str | None
) -> list[MachineLine]:
    """The machines (views.machines_view) with each one's sample, or why it has none (`otherwise`
    for a machine not in samples)."""
    lines = []
    for view in views:
        sample = samples.get(view["name"], otherwise)
        snapshot = sample if isinstance(sample, Snapshot) else None
        not_sampled = sample if isinstance(sample, str) else None
        state = view["state"] or "unknown"
        line = MachineLine(
            name=view["name"],
            state=state,
            reason=view["reason"] if state == "down" else None if view["state"] else "no daemon runs this batch",
            gpus_in_use=gpus_text(view),
            cpu=cpu_text(view),
            ram=ram_text(view),
            not_sampled=not_sampled,
        )
        for job in view["jobs"]:
            use = snapshot.jobs.get(job["name"]) if snapshot is not None else None
            line.jobs.append(JobLine(job["name"], ",".join(map(str, job["gpus"])) or "-", use))
        if snapshot is not None:
            used = [j.use for j in line.jobs if j.use is not None]
            line.cpu_percent = sum(u.cpu for u in used)
            line.rss = sum(u.rss for u in used)
            line.gpus = snapshot.gpus
            line.gpu_note = snapshot.gpu_note
        lines.append(line)
    return lines


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return "-"  # not reached


class MachinesPartHandler(PartHandler):
    """GET /b/NAME/machines: the machines part alone (what machines.html's section fetches)."""

    def initialize(self, site: Site, sampler: Sampler, remote: RemoteSampler) -> None:  # type: ignore[override]
        super().initialize(site)
        self.sampler = sampler
        self.remote = remote

    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        scheduler = self.site.scheduler
        samples: dict[str, Snapshot | str] = {}
        otherwise: str | None = NOT_UP
        if scheduler is not None and self.site.own_batch == batch_dir.name:
            views, pids = scheduler.machines_view(), scheduler.running_here()
            executor = scheduler.executor
            if pids is not None:  # the local backend: its one machine is this one
                snapshot = await self.sampler.snapshot(pids)
                samples = {view["name"]: snapshot for view in views}
            elif isinstance(executor, RemoteExecutor):
                up = [view["name"] for view in views if view["state"] == "up" and view["name"] in executor.remotes]
                samples = await self.remote.snapshots(executor.usage, scheduler.running_on(), up)
            else:  # a cluster's nodes (Slurm): hyperctl has no way onto them of its own
                otherwise = CLUSTER_NODE
        else:
            views = await self.in_thread(machines_of, batch_dir)
            otherwise = NO_DAEMON
        taken = [s.taken for s in samples.values() if isinstance(s, Snapshot)]
        self.render_part(
            "machines.html",
            "machines",
            batch=batch_dir.name,
            machines=machine_lines(views, samples, otherwise),
            taken=max(taken) if taken else None,
            size=size_text,
        )


def machines_routes(site: Site, batch: str) -> list[Any]:
    samplers = {"sampler": Sampler(), "remote": RemoteSampler()}
    return [(rf"/b/{batch}/machines", MachinesPartHandler, {"site": site, **samplers})]
