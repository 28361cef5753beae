"""The daemon's HTTP API and `hyperctl run` as a user drives them: real processes, a real daemon on loopback."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from hyperctl.layout import BatchDir
from hyperctl.spec import BatchStatus, JobStatus
from hyperctl.store import Store
from tests.conftest import (
    attempt_dir,
    batch_token,
    hyperctl,
    read_stdout,
    start_hyperctl,
    wait_for,
    wait_for_portal,
    write_json,
)

API = "/hyperctl/api"
DEADLINE = 30.0  # seconds: the most any wait in here may take before the test fails
DEFAULT_PORT = 8060


# Never through a proxy from the environment: the daemon is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- processes ---------------------------------------------------------------------------------
def session_processes(sid: int) -> list[psutil.Process]:
    """Every process (zombies included) in the session a job's launcher leads."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except OSError:
            pass
    return found


def sleeps_in_session(sid: int) -> list[psutil.Process]:
    """The `sleep 60` processes of a job's session."""
    found = []
    for proc in session_processes(sid):
        try:
            if proc.cmdline() == ["sleep", "60"]:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def group_gone(pgid: int) -> bool:
    """No live process is left in the process group (zombies wait only for init to reap them)."""
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except (OSError, psutil.Error):
            pass
    return True


def job_pids(batches: Path) -> set[int]:
    """The launcher pid (= session and process group) of every attempt the batches' stores know."""
    pids = set()
    for db in batches.glob("*/.hyperctl/state.db"):
        store = Store(db, readonly=True)
        try:
            pids.update(int(pid) for (pid,) in store.conn.execute("SELECT pid FROM attempts WHERE pid IS NOT NULL"))
        finally:
            store.close()
    return pids


def kill_jobs(batches: Path, since: float) -> None:
    """Kill, by pid, what is left of the jobs started since `since` (jobs run in sessions of their own)."""
    sids = job_pids(batches)
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in sids and proc.create_time() >= since - 1:
                os.kill(proc.pid, signal.SIGKILL)
        except (OSError, psutil.Error):
            pass


class Runs:
    """`hyperctl run` processes a test started; all of them and their jobs are killed at its end."""

    def __init__(self, batches: Path, tmp_path: Path) -> None:
        self.batches = batches
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[str]] = []
        self.since = time.time()

    def config(self, doc: dict[str, Any]) -> Path:
        return write_json(self.tmp_path / f"{doc['name']}.json", doc)

    def start(self, doc: dict[str, Any]) -> subprocess.Popen[str]:
        proc = start_hyperctl("run", "--config", str(self.config(doc)))
        self.procs.append(proc)
        return proc

    def serve(self, doc: dict[str, Any]) -> tuple[subprocess.Popen[str], str, str]:
        """Start a batch and wait until its API answers: the process, the portal and the batch token."""
        proc = self.start(doc)
        portal = wait_for_portal(proc)
        return proc, portal, batch_token(self.batches, doc["name"])

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        kill_jobs(self.batches, self.since)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait (bounded) for a `hyperctl run` to exit: its exit code and the rest of its stderr."""
    code = proc.wait(timeout=DEADLINE)
    assert proc.stderr is not None
    return code, proc.stderr.read()


# -- batches -------------------------------------------------------------------------------------
def batch(name: str, *jobs: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": name, "daemon": {"port": 0}, "jobs": list(jobs), **top}


def job(name: str, command: str, params: dict[str, Any] | None = None, **execution: Any) -> dict[str, Any]:
    return {"name": name, "params": params or {}, "execution": {"command": command, **execution}}


def wait_for_file(path: Path) -> str:
    """A shell loop that waits (30 s at most) until path exists, and fails if it never does."""
    quoted = shlex.quote(str(path))
    return f"i=0; while [ ! -e {quoted} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; [ -e {quoted} ]"


def open_store(batches: Path, name: str) -> Store:
    return Store(batches / name / ".hyperctl" / "state.db", readonly=True)


# -- HTTP ------------------------------------------------------------------------------------------
def call(portal: str, path: str, token: str | None = None, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """One API request: its status and JSON body, after checking what every answer must be."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(
        portal + path, method=method, headers=headers, data=b"" if method in ("POST", "PUT") else None
    )
    try:
        with _OPENER.open(request, timeout=DEADLINE) as response:
            status, content_type, body = response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as e:
        status, content_type, body = e.code, e.headers.get("Content-Type", ""), e.read()
    where = f"{method} {path} -> {status} {body[:300]!r}"
    assert content_type.split(";")[0].strip() == "application/json", where
    doc = json.loads(body)
    assert isinstance(doc, dict), where
    if status == 200:
        assert "error" not in doc, f"a 200 carrying an error: {where}"
    else:
        assert set(doc) == {"error", "status"}, where
        assert doc["status"] == status, where
        assert isinstance(doc["error"], str) and doc["error"], where
    return status, doc


