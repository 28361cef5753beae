"""Params vs metric (/b/BATCH/params): a real grid run by `hyperctl run`, whose python jobs report
with hyperctl.report(), served by a real `hyperctl ui`; its JSON over HTTP, its chart in a real
browser (brushing narrows the job table, the URL keeps the brush, log axes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, kill_leftovers
from tests.webclient import Session, ui

# acc from the params; NaN where lr=1 with sgd; nothing reported (and exit 3) for one of those.
TRAIN = """\
import math, sys
import hyperctl
lr, depth, opt = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
acc = round(0.5 + depth / 100 + (0.05 if opt == "adam" else 0) - lr / 10, 4)
if lr == 1.0 and opt == "sgd":
    if depth == 8:
        raise SystemExit(3)
    acc = float("nan")
for step in range(3):
    hyperctl.report(acc=acc - 0.1 * (2 - step), loss=1 - acc + 0.01 * step)
"""
TEMPLATE = """\
name: grid
params:
  lr: [0.001, 0.01, 0.1, 1.0]
  depth: [0, 4, 8]
  opt: [sgd, adam]
execution:
  command: {python} train.py {{{{ lr }}}} {{{{ depth }}}} {{{{ opt }}}}
  working_dir: .
scheduler:
  objective: max acc
backend:
  type: local
  conf: {{cpu: 2}}
daemon: {{port: 0}}
"""
LRS, DEPTHS, OPTS = (0.001, 0.01, 0.1, 1.0), (0, 4, 8), ("sgd", "adam")


def expected_acc(lr: float, depth: int, opt: str) -> float | None:
    """A job's last acc as TRAIN reports it (None: NaN, or nothing reported)."""
    if lr == 1.0 and opt == "sgd":
        return None
    return round(0.5 + depth / 100 + (0.05 if opt == "adam" else 0) - lr / 10, 4)


@dataclass
class Grid:
    """The grid's batch, and `hyperctl ui` serving it (logged in once: its session cookie)."""

    url: str
    session: Session
    batches: Path
    env: dict[str, str]

    @property
    def cookie(self) -> str:
        found = self.session.cookie("hyperctl_session")
        assert found is not None and found.value
        return found.value

    def get(self, path: str, cookie: bool = True) -> tuple[int, str]:
        answer = (self.session if cookie else Session(self.url)).get(path)
        return answer.status, answer.text

    def json(self, query: str = "", cookie: bool = True) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/ui/api/b/grid/params" + query, cookie)
        return status, json.loads(body)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    root = tmp_path_factory.mktemp("params")
    batches = root / "batches"
    env = {**os.environ, "HYPERCTL_BATCHES_DATA_DIR": str(batches), "XDG_STATE_HOME": str(root / "state")}
    (root / "train.py").write_text(TRAIN)
    (root / "t.yml").write_text(TEMPLATE.format(python=shlex.quote(sys.executable)))
    done = hyperctl("run", "--template", str(root / "t.yml"), env=env)
    assert done.returncode == 1, done.stderr  # one job fails on purpose
    try:
        with ui(batches) as served:
            yield Grid(served.base, served.session(), batches, env)
    finally:
        kill_leftovers(batches)


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each job's values on each axis, by its name."""
    return {
        name: {axis["name"]: axis["values"][i] for axis in doc["axes"]} | {"status": doc["statuses"][i]}
        for i, name in enumerate(doc["names"])
    }


