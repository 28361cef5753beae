"""The job page: params, command, every attempt, and its live log tail (Server-Sent Events read
from the attempt's file as it grows), from `hyperctl ui` and from a running batch's daemon."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path

from tests.conftest import hyperctl, wait_for, write_json
from tests.dashsession import Session, Ui, daemon_link
from tests.test_api import Runs, batch, job, wait_for_file

PY = shlex.quote(sys.executable)


def run_to_end(tmp_path: Path, doc: dict[str, object]) -> None:
    done = hyperctl("run", "--config", str(write_json(tmp_path / "batch.json", doc)))
    assert "hyperctl: batch " in done.stderr and " in 0:" in done.stderr, done.stderr


def test_job_page_shows_params_command_and_every_attempt(tmp_path: Path, batches: Path) -> None:
    """A job that failed once (exit 3) and then succeeded, and one killed by a signal: each
    attempt's row says how it ended."""
    marker = tmp_path / "tried"
    flaky = job(
        "flaky",
        f"if [ -e {marker} ]; then echo second; else touch {marker}; echo first; exit 3; fi",
        {"lr": 0.5, "layers": [2, 3], "opt": "<b>adam</b>"},
    )
    killed = job("killed", "kill -9 $$")
    run_to_end(tmp_path, batch("pages", flaky, killed, scheduler={"max_retries": 1, "retry_on": [3]}))
    ui = Ui()
    try:
        session = Session(ui.link)
        status, html = session.get("/b/pages/j/flaky")
        assert status == 200
        rows = html.split('<tr data-attempt="')[1:]
        assert [r.split('"')[0] for r in rows] == ["1", "2"]
        assert 'data-status="failed"' in rows[0] and "exit 3" in rows[0]
        assert 'data-status="succeeded"' in rows[1] and "exit 0" in rows[1]
        assert "<th>lr</th><td>0.5</td>" in html and "<th>layers</th><td>[2, 3]</td>" in html
        assert "&lt;b&gt;adam&lt;/b&gt;" in html and "<b>adam</b>" not in html  # user data is text
        assert "touch" in html and 'id="command"' in html
        status, html = session.get("/b/pages/j/killed")
        assert status == 200 and "signal 9 (SIGKILL)" in html
        status, html = session.get("/b/pages/j/nope")
        assert status == 404 and "has no job named" in html
        # Each attempt's log, whole (the page's default tail is more than it wrote).
        first = session.events("/ui/log?batch=pages&job=flaky&attempt=1")
        first.until(lambda e: e.kind == "end")
        assert first.text() == "first\n"
        last = session.events("/ui/log?batch=pages&job=flaky")
        last.until(lambda e: e.kind == "end")
        assert last.text() == "second\n"
    finally:
        assert ui.stop() == 0


def test_a_line_the_job_prints_reaches_the_open_log_while_it_runs(runs: Runs, tmp_path: Path) -> None:
    """From the batch's own daemon: the log tail is pushed as the job writes, not when it ends."""
    go, done = tmp_path / "go", tmp_path / "done"
    command = f"echo first; {wait_for_file(go)}; echo second >&1; {wait_for_file(done)}; echo bye"
    proc = runs.start(batch("live", job("talker", command)))
    session = Session(daemon_link(proc))
    wait_for(lambda: 'data-status="running"' in session.get("/b/live/j/talker")[1], "the job to run")
    log = session.events("/ui/log?batch=live&job=talker")
    log.until(lambda e: e.kind == "text" and "first" in log.text())
    go.touch()
    log.until(lambda e: e.kind == "text" and "second" in log.text())
    assert 'data-status="running"' in session.get("/b/live/j/talker")[1]  # it still runs
    assert log.text() == "first\nsecond\n"
    done.touch()
    log.until(lambda e: e.kind == "text" and "bye" in log.text())
    log.close()


