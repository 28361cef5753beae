"""`hyperctl job metrics BATCH JOB`: what a job reported (hyperctl.report), point by point."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

from hyperctl.batches import open_batch, resolve_batches_dir
from hyperctl.exitstatus import ExitStatus
from hyperctl.metricsfile import Point
from hyperctl.output import emit_json, say
from hyperctl.tablefit import show_text

EXAMPLES = """\
examples:
  hyperctl job metrics my-sweep lr-0.1               a row per step, a column per metric
  hyperctl job metrics my-sweep lr-0.1 --key loss    one metric's history
  hyperctl job metrics my-sweep lr-0.1 --attempt 1   an earlier attempt (of a retried job)
  hyperctl job metrics my-sweep lr-0.1 --csv > m.csv every point in full precision, with its time t
"""


def cmd_metrics(args: argparse.Namespace) -> int:
    from hyperctl import metricstore
    from hyperctl.commands.job import _job
    from hyperctl.steering import attempt_ended, attempt_number

    with open_batch(resolve_batches_dir(args.batches_data_dir), args.batch) as (_, store):
        record = _job(store, args.batch, args.job)
        n = attempt_number(record, args.attempt)
        points = metricstore.points_of(store.conn, args.job, n)
    ended = attempt_ended(record, n)
    if args.key is not None:
        points = metricstore.points_of_metric(points, args.key, args.job, n, ended)
    keys = sorted({k for p in points for k in p.values}) if args.key is None else [args.key]
    if args.json:
        emit_json([{"step": p.step, "t": p.t, **{k: p.values[k] for k in keys if k in p.values}} for p in points])
        return ExitStatus.OK
    if args.csv:
        out = csv.writer(sys.stdout)
        out.writerow(["step", "t", *keys])
        out.writerows([p.step, p.t, *(p.values.get(k, "") for k in keys)] for p in points)
        return ExitStatus.OK
    if not points:
        named = f" named {args.key}" if args.key and not ended else ""  # of an ended one: none at all
        say(f"job {args.job}: attempt {n} has reported no metrics{named}" + ("" if ended else " yet"))
        return ExitStatus.OK
    _print(keys, points)
    return ExitStatus.OK


def _print(keys: list[str], points: list[Point]) -> None:
    """A row per step (the points of one step that hold different metrics, as a job that prints its
    loss and reports its progress makes, side by side), numbers right-aligned as compare shows
    them; metrics by the names they were reported under (case and all; a control character as its
    escape: a job's name for a metric never acts on the terminal), values short."""
    from hyperctl.tablefit import fit, show_column

    rows: list[tuple[int, dict[str, Any]]] = []
    for p in points:
        if rows and rows[-1][0] == p.step and rows[-1][1].keys().isdisjoint(p.values):
            rows[-1][1].update(p.values)
        else:
            rows.append((p.step, dict(p.values)))
    columns = [show_column([step for step, _ in rows])]
    columns += [show_column([values.get(k) for _, values in rows]) for k in keys]
    print(fit(["STEP", *map(show_text, keys)], columns, [True] * (len(keys) + 1), None).text)
