"""The job page: params, command, every attempt, and its live log tail (Server-Sent Events read
from the attempt's file as it grows), from `hyperctl ui` and from a running batch's daemon."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json
from tests.sseclient import Events, daemon_session
from tests.test_api import Runs, batch, job, wait_for_file
from tests.webclient import Session, ui

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
    with ui(batches) as served:
        session = served.session()
        answer = session.get("/b/pages/j/flaky")
        assert answer.status == 200
        rows = answer.text.split('<tr data-attempt="')[1:]
        assert [r.split('"')[0] for r in rows] == ["1", "2"]
        assert 'data-status="failed"' in rows[0] and "exit 3" in rows[0]
        assert 'data-status="succeeded"' in rows[1] and "exit 0" in rows[1]
        assert "<th>lr</th><td>0.5</td>" in answer.text and "<th>layers</th><td>[2, 3]</td>" in answer.text
        assert "&lt;b&gt;adam&lt;/b&gt;" in answer.text and "<b>adam</b>" not in answer.text  # user data is text
        assert 'id="command"' in answer.text and "touch" in answer.text
        answer = session.get("/b/pages/j/killed")
        assert answer.status == 200 and "signal 9 (SIGKILL)" in answer.text
        answer = session.get("/b/pages/j/nope")
        assert answer.status == 404 and "has no job named" in answer.text
        # Each attempt's log, whole (the page's default tail is more than it wrote).
        first = Events(session, "/ui/log?batch=pages&job=flaky&attempt=1")
        first.until(lambda e: e.kind == "end")
        assert first.text() == "first\n"
        last = Events(session, "/ui/log?batch=pages&job=flaky")
        last.until(lambda e: e.kind == "end")
        assert last.text() == "second\n"


def test_a_line_the_job_prints_reaches_the_open_log_while_it_runs(runs: Runs, tmp_path: Path) -> None:
    """From the batch's own daemon: the log tail is pushed as the job writes, not when it ends."""
    go, done = tmp_path / "go", tmp_path / "done"
    command = f"echo first; {wait_for_file(go)}; echo second; {wait_for_file(done)}"
    session = daemon_session(runs.start(batch("live", job("talker", command))))
    wait_for(lambda: 'data-status="running"' in session.get("/b/live/j/talker").text, "the job to run")
    log = Events(session, "/ui/log?batch=live&job=talker")
    log.until(lambda e: e.kind == "text" and "first" in log.text())
    go.touch()
    log.until(lambda e: e.kind == "text" and "second" in log.text())
    assert 'data-status="running"' in session.get("/b/live/j/talker").text  # it still runs
    assert log.text() == "first\nsecond\n"
    log.close()
    done.touch()


def test_the_log_tail_is_the_last_kb_from_a_whole_line(tmp_path: Path, batches: Path) -> None:
    lines = 20_000  # about 250 KB
    printer = f'{PY} -c \'for i in range({lines}): print(f"line {{i:06d}}", "x" * 3)\''
    run_to_end(tmp_path, batch("tail", job("long", printer)))
    with ui(batches) as served:
        session = served.session()
        log = Events(session, "/ui/log?batch=tail&job=long")
        head = log.until(lambda e: e.kind == "head")
        log.until(lambda e: e.kind == "end")
        text = log.text()
        size = head.data["size"]
        assert head.data["reset"] and 0 < head.data["offset"] < size
        assert size - 64 * 1024 <= head.data["offset"]  # the last 64 KB, from the first whole line in them
        assert text.startswith("line ") and text.endswith(f"line {lines - 1:06d} xxx\n")
        assert len(text.encode()) == size - head.data["offset"]
        assert log.seen[-2].id == str(size)  # a reconnect goes on from here (Last-Event-ID)
        more = Events(session, "/ui/log?batch=tail&job=long&tail=1048576")  # "more"
        more.until(lambda e: e.kind == "end")
        assert more.text().startswith("line 000000 xxx\n") and len(more.text().encode()) == size
        resumed = Events(session, "/ui/log?batch=tail&job=long", headers={"Last-Event-ID": str(size - 8)})
        resumed.until(lambda e: e.kind == "end")
        assert resumed.seen[0].data["reset"] is False and resumed.text() == "999 xxx\n"