# -- the JSON ------------------------------------------------------------------------------------------
def test_the_json_has_each_job_s_varying_params_and_the_objective_s_metric(grid: Grid) -> None:
    status, doc = grid.json()
    assert status == 200
    assert (doc["metric"], doc["stat"], doc["metrics"]) == ("acc", "last", ["acc", "loss"])  # objective: max acc
    assert doc["objective"] == {"metric": "acc", "mode": "max", "value": "last"}
    axes = {axis["name"]: axis for axis in doc["axes"]}
    assert list(axes) == ["lr", "depth", "opt", "acc"]
    assert [(a["kind"], a["expr"], a["metric"]) for a in axes.values()] == [
        ("number", "=lr", False),
        ("number", "=depth", False),
        ("category", "=opt", False),
        ("number", "last acc", True),
    ]
    assert axes["lr"]["log_ok"] and not axes["depth"]["log_ok"]  # depth has a 0: no log scale for it
    assert axes["opt"]["categories"] == ["adam", "sgd"]
    jobs = _by_name(doc)
    assert len(jobs) == 24
    for job in jobs.values():
        assert job["acc"] == expected_acc(job["lr"], job["depth"], job["opt"])  # NaN and none: null
    failed = [name for name, job in jobs.items() if job["status"] == "failed"]
    assert len(failed) == 1 and jobs[failed[0]]["acc"] is None


def test_another_metric_and_its_least_or_greatest_value(grid: Grid) -> None:
    for stat, step in (("min", 0), ("max", 2), ("last", 2)):
        status, doc = grid.json(f"?metric=loss&stat={stat}")
        assert status == 200
        assert (doc["metric"], doc["stat"], doc["axes"][-1]["expr"]) == ("loss", stat, f"{stat} loss")
        for job in _by_name(doc).values():
            acc = expected_acc(job["lr"], job["depth"], job["opt"])
            want = None if acc is None else 1 - acc + 0.01 * step
            assert job["loss"] == pytest.approx(want), (stat, job)


def test_a_metric_no_job_has_is_400_naming_it(grid: Grid) -> None:
    status, doc = grid.json("?metric=accc")
    assert status == 400
    assert "metric: no job has a metric named 'accc'" in doc["error"]
    assert "did you mean 'acc'?" in doc["error"]
    status, doc = grid.json("?stat=mean")
    assert (status, doc["error"]) == (400, "stat: must be last, min or max, not 'mean'")


def test_without_the_cookie_the_json_is_401(grid: Grid) -> None:
    status, doc = grid.json(cookie=False)
    assert status == 401
    assert "log in with the link" in doc["error"]
    status, _ = grid.get("/b/grid/params", cookie=False)
    assert status == 401


