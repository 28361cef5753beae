"""The dashboard's core (web/): logging in, what a page refuses, the batch list and page (the job
table: sort, filters, pages, export), live updates and `hyperctl ui`, over real HTTP from real
`hyperctl ui` and `hyperctl run` processes. tests/test_web_browser.py drives the same in Chromium."""

from __future__ import annotations

import csv
import io
import json
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hyperctl.daemon.auth import Tokens, read_token
from hyperctl.layout import BatchDir
from tests.conftest import hyperctl, start_hyperctl, wait_for, write_json
from tests.webclient import Session, link_in, stop, ui

PY = shlex.quote(sys.executable)


def reporting_job(name: str, params: dict[str, Any], acc: float, loss: float) -> dict[str, Any]:
    code = f"import hyperctl; hyperctl.report(acc={acc}, loss={loss})"
    return {"name": name, "params": params, "execution": {"command": f"{PY} -c {shlex.quote(code)}"}}


def run_batch(tmp_path: Path, name: str, jobs: list[dict[str, Any]], **top: Any) -> None:
    doc = {"name": name, "daemon": {"port": 0}, "jobs": jobs, **top}
    done = hyperctl("run", "--config", str(write_json(tmp_path / f"{name}.json", doc)))
    assert done.returncode in (0, 1), done.stderr


@pytest.fixture
def sweep(tmp_path: Path, batches: Path) -> Path:
    """A finished batch of 6 jobs that reported acc and loss, one of them failed."""
    jobs = [reporting_job(f"lr-{lr}", {"lr": lr, "depth": 3}, acc=lr * 2, loss=1 - lr) for lr in (0.1, 0.2, 0.3, 0.4)]
    jobs.append(reporting_job("lr-0.05", {"lr": 0.05, "depth": 5}, acc=0.9, loss=0.05))
    jobs.append({"name": "broken", "params": {"lr": 0.5, "depth": 5}, "execution": {"command": "exit 3"}})
    run_batch(tmp_path, "sweep", jobs, scheduler={"objective": {"metric": "acc", "mode": "max"}})
    return batches


# -- logging in ------------------------------------------------------------------------------------
def test_a_page_needs_the_login_link_which_works_once(sweep: Path) -> None:
    with ui(sweep) as server:
        stranger = server.session(logged_in=False)
        refused = stranger.get("/")
        assert refused.status == 401 and "login link" in refused.text and "hyperctl ui" in refused.text

        user = Session(server.base)
        first = user.get(server.link)
        assert first.status == 200 and "sweep" in first.text  # redirected to the batch list
        cookie = user.cookie("hyperctl_session")
        assert cookie is not None and cookie.has_nonstandard_attr("HttpOnly")
        assert (cookie.get_nonstandard_attr("SameSite") or "").lower() == "strict"
        assert user.get("/").status == 200

        again = Session(server.base).get(server.link)
        assert again.status == 401 and "used already or has expired" in again.text


