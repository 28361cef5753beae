"""The dashboard's core pages in a real browser (tests/browser.py: headless Chromium): logging in
with the link, the batch list, the batch page's live counts while jobs end, sorting and filtering
the job table in place, the URL keeping it; every page free of console errors (the fixture fails
a test on any). Screenshots of each page land in the test's tmp_path (and docs/ has current ones)."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import LIVE_MS, PageProblems, screenshot
from tests.conftest import hyperctl, write_json
from tests.webclient import Ui, ui

PY = shlex.quote(sys.executable)


def reporting_job(name: str, params: dict[str, Any], acc: float) -> dict[str, Any]:
    code = f"import hyperctl; hyperctl.report(acc={acc}, loss={1 - acc})"
    return {"name": name, "params": params, "execution": {"command": f"{PY} -c {shlex.quote(code)}"}}


def run(tmp_path: Path, name: str, jobs: list[dict[str, Any]], *args: str, **top: Any) -> None:
    doc = {"name": name, "daemon": {"port": 0}, "jobs": jobs, **top}
    done = hyperctl("run", "--config", str(write_json(tmp_path / f"{name}.json", doc)), *args)
    assert done.returncode in (0, 1), done.stderr


def sweep(tmp_path: Path) -> None:
    grid = [(lr, 3 if lr < 0.3 else 5) for lr in (0.1, 0.2, 0.3, 0.4)]
    jobs = [reporting_job(f"lr-{lr}", {"lr": lr, "depth": depth}, acc=lr * 2) for lr, depth in grid]
    jobs.append({"name": "broken", "params": {"lr": 0.5, "depth": 5}, "execution": {"command": "exit 3"}})
    run(tmp_path, "sweep", jobs, scheduler={"objective": {"metric": "acc", "mode": "max"}})


@pytest.fixture
def server(batches: Path) -> Iterator[Ui]:
    """`hyperctl ui` over the test's data dir; asked for before `page`, it outlives the page (a
    server stopped under an open page's event stream is a failed request, which fails the test)."""
    with ui(batches) as running:
        yield running


def names(page: Page) -> list[str]:
    return page.locator("#job-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)")


def test_the_login_link_opens_the_pages_with_a_strict_http_only_cookie(server: Ui, page: Page, tmp_path: Path) -> None:
    sweep(tmp_path)
    page.goto(server.link)
    expect(page.locator("h1")).to_have_text("Batches")
    assert page.url == server.base + "/"  # the token is gone from the address bar
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "hyperctl_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    row = page.locator('tr[data-batch="sweep"]')
    expect(row).to_contain_text("4 succeeded")
    expect(row).to_contain_text("1 failed")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=LIVE_MS)
    screenshot(page, "batches")
    row.get_by_role("link", name="sweep").click()
    expect(page.locator("h1")).to_contain_text("sweep")
    expect(page.locator("#best")).to_contain_text("lr-0.4 acc=0.8")
    screenshot(page, "batch")


def test_without_the_cookie_a_page_says_how_to_get_in(server: Ui, page: Page, page_problems: PageProblems) -> None:
    page_problems.expect(r"status of 401")
    page.goto(server.base + "/")
    expect(page.locator("h1")).to_have_text("401")
    expect(page.locator("section.error")).to_contain_text("hyperctl ui")
    page.goto(server.link)
    page.goto(server.link)  # used already
    expect(page.locator("#reason")).to_have_text("this login link was used already or has expired")


def test_sorting_and_filtering_happen_in_place_and_the_url_keeps_them(server: Ui, page: Page, tmp_path: Path) -> None:
    sweep(tmp_path)
    page.goto(server.link)
    page.goto(server.base + "/b/sweep")
    page.evaluate("window.marker = 1")  # gone if the page were loaded again
    page.locator("#job-table th a.sort", has_text="acc").click()
    expect(page.locator("#job-table tbody tr").first).to_have_attribute("data-job", "lr-0.1")  # ascending
    page.locator("#job-table th a.sort", has_text="acc").click()
    expect(page.locator("#job-table tbody tr").first).to_have_attribute("data-job", "lr-0.4")
    assert names(page) == ["lr-0.4", "lr-0.3", "lr-0.2", "lr-0.1", "broken"]
    assert "sort=-acc" in page.url and page.evaluate("window.marker") == 1
    page.select_option("#status-filter", "failed")
    expect(page.locator("#job-table tbody tr")).to_have_count(1)
    assert names(page) == ["broken"] and "status=failed" in page.url
    page.select_option("#status-filter", "")
    page.fill("#text-filter", "LR-0.2")
    expect(page.locator("#job-table tbody tr")).to_have_count(1)
    assert names(page) == ["lr-0.2"]
    assert page.get_attribute("#export-csv", "href") == "/b/sweep/export.csv?q=LR-0.2&sort=-acc"
    page.go_back()
    page.go_back()
    # The row that only this entry's table shows, first: the last table shown has one row too.
    expect(page.locator('#job-table tbody tr[data-job="broken"]')).to_have_count(1)
    expect(page.locator("#job-table tbody tr")).to_have_count(1)
    assert names(page) == ["broken"]
    page.reload()  # the URL alone shows the same
    assert names(page) == ["broken"] and page.input_value("#status-filter") == "failed"


def test_an_open_batch_page_counts_jobs_as_they_end(server: Ui, page: Page, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    wait = "i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
    jobs = [
        {"name": f"j{i}", "params": {"i": i}, "execution": {"command": wait.format(gate=gates / str(i))}}
        for i in range(3)
    ]
    run(tmp_path, "live", jobs, "--detach", backend={"type": "local", "conf": {"cpu": 3}})
    page.goto(server.link)
    page.goto(server.base + "/b/live")
    counts = page.locator("#summary .counts")
    expect(counts).to_contain_text("3 running", timeout=10_000)
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=LIVE_MS)
    for i in range(3):
        (gates / str(i)).touch()
        expect(counts).to_contain_text(f"{i + 1} succeeded", timeout=LIVE_MS + 3000)  # the job's own 50 ms poll
    expect(page.locator("#batch-status")).to_have_text("finished", timeout=LIVE_MS + 3000)
    expect(page.locator('#job-table tr[data-job="j2"]')).to_contain_text("succeeded", timeout=LIVE_MS + 3000)
    screenshot(page, "live")
