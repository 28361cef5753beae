"""Retrying a running batch's failed jobs through its daemon (daemon/retrying.py): the API's
POST /hyperctl/api/batch/retry (the batch token) and the dashboard's button (the session cookie and
the CSRF header). Real daemons (`hyperctl run --detach`), real HTTP, one real browser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hyperctl.daemon.auth import Tokens
from tests.conftest import (
    attempt_dir,
    batch_token,
    hyperctl,
    process_alive,
    start_hyperctl,
    wait_for,
    wait_for_portal,
    write_json,
)
from tests.test_api import wait_for_file
from tests.test_web_actions import csrf_of, detached, logged_in, post, statuses
from tests.webclient import Session, link_in

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FLAKY = 'echo "attempt $HYPERCTL_ATTEMPT"; test "$HYPERCTL_ATTEMPT" -ge 2'  # fails at once, then succeeds


def sweep(name: str, go: Path, **top: Any) -> dict[str, Any]:
    """flaky fails on its first attempt only, broken always, ok succeeds; waiter keeps the batch
    running until `go` exists."""
    commands = {"flaky": FLAKY, "broken": "echo broken; exit 3", "ok": "echo fine", "waiter": wait_for_file(go)}
    return {
        "name": name,
        "daemon": {"port": 0},
        "backend": {"type": "local", "conf": {"cpu": 4}},
        "jobs": [{"name": j, "execution": {"command": c}} for j, c in commands.items()],
        **top,
    }


def first_round_over(name: str) -> None:
    want = {"flaky": "failed", "broken": "failed", "ok": "succeeded", "waiter": "running"}
    wait_for(lambda: statuses(name) == want, f"the first round: {want}")


def retry(base: str, token: str | None, body: bytes = b"", query: str = "") -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(
        f"{base}/hyperctl/api/batch/retry{query}", data=body, method="POST", headers=headers
    )
    try:
        with _OPENER.open(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def attempts(name: str, job: str) -> list[dict[str, Any]]:
    done = hyperctl("job", "describe", name, job, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["attempts"]


def batch_listed(name: str) -> dict[str, Any]:
    return next(b for b in json.loads(hyperctl("batch", "list", "--json").stdout) if b["name"] == name)


def test_failed_jobs_retried_through_the_api_run_again_as_new_attempts(tmp_path: Path, batches: Path) -> None:
    go = tmp_path / "go"
    base = detached(tmp_path, sweep("r", go)).split("/login", 1)[0]
    first_round_over("r")
    token = batch_token(batches, "r")

    assert retry(base, None)[0] == 401
    assert retry(base, Tokens(token).for_job("flaky"))[0] == 401  # a job's token retries nothing
    assert retry(base, token, query="?job=ok") == (
        409,
        {
            "error": "job 'ok' is succeeded: only jobs that ended without success (failed, timeout, killed, lost) "
            "are retried",
            "status": 409,
        },
    )
    assert retry(base, token, b'{"jobs": ["waiter"]}')[0] == 409  # running
    assert retry(base, token, b'{"jobs": ["nope"]}') == (
        404,
        {"error": "no job named 'nope' in this batch", "status": 404},
    )
    assert retry(base, token, b'{"jobs": "flaky"}') == (
        400,
        {"error": "jobs: must be a list of job names", "status": 400},
    )
    assert statuses("r")["flaky"] == "failed"  # none of those took anything back

    assert retry(base, token) == (200, {"retried": ["flaky", "broken"], "message": "retrying 2 jobs: flaky, broken"})
    want = {"flaky": "succeeded", "broken": "failed", "ok": "succeeded", "waiter": "running"}
    wait_for(lambda: statuses("r") == want and len(attempts("r", "broken")) == 2, "the retried jobs to end")
    assert [a["status"] for a in attempts("r", "flaky")] == ["failed", "succeeded"]
    assert (attempt_dir(batches, "r", "flaky", 2) / "stdout").read_text() == "attempt 2\n"
    assert (attempt_dir(batches, "r", "flaky", 1) / "stdout").read_text() == "attempt 1\n"  # kept
    assert len(attempts("r", "ok")) == 1 and not attempt_dir(batches, "r", "ok", 2).exists()  # never run twice

    # Named, in a JSON body: only that one; it fails again, as attempt 3.
    assert retry(base, token, b'{"jobs": ["broken"]}') == (
        200,
        {"retried": ["broken"], "message": "retrying 1 job: broken"},
    )
    wait_for(lambda: len(attempts("r", "broken")) == 3 and statuses("r")["broken"] == "failed", "broken's 3rd attempt")
    assert retry(base, token, query="?job=flaky")[0] == 409  # succeeded now

    go.touch()
    wait_for(lambda: batch_listed("r")["status"] != "running", "the batch to end")
    assert batch_listed("r")["status"] == "failed"  # broken failed, every time
    assert statuses("r") == {**want, "waiter": "succeeded"}
    assert [len(attempts("r", j)) for j in ("flaky", "broken", "ok", "waiter")] == [2, 3, 1, 1]


def test_an_ended_or_halted_batch_takes_no_job_back(tmp_path: Path, batches: Path) -> None:
    base = detached(tmp_path, sweep("h", tmp_path / "go", scheduler={"halt_on_failures": 1})).split("/login", 1)[0]
    first_round_over("h")  # both failures counted: halted, it starts nothing more
    status, body = retry(base, batch_token(batches, "h"))
    assert status == 409 and body["error"].startswith("batch 'h' halted after 2 failures (halt_on_failures: 1)")
    assert body["error"].endswith("once it has ended, `hyperctl batch retry h --failed`")
    assert statuses("h") == {"flaky": "failed", "broken": "failed", "ok": "succeeded", "waiter": "running"}
    (tmp_path / "go").touch()

    doc = sweep("e", tmp_path / "go-e", daemon={"port": 0, "exit_on_finish": False})
    doc["jobs"] = [j for j in doc["jobs"] if j["name"] in ("flaky", "ok")]
    started = hyperctl("run", "--config", str(write_json(tmp_path / "e.json", doc)), "--detach")
    link = link_in(started.stderr)  # exit 1 when it ended (failed) before `run --detach` returned
    assert started.returncode in (0, 1) and link is not None, started.stderr
    base = link.split("/login", 1)[0]
    wait_for(lambda: batch_listed("e")["status"] == "failed", "batch e to end")
    assert process_alive(batch_listed("e")["daemon_pid"])  # exit_on_finish: false
    page = logged_in(link)
    assert retry(base, batch_token(batches, "e")) == (
        409,
        {
            "error": "batch 'e' has ended: stop its daemon (`hyperctl batch kill e`), then retry its jobs with "
            "`hyperctl batch retry e --failed`",
            "status": 409,
        },
    )
    answer = post(page, "/ui/api/b/e/retry", {"X-Hyperctl-CSRF": csrf_of(page, "e")})
    assert answer.status == 409, answer.text
    shown = page.get("/b/e?part=summary").text
    assert 'id="retry-failed"' not in shown and "<code>hyperctl batch retry e --failed</code>" in shown
    refused = hyperctl("batch", "retry", "e")  # the CLI asks the daemon too: the same one line
    assert (refused.returncode, refused.stderr) == (2, f"hyperctl: error: {json.loads(answer.text)['error']}\n")
    assert statuses("e") == {"flaky": "failed", "ok": "succeeded"}
    assert hyperctl("batch", "kill", "e").returncode == 0


def test_batch_retry_of_a_running_batch_asks_its_daemon(tmp_path: Path, batches: Path) -> None:
    doc = sweep("c", tmp_path / "go")
    doc["jobs"].append({"name": "victim", "execution": {"command": "sleep 300"}})
    detached(tmp_path, doc)
    want = {"flaky": "failed", "broken": "failed", "ok": "succeeded", "waiter": "running", "victim": "running"}
    wait_for(lambda: statuses("c") == want, f"the first round: {want}")
    assert hyperctl("job", "kill", "c", "victim").returncode == 0

    wrong = hyperctl("batch", "retry", "c", "--job", "ok")
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == (
        "hyperctl: error: job 'ok' is succeeded: only jobs that ended without success (failed, timeout, killed, "
        "lost) are retried\n"
    )
    failed = hyperctl("batch", "retry", "c", "--failed", "--json")  # not the killed one
    assert failed.returncode == 0, failed.stderr
    assert json.loads(failed.stdout) == {"name": "c", "retried": ["flaky", "broken"]}
    wait_for(lambda: statuses("c")["flaky"] == "succeeded" and len(attempts("c", "broken")) == 2, "the retries")
    assert statuses("c")["victim"] == "killed"

    victim = hyperctl("batch", "retry", "c", "--job", "victim")
    assert victim.returncode == 0, victim.stderr
    assert victim.stderr == (
        "hyperctl: retrying 1 job of running batch c: victim: its daemon runs them (hyperctl batch watch c)\n"
    )
    wait_for(lambda: statuses("c")["victim"] == "running", "the killed job to run again")
    assert [a["status"] for a in attempts("c", "victim")] == ["killed", "running"]
    assert len(attempts("c", "ok")) == 1
    assert hyperctl("batch", "kill", "c").returncode == 0


def test_failed_jobs_retried_from_the_page_with_the_session_and_the_csrf_token(tmp_path: Path, batches: Path) -> None:
    go = tmp_path / "go"
    page = logged_in(detached(tmp_path, sweep("p", go)))
    first_round_over("p")
    shown = page.get("/b/p?part=summary").text  # the live part: its count follows the batch
    assert 'data-action="/ui/api/b/p/retry"' in shown and ">retry 2 failed jobs</button>" in shown
    assert 'data-confirm="Retry 2 jobs of batch p that ended without success' in shown
    csrf = csrf_of(page, "p")
    assert post(Session(page.base), "/ui/api/b/p/retry", {"X-Hyperctl-CSRF": csrf}).status == 401  # no cookie
    assert post(page, "/ui/api/b/p/retry", {}).status == 403  # no CSRF header
    token = batch_token(batches, "p")
    assert post(Session(page.base), "/ui/api/b/p/retry", {"Authorization": f"Bearer {token}"}).status == 401
    assert statuses("p")["flaky"] == "failed"

    answer = post(page, "/ui/api/b/p/retry", {"X-Hyperctl-CSRF": csrf})
    assert (answer.status, json.loads(answer.text)["retried"]) == (200, ["flaky", "broken"]), answer.text
    wait_for(lambda: statuses("p")["flaky"] == "succeeded" and len(attempts("p", "broken")) == 2, "the retries")
    assert ">retry 1 failed job</button>" in page.get("/b/p?part=summary").text
    go.touch()
    wait_for(lambda: batch_listed("p")["status"] != "running", "the batch to end")
    assert batch_listed("p")["status"] == "failed"
    pid = batch_listed("p").get("daemon_pid")
    assert pid is None or not process_alive(pid)


# -- in a real browser (tests/browser.py) -------------------------------------------------------------
def test_failed_jobs_retried_from_the_page_after_confirming_turn_succeeded_live(
    tmp_path: Path, batches: Path, page: Any, page_problems: Any
) -> None:
    from playwright.sync_api import expect

    from tests.browser import LIVE_MS, screenshot

    go = tmp_path / "go"
    doc = sweep("rb", go)
    doc["jobs"] = [j for j in doc["jobs"] if j["name"] in ("flaky", "ok", "waiter")]
    link = detached(tmp_path, doc)
    wait_for(lambda: statuses("rb") == {"flaky": "failed", "ok": "succeeded", "waiter": "running"}, "flaky to fail")
    page.goto(link)
    page.goto(link.split("/login", 1)[0] + "/b/rb")
    row = page.locator('tr[data-job="flaky"]')
    expect(row.locator(".status")).to_have_text("failed")

    page.locator("#retry-failed").click()
    expect(page.locator("#confirm-text")).to_contain_text("Retry 1 job of batch rb that ended without success")
    screenshot(page, "confirm-retry")
    page.locator("#confirm-cancel").click()
    assert statuses("rb")["flaky"] == "failed"

    page.locator("#retry-failed").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#action-result")).to_have_text("retrying 1 job: flaky")
    expect(row.locator(".status")).to_have_text("succeeded", timeout=LIVE_MS)
    expect(page.locator("#retry-failed")).to_have_count(0, timeout=LIVE_MS)  # nothing left to retry
    expect(page.locator('tr[data-job="waiter"] .status')).to_have_text("running")
    screenshot(page, "retried")
    assert [a["status"] for a in attempts("rb", "flaky")] == ["failed", "succeeded"]
    assert len(attempts("rb", "ok")) == 1
    page_problems.allow(r"net::ERR_")  # the batch ends and its daemon with it: the page's events stop
    go.touch()
    wait_for(lambda: batch_listed("rb")["status"] == "finished", "the batch to finish")


def test_hyperctl_run_counts_a_job_retried_through_its_daemon_once(tmp_path: Path, batches: Path) -> None:
    go = tmp_path / "go"
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "f.json", sweep("f", go))))
    try:
        base = wait_for_portal(proc)
        first_round_over("f")
        assert retry(base, batch_token(batches, "f"))[1]["retried"] == ["flaky", "broken"]
        wait_for(lambda: statuses("f")["flaky"] == "succeeded" and len(attempts("f", "broken")) == 2, "the retries")
        go.touch()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr  # broken failed again
    ends = [line for line in stderr.splitlines() if line.startswith("[")]
    assert len(ends) == 6 and ends[-1] == "[4/4] waiter succeeded", stderr  # not [6/4]
    assert "[3/4] broken failed" in ends or "[3/4] flaky succeeded" in ends, stderr


def test_the_python_api_retries_a_running_batch_through_its_daemon(tmp_path: Path, batches: Path) -> None:
    """Batch.retry() is `batch retry`: on a running batch, its daemon takes the jobs back at once."""
    from hyperctl import Batch

    detached(tmp_path, sweep("py", tmp_path / "go"))
    first_round_over("py")
    batch = Batch("py")
    assert batch.retry(failed=True) == ["flaky", "broken"]
    wait_for(lambda: statuses("py")["flaky"] == "succeeded" and len(attempts("py", "broken")) == 2, "the retries")
    assert statuses("py")["waiter"] == "running" and len(attempts("py", "ok")) == 1  # the batch ran on meanwhile
    assert hyperctl("batch", "kill", "py").returncode == 0
