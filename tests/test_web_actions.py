"""Actions from the dashboard (web/actions.py): kill a job, kill the batch, in a daemon's own pages
only, each a POST with the session cookie and the CSRF header; `hyperctl batch dashboard` and the
link `run --detach` prints. Real daemons (`hyperctl run --detach`), real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hyperctl.daemon.auth import Tokens
from tests.conftest import batch_token, hyperctl, process_alive, wait_for, write_json
from tests.webclient import Answer, Session, link_in, ui

CSRF = re.compile(r'<meta name="csrf" content="([^"]*)">')


def detached(tmp_path: Path, doc: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """Start a batch with `run --detach`: the dashboard link it prints."""
    done = hyperctl("run", "--config", str(write_json(tmp_path / f"{doc['name']}.json", doc)), "--detach", env=env)
    assert done.returncode == 0, done.stderr
    link = link_in(done.stderr)
    assert link is not None and f"hyperctl: dashboard at {link}\n" in done.stderr, done.stderr
    return link


def logged_in(link: str) -> Session:
    session = Session(link.split("/login", 1)[0])
    session.login(link)
    return session


def csrf_of(session: Session, batch: str) -> str:
    """The CSRF token the batch's page carries for this session."""
    found = CSRF.search(session.get(f"/b/{batch}").text)
    assert found is not None and found.group(1)
    return found.group(1)


def post(session: Session, path: str, headers: dict[str, str]) -> Answer:
    return session.get(path, headers, method="POST")


def sleepers(name: str, *jobs: str, **top: Any) -> dict[str, Any]:
    return {
        "name": name,
        "daemon": {"port": 0},
        "backend": {"type": "local", "conf": {"cpu": 4}},
        "jobs": [{"name": j, "execution": {"command": "sleep 300"}} for j in jobs],
        **top,
    }


def statuses(name: str) -> dict[str, str]:
    done = hyperctl("job", "list", name, "--json")
    assert done.returncode == 0, done.stderr
    return {j["name"]: j["status"] for j in json.loads(done.stdout)}


def running(name: str, *jobs: str) -> None:
    wait_for(lambda: all(statuses(name).get(j) == "running" for j in jobs), f"{jobs} running")


