"""Actions from the dashboard (web/actions.py): kill a job, kill the batch, in a daemon's own pages
only, each a POST with the session cookie and the CSRF header; `hyperctl batch dashboard` and the
link `run --detach` prints. Real daemons (`hyperctl run --detach`), real HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperctl.daemon.auth import Tokens
from tests.conftest import batch_token, hyperctl, process_alive, wait_for, write_json

CSRF = re.compile(r'<meta name="csrf" content="([^"]*)">')


@dataclass
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Browser:
    """What a browser keeps of one server: its cookie, and the CSRF token of the last page seen."""

    def __init__(self, link: str) -> None:
        self.base = link.split("/login", 1)[0]
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), urllib.request.ProxyHandler({})
        )
        self.csrf = ""
        assert self.get(link).status == 200  # the link, swapped for the cookie, redirects to a page

    def get(self, path: str) -> Answer:
        answer = self.open(path)
        found = CSRF.search(answer.text)
        self.csrf = found.group(1) if found else self.csrf
        return answer

    def post(self, path: str, headers: dict[str, str] | None = None, cookie: bool = True) -> Answer:
        return self.open(path, "POST", {"X-Hyperctl-CSRF": self.csrf} if headers is None else headers, cookie)

    def open(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None, cookie: bool = True
    ) -> Answer:
        url = path if path.startswith("http") else self.base + path
        request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        opener = self.opener if cookie else urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as response:
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.read().decode())


def detached(tmp_path: Path, doc: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """Start a batch with `run --detach`: the dashboard link it prints."""
    done = hyperctl("run", "--config", str(write_json(tmp_path / f"{doc['name']}.json", doc)), "--detach", env=env)
    assert done.returncode == 0, done.stderr
    [link] = [line.split("dashboard: ", 1)[1] for line in done.stderr.splitlines() if "dashboard: " in line]
    return link


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
    page = Browser(link)
    assert page.get("/b/dash").status == 200
    assert page.open(link, cookie=False).status == 401  # a link works once

    done = hyperctl("batch", "dashboard", "dash")
    assert done.returncode == 0, done.stderr
    fresh = done.stdout.strip()
    assert fresh.startswith(page.base + "/login?token=") and fresh != link
    assert Browser(fresh).get("/b/dash").status == 200
    as_json = hyperctl("batch", "dashboard", "dash", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["url"].startswith(page.base + "/login?token=")

    assert hyperctl("batch", "kill", "dash").returncode == 0
    gone = hyperctl("batch", "dashboard", "dash")
    assert gone.returncode == 2
    assert gone.stderr == "hyperctl: error: no daemon runs batch 'dash': `hyperctl ui` serves its pages (read-only)\n"


def test_a_job_killed_from_its_page_is_killed_and_the_others_go_on(tmp_path: Path, batches: Path) -> None:
    page = Browser(detached(tmp_path, sleepers("k", "a", "b")))
    running("k", "a", "b")
    table = page.get("/b/k").text
    assert 'data-action="/ui/api/b/k/j/a/kill"' in table and 'id="kill-batch"' in table

    answer = page.post("/ui/api/b/k/j/a/kill")
    assert (answer.status, answer.json()["status"]) == (200, "killed"), answer.text
    assert statuses("k") == {"a": "killed", "b": "running"}
    shown = page.get("/b/k?part=table").text
    assert re.search(r'<tr data-job="a" class="killed">', shown)
    assert 'data-action="/ui/api/b/k/j/a/kill"' not in shown  # no kill button for an ended job
    again = page.post("/ui/api/b/k/j/a/kill")
    assert (again.status, again.json()["error"]) == (409, "job 'a' already ended: killed")
    assert page.post("/ui/api/b/k/j/nope/kill").status == 404


def test_an_action_needs_the_session_cookie_and_the_csrf_token_and_no_token_of_the_api_opens_it(
    tmp_path: Path, batches: Path
) -> None:
    page = Browser(detached(tmp_path, sleepers("c", "a")))
    running("c", "a")
    page.get("/b/c")
    kill = "/ui/api/b/c/j/a/kill"
    no_cookie = page.post(kill, cookie=False)
    assert no_cookie.status == 401, no_cookie.text
    assert page.post(kill, headers={}).status == 403  # the cookie, no CSRF header
    bad = page.post(kill, headers={"X-Hyperctl-CSRF": "0" * 64})
    assert (bad.status, bad.json()["error"]) == (403, "missing or bad CSRF token: reload the page")
    batch = batch_token(batches, "c")
    job_token = Tokens(batch).for_job("a")  # what job a sees in HYPERCTL_JOB_TOKEN
    for token in (job_token, batch):  # the API's bearer tokens open no page and take no action
        bearer = {"Authorization": f"Bearer {token}", "X-Hyperctl-CSRF": page.csrf}
        answer = page.post(kill, headers=bearer, cookie=False)
        assert answer.status == 401, answer.text
    assert statuses("c") == {"a": "running"}  # nothing was killed
    assert page.post("/ui/api/b/other/kill").status == 403  # not this daemon's batch


def test_the_batch_killed_from_its_page_stops_its_jobs_and_its_daemon(tmp_path: Path, batches: Path) -> None:
    page = Browser(detached(tmp_path, sleepers("kb", "a", "b")))
    running("kb", "a", "b")
    pid = json.loads(hyperctl("batch", "list", "--json").stdout)[0]["daemon_pid"]
    answer = page.post("/ui/api/b/kb/kill")
    assert answer.status == 202 and answer.json()["message"].startswith("killing batch kb"), answer.text
    wait_for(lambda: not process_alive(pid), "the daemon to stop")
    assert statuses("kb") == {"a": "killed", "b": "killed"}
    listed = json.loads(hyperctl("batch", "list", "--json").stdout)
    assert listed[0]["status"] == "killed"


def test_hyperctl_ui_shows_no_action_and_refuses_one(tmp_path: Path, batches: Path) -> None:
    doc = {**sleepers("u", "a"), "jobs": [{"name": "a", "execution": {"command": "true"}}]}
    assert hyperctl("run", "--config", str(write_json(tmp_path / "u.json", doc))).returncode == 0
    argv = [sys.executable, "-m", "hyperctl", "ui", "--port", "0"]
    ui = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        page = Browser(re.search(r"(http://\S+/login\?token=\S+)", line).group(1))  # type: ignore[union-attr]
        shown = page.get("/b/u").text
        assert "data-action" not in shown and 'id="read-only-note"' in shown
        answer = page.post("/ui/api/b/u/kill")
        assert answer.status == 405
        assert answer.json()["error"].startswith("these pages are read-only (hyperctl ui)")
        assert page.post("/ui/api/b/u/j/a/kill").status == 405
        assert page.post("/ui/api/b/u/kill", headers={}).status == 403  # no CSRF: refused before anything
    finally:
        ui.terminate()
        ui.communicate(timeout=10)
