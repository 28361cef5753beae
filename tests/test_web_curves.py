"""Metric curves: the JSON a chart draws (/ui/api/b/BATCH/curves), from real jobs that called
hyperctl.report, downsampled on the server; the curves page of several jobs."""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hyperctl.web.curvedata import downsample
from tests.conftest import hyperctl, wait_for, write_json
from tests.sseclient import daemon_session
from tests.test_api import Runs, batch, job, wait_for_file
from tests.webclient import Session, ui

PY = shlex.quote(sys.executable)
REPORTER = """
import sys, math, hyperctl
n, kind = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    if kind == "nan" and i == 10:
        hyperctl.report(loss=float("nan"), step=i)
    elif kind == "signed":
        hyperctl.report(loss=i - 2, step=i)  # -2, -1, 0, 1, 2, ...
    else:
        hyperctl.report(loss=1.0 / (i + 1), acc=i / n, step=i)
"""


def reporter(tmp_path: Path, n: int, kind: str = "plain") -> str:
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    return f"{PY} {script} {n} {kind}"


@contextlib.contextmanager
def finished(tmp_path: Path, doc: dict[str, object]) -> Iterator[Session]:
    """The batch run to its end, then a session with `hyperctl ui`."""
    done = hyperctl("run", "--config", str(write_json(tmp_path / "batch.json", doc)))
    assert done.returncode == 0, done.stderr
    with ui(tmp_path / "batches") as served:
        yield served.session()


def get_json(session: Session, path: str) -> tuple[int, Any]:
    answer = session.get(path)
    assert answer.headers["Content-Type"] == "application/json"
    return answer.status, json.loads(answer.text)


def test_a_curve_has_the_points_the_job_reported(tmp_path: Path, batches: Path) -> None:
    jobs = [job("short", reporter(tmp_path, 50)), job("gap", reporter(tmp_path, 30, "nan"))]
    with finished(tmp_path, batch("c", *jobs)) as session:
        status, body = get_json(session, "/ui/api/b/c/curves?jobs=short,gap&metric=loss")
        assert status == 200
        assert body["metric"] == "loss" and body["metrics"] == ["acc", "loss"]
        short, gap = body["series"]
        assert (short["job"], short["attempt"], short["status"]) == ("short", 1, "succeeded")
        assert short["x"] == list(range(50)) and short["y"] == [1.0 / (i + 1) for i in range(50)]
        assert gap["y"][10] is None and gap["y"][11] == 1.0 / 12  # NaN: a gap in the line
        # No metric asked for: loss, as a curve of the loss is what one looks for first.
        assert get_json(session, "/ui/api/b/c/curves?jobs=short")[1]["metric"] == "loss"


def test_a_long_curve_is_cut_to_a_thousand_points_keeping_extremes_and_the_last(tmp_path: Path, batches: Path) -> None:
    n = 20_000
    with finished(tmp_path, batch("long", job("j", reporter(tmp_path, n)))) as session:
        status, body = get_json(session, "/ui/api/b/long/curves?jobs=j&metric=loss")
        (series,) = body["series"]
        assert status == 200 and series["total"] == n
        assert series["shown"] == len(series["x"]) <= 1000
        assert series["x"][0] == 0 and series["x"][-1] == n - 1  # the latest value shows
        assert series["y"][0] == 1.0 and series["y"][-1] == 1.0 / n
        assert series["x"] == sorted(series["x"])


def test_log_y_leaves_out_values_not_above_zero_and_says_how_many(tmp_path: Path, batches: Path) -> None:
    with finished(tmp_path, batch("logy", job("j", reporter(tmp_path, 6, "signed")))) as session:
        (linear,) = get_json(session, "/ui/api/b/logy/curves?jobs=j&metric=loss")[1]["series"]
        assert linear["y"] == [-2, -1, 0, 1, 2, 3]
        body = get_json(session, "/ui/api/b/logy/curves?jobs=j&metric=loss&logy=1")[1]
        (series,) = body["series"]
        assert body["logy"] is True
        assert series["x"] == [3, 4, 5] and series["y"] == [1, 2, 3]
        assert series["left_out"] == {"not positive (log y)": 3}


def test_x_as_wall_time_or_time_since_the_attempt_started(tmp_path: Path, batches: Path) -> None:
    with finished(tmp_path, batch("times", job("j", reporter(tmp_path, 5)))) as session:
        (wall,) = get_json(session, "/ui/api/b/times/curves?jobs=j&x=wall")[1]["series"]
        (relative,) = get_json(session, "/ui/api/b/times/curves?jobs=j&x=relative")[1]["series"]
        assert all(t > 1.7e9 for t in wall["x"]) and wall["x"] == sorted(wall["x"])
        assert all(0 <= s < 60 for s in relative["x"])
        started = wall["x"][0] - relative["x"][0]
        assert [round(w - started, 6) for w in wall["x"]] == [round(r, 6) for r in relative["x"]]


