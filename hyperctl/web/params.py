"""Params vs metric: a batch's varying params and one metric, for the parallel coordinates and the
scatter of its page (static/parcoords.js draws them), and the page's job table narrowed by the
brushes drawn there.

The chart's data is one compare of the batch (its default columns: the params whose values vary,
each metric's last value), and a second one of the chosen metric's min or max when that is asked
for. A brush becomes compare filters in the page's URL (`where=` once per filter, e.g.
`=lr>=0.01`, `max acc<=0.9`, `=opt~^(adam|sgd)$`): the table below is the batch page's, with
those filters, and a link reproduces the view. Each axis says the expression its filters are
written with, so the grammar lives here (and in comparegrammar) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import tornado.web
from markupsafe import Markup

from hyperctl.batches import load_settings
from hyperctl.comparegrammar import METRIC, PARAM, CompareError, Ref, _text
from hyperctl.comparison import Table, compare
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.spec import Objective
from hyperctl.web.data import READS, TableQuery, job_table
from hyperctl.web.pagebase import API_PREFIX
from hyperctl.web.pages import PartHandler, render_block
from hyperctl.web.site import Site

STATS = ("last", "min", "max")  # what a job's value of the metric is
VIEW = ("metric", "stat", "x", "log")  # the page's own state in its URL, beside the table's


@dataclass
class ParamsQuery(TableQuery):
    """The table's query, whose links (sort, pages) keep the chart's state too."""

    view: list[tuple[str, str]] = field(default_factory=list)

    def url(self, **changed: Any) -> str:
        base = super().url(**changed)
        if not self.view:
            return base
        return base + ("&" if base != "?" else "") + urlencode(self.view)


def params_data(batch_dir: BatchDir, metric: str | None, stat: str | None) -> dict[str, Any]:
    """The batch's jobs as the chart draws them: name, status, each varying param, the metric's
    stat (None where a job has none, or NaN). metric None: the objective's, else the first one;
    stat None: the objective's (its best: min or max), else last. A metric no job has, or a stat
    that is none, raises CompareError naming it."""
    if stat is not None and stat not in STATS:
        raise CompareError(f"stat: must be {', '.join(STATS[:-1])} or {STATS[-1]}, not '{stat}'")
    table = compare([batch_dir], reader=READS)  # the varying params, each metric's last value
    objective = objective_of(batch_dir)
    params = [(h, ref) for h, ref in table.shows.items() if ref.kind == PARAM]
    metrics = sorted(ref.key for ref in table.shows.values() if ref.kind == METRIC)
    if metric is None:
        metric = objective.metric if objective and objective.metric in metrics else (metrics[0] if metrics else None)
    elif metric not in metrics:  # an error that names it, and the metrics there are
        Ref(METRIC, metric).resolve({ref.key for _, ref in params}, set(metrics), "metric")
    if stat is None:  # the objective's own: a job's best value (its least or greatest), or its last
        best = objective is not None and metric == objective.metric and objective.value == "best"
        stat = objective.mode if best and objective else "last"
    names = _column(table, "name")
    axes = [Axis(ref.key, f"={ref.key}", _column(table, h)) for h, ref in params]
    if metric is not None:
        axes.append(Axis(metric, f"{stat} {metric}", _metric_values(batch_dir, table, names, metric, stat), True))
    return {
        "batch": batch_dir.name,
        "metric": metric,
        "stat": stat,
        "stats": list(STATS),
        "metrics": metrics,
        "objective": vars(objective) if objective else None,
        "axes": [axis.to_dict() for axis in axes],
        "names": names,
        "statuses": _column(table, "status"),
        "notes": table.notes,
    }


def objective_of(batch_dir: BatchDir) -> Objective | None:
    """The batch's objective (batches.load_settings: read again only when its spec changes); None
    if it cannot be read (the chart still draws, with the first metric)."""
    try:
        return load_settings(batch_dir).scheduler.objective
    except HyperctlError:
        return None


@dataclass
class Axis:
    """A param's or the metric's values, one per job, and how to place them: numbers on a linear
    (or log) scale, anything else as categories (text, as a filter reads it)."""

    name: str
    expr: str  # what a filter on it begins with: `=lr`, `max acc`
    values: list[Any]
    metric: bool = False

    @property
    def numeric(self) -> bool:
        present = [v for v in self.values if v is not None]
        return self.metric or (bool(present) and all(type(v) in (int, float) for v in present))

    def to_dict(self) -> dict[str, Any]:
        values = self.values
        kind = "number" if self.numeric else "category"
        found: dict[str, Any] = {"name": self.name, "expr": self.expr, "kind": kind, "metric": self.metric}
        if kind == "category":
            values = [None if v is None else _text(v) for v in values]
            found["categories"] = sorted({v for v in values if v is not None}, key=_natural)
        else:
            present = [v for v in values if v is not None and math.isfinite(v)]
            found["log_ok"] = bool(present) and min(present) > 0
        found["values"] = values
        return found


def _natural(text: str) -> tuple[int, float, str]:
    """Categories in order: those that read as numbers by value (a mixed column: 2 before 10)."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _column(table: Table, header: str) -> list[Any]:
    return table.cells[table.columns.index(header)] if header in table.columns else []


def _metric_values(batch_dir: BatchDir, table: Table, names: list[str], metric: str, stat: str) -> list[Any]:
    """Each job's (names') value of the metric's stat: the default table's last, or another compare's."""
    if stat == "last":
        header = next(h for h, ref in table.shows.items() if ref.kind == METRIC and ref.key == metric)
        return _column(table, header)
    other = compare([batch_dir], [".name", f"{stat} {metric} as value"], reader=READS)
    by_name = dict(zip(_column(other, "name"), _column(other, "value")))
    return [by_name.get(name) for name in names]


def _view(handler: tornado.web.RequestHandler) -> list[tuple[str, str]]:
    return [(k, v) for k in VIEW for v in handler.get_query_arguments(k) if v]


class ParamsPageHandler(PartHandler):
    """The page: its chart drawn by its script from the JSON below; its table (`?part=table`) the
    batch page's, narrowed by the brushes' filters."""

    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        query = ParamsQuery(**vars(self.table_query()), view=_view(self))
        values: dict[str, Any] = {"site": self.site, "csrf": "", "batch": batch_dir.name, "query": query}
        try:
            values["table"], _ = await self.in_thread(job_table, batch_dir, query)
        except HyperctlError as e:  # a filter that names nothing: said above the table, as the batch page does
            values["error"] = str(e)
        self.render_page(
            "params.html",
            batch=batch_dir.name,
            query=query,
            table_html=Markup(render_block("batch.html", "table", values)),
        )


class ParamsApiHandler(PartHandler):
    """The chart's data: GET /ui/api/b/BATCH/params?metric=acc&stat=max."""

    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        metric = self.get_query_argument("metric", "").strip() or None
        stat = self.get_query_argument("stat", "").strip() or None
        try:
            self.send(await self.in_thread(params_data, batch_dir, metric, stat))
        except CompareError as e:  # a metric or stat that is none; a store's fault is a 503 (write_error)
            raise tornado.web.HTTPError(400, reason=str(e)) from None


def params_routes(site: Site, batch: str) -> list[Any]:
    state = {"site": site}
    return [
        (rf"/b/{batch}/params", ParamsPageHandler, state),
        (rf"{API_PREFIX}b/{batch}/params", ParamsApiHandler, state),
    ]
