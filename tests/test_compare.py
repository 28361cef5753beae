"""`hyperctl compare`: real batches whose jobs report with hyperctl.report(), compared by the real CLI."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, kill_leftovers, wait_for, write_json

PY = shlex.quote(sys.executable)
LONG = "x" * 100


def reporting(*points: dict[str, float], exit_code: int = 0) -> str:
    """A job's command: python reporting these points (a step each), then exiting exit_code."""
    reports = "".join(f"hyperctl.report({p!r})\n" for p in points)  # repr of NaN: nan
    code = f"import hyperctl\nnan = float('nan')\n{reports}raise SystemExit({exit_code})"
    return f"{PY} -c {shlex.quote(code)}"


def job(name: str, params: dict[str, Any], command: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "params": params, "execution": {"command": command}, **more}


NAN = float("nan")
# The second attempt of `retried` succeeds: its first reports acc 0.1 and fails.
RETRIED = f"{PY} -c " + shlex.quote(
    "import os, hyperctl\n"
    "first = os.environ['HYPERCTL_ATTEMPT'] == '1'\n"
    "hyperctl.report(acc=0.1 if first else 0.6)\n"
    "raise SystemExit(1 if first else 0)"
)
SWEEP = [
    job(
        "lr-0.1", {"lr": 0.1, "depth": 3, "seed": 1}, reporting({"loss": 0.5}, {"loss": 0.3}, {"loss": 0.4, "acc": 0.8})
    ),
    job("lr-0.2", {"lr": 0.2, "depth": 3, "seed": 1}, reporting({"loss": 0.9}, {"loss": 0.2, "acc": 0.9})),
    job("lr-0.3", {"lr": 0.3, "depth": 5, "seed": 1}, reporting({"loss": 0.25, "acc": 0.7}, {"loss": NAN})),
    job("nolog", {"lr": 0.4, "depth": 5, "seed": 1}, reporting(exit_code=1)),
    job("lr-0.05", {"lr": 0.05, "depth": 3, "seed": 1, "note": LONG}, reporting({"loss": 0.35, "acc": 0.95})),
    job("retried", {"lr": 0.5, "depth": 3, "seed": 1}, RETRIED, max_retries=1),
]
OTHER = [job("lr-0.1", {"lr": 0.1}, reporting({"acc": 0.99}))]