def test_the_log_tail_is_the_last_kb_from_a_whole_line(tmp_path: Path, batches: Path) -> None:
    lines = 20_000  # about 250 KB
    printer = f'{PY} -c \'for i in range({lines}): print(f"line {{i:06d}}", "x" * 3)\''
    run_to_end(tmp_path, batch("tail", job("long", printer)))
    ui = Ui()
    try:
        session = Session(ui.link)
        log = session.events("/ui/log?batch=tail&job=long")
        head = log.until(lambda e: e.kind == "head")
        log.until(lambda e: e.kind == "end")
        text = log.text()
        size = head.data["size"]
        assert head.data["reset"] and 0 < head.data["offset"] < size
        assert size - 64 * 1024 <= head.data["offset"]  # the last 64 KB, from the first whole line in them
        assert text.startswith("line ") and text.endswith(f"line {lines - 1:06d} xxx\n")
        assert len(text.encode()) == size - head.data["offset"]
        assert log.seen[-2].id == str(size)  # a reconnect goes on from here (Last-Event-ID)
        more = session.events("/ui/log?batch=tail&job=long&tail=1048576")  # "more"
        more.until(lambda e: e.kind == "end")
        assert more.text().startswith("line 000000 xxx\n") and len(more.text().encode()) == size
        resumed = session.events("/ui/log?batch=tail&job=long", headers={"Last-Event-ID": str(size - 8)})
        resumed.until(lambda e: e.kind == "end")
        assert resumed.seen[0].data["reset"] is False and resumed.text() == "999 xxx\n"
    finally:
        ui.stop()


def test_the_log_shows_control_characters_as_escapes(tmp_path: Path, batches: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text('import sys\nsys.stdout.write("\\x1b[31mred\\x1b[0m <script>x</script> \\r50%\\n\\xe2\\x82")\n')
    run_to_end(tmp_path, batch("noisy", job("j", f"{PY} {script}")))
    ui = Ui()
    try:
        log = Session(ui.link).events("/ui/log?batch=noisy&job=j")
        log.until(lambda e: e.kind == "end")
        assert log.text().startswith("\\x1b[31mred\\x1b[0m <script>x</script> \\x0d50%\n")
    finally:
        ui.stop()


def test_pages_need_the_login_cookie_and_a_job_token_never_opens_them(runs: Runs, tmp_path: Path) -> None:
    command = f'echo "$HYPERCTL_JOB_TOKEN" > {tmp_path}/token; {wait_for_file(tmp_path / "end")}'
    proc = runs.start(batch("locked", job("j", command)))
    session = Session(daemon_link(proc))
    token = wait_for(lambda: (tmp_path / "token").exists() and (tmp_path / "token").read_text().strip(), "the token")
    assert token.startswith("job.")
    paths = [
        "/b/locked/j/j",
        "/b/locked/curves?jobs=j",
        "/ui/api/b/locked/curves?jobs=j",
        "/ui/log?batch=locked&job=j",
    ]
    for path in paths:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            status, body = session.get(path, headers=headers, cookie=False)
            assert status == 401, (path, headers, body)
        assert session.get(path)[0] == 200 if "log" not in path else True
    status, body = session.get("/ui/api/b/locked/curves?jobs=j", cookie=False)
    assert json.loads(body) == {"error": json.loads(body)["error"], "status": 401}  # JSON under /ui/api/
    (tmp_path / "end").touch()


def test_open_logs_end_at_once_when_the_server_stops(runs: Runs, tmp_path: Path) -> None:
    """`hyperctl ui` following a running job's log (read from its file) stops at once on SIGTERM."""
    proc = runs.start(batch("stopping", job("j", f"echo started; {wait_for_file(tmp_path / 'never')}")))
    daemon_link(proc)
    ui = Ui()
    session = Session(ui.link)
    log = session.events("/ui/log?batch=stopping&job=j")
    log.until(lambda e: e.kind == "text")
    started = time.monotonic()
    ui.proc.send_signal(signal.SIGTERM)
    assert list(log) == []  # the stream ends, with nothing more
    assert ui.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 1.5  # not its 2 s wait for connections to close