def test_a_forged_cookie_a_bearer_token_or_another_host_opens_nothing(sweep: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        value = user.cookie("hyperctl_session").value  # type: ignore[union-attr]
        forged = value[:-4] + ("0000" if not value.endswith("0000") else "1111")
        assert Session(server.base).get("/", {"Cookie": f"hyperctl_session={forged}"}).status == 401
        batch_token = read_token(BatchDir(sweep, "sweep"))
        assert batch_token and Session(server.base).get("/", {"Authorization": f"Bearer {batch_token}"}).status == 401
        # DNS rebinding: a page of another site whose name points at loopback.
        port = server.base.rsplit(":", 1)[1]
        assert user.get("/", {"Host": f"evil.example:{port}"}).status == 403
        assert user.get("/", {"Host": f"localhost:{port}"}).status == 200


def test_every_answer_has_the_security_headers(sweep: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        for path in ("/", "/b/sweep", "/static/app.js", "/nope"):
            answer = user.get(path)
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'"), path
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        assert user.get("/favicon.ico").status == 200
        assert user.get("/nope").status == 404


# -- the batch list and page -------------------------------------------------------------------
def test_the_batch_list_shows_each_batch_with_its_counts(sweep: Path) -> None:
    with ui(sweep) as server:
        page = server.session().get("/").text
    assert '<a href="/b/sweep">sweep</a>' in page and "failed" in page
    assert "5 succeeded" in page and "1 failed" in page and 'aria-label="5 succeeded, 1 failed"' in page


def rows_of(html: str) -> list[str]:
    return [line.split('data-job="', 1)[1].split('"', 1)[0] for line in html.splitlines() if 'data-job="' in line]


def test_the_job_table_sorts_filters_and_names_the_best(sweep: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        page = user.get("/b/sweep?sort=-acc").text
        assert rows_of(page) == ["lr-0.05", "lr-0.4", "lr-0.3", "lr-0.2", "lr-0.1", "broken"]
        assert "best" in page and "lr-0.05 acc=0.9" in page
        assert rows_of(user.get("/b/sweep?sort=loss&status=succeeded").text)[0] == "lr-0.05"
        assert rows_of(user.get("/b/sweep?status=failed").text) == ["broken"]
        assert rows_of(user.get("/b/sweep?q=LR-0.3").text) == ["lr-0.3"]  # any case
        chosen = user.get("/b/sweep?columns=%3Dlr,max+acc&sort=-max+acc").text
        assert "<th" in chosen and ">max acc ▼<" in chosen and ">duration<" not in chosen
        bad = user.get("/b/sweep?columns=nosuch")
        assert bad.status == 200 and "no job has a param or metric named &#39;nosuch&#39;" in bad.text
        assert user.get("/b/sweep?status=nosuch").status == 400
        assert user.get("/b/nosuch").status == 404


def test_a_part_of_a_page_is_rendered_alone_for_live_updates(sweep: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        part = user.get("/b/sweep?part=table&sort=-acc")
        assert part.status == 200 and not part.text.lstrip().startswith("<!doctype")
        assert rows_of(part.text)[0] == "lr-0.05"
        assert user.get("/b/sweep?part=nosuch").status == 404
        summary = user.get("/b/sweep?part=summary")
        assert summary.status == 200 and 'aria-label="5 succeeded, 1 failed"' in summary.text
        assert "<table" not in summary.text
        listed = user.get("/?part=batches")
        assert listed.status == 200 and 'data-batch="sweep"' in listed.text and "<h1>" not in listed.text


def test_a_large_batch_is_shown_a_page_at_a_time(tmp_path: Path, batches: Path) -> None:
    jobs = [{"name": f"j{i:03}", "params": {"i": i}, "execution": {"command": "true"}} for i in range(250)]
    run_batch(tmp_path, "big", jobs, backend={"type": "local", "conf": {"cpu": 2}})
    with ui(batches) as server:
        user = server.session()
        first = user.get("/b/big").text
        assert len(rows_of(first)) == 100 and "page 1 of 3" in first and 'rel="next" href="?page=2"' in first
        last = user.get("/b/big?page=3").text
        assert rows_of(last) == [f"j{i:03}" for i in range(200, 250)]
        assert len(rows_of(user.get("/b/big?page=99").text)) == 50  # past the end: the last page


def test_export_is_every_row_the_table_shows(sweep: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        exported = user.get("/b/sweep/export.csv?sort=-acc&status=succeeded&columns=%3Dlr,acc")
        assert exported.headers["Content-Disposition"] == 'attachment; filename="sweep.csv"'
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0] == ["name", "lr", "acc"] and [r[0] for r in rows[1:]] == [
            "lr-0.05",
            "lr-0.4",
            "lr-0.3",
            "lr-0.2",
            "lr-0.1",
        ]
        doc = json.loads(user.get("/b/sweep/export.json?status=failed").text)
        assert [row["name"] for row in doc["rows"]] == ["broken"]
        cli = hyperctl("compare", "sweep", "-c", "=lr,acc", "--where", "status=succeeded", "--sort", "-acc", "--csv")
        assert cli.stdout.replace("\r\n", "\n") == exported.text.replace("\r\n", "\n")


# -- live --------------------------------------------------------------------------------------------
def test_an_open_stream_is_told_when_a_batch_changes(sweep: Path, tmp_path: Path) -> None:
    with ui(sweep) as server:
        user = server.session()
        assert Session(server.base).get("/ui/events").status == 401
        got: list[str] = []
        listening = threading.Thread(target=lambda: got.extend(user.events(count=1, within=20)))
        listening.start()
        time.sleep(0.5)  # the stream is open
        run_batch(tmp_path, "later", [{"name": "a", "params": {}, "execution": {"command": "true"}}])
        listening.join(timeout=25)
        assert got == ["change"]
        assert "later" in user.get("/").text


def test_the_daemon_serves_its_pages_and_prints_the_link(tmp_path: Path, batches: Path) -> None:
    job = {"name": "s", "params": {}, "execution": {"command": "sleep 30"}}
    doc = {"name": "live", "daemon": {"port": 0}, "jobs": [job]}
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "live.json", doc)))
    try:
        assert proc.stderr is not None
        link = None
        for line in proc.stderr:
            link = link_in(line)
            if link:
                break
        assert link is not None and "dashboard at" in line
        user = Session(link.split("/login", 1)[0])
        page = user.get(link).text
        assert "this daemon&#39;s" in page or "this daemon's" in page
        wait_for(lambda: "running" in user.get("/b/live?part=table").text, "the job to show as running")
        job_token = wait_for(lambda: _job_token(batches), "the job's token")
        assert Session(user.base).get("/", {"Authorization": f"Bearer {job_token}"}).status == 401
    finally:
        proc.kill()
        proc.communicate()


def _job_token(batches: Path) -> str | None:
    token = read_token(BatchDir(batches, "live"))
    return Tokens(token).for_job("s") if token else None


# -- hyperctl ui -------------------------------------------------------------------------------------
def test_ui_stops_at_once_with_a_page_open_exit_130_on_ctrl_c_0_on_sigterm(sweep: Path) -> None:
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 0)):
        with ui(sweep) as server:
            user = server.session()
            stream = threading.Thread(target=user.events, kwargs={"count": 1, "within": 20}, daemon=True)
            stream.start()
            time.sleep(0.3)
            assert stop(server.process, signum)[0] == code
            stream.join(timeout=5)
            assert not stream.is_alive()


