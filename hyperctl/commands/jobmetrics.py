"""`hyperctl job metrics BATCH JOB`: what a job reported (hyperctl.report), point by point."""

from __future__ import annotations

import argparse
import csv
import sys

from hyperctl.batches import open_batch, resolve_batches_dir
from hyperctl.exitstatus import ExitStatus
from hyperctl.output import emit_json, say, table
from hyperctl.tablefit import show, show_text


def cmd_metrics(args: argparse.Namespace) -> int:
    from hyperctl import metricstore
    from hyperctl.commands.job import _job
    from hyperctl.steering import attempt_number

    with open_batch(resolve_batches_dir(args.batches_data_dir), args.batch) as (_, store):
        record = _job(store, args.batch, args.job)
        n = attempt_number(record, args.attempt)
        points = metricstore.points_of(store.conn, args.job, n)
    keys = sorted({k for p in points for k in p.values}) if args.key is None else [args.key]
    if args.key is not None:
        points = [p for p in points if args.key in p.values]
    if args.json:
        emit_json([{"step": p.step, "t": p.t, **{k: p.values[k] for k in keys if k in p.values}} for p in points])
        return ExitStatus.OK
    if args.csv:
        out = csv.writer(sys.stdout)
        out.writerow(["step", "t", *keys])
        out.writerows([p.step, p.t, *(p.values.get(k, "") for k in keys)] for p in points)
        return ExitStatus.OK
    if not points:
        say(f"job {args.job}: attempt {n} reported no metrics" + (f" named {args.key}" if args.key else ""))
        return ExitStatus.OK
    # Metrics by the names they were reported under (case and all; a control character as its
    # escape: a job's name for a metric never acts on the terminal), their values short (--csv: whole).
    print(table(["STEP", *map(show_text, keys)], [[p.step, *(show(p.values.get(k)) for k in keys)] for p in points]))
    return ExitStatus.OK