def test_a_damaged_store_is_503_saying_so(grid: Grid) -> None:
    broken = grid.batches / "broken"
    shutil.copytree(grid.batches / "grid", broken, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm", "lock"))
    (broken / ".hyperctl" / "state.db").write_bytes(b"not a database, at all" * 100)
    status, body = grid.get("/ui/api/b/broken/params")
    doc = json.loads(body)
    assert status == 503 and doc["status"] == 503
    assert "state.db" in doc["error"] and "\n" not in doc["error"]


def test_the_table_part_keeps_the_jobs_the_filters_keep(grid: Grid) -> None:
    where = urllib.parse.urlencode([("where", "=depth>=4"), ("where", "=opt~^(adam)$"), ("part", "table")])
    status, html = grid.get(f"/b/grid/params?{where}")
    assert status == 200
    rows = re.findall(r'<tr data-job="([^"]+)"', html)
    assert len(rows) == 8 and all("opt-adam" in r and "depth-0" not in r for r in rows)
    assert "8 jobs" in html
    status, html = grid.get("/b/grid/params?" + urllib.parse.urlencode({"where": "=depht>=4", "part": "table"}))
    assert status == 200 and "no job has a param named &#39;depht&#39; (did you mean &#39;depth&#39;?" in html


def test_the_batch_page_and_its_export_keep_the_filters_too(grid: Grid) -> None:
    where = urllib.parse.urlencode([("where", "=depth>=4"), ("where", "=lr<=0.01"), ("sort", "-acc")])
    status, html = grid.get(f"/b/grid?{where}")
    assert status == 200
    rows = re.findall(r'<tr data-job="([^"]+)"', html)
    assert len(rows) == 8 and all("depth-0_" not in r and re.search(r"lr-0\.0?01_", r) for r in rows)
    links = re.findall(r'<a class="sort" href="\?([^"]+)"', html.replace("&amp;", "&"))
    assert links and all(urllib.parse.parse_qs(q)["where"] == ["=depth>=4", "=lr<=0.01"] for q in links)
    status, text = grid.get(f"/b/grid/export.csv?{where}")
    assert status == 200 and len(text.strip().splitlines()) == 1 + 8


# -- in a browser --------------------------------------------------------------------------------------
@pytest.fixture
def opened(grid: Grid, page: Any) -> Any:
    """The params page in the browser, its chart drawn (the server first: it outlives the page)."""
    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(grid.url + "/b/grid/params")
    page.wait_for_selector("#pc[data-drawn='24']", state="attached")
    return page


def _tick_y(page: Any, axis: str, label: str) -> float:
    """The page's y of an axis's tick label."""
    box = page.locator(f'.pc-axis[data-axis="{axis}"] text.pc-label', has_text=re.compile(f"^{re.escape(label)}$"))
    found = box.first.bounding_box()
    return float(found["y"] + found["height"] / 2)


def _axis_x(page: Any, axis: str) -> float:
    box = page.locator(f'.pc-axis[data-axis="{axis}"] .pc-spine').bounding_box()
    return float(box["x"] + box["width"] / 2)


def _drag(page: Any, axis: str, y1: float, y2: float) -> None:
    x = _axis_x(page, axis)
    page.mouse.move(x, y1)
    page.mouse.down()
    page.mouse.move(x, (y1 + y2) / 2, steps=3)
    page.mouse.move(x, y2, steps=3)
    page.mouse.up()


def _rows(page: Any, count: int) -> list[str]:
    """The job table's rows, once it shows count of them."""
    from playwright.sync_api import expect

    expect(page.locator("#job-table tbody tr")).to_have_count(count)
    return [str(name) for name in page.locator("#job-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.job)")]


def test_brushing_axes_narrows_the_table_and_the_url_keeps_it(opened: Any) -> None:
    from playwright.sync_api import expect

    from tests.browser import screenshot

    page = opened
    _rows(page, 24)
    _drag(page, "=depth", _tick_y(page, "=depth", "8") - 5, _tick_y(page, "=depth", "4") + 5)
    rows = _rows(page, 16)
    assert all("depth-0_" not in name for name in rows)
    expect(page.locator("#pc-count")).to_have_text("16 of 24 jobs in the brushes")
    expect(page.locator("#jobs .pager")).to_contain_text("16 jobs")
    _drag(page, "=opt", _tick_y(page, "=opt", "adam") - 10, _tick_y(page, "=opt", "adam") + 10)
    rows = _rows(page, 8)  # both brushes: depth 4 or 8, and adam
    assert all("opt-adam" in name and "depth-0_" not in name for name in rows)
    where = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["where"]
    assert "=opt~^(adam)$" in where and any(w.startswith("=depth>=") for w in where)
    screenshot(page, "params-brushed")

    page.goto(page.url)  # the link reproduces the view
    page.wait_for_selector("#pc[data-drawn='24']", state="attached")
    assert sorted(_rows(page, 8)) == sorted(rows)
    expect(page.locator(".pc-brush")).to_have_count(2)
    expect(page.locator("#pc-count")).to_have_text("8 of 24 jobs in the brushes")

    x = _axis_x(page, "=depth")
    page.mouse.dblclick(x, _tick_y(page, "=depth", "4"))  # that axis's brush cleared
    rows = _rows(page, 12)
    assert all("opt-adam" in name for name in rows)
    page.click("#pc-clear")
    _rows(page, 24)
    expect(page.locator(".pc-brush")).to_have_count(0)
    assert "where" not in urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)


def test_a_brush_on_the_metric_keeps_the_jobs_with_a_value_there(opened: Any) -> None:
    page = opened
    axis = page.locator('.pc-axis[data-axis="last acc"] .pc-spine').bounding_box()
    _drag(page, "last acc", axis["y"] - 4, axis["y"] + axis["height"] + 4)  # the whole axis, not "none"
    rows = _rows(page, 21)  # the 3 jobs without an acc (2 NaN, 1 that reported nothing) are out
    assert not any("lr-1.0_opt-sgd" in name for name in rows)