class Results:
    """Two batches that ran once for the whole module, and the CLI pointed at them."""

    def __init__(self, root: Path) -> None:
        self.batches = root / "batches"
        self.env = {"HYPERCTL_BATCHES_DATA_DIR": str(self.batches), "XDG_STATE_HOME": str(root / "state")}
        for name, jobs in (("sweep", SWEEP), ("other", OTHER)):
            doc = {"name": name, "jobs": jobs, "daemon": {"port": 0}, "backend": {"type": "local", "conf": {"cpu": 2}}}
            done = hyperctl("run", "--config", str(write_json(root / f"{name}.json", doc)), env=self.env)
            assert done.returncode in (0, 1), done.stderr  # nolog fails on purpose

    def run(self, *args: str, columns: int | None = None) -> tuple[int, str, str]:
        env = dict(self.env)
        if columns is not None:
            env["COLUMNS"] = str(columns)
        done = hyperctl("compare", *args, env=env)
        return done.returncode, done.stdout, done.stderr

    def json(self, *args: str) -> dict[str, Any]:
        code, out, err = self.run(*args, "--json")
        assert code == 0, err
        doc: dict[str, Any] = json.loads(out)
        return doc

    def rows(self, *args: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.json(*args)["rows"]
        return rows

    def names(self, *args: str) -> list[str]:
        return [row["name"] for row in self.rows(*args)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    root = tmp_path_factory.mktemp("compare")
    columns = os.environ.pop("COLUMNS", None)  # a width set where the tests run must not fit the tables
    try:
        yield Results(root)
    finally:
        kill_leftovers(root / "batches")
        if columns is not None:
            os.environ["COLUMNS"] = columns


def same(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


# -- the default table --------------------------------------------------------------------------
def test_default_columns_are_who_where_the_params_that_vary_and_each_metric_s_last_value(results: Results) -> None:
    doc = results.json("sweep")

    # seed is 1 everywhere: not shown; note is set in one job only: it varies.
    assert doc["columns"] == ["name", "status", "duration", "host", "lr", "depth", "note", "acc", "loss"]
    rows = {row["name"]: row for row in doc["rows"]}
    assert list(rows) == ["lr-0.1", "lr-0.2", "lr-0.3", "nolog", "lr-0.05", "retried"]  # the batch's order
    assert rows["lr-0.1"]["status"] == "succeeded" and rows["nolog"]["status"] == "failed"
    assert rows["lr-0.1"]["loss"] == 0.4 and rows["lr-0.1"]["acc"] == 0.8  # last values
    assert math.isnan(rows["lr-0.3"]["loss"])  # NaN kept
    assert rows["nolog"]["loss"] is None and rows["nolog"]["acc"] is None
    assert rows["retried"]["acc"] == 0.6  # its last attempt's
    assert rows["lr-0.05"]["note"] == LONG and rows["lr-0.1"]["note"] is None
    assert all(isinstance(row["duration"], float) and row["duration"] >= 0 for row in doc["rows"])
    assert {row["host"] for row in doc["rows"]} == {"localhost"}


def test_all_params_shows_those_that_do_not_vary_too(results: Results) -> None:
    columns = results.json("sweep", "--all-params")["columns"]
    assert columns == ["name", "status", "duration", "host", "lr", "depth", "seed", "note", "acc", "loss"]


def test_the_table_shows_numbers_to_4_significant_digits_and_missing_values_as_a_dash(results: Results) -> None:
    code, out, err = results.run("sweep", "-c", "=lr,loss,acc", "--where", "name~^(lr-0.3|nolog)$")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["name", "lr", "loss", "acc"]
    assert lines[1].split() == ["lr-0.3", "0.3", "nan", "0.7"]
    assert lines[2].split() == ["nolog", "0.4", "-", "-"]


# -- the grammar --------------------------------------------------------------------------------
def test_column_grammar_params_stats_steps_counts_and_names(results: Results) -> None:
    columns = "=lr,min loss,min loss step,max loss,loss step,count loss,max acc as best,.status"
    doc = results.json("sweep", "-c", columns, "--where", "name=lr-0.1")

    assert doc["columns"] == [
        "name", "lr", "min loss", "min loss step", "max loss", "loss step", "count loss", "best", "status"
    ]  # fmt: skip
    assert doc["rows"] == [
        {
            "name": "lr-0.1",
            "lr": 0.1,
            "min loss": 0.3,
            "min loss step": 1,
            "max loss": 0.5,
            "loss step": 2,
            "count loss": 3,
            "best": 0.8,
            "status": "succeeded",
        }
    ]


def test_a_param_and_a_metric_of_one_name_are_told_apart(tmp_path: Path, batches: Path) -> None:
    doc = {
        "name": "clash",
        "daemon": {"port": 0},
        "jobs": [job("a", {"loss": 1}, reporting({"loss": 0.5, "host": 2, "c_rate": 3}))],
    }
    assert hyperctl("run", "--config", str(write_json(tmp_path / "c.json", doc))).returncode == 0

    columns = json.loads(hyperctl("compare", "clash", "--all-params", "--json").stdout)["columns"]
    assert columns == ["name", "status", "duration", "host", "=loss", "c_rate", "last host", "last loss"]
    sorted_by = hyperctl("compare", "clash", "--sort", "-c_rate", "-c=c_rate", "--json")  # not -c _rate
    assert json.loads(sorted_by.stdout)["rows"] == [{"name": "a", "c_rate": 3}], sorted_by.stderr

    done = hyperctl("compare", "clash", "-c", "=loss,last loss", "--json")
    assert json.loads(done.stdout) == {
        "columns": ["name", "=loss", "last loss"],
        "rows": [{"name": "a", "=loss": 1, "last loss": 0.5}],
    }
    done = hyperctl("compare", "clash", "-c", "loss")
    assert done.returncode == 2
    assert done.stderr == (
        "hyperctl: error: column 'loss': 'loss' is both a param and a metric: write =loss for the param, "
        "last loss for the metric\n"
    )


# -- sorting, top ---------------------------------------------------------------------------------
def test_sort_descending_and_ascending_puts_nan_and_missing_last_either_way(results: Results) -> None:
    down = results.names("sweep", "--sort", "-loss")
    up = results.names("sweep", "--sort", "loss")
    # loss: lr-0.1 0.4, lr-0.2 0.2, lr-0.3 NaN, nolog none, lr-0.05 0.35, retried none.
    assert down == ["lr-0.1", "lr-0.05", "lr-0.2", "lr-0.3", "nolog", "retried"]
    assert up == ["lr-0.2", "lr-0.05", "lr-0.1", "lr-0.3", "nolog", "retried"]
    assert results.names("sweep", "--min", "loss") == up
    assert results.names("sweep", "--max", "loss") == down


def test_max_and_top_give_the_best_jobs(results: Results) -> None:
    assert results.names("sweep", "--max", "acc", "--top", "2") == ["lr-0.05", "lr-0.2"]
    assert results.names("sweep", "--sort", "-acc", "--top", "0") == []
    # Several keys: by depth, then the best acc within each depth.
    assert results.names("sweep", "--sort", "depth", "--sort", "-acc") == [
        "lr-0.05", "lr-0.2", "lr-0.1", "retried", "lr-0.3", "nolog"
    ]  # fmt: skip


def test_sort_by_a_column_s_as_name(results: Results) -> None:
    assert results.names("sweep", "-c", "min loss as best", "--sort", "best", "--top", "1") == ["lr-0.2"]


# -- filters --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "where, names",
    [
        (["status=succeeded"], ["lr-0.1", "lr-0.2", "lr-0.3", "lr-0.05", "retried"]),
        (["status!=succeeded"], ["nolog"]),
        (["lr>=0.2", "lr<0.5"], ["lr-0.2", "lr-0.3", "nolog"]),
        (["=lr=0.1"], ["lr-0.1"]),
        (["min loss<0.3"], ["lr-0.2", "lr-0.3"]),
        (["loss>0.1"], ["lr-0.1", "lr-0.2", "lr-0.05"]),  # NaN and missing: never kept
        (["loss!=0.4"], ["lr-0.2", "lr-0.05"]),
        (["name~^lr-0\\.[12]$"], ["lr-0.1", "lr-0.2"]),
        (["acc>0.5", "depth=3"], ["lr-0.1", "lr-0.2", "lr-0.05", "retried"]),
        (["duration>=0", "host=localhost", "attempt=2"], ["retried"]),
    ],
)
def test_where_keeps_the_rows_that_match(results: Results, where: list[str], names: list[str]) -> None:
    assert results.names("sweep", *(arg for w in where for arg in ("--where", w))) == names


def test_an_earlier_attempt_is_compared_with_attempt_k(results: Results) -> None:
    rows = results.rows("sweep", "--attempt", "1", "-c", "status,acc", "--where", "name=retried")
    assert rows == [{"name": "retried", "status": "failed", "acc": 0.1}]
    assert results.names("sweep", "--attempt", "2") == ["retried"]  # the jobs that have one


# -- CSV and JSON ---------------------------------------------------------------------------------
def test_csv_on_stdout_parses_back_to_the_same_rows_in_full_precision(results: Results) -> None:
    code, out, err = results.run("sweep", "--csv", "-")
    assert code == 0, err
    parsed = list(csv.reader(io.StringIO(out)))
    doc = results.json("sweep")
    assert parsed[0] == doc["columns"]
    assert len(parsed) == 1 + len(doc["rows"])
    for line, row in zip(parsed[1:], doc["rows"]):
        for cell, header in zip(line, doc["columns"]):
            value = row[header]
            if value is None:
                assert cell == ""
            elif isinstance(value, float):
                assert same(float(cell), value), (header, cell, value)  # every digit: repr round-trips
            else:
                assert cell == str(value)


def test_csv_into_a_file(results: Results, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    code, out, err = results.run("sweep", "--max", "acc", "--top", "2", "-c", "acc", "--csv", str(target))
    assert code == 0 and out == ""
    assert err == f"hyperctl: wrote 2 rows to {target}\n"
    assert list(csv.reader(target.open())) == [["name", "acc"], ["lr-0.05", "0.95"], ["lr-0.2", "0.9"]]


# -- several batches ------------------------------------------------------------------------------
def test_several_batches_in_one_table_with_a_batch_column(results: Results) -> None:
    doc = results.json("sweep", "other", "--max", "acc", "--top", "3")
    assert doc["columns"][:2] == ["batch", "name"]
    assert [(row["batch"], row["name"], row["acc"]) for row in doc["rows"]] == [
        ("other", "lr-0.1", 0.99),
        ("sweep", "lr-0.05", 0.95),
        ("sweep", "lr-0.2", 0.9),
    ]
    code, out, _ = results.run("sweep", "other", "-c", "acc", "--where", "name=lr-0.1")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["batch", "name", "acc"], ["sweep", "lr-0.1", "0.8"], ["other", "lr-0.1", "0.99"]
    ]  # fmt: skip


# -- fitting the terminal -------------------------------------------------------------------------
def test_a_wide_table_fits_the_terminal_and_says_which_columns_it_left_out(results: Results) -> None:
    code, out, err = results.run("sweep", columns=40)
    assert code == 0
    assert all(len(line) <= 40 for line in out.splitlines()), out
    assert out.splitlines()[0].split()[0] == "name"
    assert len(err.splitlines()) == 1
    assert err.startswith("hyperctl: ") and "left out to fit 40 columns: " in err and "--csv" in err
    left_out = err.split("columns: ", 1)[1].split(";")[0].split(", ")
    shown = out.splitlines()[0].split()
    assert set(left_out) | set(shown) == {"name", "status", "duration", "host", "lr", "depth", "note", "acc", "loss"}
    assert left_out[:3] == ["host", "duration", "status"]  # what says least about results goes first


def test_a_long_value_is_cut_with_an_ellipsis(results: Results) -> None:
    code, out, err = results.run("sweep", "-c", "note", "--where", "name=lr-0.05", columns=200)
    assert code == 0 and err == ""
    cell = out.splitlines()[1].split()[1]
    assert cell.endswith("…") and LONG.startswith(cell[:-1]) and len(cell) < len(LONG)
    code, out, err = results.run("sweep", "-c", "note", "--where", "name=lr-0.05", columns=30)
    assert code == 0 and err == ""
    assert all(len(line) <= 30 for line in out.splitlines())
    assert out.splitlines()[1].split()[1].endswith("…")


def test_in_a_pipe_every_column_is_shown(results: Results) -> None:
    code, out, err = results.run("sweep")
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["name", "status", "duration", "host", "lr", "depth", "note", "acc", "loss"]


# -- bad usage ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "lr"], "filter 'lr': write NAME OP VALUE, with OP one of <= >= != = < > ~ (e.g. loss<0.3)"),
        (["--where", "lr>"], "filter 'lr>': nothing to compare with after '>'"),
        (["--where", "nosuch<1"], "filter 'nosuch<1': no job has a param or metric named 'nosuch' (params: "),
        (["--where", "name~("], "filter 'name~(': not a regular expression: "),
        (["--sort", "-nosuch"], "sort key 'nosuch': no job has a param or metric named 'nosuch'"),
        (["-c", "=nosuch"], "column '=nosuch': no job has a param named 'nosuch'"),
        (["-c", "max nosuch"], "column 'max nosuch': no job has a metric named 'nosuch'"),
        (["-c", "count loss step"], "column 'count loss step': a count has no step (write count loss)"),
        (["-c", ".nosuch"], "column '.nosuch': no attribute 'nosuch' (attributes: batch, name, status,"),
        (["-c", "loss,"], "column '': empty;"),
        (["-c", "acc as x,loss as x"], "column 'loss as x': a second column headed 'x'"),
        (["--attempt", "first"], "attempt: must be 'last' or a whole number from 1, not 'first'"),
    ],
)
def test_a_bad_expression_is_one_line_naming_it_and_exit_2(results: Results, args: list[str], message: str) -> None:
    code, out, err = results.run("sweep", *args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("hyperctl: error: " + message), err


def test_a_missing_batch_is_one_line_and_exit_2(results: Results) -> None:
    code, out, err = results.run("sweep", "nosuch")
    assert code == 2 and out == ""
    assert err == f"hyperctl: error: no batch named 'nosuch' in {results.batches} (batches: other, sweep)\n"


def test_help_has_examples(results: Results) -> None:
    code, out, _ = results.run("--help")
    assert code == 0
    assert "hyperctl compare my-sweep --max acc --top 5" in out and "min loss" in out


# -- a running batch --------------------------------------------------------------------------------
def test_a_running_batch_compares_as_its_daemon_writes(tmp_path: Path, batches: Path) -> None:
    go = tmp_path / "go"
    code = (
        "import hyperctl, os, time\n"
        "hyperctl.report(loss=0.5)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "hyperctl.report(loss=0.25)\n"
    )
    doc = {"name": "live", "daemon": {"port": 0}, "jobs": [job("a", {"lr": 1}, f"{PY} -c {shlex.quote(code)}")]}
    config = write_json(tmp_path / "live.json", doc)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.DEVNULL
    )
    try:

        def running_row() -> dict[str, Any] | None:
            done = hyperctl("compare", "live", "--json")
            rows = json.loads(done.stdout)["rows"] if done.returncode == 0 else []
            return rows[0] if rows and rows[0].get("loss") == 0.5 else None

        row = wait_for(running_row, "the running job's first point in compare")
        assert row["status"] == "running" and row["duration"] >= 0
        go.touch()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    done = hyperctl("compare", "live", "--json")
    assert json.loads(done.stdout)["rows"][0]["loss"] == 0.25


