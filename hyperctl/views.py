"""What the API and the CLI show of a job or a batch: plain dicts from the store."""

from __future__ import annotations

from typing import Any

from hyperctl.store import BatchDir, JobRecord, Store


def job_view(record: JobRecord, batch_dir: BatchDir) -> dict[str, Any]:
    spec = record.spec
    data_dir = spec.execution.data_dir or str(batch_dir.job_dir(spec.name))
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
        attempt_dir = batch_dir.attempt_dir(spec.name, last.n)
        view.update(
            host=last.host,
            gpus=last.gpus,
            pid=last.pid,
            started=last.started,
            ended=last.ended,
            exit_code=last.exit_code,
            signal=last.signal,
            reason=last.reason,
            stdout=str(attempt_dir / "stdout"),
            stderr=str(attempt_dir / "stderr"),
        )
    return view


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