def test_run_detach_prints_a_login_link_and_batch_dashboard_asks_for_another(tmp_path: Path, batches: Path) -> None:
    link = detached(tmp_path, sleepers("dash", "a"))
    page = logged_in(link)
    assert page.get("/b/dash").status == 200
    assert Session(page.base).get(link).status == 401  # a link works once

    done = hyperctl("batch", "dashboard", "dash")
    assert done.returncode == 0, done.stderr
    fresh = done.stdout.strip()
    assert fresh.startswith(page.base + "/login?token=") and fresh != link
    assert logged_in(fresh).get("/b/dash").status == 200
    as_json = hyperctl("batch", "dashboard", "dash", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["url"].startswith(page.base + "/login?token=")

    config = write_json(tmp_path / "dash2.json", sleepers("dash2", "a"))
    for_scripts = hyperctl("run", "--config", str(config), "--detach", "--json")
    assert for_scripts.returncode == 0, for_scripts.stderr
    shown = json.loads(for_scripts.stdout)
    assert shown["name"] == "dash2" and link_in(shown["dashboard"]) == shown["dashboard"]
    assert logged_in(shown["dashboard"]).get("/b/dash2").status == 200

    assert hyperctl("batch", "kill", "dash").returncode == 0
    gone = hyperctl("batch", "dashboard", "dash")
    assert gone.returncode == 2
    assert gone.stderr == "hyperctl: error: no daemon runs batch 'dash': `hyperctl ui` serves its pages (read-only)\n"


def test_a_job_killed_from_its_page_is_killed_and_the_others_go_on(tmp_path: Path, batches: Path) -> None:
    page = logged_in(detached(tmp_path, sleepers("k", "a", "b")))
    running("k", "a", "b")
    table = page.get("/b/k").text
    assert 'data-action="/ui/api/b/k/j/a/kill"' in table and 'id="kill-batch"' in table
    csrf = {"X-Hyperctl-CSRF": csrf_of(page, "k")}

    answer = post(page, "/ui/api/b/k/j/a/kill", csrf)
    assert (answer.status, json.loads(answer.text)["status"]) == (200, "killed"), answer.text
    assert statuses("k") == {"a": "killed", "b": "running"}
    summary = page.get("/b/k?part=summary")  # the parts the page fetches again after an action
    assert summary.status == 200 and '<span class="count killed" data-status="killed">1 killed</span>' in summary.text
    shown = page.get("/b/k?part=table").text
    assert '<tr data-job="a" class="killed">' in shown
    assert 'data-action="/ui/api/b/k/j/a/kill"' not in shown  # no kill button for an ended job
    again = post(page, "/ui/api/b/k/j/a/kill", csrf)
    assert (again.status, json.loads(again.text)["error"]) == (409, "job 'a' already ended: killed")
    assert post(page, "/ui/api/b/k/j/nope/kill", csrf).status == 404


def test_an_action_needs_the_session_cookie_and_the_csrf_token_and_no_token_of_the_api_opens_it(
    tmp_path: Path, batches: Path
) -> None:
    page = logged_in(detached(tmp_path, sleepers("c", "a")))
    running("c", "a")
    csrf = csrf_of(page, "c")
    kill = "/ui/api/b/c/j/a/kill"
    stranger = Session(page.base)
    no_cookie = post(stranger, kill, {"X-Hyperctl-CSRF": csrf})
    assert no_cookie.status == 401, no_cookie.text
    assert post(page, kill, {}).status == 403  # the cookie, no CSRF header
    bad = post(page, kill, {"X-Hyperctl-CSRF": "0" * 64})
    assert (bad.status, json.loads(bad.text)["error"]) == (403, "missing or bad CSRF token: reload the page")
    batch = batch_token(batches, "c")
    job_token = Tokens(batch).for_job("a")  # what job a sees in HYPERCTL_JOB_TOKEN
    for token in (job_token, batch):  # the API's bearer tokens open no page and take no action
        answer = post(stranger, kill, {"Authorization": f"Bearer {token}", "X-Hyperctl-CSRF": csrf})
        assert answer.status == 401, answer.text
    assert statuses("c") == {"a": "running"}  # nothing was killed
    assert post(page, "/ui/api/b/other/kill", {"X-Hyperctl-CSRF": csrf}).status == 403  # not this daemon's batch


def test_the_batch_killed_from_its_page_stops_its_jobs_and_its_daemon(tmp_path: Path, batches: Path) -> None:
    page = logged_in(detached(tmp_path, sleepers("kb", "a", "b")))
    running("kb", "a", "b")
    pid = json.loads(hyperctl("batch", "list", "--json").stdout)[0]["daemon_pid"]
    answer = post(page, "/ui/api/b/kb/kill", {"X-Hyperctl-CSRF": csrf_of(page, "kb")})
    assert answer.status == 202 and json.loads(answer.text)["message"].startswith("killing batch kb"), answer.text
    wait_for(lambda: not process_alive(pid), "the daemon to stop")
    assert statuses("kb") == {"a": "killed", "b": "killed"}
    listed = json.loads(hyperctl("batch", "list", "--json").stdout)
    assert listed[0]["status"] == "killed"


def test_hyperctl_ui_shows_no_action_and_refuses_one(tmp_path: Path, batches: Path) -> None:
    doc = {**sleepers("u", "a"), "jobs": [{"name": "a", "execution": {"command": "true"}}]}
    assert hyperctl("run", "--config", str(write_json(tmp_path / "u.json", doc))).returncode == 0
    with ui(batches) as server:
        page = server.session()
        shown = page.get("/b/u").text
        assert "data-action" not in shown and 'id="read-only-note"' in shown
        csrf = {"X-Hyperctl-CSRF": csrf_of(page, "u")}
        answer = post(page, "/ui/api/b/u/kill", csrf)
        assert answer.status == 405
        assert json.loads(answer.text)["error"].startswith("these pages are read-only (hyperctl ui)")
        assert post(page, "/ui/api/b/u/j/a/kill", csrf).status == 405
        assert post(page, "/ui/api/b/u/kill", {}).status == 403  # no CSRF: refused before anything


# -- in a real browser (tests/browser.py) -------------------------------------------------------------
def test_a_job_killed_from_the_page_after_confirming_turns_killed_in_the_table(
    tmp_path: Path, batches: Path, page: Any
) -> None:
    from playwright.sync_api import expect

    from tests.browser import LIVE_MS, screenshot

    link = detached(tmp_path, sleepers("kp", "a", "b"))
    running("kp", "a", "b")
    page.goto(link)
    page.goto(link.split("/login", 1)[0] + "/b/kp")
    row = page.locator('tr[data-job="a"]')
    expect(row.locator(".status")).to_have_text("running")

    row.locator("button.kill-job").click()
    dialog = page.locator("dialog#confirm-action")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-text")).to_contain_text("Kill job a?")
    screenshot(page, "confirm-kill")
    page.locator("#confirm-cancel").click()  # thought better of it: nothing happens
    expect(dialog).to_be_hidden()
    assert statuses("kp") == {"a": "running", "b": "running"}

    row.locator("button.kill-job").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#action-result")).to_have_text("job a: killed")
    expect(row.locator(".status")).to_have_text("killed", timeout=LIVE_MS)
    expect(row.locator("button.kill-job")).to_have_count(0)
    expect(page.locator('tr[data-job="b"] .status')).to_have_text("running")
    assert statuses("kp") == {"a": "killed", "b": "running"}
    screenshot(page, "killed")


def test_the_batch_killed_from_the_page_stops_and_the_page_says_it_is_no_longer_live(
    tmp_path: Path, batches: Path, page: Any, page_problems: Any
) -> None:
    from playwright.sync_api import expect

    link = detached(tmp_path, sleepers("kbp", "a"))
    running("kbp", "a")
    page_problems.allow(r"net::ERR_")  # the daemon is gone: the page's next requests find no server
    page.goto(link)
    page.goto(link.split("/login", 1)[0] + "/b/kbp")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
    page.locator("#kill-batch").click()
    expect(page.locator("#confirm-text")).to_contain_text("Kill batch kbp?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#action-result")).to_contain_text("killing batch kbp")
    wait_for(lambda: json.loads(hyperctl("batch", "list", "--json").stdout)[0]["status"] == "killed", "killed")
    expect(page.locator("#live")).to_have_class(re.compile(r"\boff\b"))
    assert statuses("kbp") == {"a": "killed"}


def test_a_job_killed_from_its_own_page_after_confirming(tmp_path: Path, batches: Path, page: Any) -> None:
    from playwright.sync_api import expect

    from tests.browser import LIVE_MS, screenshot

    link = detached(tmp_path, sleepers("kj", "a", "b"))  # b keeps the batch, and its daemon, up
    running("kj", "a", "b")
    page.goto(link)
    page.goto(link.split("/login", 1)[0] + "/b/kj/j/a")
    expect(page.locator("#job-status")).to_have_text("running")
    page.locator("button.kill-job").click()
    expect(page.locator("#confirm-text")).to_contain_text("Kill job a?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#action-result")).to_have_text("job a: killed")
    expect(page.locator("#job-status")).to_have_text("killed", timeout=LIVE_MS)
    expect(page.locator("button.kill-job")).to_have_count(0)
    assert statuses("kj") == {"a": "killed", "b": "running"}
    screenshot(page, "job-killed")