def test_a_batch_whose_daemon_died_shows_its_jobs_as_their_files_tell(tmp_path: Path, batches: Path) -> None:
    from tests.conftest import attempt_dir
    from tests.test_control import held_job_left_by_a_dead_daemon

    _, gate = held_job_left_by_a_dead_daemon(tmp_path, batches)
    gate.touch()
    wait_for(lambda: (attempt_dir(batches, "b", "j") / "exitcode").exists(), "the job to end")

    done = hyperctl("compare", "b", "--json")

    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)["rows"][0]
    assert row["status"] == "succeeded" and row["duration"] >= 0  # as `job list` shows it; the store says running
    assert done.stderr.startswith("hyperctl: no daemon drives batch b; ") and len(done.stderr.splitlines()) == 1


def test_a_filter_compares_text_as_written_and_numbers_as_numbers() -> None:
    from hyperctl.comparegrammar import parse_filter

    assert parse_filter("tag=007").keeps("007") and not parse_filter("tag=007").keeps("7")
    assert parse_filter("lr=0.10").keeps(0.1) and parse_filter("lr!=0.2").keeps(0.1)
    assert parse_filter("flag=true").keeps(True) and not parse_filter("flag=true").keeps(False)
    assert not parse_filter("flag>0").keeps(True)  # a boolean is no number to order
    assert parse_filter("name>b").keeps("c") and not parse_filter("lr>b").keeps(0.5)


