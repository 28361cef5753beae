"""The metric curves the pages draw: each chosen job's attempts' points of one metric, read with
metricstore.points_of, x as step, wall time or time since the attempt started, and cut down on
the server for long curves.

Downsampling is min/max per bucket: a series longer than `limit` points is cut into limit/2 - 1
runs of consecutive points, and each run sends its least and its greatest value in their order
(a spike of one point survives, as a line chart needs); the first and the last point are always
kept (a running job's latest value shows). A run holding NaN or an infinity sends a gap (y null)
and its last finite point instead. So no series sends more than `limit` points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hyperctl import metricstore
from hyperctl.batches import load_spec
from hyperctl.errors import HyperctlError, NoSuchJobError
from hyperctl.layout import BatchDir
from hyperctl.metricsfile import Point
from hyperctl.pace import PROGRESS
from hyperctl.store import Attempt, Store

X_AXES = ("step", "wall", "relative")  # x: the step; seconds since the epoch; seconds since the attempt started
LIMIT = 1000  # points a series sends at most (downsampled beyond)
MOST_JOBS = 50  # jobs overlaid at once: curves are for a selection, not a whole sweep


@dataclass
class CurveQuery:
    """What a chart asks for: kept in its page's URL."""

    jobs: list[str]
    metric: str = ""  # "" : the batch's objective's, else loss, else the first reported
    x: str = "step"
    logy: bool = False
    attempt: str = "all"  # all, last, or an attempt's number
    limit: int = LIMIT

    @classmethod
    def of(cls, arguments: dict[str, str]) -> CurveQuery:
        """From a request's arguments; a bad one is a HyperctlError naming it."""
        jobs = [j for j in (s.strip() for s in arguments.get("jobs", "").split(",")) if j]
        if not jobs:
            raise HyperctlError("jobs: name at least one job (jobs=a,b)")
        if len(jobs) > MOST_JOBS:
            raise HyperctlError(f"jobs: at most {MOST_JOBS} at once, not {len(jobs)}")
        query = cls(jobs, metric=arguments.get("metric", "").strip())
        query.x = arguments.get("x", "step") or "step"
        if query.x not in X_AXES:
            raise HyperctlError(f"x: must be one of {', '.join(X_AXES)}, not '{query.x}'")
        query.logy = arguments.get("logy", "") in ("1", "true", "on")
        query.attempt = arguments.get("attempt", "all") or "all"
        if query.attempt not in ("all", "last") and not (query.attempt.isdigit() and int(query.attempt) > 0):
            raise HyperctlError(f"attempt: must be all, last or a number from 1, not '{query.attempt}'")
        limit = arguments.get("points", str(LIMIT))
        if not limit.isdigit() or not 10 <= int(limit) <= 100_000:
            raise HyperctlError(f"points: must be a whole number from 10 to 100000, not '{limit}'")
        query.limit = int(limit)
        return query


@dataclass
class Series:
    """One attempt's curve of the metric."""

    job: str
    attempt: int
    status: str
    xs: list[float] = field(default_factory=list)
    ys: list[float | None] = field(default_factory=list)  # None: a gap (NaN or an infinity there)
    total: int = 0  # points of the metric the attempt reported (before any was left out or cut)
    left_out: dict[str, int] = field(default_factory=dict)  # why -> how many: not positive (log y), no time

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "attempt": self.attempt,
            "status": self.status,
            "running": self.status == "running",
            "x": self.xs,
            "y": self.ys,
            "total": self.total,
            "shown": len(self.xs),
            "left_out": self.left_out,
        }


def curves(batch_dir: BatchDir, query: CurveQuery) -> dict[str, Any]:
    """The chart's data: each job's chosen attempts as series of the metric, and every metric they
    reported (for the picker)."""
    store = Store(batch_dir.db, readonly=True)
    try:
        read = [(job, _attempts(store, batch_dir, job, query.attempt)) for job in query.jobs]
        points = {(job, a.n): metricstore.points_of(store.conn, job, a.n) for job, attempts in read for a in attempts}
    finally:
        store.close()
    metrics = sorted({k for found in points.values() for p in found for k in p.values}, key=_picker_order)
    metric = query.metric or _default_metric(metrics, _objective_metric(batch_dir))
    series = [_series(job, a, points[(job, a.n)], metric, query).to_dict() for job, attempts in read for a in attempts]
    return {"metric": metric, "metrics": metrics, "x": query.x, "logy": query.logy, "series": series}


def _picker_order(name: str) -> tuple[bool, str]:
    return (name == PROGRESS, name)  # progress last: it is seldom the curve one looks for


def _objective_metric(batch_dir: BatchDir) -> str | None:
    try:
        objective = load_spec(batch_dir).scheduler.objective
    except (HyperctlError, OSError):  # its spec unreadable: the other defaults
        return None
    return objective.metric if objective else None


def _default_metric(metrics: list[str], objective_metric: str | None) -> str:
    for name in (objective_metric, "loss"):
        if name in metrics:
            return str(name)
    return metrics[0] if metrics else ""


def _attempts(store: Store, batch_dir: BatchDir, job: str, which: str) -> list[Attempt]:
    if store.job(job) is None:
        raise NoSuchJobError(f"jobs: batch {batch_dir.name} has no job '{job}'")
    attempts = store.attempts(job)
    if which == "all":
        return attempts
    if which == "last":
        return attempts[-1:]
    chosen = [a for a in attempts if a.n == int(which)]
    if not chosen:
        raise HyperctlError(f"attempt: job {job} has {len(attempts)} attempt(s), no attempt {which}")
    return chosen


def _series(job: str, attempt: Attempt, points: list[Point], metric: str, query: CurveQuery) -> Series:
    series = Series(job, attempt.n, attempt.status.value)
    found = [p for p in points if metric in p.values]
    series.total = len(found)
    xs: list[float] = []
    ys: list[float | None] = []
    untimed = not_positive = 0
    start = attempt.started if attempt.started is not None else next((p.t for p in found if p.t is not None), 0.0)
    for p in found:
        y = p.values[metric]
        if query.x == "step":
            x: float = p.step
        elif p.t is None:
            untimed += 1
            continue
        else:
            x = p.t if query.x == "wall" else p.t - start
        if query.logy and y <= 0:  # NaN compares false: still a gap
            not_positive += 1
            continue
        xs.append(x)
        ys.append(y if math.isfinite(y) else None)
    if untimed:
        series.left_out["no time"] = untimed
    if not_positive:
        series.left_out["not positive (log y)"] = not_positive
    series.xs, series.ys = downsample(xs, ys, query.limit)
    return series


def downsample(xs: list[float], ys: list[float | None], limit: int) -> tuple[list[float], list[float | None]]:
    """At most `limit` points of the curve: min and max per bucket, the first and last kept (see
    the module's docstring)."""
    n = len(xs)
    if n <= limit:
        return xs, ys
    buckets = max(1, limit // 2 - 1)
    size = -(-(n - 2) // buckets)  # the inner points, bucket by bucket
    keep = [0]
    for start in range(1, n - 1, size):
        end = min(start + size, n - 1)
        low = high = last_finite = gap = -1
        for i in range(start, end):
            y = ys[i]
            if y is None:
                if gap < 0:
                    gap = i
                continue
            last_finite = i
            if low < 0 or y < ys[low]:  # type: ignore[operator]
                low = i
            if high < 0 or y > ys[high]:  # type: ignore[operator]
                high = i
        if gap >= 0:
            keep += sorted(i for i in {gap, last_finite} if i >= 0)
        else:
            keep += sorted({low, high})
    keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]
