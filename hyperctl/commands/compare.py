"""`hyperctl compare BATCH [BATCH ...]`: the jobs' params and metrics side by side (comparison.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from hyperctl.batches import find_batch, resolve_batches_dir
from hyperctl.commands.job import whole_number
from hyperctl.errors import HyperctlError
from hyperctl.exitstatus import ExitStatus
from hyperctl.output import emit_json, plural, say

if TYPE_CHECKING:  # compare's own modules load when it runs
    from hyperctl.comparison import Table

EXAMPLES = """\
columns (-c, comma-separated; Guild's grammar):
  =lr                a param
  loss               a metric's last value (a bare name: the attribute, metric or param so named)
  min loss, max acc  its least, its greatest value
  loss step          the step of its last value (min loss step: of its least)
  count loss         how many points it has
  status, .name      an attribute: batch name status attempt duration host started ended exit_code
  ... as NAME        the column's header (which --sort and --where may use)
  =lr and last lr tell a param and a metric of one name apart.

examples:
  hyperctl compare my-sweep                              name, status, duration, host, varying params, metrics
  hyperctl compare my-sweep --max acc --top 5            the 5 best by accuracy
  hyperctl compare my-sweep -c '=lr,min loss,min loss step as at' --sort -acc
  hyperctl compare my-sweep --where status=succeeded --where 'lr>=0.01' --where 'name~^lr-0\\.1'
  hyperctl compare sweep-a sweep-b --min val_loss        two batches in one table (a batch column)
  hyperctl compare my-sweep --csv results.csv            every row, full precision (--csv - : stdout)

Rows are in the batch's order unless sorted; NaN and missing values sort last either way.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "compare",
        parents=[data_dir],
        help="the jobs' params and metrics side by side",
        description="One row per job (its last attempt): name, status, duration, host, the params that vary\n"
        "between the rows, and the last value of each metric the jobs reported.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("batches", nargs="*", metavar="BATCH", help="the batch (several: one table, with a batch column)")
    p.add_argument(  # as every command takes its batch (targets.py)
        "-b",
        "--batch",
        action="append",
        default=[],
        dest="batch_options",
        metavar="BATCH",
        help="a batch (or give them without -b)",
    )
    p.add_argument(
        "-c", "--columns", action="append", metavar="COLUMNS", help="the columns to show, comma-separated (see below)"
    )
    p.add_argument("--sort", action="append", metavar="KEY", help="sort by a column: -acc descending, acc ascending")
    p.add_argument("--min", action="append", dest="sort", metavar="COLUMN", help="sort by a column, least first")
    p.add_argument(
        "--max", action="append", dest="sort", type=lambda c: "-" + c, metavar="COLUMN", help="greatest first"
    )
    p.add_argument("--top", type=whole_number(0), metavar="N", help="only the first N rows (after sorting)")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep the rows where EXPR holds: status=succeeded, lr>=0.01, 'min loss<0.3', name~REGEX "
        "(=, !=, <, <=, >, >=, ~); give it again for more",
    )
    p.add_argument("--all-params", action="store_true", help="every param, not only those that vary")
    p.add_argument("--attempt", default="last", metavar="K", help="attempt K of each job that has one (default: last)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", nargs="?", const="-", metavar="FILE", help="CSV of every row into FILE (-: stdout)")
    out.add_argument("--json", action="store_true", help="print JSON for scripts: {columns, rows}")
    p.set_defaults(func=cmd_compare)
    _values_may_start_with_a_dash(p)


def _values_may_start_with_a_dash(parser: argparse.ArgumentParser) -> None:
    """`--sort -acc`: argparse takes any `-word` for an option it does not know, and refuses it as
    a value. Here a single-dash word that is no option of this command is a value (or a batch):
    `--sort -cpu` sorts by cpu (not `-c pu`); `-c=acc` and `-c acc` still give columns."""
    known = parser._option_string_actions
    original = parser._parse_optional

    def parse_optional(arg: str) -> Any:
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg.split("=", 1)[0] not in known:
            return None
        return original(arg)

    setattr(parser, "_parse_optional", parse_optional)  # noqa: B010 (a method of this instance alone)


def cmd_compare(args: argparse.Namespace) -> int:
    from hyperctl.comparison import compare

    batches_dir = resolve_batches_dir(args.batches_data_dir)
    names = args.batches + args.batch_options
    if not names:
        took = f"; --csv took '{args.csv}' for its file: give --csv FILE after the batches" if args.csv else ""
        raise HyperctlError(f"which batch? give it: BATCH [BATCH ...] (or -b BATCH, again for more){took}")
    batch_dirs = [find_batch(batches_dir, name) for name in dict.fromkeys(names)]
    table = compare(
        batch_dirs,
        args.columns,
        sort=args.sort or (),
        where=args.where,
        top=args.top,
        all_params=args.all_params,
        attempt=args.attempt,
    )
    if args.json:
        emit_json(table.to_dict())
    elif args.csv is not None:
        _write_csv(table, args.csv)
    else:
        # Of the default columns, these say least about results: they make room first.
        spare = () if args.columns else ("host", "duration", "status")
        _print_table(table.columns, table.cells, table.kinds, 2 if len(batch_dirs) > 1 else 1, spare)
    for note in table.notes:
        say(note)
    if not any(table.cells):
        if args.where:
            say("no job matches --where")
        elif args.attempt != "last":
            say(f"no job has an attempt {args.attempt}")
        else:
            say("no job to compare")
    return ExitStatus.OK


def _write_csv(table: Table, where: str) -> None:
    if where == "-":
        table.write_csv(sys.stdout)
        return
    try:
        with open(where, "w", newline="") as f:
            table.write_csv(f)
    except OSError as e:
        raise HyperctlError(f"--csv {where}: cannot write it: {e.strerror or e}") from None
    say(f"wrote {plural(len(table.cells[0]) if table.cells else 0, 'row')} to {where}")


def _print_table(
    headers: list[str], cells: list[list[Any]], kinds: dict[str, str], keep: int, spare: tuple[str, ...]
) -> None:
    from hyperctl.tablefit import fit, show_column, show_text, terminal_width

    columns, numeric = [], []
    for h, values in zip(headers, cells):
        columns.append(show_column(values, kinds.get(h)))
        numeric.append(h in kinds or bool(values) and set(map(type, values)) <= {int, float, type(None)})
    width = terminal_width()
    # A metric's name is a job's: its control characters shown as escapes, as its values are.
    fitted = fit(list(map(show_text, headers)), columns, numeric, width, keep, spare)
    print(fitted.text)
    if fitted.left_out:
        say(
            f"{plural(len(fitted.left_out), 'column')} left out to fit {width} columns: {', '.join(fitted.left_out)}; "
            "choose columns with -c, or see them all with --csv - or --json (or a wider COLUMNS=...)"
        )