def test_on_a_terminal_the_table_fits_its_width(results: Results) -> None:
    from tests.conftest import run_on_terminal

    env = {**os.environ, **results.env}
    old = dict(os.environ)
    os.environ.update(env)  # run_on_terminal runs with this process's environment
    try:
        code, seen = run_on_terminal("compare", "sweep")
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert code == 0
    lines = [line for line in seen.replace("\r", "").splitlines() if line]
    width = 80  # a new terminal's size is unset: the usual 80 columns
    assert lines[0].split() == ["name", "status", "duration", "host", "lr", "depth", "note", "acc", "loss"]
    assert all(len(line) <= width for line in lines), seen  # every column, the long note cut to fit
    assert "xxxxxxxxxxxx… " in seen and LONG not in seen


def test_when_no_job_matches_the_table_is_its_header_and_a_note_says_so(results: Results) -> None:
    code, out, err = results.run("sweep", "--where", "lr>5", "-c", "acc")
    assert (code, out, err) == (0, "name  acc\n", "hyperctl: no job matches --where\n")


def test_the_python_api_compares_with_the_same_code(results: Results) -> None:
    from hyperctl import Batch

    rows = Batch("sweep", data_dir=str(results.batches)).compare(["=lr", "max acc"], sort=["-max acc"], top=2)
    assert rows.columns == ["name", "lr", "max acc"]
    assert list(rows) == [
        {"name": "lr-0.05", "lr": 0.05, "max acc": 0.95},
        {"name": "lr-0.2", "lr": 0.2, "max acc": 0.9},
    ]