def test_ui_help_and_a_port_in_use(batches: Path) -> None:
    shown = hyperctl("ui", "--help")
    assert shown.returncode == 0 and "login link" in shown.stdout and "--port" in shown.stdout
    assert hyperctl("ui", "--port", "-1").returncode == 2
    with ui(batches) as first:
        port = first.base.rsplit(":", 1)[1]
        second = subprocess.Popen(
            [sys.executable, "-m", "hyperctl", "ui", "--port", port, "--batches-data-dir", str(batches)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert second.stdout is not None and second.stderr is not None
            link = link_in(second.stdout.readline())
            assert link is not None and f":{port}/" not in link
            assert f"port {port} is in use" in second.stderr.readline()
        finally:
            second.terminate()
            second.wait(timeout=10)


def test_the_table_kept_between_sorts_is_read_again_once_the_batch_changes(sweep: Path, tmp_path: Path) -> None:
    """The pages keep what they read of a batch while its store does not change (another sort of a
    10,000-job table reads nothing): a change, however small, is read."""
    with ui(sweep) as server:
        user = server.session()
        assert rows_of(user.get("/b/sweep?sort=-acc").text)[0] == "lr-0.05"
        assert rows_of(user.get("/b/sweep?sort=acc&status=succeeded").text)[0] == "lr-0.1"  # from what was kept
        jobs = [reporting_job("lr-0.1", {"lr": 0.1, "depth": 3}, acc=0.99, loss=0.5)]  # changed: it runs again
        jobs += [reporting_job(f"lr-{lr}", {"lr": lr, "depth": 3}, acc=lr * 2, loss=1 - lr) for lr in (0.2, 0.3, 0.4)]
        jobs.append(reporting_job("lr-0.05", {"lr": 0.05, "depth": 5}, acc=0.9, loss=0.05))
        jobs.append({"name": "broken", "params": {"lr": 0.5, "depth": 5}, "execution": {"command": "exit 3"}})
        run_batch(tmp_path, "sweep", jobs, scheduler={"objective": {"metric": "acc", "mode": "max"}})
        assert rows_of(user.get("/b/sweep?sort=-acc").text)[0] == "lr-0.1"


@pytest.mark.parametrize("where", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "b/sweep"])
def test_a_login_link_never_sends_its_user_to_another_site(sweep: Path, where: str) -> None:
    from urllib.parse import quote

    with ui(sweep) as server:
        answer = Session(server.base).get(f"{server.link}&next={quote(where)}")
        assert answer.status == 200 and "<h1>Batches</h1>" in answer.text  # sent to / instead


def test_a_login_link_takes_its_user_to_the_page_it_names(sweep: Path) -> None:
    with ui(sweep) as server:
        answer = Session(server.base).get(f"{server.link}&next=/b/sweep%3Fstatus%3Dfailed")
        assert answer.status == 200 and rows_of(answer.text) == ["broken"]