def test_a_log_axis_where_every_value_is_positive(opened: Any) -> None:
    from playwright.sync_api import expect

    page = opened
    labels = page.locator('.pc-axis[data-axis="=lr"] text.pc-label')
    expect(page.locator('.pc-log[data-log="=depth"]')).to_have_count(0)  # depth has a 0
    page.click('.pc-log[data-log="=lr"]')
    expect(labels).to_have_text(["0.001", "0.01", "0.1", "1"])  # a tick per power of ten
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["log"] == ["=lr"]
    y = [_tick_y(page, "=lr", label) for label in ("0.001", "0.01", "0.1", "1")]
    gaps = [a - b for a, b in zip(y, y[1:])]
    assert max(gaps) - min(gaps) < 2  # evenly spaced
    page.goto(page.url)
    page.wait_for_selector("#pc[data-drawn='24']", state="attached")
    expect(labels).to_have_text(["0.001", "0.01", "0.1", "1"])
    page.click('.pc-log[data-log="=lr"]')  # back to linear
    expect(labels.first).not_to_have_text("0.001")
    assert "log" not in urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)


def test_another_metric_chosen_and_the_legend(opened: Any) -> None:
    from playwright.sync_api import expect

    page = opened
    expect(page.locator("#pc-legend-none")).to_contain_text("(3 jobs)")  # NaN or none: dashed grey
    page.select_option("#pc-metric", "loss")
    page.select_option("#pc-stat", "min")
    expect(page.locator(".pc-axis.metric .pc-title")).to_have_text("min loss")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    assert (query["metric"], query["stat"]) == (["loss"], ["min"])
    page.select_option("#pc-x", "depth")
    expect(page.locator("#sc-axes .pc-title").first).to_have_text("depth")
    expect(page.locator("#sc-note")).to_have_text("3 jobs without a value not shown")