# -- the two ways a batch's metrics are read ------------------------------------------------------
def _table(batch_dirs: list[Any], columns: list[str] | None, **how: Any) -> dict[str, Any]:
    from hyperctl.comparison import compare

    table = compare(batch_dirs, columns, **how)
    return json.loads(json.dumps(table.to_dict()))  # NaN as NaN, as the CLI's --json has it


@pytest.mark.parametrize(
    "columns, how",
    [
        (None, {}),
        (["=lr", "loss", "min loss", "min loss step", "max acc", "count loss", "acc step"], {"sort": ["-acc"]}),
        (None, {"attempt": "1", "where": ["acc>0"]}),
        (None, {"sort": ["loss"], "top": 3}),
    ],
)
def test_a_batch_with_many_metrics_read_as_rows_compares_as_one_read_joined(
    results: Results, monkeypatch: pytest.MonkeyPatch, columns: list[str] | None, how: dict[str, Any]
) -> None:
    """Up to JOINED_MOST metrics, one query joins them to the jobs; past it, a batch's summaries are
    read as rows. The two give the same tables (NaN, missing values, attempts, several batches)."""
    from hyperctl import comparedata
    from hyperctl.layout import BatchDir

    batch_dirs = [BatchDir(results.batches, "sweep"), BatchDir(results.batches, "other")]
    joined = _table(batch_dirs, columns, **how)
    monkeypatch.setattr(comparedata, "JOINED_MOST", 0)
    assert repr(_table(batch_dirs, columns, **how)) == repr(joined)  # repr: NaN equals NaN
    assert joined["rows"]


