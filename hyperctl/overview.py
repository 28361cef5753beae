"""A batch at a glance, as `batch describe` and the dashboard show it: its summary, spec, elapsed
time, ETA and best job, read from its folder (no daemon asked)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hyperctl import metricstore, pace
from hyperctl.batches import BatchSummary, load_settings, summarize
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.metricstore import Best
from hyperctl.objective import best_text
from hyperctl.spec import BatchSpec, JobStatus
from hyperctl.store import Store
from hyperctl.views import machines_in_store

FINAL = {s.value for s in JobStatus if s.final}


@dataclass
class Overview:
    summary: BatchSummary
    spec: BatchSpec  # without its jobs (batches.load_settings)
    source: str | None
    elapsed: float | None
    eta: float | None  # running only
    running_progress: float  # the running jobs' reported progress, summed: the jobs' worth they did
    best: Best | None  # by the spec's objective, if it has one
    stopped: str | None  # why its run stopped starting jobs (the store could not record it)
    machines: list[dict[str, Any]]  # as its daemon last saved them (views.machines_in_store)

    def best_text(self) -> str | None:
        objective = self.spec.scheduler.objective
        if objective is None:
            return None
        return best_text(objective, self.best, self.summary.counts.get(JobStatus.SUCCEEDED.value, 0))

    def to_dict(self) -> dict[str, Any]:
        objective = self.spec.scheduler.objective
        return {
            **self.summary.to_dict(),
            "source": self.source,
            "backend": {"type": self.spec.backend.type, "conf": redacted(self.spec.backend.conf)},
            "daemon": vars(self.spec.daemon),
            "scheduler": self.spec.scheduler.to_dict(),
            "elapsed": self.elapsed,
            "eta": self.eta,
            "running_progress": self.running_progress,
            "best": self.best.to_dict(objective) if self.best and objective else None,
            "stopped": self.stopped,
        }


def overview(batch_dir: BatchDir, summary: BatchSummary | None = None) -> Overview:
    """The batch as its folder tells it (summary: batches.summarize, when read already). Its ETA
    counts running jobs' reported progress: 2 jobs half done are one job's worth. A damaged store
    raises HyperctlError saying so."""
    summary = summary or summarize(batch_dir)
    if summary.status == "damaged":
        raise HyperctlError(summary.problem or "damaged")
    spec = load_settings(batch_dir)  # its jobs are not needed
    objective = spec.scheduler.objective
    store = Store(batch_dir.db, readonly=True)
    try:
        meta = store.meta()
        best = metricstore.best_job(store.conn, objective) if objective else None
        running_progress = sum(metricstore.progress_of(store.conn, JobStatus.RUNNING).values(), 0.0)
    finally:
        store.close()
    end = summary.ended if summary.status != "running" else time.time()
    elapsed = end - summary.started if summary.started and end else None
    done = sum(n for s, n in summary.counts.items() if s in FINAL)
    eta = pace.eta(elapsed, done + running_progress, summary.total) if summary.status == "running" else None
    machines = machines_in_store(meta)
    return Overview(
        summary, spec, meta.get("source"), elapsed, eta, running_progress, best, meta.get("fault"), machines
    )


def redacted(value: Any) -> Any:
    """The conf with every password and key passphrase replaced: never shown."""
    if isinstance(value, dict):
        return {k: ("***" if k in ("password", "passphrase") else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value
