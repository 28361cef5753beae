"""What one attempt of a job reported, as the CLI (`job metrics`) and the API show it."""

from __future__ import annotations

import dataclasses
from typing import Any

from hyperctl import metricstore
from hyperctl.steering import attempt_ended, attempt_number
from hyperctl.store import JobRecord, Store


def metrics_view(store: Store, record: JobRecord, asked: int | None, key: str | None = None) -> dict[str, Any]:
    """An attempt's points (each {step, t, metric: value, ...}) and its summaries by metric (last,
    min, max, their steps, count); only metric `key` when given. A job that has not started has
    none (attempt null); an attempt it does not have is a HyperctlError saying which it has, and so
    is a key an ended attempt never reported (naming those it did)."""
    if record.attempts == 0 and asked is None:
        return {"job": record.name, "attempt": None, "points": [], "summaries": {}}
    n = attempt_number(record, asked)
    points = metricstore.points_of(store.conn, record.name, n)
    summaries = metricstore.summaries_of(store.conn, record.name, n)
    if key is not None:
        points = metricstore.points_of_metric(points, key, record.name, n, attempt_ended(record, n))
        points = [dataclasses.replace(p, values={key: p.values[key]}) for p in points]
        summaries = {k: s for k, s in summaries.items() if k == key}
    return {
        "job": record.name,
        "attempt": n,
        "points": [{"step": p.step, "t": p.t, **p.values} for p in points],
        "summaries": {k: dataclasses.asdict(s) for k, s in summaries.items()},
    }