def test_a_metric_both_reported_and_printed_is_the_reported_one_however_many_metrics(
    tmp_path: Path, batches: Path
) -> None:
    from hyperctl import comparedata

    many = {f"m{i:02}": i for i in range(comparedata.JOINED_MOST + 5)}
    code = "import hyperctl\nhyperctl.report(loss=0.5, acc=float('nan'))\nprint('loss: 9'); print('printed: 3')"
    jobs = [
        job("both", {"k": 1}, f"{PY} -c {shlex.quote(code)}"),
        job("printed", {"k": 2}, "echo 'loss: 7'; echo 'acc: 0.25'"),
    ]
    for name, more in (("few", {}), ("many", many)):
        extra = [job("wide", {"k": 3}, reporting(more))] if more else []
        doc = {"name": name, "daemon": {"port": 0}, "jobs": jobs + extra}
        assert hyperctl("run", "--config", str(write_json(tmp_path / f"{name}.json", doc))).returncode == 0

        done = hyperctl("compare", name, "-c", "loss,acc,printed,count loss", "--json")
        rows = json.loads(done.stdout)["rows"]
        assert repr(rows[:2]) == repr(
            [
                {"name": "both", "loss": 0.5, "acc": NAN, "printed": 3.0, "count loss": 1},
                {"name": "printed", "loss": 7.0, "acc": 0.25, "printed": None, "count loss": 1},
            ]
        ), name
    shown = json.loads(hyperctl("compare", "many", "--json").stdout)
    assert [c for c in shown["columns"] if c.startswith("m")] == list(many)
    assert shown["rows"][2]["m07"] == 7 and shown["rows"][0]["m07"] is None


def test_numbers_formatted_in_bulk_read_as_one_at_a_time() -> None:
    """The table formats a column of floats in C ("%.4g"), mending the whole numbers it would
    write in e-notation: each cell as show_number has it, the edges included."""
    import random

    from hyperctl.tablefit import show_column, show_number

    rng = random.Random(12)
    values = [0.0, -0.0, NAN, math.inf, -math.inf, 5e-324, 1e300, 999_999.0, 1e6, -999_999.0, 12345.5, 99995.0]
    values += [rng.uniform(-10, 10) * 10 ** rng.randint(-20, 20) for _ in range(2000)]
    values += [float(rng.randint(-2_000_000, 2_000_000)) for _ in range(2000)]
    assert show_column(values) == [show_number(v) for v in values]
    assert show_column([123456.0, 0.5, -0.0]) == ["123456", "0.5", "0"]