def test_each_attempt_is_a_curve_overlaid_or_alone(tmp_path: Path, batches: Path) -> None:
    marker = tmp_path / "tried"
    command = f"{reporter(tmp_path, 5)} && if [ ! -e {marker} ]; then touch {marker}; exit 3; fi"
    doc = batch("again", job("j", command), scheduler={"max_retries": 1, "retry_on": [3]})
    with finished(tmp_path, doc) as session:
        both = get_json(session, "/ui/api/b/again/curves?jobs=j&metric=loss")[1]["series"]
        assert [(s["attempt"], s["status"], len(s["x"])) for s in both] == [(1, "failed", 5), (2, "succeeded", 5)]
        alone = get_json(session, "/ui/api/b/again/curves?jobs=j&metric=loss&attempt=1")[1]["series"]
        assert [s["attempt"] for s in alone] == [1]


def test_bad_requests_answer_json_naming_the_field(tmp_path: Path, batches: Path) -> None:
    with finished(tmp_path, batch("bad", job("j", reporter(tmp_path, 3)))) as session:
        cases = {
            "jobs=": (400, "jobs: name at least one job (jobs=a,b)"),
            "jobs=j&x=epoch": (400, "x: must be one of step, wall, relative, not 'epoch'"),
            "jobs=j&attempt=0": (400, "attempt: must be all, last or a number from 1, not '0'"),
            "jobs=j&attempt=7": (400, "attempt: job j has 1 attempt(s), no attempt 7"),
            "jobs=j,nope": (404, "jobs: batch bad has no job 'nope'"),
        }
        for query, (code, error) in cases.items():
            assert get_json(session, f"/ui/api/b/bad/curves?{query}") == (code, {"error": error, "status": code}), query
        assert get_json(session, "/ui/api/b/nobatch/curves?jobs=j")[0] == 404


def test_the_curves_page_lists_the_jobs_it_overlays(tmp_path: Path, batches: Path) -> None:
    with finished(tmp_path, batch("page", job("a", reporter(tmp_path, 3)), job("b", reporter(tmp_path, 3)))) as session:
        answer = session.get("/b/page/curves?jobs=a,b,zz&metric=acc")
        html = answer.text
        assert answer.status == 200
        assert '<tr data-job="a" data-status="succeeded">' in html and '<tr data-job="b"' in html
        assert "batch &#39;page&#39; has no job named &#39;zz&#39;" in html
        assert 'data-jobs="a,b"' in html and '<option value="acc" selected>' in html
        # The batch page's rows can be picked for it.
        html = session.get("/b/page").text
        assert 'id="compare-curves"' in html and '<input type="checkbox" class="pick" value="a"' in html


def test_a_running_job_s_curve_grows(runs: Runs, tmp_path: Path) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    command = f"{reporter(tmp_path, 3)} && {wait_for_file(go)} && {reporter(tmp_path, 5)} && {wait_for_file(done)}"
    session = daemon_session(runs.start(batch("grows", job("j", command))))

    def series(points: int) -> dict[str, Any] | None:
        found = get_json(session, "/ui/api/b/grows/curves?jobs=j&metric=loss")[1]["series"]
        return found[0] if found and len(found[0]["x"]) == points else None

    assert wait_for(lambda: series(3), "the first points")["running"] is True
    go.touch()
    grown = wait_for(lambda: series(8), "the points reported next")
    assert grown["running"] is True and grown["x"] == [0, 1, 2, 0, 1, 2, 3, 4]
    done.touch()


def test_downsample_keeps_a_spike_a_gap_and_both_ends() -> None:
    n = 100_000
    xs = [float(i) for i in range(n)]
    ys: list[float | None] = [math.sin(i / 1000) for i in range(n)]
    ys[50_000] = 50.0  # a spike of one point
    ys[70_000] = None  # one NaN
    kept_x, kept_y = downsample(xs, ys, 1000)
    assert len(kept_x) <= 1000 and kept_x[0] == 0 and kept_x[-1] == n - 1
    assert 50.0 in kept_y and None in kept_y
    assert kept_x == sorted(kept_x)
    assert downsample(xs[:10], ys[:10], 1000) == (xs[:10], ys[:10])
