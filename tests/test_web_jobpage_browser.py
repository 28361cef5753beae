"""The job page and the curves in a real browser (tests/browser.py): the live log tail, the
attempts, curves drawn from reported points, log y, smoothing, several jobs picked in the batch's
table and overlaid. Screenshots of each page are saved in the test's tmp_path."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import LIVE_MS, screenshot
from tests.conftest import hyperctl, write_json
from tests.test_api import Runs, batch, job, wait_for_file
from tests.webclient import Ui, link_in, ui

PY = shlex.quote(sys.executable)
REPORTER = """
import sys, hyperctl
n, zero_from = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    hyperctl.report(loss=1.0 / (i + 1) if i < zero_from else 0.0, step=i)
"""


@pytest.fixture
def finished_ui(tmp_path: Path, batches: Path) -> Iterator[Ui]:
    """`hyperctl ui` over a finished batch of two jobs reporting 3,000 points each (one drops to 0),
    started before the page so that it outlives it."""
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    jobs = [job("slow", f"{PY} {script} 3000 3000", {"lr": 0.1}), job("zero", f"{PY} {script} 3000 2000", {"lr": 1})]
    done = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", batch("sweep", *jobs))))
    assert done.returncode == 0, done.stderr
    with ui(batches) as served:
        yield served


def test_the_job_page_tails_the_log_live(runs: Runs, tmp_path: Path, page: Page) -> None:
    go = tmp_path / "go"
    report = f"{PY} -c 'import hyperctl; [hyperctl.report(loss=1 / (i + 1), step=i) for i in range(5)]'"
    command = f"echo first; echo to-stderr >&2; {wait_for_file(go)}; echo 'second <b>bold</b>'; {report}; sleep 600"
    proc = runs.start(batch("live", job("talker", command, {"lr": 0.5})))
    assert proc.stderr is not None
    link = next(found for line in iter(proc.stderr.readline, "") if (found := link_in(line)))
    page.goto(link + "&next=/b/live/j/talker")
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#params")).to_contain_text("0.5")
    expect(page.locator("#log")).to_have_text("first\n")
    go.touch()
    expect(page.locator("#log")).to_have_text("first\nsecond <b>bold</b>\n", timeout=LIVE_MS)  # text, not HTML
    expect(page.locator("#log b")).to_have_count(0)
    # Its first points, reported now, are drawn as they come (the curves follow the batch's changes).
    expect(page.locator("svg.curve-svg path.curve.line")).to_have_attribute("data-points", "5", timeout=5_000)
    screenshot(page, "job-page")
    page.click("#tab-stderr")
    expect(page.locator("#log")).to_have_text("to-stderr\n")


def test_a_waiting_job_s_log_opens_as_it_starts(runs: Runs, tmp_path: Path, page: Page) -> None:
    """One cpu, two jobs: the second waits for the first; its page shows its log once it starts."""
    go = tmp_path / "go"
    jobs = [job("first", wait_for_file(go)), job("second", "echo hello from second; sleep 600")]
    proc = runs.start({**batch("queue", *jobs), "backend": {"type": "local", "conf": {"cpu": 1}}})
    assert proc.stderr is not None
    link = next(found for line in iter(proc.stderr.readline, "") if (found := link_in(line)))
    page.goto(link + "&next=/b/queue/j/second")
    expect(page.locator("#job-status")).to_have_text("pending")
    expect(page.locator("#log-state")).to_have_text("no attempt yet: its log shows once it starts")
    go.touch()
    expect(page.locator("#job-status")).to_have_text("running", timeout=5_000)
    expect(page.locator("#log")).to_have_text("hello from second\n", timeout=5_000)


def test_a_curve_is_drawn_from_the_reported_points(finished_ui: Ui, page: Page, tmp_path: Path) -> None:
    page.goto(finished_ui.link + "&next=/b/sweep/j/slow")
    curve = page.locator("svg.curve-svg path.curve.line")
    expect(curve).to_have_count(1)
    points = int(curve.get_attribute("data-points") or 0)
    assert 10 < points <= 1000  # 3,000 reported, cut down on the server
    assert len(re.findall(r"[ML]", curve.get_attribute("d") or "")) == points
    expect(page.locator("#curve-notes")).to_contain_text("3,000 points shown as")
    expect(page.locator("#curve-metric")).to_have_value("loss")
    # Log y: ticks are powers of ten written out.
    page.check("#curve-logy")
    expect(page.locator("svg.curve-svg")).to_have_attribute("data-logy", "1")
    expect(page.locator("svg.curve-svg text.tick.y", has_text=re.compile(r"^0\.01$"))).to_have_count(1)
    assert "logy=1" in page.url
    # Smoothing: the raw curve stays, faint, behind the smoothed one.
    page.fill("#curve-smooth", "0.9")
    page.dispatch_event("#curve-smooth", "input")
    expect(page.locator("svg.curve-svg path.curve.raw")).to_have_count(1)
    expect(page.locator("svg.curve-svg path.curve.smoothed")).to_have_count(1)
    box = page.locator("svg.curve-svg rect.hover-area").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("svg.curve-svg g.tip text")).to_have_count(2)  # the step, and the job's value
    screenshot(page, "job-curves")


def test_jobs_picked_in_the_table_are_overlaid(finished_ui: Ui, page: Page, tmp_path: Path) -> None:
    page.goto(finished_ui.link + "&next=/b/sweep")
    page.check('input.pick[value="slow"]')
    page.check('input.pick[value="zero"]')
    assert "pick=slow%2Czero" in page.url or "pick=slow,zero" in page.url
    expect(page.locator("#compare-curves")).to_have_text("compare curves (2)")
    screenshot(page, "batch-picks")
    page.click("#compare-curves")
    page.wait_for_url(re.compile(r"/b/sweep/curves\?jobs=slow(%2C|,)zero"))
    expect(page.locator("svg.curve-svg path.curve.line")).to_have_count(2)
    expect(page.locator("#curve-legend .item")).to_have_count(2)
    expect(page.locator("#compared tbody tr")).to_have_count(2)
    page.check("#curve-logy")
    expect(page.locator("#curve-notes")).to_contain_text("not positive (log y)")  # zero's zeros, said
    page.select_option("#curve-x", "relative")
    expect(page.locator("svg.curve-svg .axis-title")).to_have_text("time since the attempt started")
    screenshot(page, "curves")
    # The view is in the URL: a reload shows the same.
    page.reload()
    expect(page.locator("#curve-logy")).to_be_checked()
    expect(page.locator("#curve-x")).to_have_value("relative")