def test_a_job_that_reports_is_drawn_live(grid: Grid, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from tests.browser import LIVE_MS

    go = tmp_path / "go"
    waits = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
    jobs = [
        {
            "name": f"x-{x}",
            "params": {"x": x},
            "execution": {
                "command": f"{shlex.quote(sys.executable)} -c "
                + shlex.quote((waits if x == 3 else "") + f"import hyperctl\nhyperctl.report(acc={x / 10})")
            },
        }
        for x in (1, 2, 3)
    ]
    doc = {"name": "live", "jobs": jobs, "daemon": {"port": 0}, "backend": {"type": "local", "conf": {"cpu": 3}}}
    (tmp_path / "live.json").write_text(json.dumps(doc))
    started = hyperctl("run", "--config", str(tmp_path / "live.json"), "--detach", env=grid.env)
    assert started.returncode == 0, started.stderr
    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.goto(grid.url + "/b/live/params")
    expect(page.locator("#pc-legend-none")).to_contain_text("(1 job)", timeout=10_000)  # x-3 has reported nothing
    go.touch()
    expect(page.locator("#pc-legend-none")).to_contain_text("(0 jobs)", timeout=LIVE_MS + 1000 + 5000)
    expect(page.locator("#job-table tbody tr.succeeded")).to_have_count(3)


def test_jobs_picked_in_the_narrowed_table_open_their_curves(opened: Any) -> None:
    page = opened
    _drag(page, "=opt", _tick_y(page, "=opt", "adam") - 10, _tick_y(page, "=opt", "adam") + 10)
    first, second = _rows(page, 12)[:2]
    page.check(f'input.pick[value="{first}"]')
    page.check(f'input.pick[value="{second}"]')
    page.click("#compare-curves")
    page.wait_for_url("**/b/grid/curves?*")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["jobs"] == [f"{first},{second}"]


def test_a_category_with_regex_characters_is_kept_exactly(grid: Grid, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    tags = ["a.b|c", "x(y)*", "a-b", "a.b"]  # a.b|c as a pattern would keep all of a.b, c and a-b
    report = f"{shlex.quote(sys.executable)} -c " + shlex.quote("import hyperctl\nhyperctl.report(acc=0.5)")
    jobs = [{"name": f"t{i}", "params": {"tag": tag}, "execution": {"command": report}} for i, tag in enumerate(tags)]
    doc = {"name": "tags", "jobs": jobs, "daemon": {"port": 0}, "backend": {"type": "local", "conf": {"cpu": 2}}}
    (tmp_path / "tags.json").write_text(json.dumps(doc))
    done = hyperctl("run", "--config", str(tmp_path / "tags.json"), env=grid.env)
    assert done.returncode == 0, done.stderr
    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.goto(grid.url + "/b/tags/params")
    page.wait_for_selector("#pc[data-drawn='4']", state="attached")
    y = _tick_y(page, "=tag", "a.b|c")
    _drag(page, "=tag", y - 6, y + 6)
    assert _rows(page, 1) == ["t0"]
    where = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["where"]
    assert where == ["=tag~^(a\\.b\\|c)$"]
    page.goto(page.url)
    page.wait_for_selector("#pc[data-drawn='4']", state="attached")
    assert _rows(page, 1) == ["t0"]
    expect(page.locator(".pc-brush")).to_have_count(1)


def test_a_link_naming_a_metric_no_job_has_says_so_and_shows_the_default(
    grid: Grid, page: Any, page_problems: Any
) -> None:
    from playwright.sync_api import expect

    page_problems.expect(r"status of 400")  # the JSON's answer, as the browser logs it
    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.goto(grid.url + "/b/grid/params?metric=accc&stat=max")
    page.wait_for_selector("#pc[data-drawn='24']", state="attached")
    expect(page.locator("#pc-problem")).to_contain_text("metric: no job has a metric named 'accc' (did you mean 'acc'?")
    expect(page.locator("#pc-problem")).to_contain_text("the default metric is shown instead")
    expect(page.locator("#pc-metric")).to_have_value("acc")
    expect(page.locator(".pc-axis.metric .pc-title")).to_have_text("last acc")
    assert "metric" not in urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)


def test_the_batch_page_links_to_it(grid: Grid, page: Any) -> None:
    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.goto(grid.url + "/b/grid")
    page.click("#params-link")
    page.wait_for_selector("#pc[data-drawn='24']", state="attached")
    assert urllib.parse.urlsplit(page.url).path == "/b/grid/params"


@pytest.fixture(scope="module")
def big(grid: Grid) -> str:
    """A finished batch of 10,000 jobs (a 2-param grid, 3 metrics each), built in its store as
    bench/compare_scale.py builds it (no job runs), beside the grid: `hyperctl ui` serves it too."""
    from bench.compare_scale import build
    from hyperctl.spec import BatchSpec, Objective, SchedulerSpec

    batch_dir = build(grid.batches, "big", 10_000)
    spec = BatchSpec("big", [], scheduler=SchedulerSpec(objective=Objective("acc", "max", "last")))
    batch_dir.spec_file.write_text(json.dumps(spec.to_dict()))
    return batch_dir.name


def test_ten_thousand_jobs_draw_in_well_under_a_second(grid: Grid, big: str, page: Any) -> None:
    from playwright.sync_api import expect

    from tests.browser import screenshot

    page.context.add_cookies([{"name": "hyperctl_session", "value": grid.cookie, "url": grid.url}])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{grid.url}/b/{big}/params")
    chart = page.locator("#pc[data-drawn='10000']")
    chart.wait_for(state="attached")
    first = float(chart.get_attribute("data-draw-ms") or "nan")
    top = page.locator('.pc-axis[data-axis="=lr"] .pc-spine').bounding_box()
    _drag(page, "=lr", top["y"] - 4, top["y"] + top["height"] / 2)  # the greater half of lr
    expect(page.locator("#pc-count")).to_have_text(re.compile(r"^5\d\d\d of 10000 jobs in the brushes$"))
    brushed = float(chart.get_attribute("data-draw-ms") or "nan")
    print(f"10,000 jobs: drawn in {first:.0f} ms, again with a brush in {brushed:.0f} ms")
    screenshot(page, "params-10000")
    assert first < 1000 and brushed < 1000, (first, brushed)  # measured here: 120 ms, then 40 ms