def job_view(portal: str, token: str, name: str) -> dict[str, Any]:
    status, view = call(portal, f"{API}/job/{name}", token)
    assert status == 200, view
    return view


def running_view(portal: str, token: str, name: str) -> dict[str, Any]:
    """The job's view once it runs and its pid is known."""

    def check() -> dict[str, Any] | None:
        view = job_view(portal, token, name)
        return view if view["status"] == "running" and view.get("pid") else None

    return wait_for(check, f"job {name} to run")


# -- 1. status codes -----------------------------------------------------------------------------
def two_sleepers(name: str = "api") -> dict[str, Any]:
    command = 'echo "$HYPERCTL_JOB_TOKEN" > "$HYPERCTL_JOB_DATA_DIR/token"; sleep 60'
    return batch(
        name,
        job("first", command, {"lr": 0.1, "layers": [8, 4], "tag": "a b"}, kill_grace=0),
        job("second", command, {"lr": 0.2}, kill_grace=0),
    )


def test_no_token_or_a_bad_token_is_401(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    endpoints = [("GET", f"{API}/job"), ("GET", f"{API}/job/first"), ("GET", f"{API}/batch")]
    endpoints.append(("POST", f"{API}/job/first/kill"))
    for method, path in endpoints:
        for bad in (None, "", "not-the-token", token + "x", token[:-1]):
            status, body = call(portal, path, bad, method)
            assert status == 401, (method, path, bad, body)
        assert call(portal, path, None, method)[1]["error"] == "missing token: send 'Authorization: Bearer <token>'"
        # The right token, but not as a bearer token.
        request = urllib.request.Request(portal + path, method=method, headers={"Authorization": f"Basic {token}"})
        with pytest.raises(urllib.error.HTTPError) as e:
            _OPENER.open(request, data=b"" if method == "POST" else None, timeout=DEADLINE)
        assert e.value.code == 401
    # None of those killed anything.
    assert job_view(portal, token, "first")["status"] in ("pending", "running")


def test_without_a_token_no_job_name_is_disclosed(runs: Runs) -> None:
    """Without a token, a job that exists and one that does not answer alike: 401."""
    _, portal, _ = runs.serve(two_sleepers())
    for name in ("first", "nosuchjob"):
        for method, path in [("GET", f"{API}/job/{name}"), ("POST", f"{API}/job/{name}/kill")]:
            status, body = call(portal, path, None, method)
            assert status == 401, (method, path, body)


def test_a_forged_job_token_is_401(runs: Runs) -> None:
    """A token shaped like a job's, but no job's: a bad token (401), not a good one refused (403)."""
    _, portal, _ = runs.serve(two_sleepers())
    for forged in ("job.", "job.0123", "job." + "0" * 64):
        for path in (f"{API}/job/first", f"{API}/job/second"):
            status, body = call(portal, path, forged)
            assert status == 401, (forged, path, body)


def test_batch_token_lists_the_jobs(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    status, body = call(portal, f"{API}/job", token)
    assert status == 200
    assert [j["name"] for j in body["jobs"]] == ["first", "second"]
    assert body["jobs"][0]["params"] == {"lr": 0.1, "layers": [8, 4], "tag": "a b"}
    running_view(portal, token, "second")
    status, body = call(portal, f"{API}/job?status=running", token)
    assert status == 200
    assert {j["name"] for j in body["jobs"]} == {"first", "second"}
    status, body = call(portal, f"{API}/job?status=bogus", token)
    assert status == 400 and body["error"].startswith("status: must be one of pending, running, succeeded")
    status, body = call(portal, f"{API}/job?status=succeeded", token)
    assert (status, body) == (200, {"jobs": []})


def test_batch_token_reads_one_job(runs: Runs, batches: Path) -> None:
    _, portal, token = runs.serve(two_sleepers())
    view = running_view(portal, token, "first")
    assert view["name"] == "first"
    assert view["params"] == {"lr": 0.1, "layers": [8, 4], "tag": "a b"}
    assert view["status"] == "running"
    assert view["data_dir"] == str(batches / "api" / "first")
    assert isinstance(view["pid"], int)


def test_a_job_reads_the_same_view_however_its_name_is_written(runs: Runs) -> None:
    """A plain read of one job is answered before Tornado's handlers; one whose name needs
    decoding goes through them. Both must give the same answer, and keep-alive must hold."""
    _, portal, token = runs.serve(two_sleepers())
    running_view(portal, token, "first")
    plain = call(portal, f"{API}/job/first", token)
    assert call(portal, f"{API}/job/%66irst", token) == plain  # %66 is "f"
    # Many reads on one kept-alive connection, as a job's HTTP client would make them.
    host, port = portal.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
    try:
        for _ in range(3):
            conn.request("GET", f"{API}/job/first", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert (response.status, response.getheader("Content-Type")) == (200, "application/json")
            assert json.loads(response.read()) == plain[1]
    finally:
        conn.close()


def test_unknown_job_is_404(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    for method, path in [("GET", f"{API}/job/nosuchjob"), ("POST", f"{API}/job/nosuchjob/kill")]:
        status, body = call(portal, path, token, method)
        assert status == 404, body
        assert "nosuchjob" in body["error"]


def test_a_local_job_is_not_streamed_its_log_is_in_the_batch_folder(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    running_view(portal, token, "first")
    status, body = call(portal, f"{API}/job/first/log", token)
    assert status == 409 and "writes its output in the batch folder" in body["error"], body
    status, body = call(portal, f"{API}/job/first/log?stream=both", token)
    assert status == 400 and "stream: must be stdout or stderr" in body["error"], body
    assert call(portal, f"{API}/job/first/log")[0] == 401


def test_unknown_path_is_404_json(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    for path in [f"{API}/nope", f"{API}", f"{API}/job/first/nope", f"{API}/job/", "/nope"]:
        for bearer in (token, None):
            status, body = call(portal, path, bearer)
            assert status == 404, (path, body)
    # The dashboard's pages are at / (web/): without its cookie, not even the batch token opens them.
    for bearer in (token, None):
        request = urllib.request.Request(portal + "/", headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            _OPENER.open(request, timeout=DEADLINE)
        assert refused.value.code == 401


def test_wrong_method_is_405_json(runs: Runs) -> None:
    _, portal, token = runs.serve(two_sleepers())
    wrong = [
        ("DELETE", f"{API}/job"),
        ("POST", f"{API}/job"),
        ("GET", f"{API}/job/first/kill"),
        ("DELETE", f"{API}/job/first"),
        ("PUT", f"{API}/batch"),
    ]
    for method, path in wrong:
        status, body = call(portal, path, token, method)
        assert status == 405, (method, path, body)
    assert job_view(portal, token, "first")["status"] in ("pending", "running")


def test_batch_view_counts_the_jobs(runs: Runs, batches: Path) -> None:
    proc, portal, token = runs.serve(two_sleepers())
    running_view(portal, token, "first")
    running_view(portal, token, "second")
    status, body = call(portal, f"{API}/batch", token)
    assert status == 200
    assert body["name"] == "api"
    assert body["status"] == "running"
    assert body["path"] == str(batches / "api")
    assert body["total"] == 2
    assert body["counts"]["running"] == 2
    assert sum(body["counts"].values()) == 2
    assert body["portal"] == portal
    assert body["pid"] == proc.pid


# -- 2. tokens -------------------------------------------------------------------------------------
def test_token_file_is_readable_by_its_owner_only(runs: Runs, batches: Path) -> None:
    runs.serve(two_sleepers())
    token_file = BatchDir(batches, "api").token_file  # out of the batch folder, which its jobs read
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert not token_file.is_relative_to(batches)


def test_job_token_reads_its_own_job_only(runs: Runs, batches: Path) -> None:
    _, portal, _ = runs.serve(two_sleepers())
    token_file = batches / "api" / "first" / "token"
    wait_for(lambda: token_file.exists() and token_file.read_text().endswith("\n"), "the job to write its token")
    job_token = token_file.read_text().strip()

    status, view = call(portal, f"{API}/job/first", job_token)
    assert status == 200
    assert view["name"] == "first"
    assert view["params"] == {"lr": 0.1, "layers": [8, 4], "tag": "a b"}

    assert call(portal, f"{API}/job/second", job_token)[0] == 403
    assert call(portal, f"{API}/job", job_token)[0] == 401
    assert call(portal, f"{API}/batch", job_token)[0] == 401
    assert call(portal, f"{API}/job/first/kill", job_token, "POST")[0] == 401
    assert call(portal, f"{API}/job/second/kill", job_token, "POST")[0] == 401
    assert job_view(portal, job_token, "first")["status"] == "running"


# -- 3. params through the API -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env",
    # A proxy for the user's outside traffic (nothing listens on port 9) must not stand between
    # a job and its daemon on loopback.
    [{}, {"http_proxy": "http://127.0.0.1:9"}],
    ids=["no-proxy", "http_proxy-set"],
)
def test_job_reads_its_params_from_the_api_when_its_params_file_is_gone(
    runs: Runs, batches: Path, env: dict[str, str]
) -> None:
    params = {"lr": 0.001, "layers": [64, 32], "name": "run 'one'", "nested": {"a": None, "b": True}}
    python = shlex.quote(sys.executable)
    command = (
        'rm "$HYPERCTL_JOB_PARAMS_FILE" && '
        f'{python} -c "import hyperctl, json; print(json.dumps(hyperctl.get_job_params()))"'
    )
    proc = runs.start(batch("params", job("reader", command, params, env=env)))
    code, stderr = finish(proc)
    job_stderr = (attempt_dir(batches, "params", "reader", 1) / "stderr").read_text()
    assert code == 0, stderr + job_stderr
    assert json.loads(read_stdout(batches, "params", "reader")) == params
    assert not (batches / "params" / "reader" / "params.json").exists()


# -- 4. kill ---------------------------------------------------------------------------------------------
STUBBORN = "sh -c 'trap \"\" TERM; sleep 60' & trap '' TERM; sleep 60"


def test_kill_a_running_job_kills_its_whole_process_group(runs: Runs) -> None:
    proc, portal, token = runs.serve(
        batch("kill", job("stubborn", STUBBORN, kill_grace=1), job("keeper", "sleep 60", kill_grace=0))
    )
    pid = running_view(portal, token, "stubborn")["pid"]
    # Both TERM-proof sleeps run: the traps are set before the kill.
    wait_for(lambda: len(sleeps_in_session(pid)) == 2, "two sleep 60 in the job's session")

    status, view = call(portal, f"{API}/job/stubborn/kill", token, "POST")
    assert status == 200
    assert view["name"] == "stubborn"
    assert view["status"] == "killed"
    assert view["pid"] == pid

    # "killed" is reported only once no process of the job is left.
    assert group_gone(pid)
    assert [p for p in sleeps_in_session(pid) if p.status() != psutil.STATUS_ZOMBIE] == []

    status, body = call(portal, f"{API}/job/stubborn/kill", token, "POST")
    assert status == 409, body
    assert job_view(portal, token, "stubborn")["status"] == "killed"
    assert job_view(portal, token, "keeper")["status"] == "running"
    assert proc.poll() is None


def test_kill_a_pending_job_and_it_never_starts(runs: Runs, batches: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    proc, portal, token = runs.serve(
        batch(
            "pending",
            job("first", wait_for_file(release)),
            job("second", "echo started"),
            backend={"type": "local", "conf": {"cpu": 1}},
        )
    )
    running_view(portal, token, "first")
    assert job_view(portal, token, "second")["status"] == "pending"

    status, view = call(portal, f"{API}/job/second/kill", token, "POST")
    assert status == 200
    assert view["name"] == "second"
    assert view["status"] == "killed"
    assert call(portal, f"{API}/job/second/kill", token, "POST")[0] == 409

    release.touch()
    code, stderr = finish(proc)
    assert code == 1, stderr  # not every job succeeded
    store = open_store(batches, "pending")
    try:
        first, second = store.job("first"), store.job("second")
    finally:
        store.close()
    assert first is not None and first.status == JobStatus.SUCCEEDED
    assert second is not None and second.status == JobStatus.KILLED
    assert second.attempts == 0
    assert not (attempt_dir(batches, "pending", "second", 1)).exists()


# -- 5. Ctrl-C -------------------------------------------------------------------------------------------
def test_ctrl_c_kills_the_running_jobs_and_resume_runs_them_again(runs: Runs, batches: Path, tmp_path: Path) -> None:
    proc, portal, token = runs.serve(
        batch(
            "ctrlc",
            job("a", f"[ -e {tmp_path / 'go'} ] || sleep 60", kill_grace=1),
            job("b", f"[ -e {tmp_path / 'go'} ] || sleep 60", kill_grace=1),
            job("c", f"[ -e {tmp_path / 'go'} ] || sleep 60", kill_grace=1),
            backend={"type": "local", "conf": {"cpu": 2}},
        )
    )
    pids = [running_view(portal, token, name)["pid"] for name in ("a", "b")]
    assert job_view(portal, token, "c")["status"] == "pending"

    proc.send_signal(signal.SIGINT)
    code, stderr = finish(proc)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "hyperctl: batch ctrlc interrupted in" in stderr
    assert "3 jobs to run again (interrupted, or not started yet): hyperctl batch resume ctrlc" in stderr

    store = open_store(batches, "ctrlc")
    try:
        assert store.batch_status() == BatchStatus.INTERRUPTED
        statuses = {r.name: r.status for r in store.jobs()}
        attempts = store.attempts("a") + store.attempts("b")
    finally:
        store.close()
    # Interrupted, not killed on purpose: their attempts were killed, the jobs are pending again.
    assert statuses == {"a": JobStatus.PENDING, "b": JobStatus.PENDING, "c": JobStatus.PENDING}
    assert [(a.status, a.reason) for a in attempts] == [(JobStatus.KILLED, "interrupted")] * 2
    assert not (attempt_dir(batches, "ctrlc", "c", 1)).exists()
    for pid in pids:
        assert group_gone(pid)

    (tmp_path / "go").touch()
    resumed = hyperctl("batch", "resume", "ctrlc")
    assert resumed.returncode == 0, resumed.stderr
    assert "hyperctl: batch ctrlc finished" in resumed.stderr and "3 succeeded" in resumed.stderr


# -- 6. timeout --------------------------------------------------------------------------------------------
def test_timeout_ends_the_job_as_timeout(runs: Runs, batches: Path) -> None:
    config = runs.config(batch("timeout", job("slow", "sleep 30", timeout=0.5)))
    result = hyperctl("run", "--config", str(config), timeout=DEADLINE)
    assert result.returncode == 1, result.stderr
    assert "[1/1] slow timeout" in result.stderr
    store = open_store(batches, "timeout")
    try:
        record = store.job("slow")
        batch_status = store.batch_status()
    finally:
        store.close()
    assert record is not None and record.status == JobStatus.TIMEOUT
    assert record.last is not None and record.last.reason == "timeout"
    assert batch_status == BatchStatus.FAILED


# -- 7. one daemon per batch ----------------------------------------------------------------------------
def test_a_second_run_of_the_same_batch_is_refused(runs: Runs) -> None:
    doc = batch("twice", job("sleeper", "sleep 60", kill_grace=0))
    first, portal, token = runs.serve(doc)
    running_view(portal, token, "sleeper")

    second = runs.start(doc)
    code, stderr = finish(second)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "already being run by pid" in lines[0]
    assert lines[0].split("already being run by pid")[1].split()[0] == str(first.pid)

    # The first run goes on, untouched.
    assert first.poll() is None
    assert job_view(portal, token, "sleeper")["status"] == "running"


# -- 8. the default port -----------------------------------------------------------------------------------
def read_until_portal(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """Like wait_for_portal, but keeps the lines printed before the API address."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if "API at " in line:
            return line.split("API at ", 1)[1].strip(), lines
    raise AssertionError(f"hyperctl run ended before serving (exit {proc.wait()}): {lines}")


def test_two_batches_side_by_side_when_the_default_port_is_taken(runs: Runs, tmp_path: Path) -> None:
    """Port 8060 held (by this test, or already by something else): both batches move off it,
    say so with the port they took, and run at the same time."""
    blocker = socket.socket()
    # As a server binds: a connection an earlier test's daemon closed on 8060 (TIME_WAIT, a minute)
    # must not pass for "held" here, since the daemon, binding the same way, would take the port.
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", DEFAULT_PORT))
        blocker.listen()
    except OSError:
        pass  # something else holds it: taken all the same
    mark_a, mark_b = tmp_path / "a-runs", tmp_path / "b-runs"

    def overlapping(name: str, mine: Path, other: Path) -> dict[str, Any]:
        command = f"touch {shlex.quote(str(mine))} && {wait_for_file(other)}"
        return {"name": name, "jobs": [job("meet", command)]}

    try:
        proc_a = runs.start(overlapping("port-a", mark_a, mark_b))
        portal_a, lines_a = read_until_portal(proc_a)
        proc_b = runs.start(overlapping("port-b", mark_b, mark_a))
        portal_b, lines_b = read_until_portal(proc_b)
        code_a, rest_a = finish(proc_a)
        code_b, rest_b = finish(proc_b)
    finally:
        blocker.close()

    assert code_a == 0, "\n".join(lines_a) + rest_a
    assert code_b == 0, "\n".join(lines_b) + rest_b
    assert portal_a != portal_b
    for portal, lines in ((portal_a, lines_a), (portal_b, lines_b)):
        port = int(portal.rsplit(":", 1)[1])
        assert port != DEFAULT_PORT
        assert f"hyperctl: port {DEFAULT_PORT} is in use; the API listens on port {port} instead" in lines


# -- 9. exit_on_finish ---------------------------------------------------------------------------------
def test_with_exit_on_finish_false_the_api_stays_up_after_the_batch(runs: Runs) -> None:
    doc = batch("stays", job("quick", "true"))
    doc["daemon"]["exit_on_finish"] = False
    proc, portal, token = runs.serve(doc)

    wait_for(lambda: call(portal, f"{API}/batch", token)[1]["status"] == "finished", "the batch to finish")
    assert job_view(portal, token, "quick")["status"] == "succeeded"
    assert proc.poll() is None

    proc.send_signal(signal.SIGINT)
    code, stderr = finish(proc)
    assert code == 0, stderr  # every job succeeded; stopping the daemon is no failure


def test_batch_kill_stops_a_daemon_kept_up_after_the_batch(runs: Runs) -> None:
    doc = batch("stays", job("quick", "true"))
    doc["daemon"]["exit_on_finish"] = False
    proc, portal, token = runs.serve(doc)
    wait_for(lambda: call(portal, f"{API}/batch", token)[1]["status"] == "finished", "the batch to finish")

    start = time.monotonic()
    killed = hyperctl("batch", "kill", "stays")

    assert killed.returncode == 0, killed.stderr
    assert "batch stays killed" in killed.stderr
    assert time.monotonic() - start < 10  # not the CLI's 120 s wait for a daemon that never ends
    code, stderr = finish(proc)
    assert code == 0, stderr  # it had finished: the kill only stopped its daemon


def test_a_long_poll_under_way_when_the_daemon_stops_gets_the_batch_as_it_ended(runs: Runs) -> None:
    """Not an error once the store is closed: the daemon answers its waiting polls as it stops."""
    import threading

    _, portal, token = runs.serve(batch("ends", job("j", "true"), daemon={"port": 0, "exit_on_finish": False}))
    wait_for(lambda: call(portal, f"{API}/batch", token)[1]["status"] != "running", "the batch to end")
    version = call(portal, f"{API}/batch", token)[1]["version"]  # nothing will change it: the poll waits
    answers: list[tuple[int, dict[str, Any]]] = []
    poll = threading.Thread(
        target=lambda: answers.append(call(portal, f"{API}/batch?wait_after={version}&timeout=20", token))
    )
    poll.start()
    time.sleep(0.3)  # the poll is waiting in the daemon

    started = time.monotonic()
    kill = urllib.request.Request(
        f"{portal}{API}/batch/kill", data=b"", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with _OPENER.open(kill, timeout=DEADLINE) as answer:
        assert answer.status == 202
    poll.join(timeout=30)

    assert answers and answers[0][0] == 200, answers
    assert answers[0][1]["status"] == "finished"
    assert time.monotonic() - started < 5  # at once, not after its timeout