def test_the_log_shows_control_characters_as_escapes(tmp_path: Path, batches: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text('import sys\nsys.stdout.write("\\x1b[31mred\\x1b[0m <script>x</script> \\r50%\\n")\n')
    run_to_end(tmp_path, batch("noisy", job("j", f"{PY} {script}")))
    with ui(batches) as served:
        log = Events(served.session(), "/ui/log?batch=noisy&job=j")
        log.until(lambda e: e.kind == "end")
        assert log.text() == "\\x1b[31mred\\x1b[0m <script>x</script> \\x0d50%\n"


def test_a_log_removed_after_the_job_ended_is_said(tmp_path: Path, batches: Path) -> None:
    run_to_end(tmp_path, batch("gone", job("j", "echo hi")))
    (attempt_dir(batches, "gone", "j") / "stdout").unlink()
    with ui(batches) as served:
        log = Events(served.session(), "/ui/log?batch=gone&job=j")
        end = log.until(lambda e: e.kind == "end")
        note = next(e.data for e in log.seen if e.kind == "note")
        assert note.startswith("job 'j': attempt 1 left no stdout (") and note.endswith("is missing: deleted?)")
        assert end.data == {"why": "attempt 1 ended", "again": False}


def test_bad_log_requests_name_the_field(tmp_path: Path, batches: Path) -> None:
    run_to_end(tmp_path, batch("asks", job("j", "echo hi")))
    with ui(batches) as served:
        session = served.session()
        cases = {
            "batch=asks&job=j&stream=stdin": (400, "stream: must be stdout or stderr, not &#39;stdin&#39;"),
            "batch=asks&job=j&attempt=2": (400, "attempt: job j has no attempt &#39;2&#39;"),
            "batch=asks&job=j&tail=0": (400, "tail: must be a number of bytes from 1 to 67108864, not &#39;0&#39;"),
            "batch=asks&job=j&offset=-1": (400, "offset: must be a byte offset, not &#39;-1&#39;"),
            "batch=asks&job=nope": (404, "batch &#39;asks&#39; has no job named &#39;nope&#39;"),
            "batch=nobatch&job=j": (404, "nobatch"),
        }
        for query, (code, reason) in cases.items():
            answer = session.get(f"/ui/log?{query}")
            assert (answer.status, reason in answer.text) == (code, True), (query, answer.text[-800:])


def test_pages_need_the_login_cookie_and_a_job_token_never_opens_them(runs: Runs, tmp_path: Path) -> None:
    command = f'echo "$HYPERCTL_JOB_TOKEN" > {tmp_path}/token; {wait_for_file(tmp_path / "end")}'
    session = daemon_session(runs.start(batch("locked", job("j", command))))
    token = wait_for(lambda: (tmp_path / "token").exists() and (tmp_path / "token").read_text().strip(), "the token")
    assert token.startswith("job.")
    stranger = Session(session.base)  # no cookie
    paths = ["/b/locked/j/j", "/b/locked/curves?jobs=j", "/ui/api/b/locked/curves?jobs=j", "/ui/log?batch=locked&job=j"]
    for path in paths:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            answer = stranger.get(path, headers=headers)
            assert answer.status == 401, (path, headers, answer.text)
    for path in paths[:3]:
        assert session.get(path).status == 200
    answer = stranger.get("/ui/api/b/locked/curves?jobs=j")
    assert json.loads(answer.text)["status"] == 401  # JSON under /ui/api/
    (tmp_path / "end").touch()


def test_open_logs_end_at_once_when_the_server_stops(runs: Runs, tmp_path: Path, batches: Path) -> None:
    """`hyperctl ui` following a running job's log (read from its file) stops at once on SIGTERM."""
    daemon_session(runs.start(batch("stopping", job("j", f"echo started; {wait_for_file(tmp_path / 'never')}"))))
    with ui(batches) as served:
        log = Events(served.session(), "/ui/log?batch=stopping&job=j")
        log.until(lambda e: e.kind == "text")
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        # The stream ends (its last word, "the server stopped", if it is sent before the connection closes).
        assert [e.data["why"] for e in log] in ([], ["the server stopped"])
        assert served.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 1.5  # not its 2 s wait for connections to close


def _inotify_fds(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    found = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            found += os.readlink(fd) == "anon_inode:inotify"
    return found


def test_a_log_the_page_leaves_stops_being_watched(runs: Runs, tmp_path: Path, batches: Path) -> None:
    daemon_session(runs.start(batch("leave", job("j", f"echo started; {wait_for_file(tmp_path / 'never')}"))))
    with ui(batches) as served:
        session = served.session()
        before = _inotify_fds(served.process.pid)
        logs = [Events(session, f"/ui/log?batch=leave&job=j&stream={s}") for s in ("stdout", "stdout", "stderr")]
        for log in logs:
            log.until(lambda e: e.kind == "head")
        assert _inotify_fds(served.process.pid) == before + 3  # one watch of the attempt folder a log
        for log in logs:
            log.close()
        wait_for(lambda: _inotify_fds(served.process.pid) == before, "the logs' watches to end")
