"""The way in from Hypernets: its own job client, as installed from PyPI, reads its params from our
daemon; the portal that makes it work opens the API to that job alone."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import attempt_dir, batch_token, hyperctl, read_stdout, wait_for, write_json
from tests.hypernets_venv import venv_python
from tests.sshhosts import Host, hosts_for_module
from tests.test_api import Runs, batch, finish, job, wait_for_file

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# What the documentation of Hypernets' hyperctl tells a job to write.
JOB_SCRIPT = textwrap.dedent("""\
    import json
    from hypernets import hyperctl

    params = hyperctl.get_job_params()
    print(json.dumps(params))
""")


@pytest.fixture(scope="module")
def hypernets_python() -> Path:
    """The python of a venv with `hypernets` from PyPI (built once, cached outside the repo)."""
    return venv_python()


def printed(batches: Path, batch: str, job: str) -> str:
    """What a running job printed so far (nothing before it starts)."""
    stdout = attempt_dir(batches, batch, job) / "stdout"
    return stdout.read_text().strip() if stdout.exists() else ""


def get(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """A request as Hypernets' client makes it (no token): its status and JSON body."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.mark.timeout(300)  # a first run builds the venv (about 30 s, more with a cold download cache)
def test_hypernets_own_client_reads_each_job_s_params(hypernets_python: Path, tmp_path: Path, batches: Path) -> None:
    (tmp_path / "train.py").write_text(JOB_SCRIPT)
    command = f"{shlex.quote(str(hypernets_python))} train.py"
    jobs = [job(name, command, params, working_dir=str(tmp_path)) for name, params in JOBS.items()]
    config = write_json(tmp_path / "b.json", batch("hn", *jobs))

    result = hyperctl("run", "--config", str(config), timeout=120)

    stderr = {name: (attempt_dir(batches, "hn", name) / "stderr").read_text() for name in JOBS}
    assert result.returncode == 0, (result.stderr, stderr)
    assert {name: json.loads(read_stdout(batches, "hn", name)) for name in JOBS} == JOBS


JOBS = {"lr-1": {"learning_rate": 0.1, "tags": ["a b", "$(x)"]}, "lr-2": {"learning_rate": 0.2, "tags": []}}


def test_a_job_s_portal_reads_that_job_alone(
    runs: Runs,  # noqa: F811
    hypernets_python: Path,
    tmp_path: Path,
    batches: Path,
) -> None:
    gate = tmp_path / "gate"
    command = f'echo "$HYPERCTL_SERVER_PORTAL"; {wait_for_file(gate)}'
    proc, api, token = runs.serve(batch("p", *(job(name, command, params) for name, params in JOBS.items())))
    portal = {name: wait_for(lambda n=name: printed(batches, "p", n), f"{name} to start") for name in JOBS}
    assert portal["lr-1"].startswith(f"{api}/portal/job.lr-1.")

    status, body = get(f"{portal['lr-1']}/hyperctl/api/job/lr-1")
    assert status == 200 and body["code"] == 0 and body["data"]["params"] == JOBS["lr-1"]
    refused = {
        "another job": f"{portal['lr-1']}/hyperctl/api/job/lr-2",
        "no such job": f"{portal['lr-1']}/hyperctl/api/job/nope",
        "the job list": f"{portal['lr-1']}/hyperctl/api/job",
        "a made-up token": f"{api}/portal/job.lr-2.{'0' * 64}/hyperctl/api/job/lr-2",
        "the batch token": f"{api}/portal/{token}/hyperctl/api/job/lr-2",
        "no token": f"{api}/portal//hyperctl/api/job/lr-2",
    }
    for what, url in refused.items():
        status, body = get(url)
        assert status in (401, 404) and body["code"] == -1 and body["message"], (what, status, body)
        assert "params" not in json.dumps(body), what
    for url in (f"{portal['lr-1']}/hyperctl/api/job/lr-1/kill", f"{portal['lr-1']}/hyperctl/api/job/lr-1"):
        status, body = get(url, "POST")
        assert status in (404, 405) and body["code"] == -1, (url, status, body)

    # Hypernets' own client, given another job's name: an error that says why (not KeyError: 'code').
    env = {**os.environ, "HYPERCTL_JOB_NAME": "lr-2", "HYPERCTL_SERVER_PORTAL": portal["lr-1"]}
    script = "from hypernets import hyperctl; hyperctl.get_job_params()"
    other = subprocess.run([str(hypernets_python), "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 1
    assert "RuntimeError" in other.stderr and "this portal reads job 'lr-1' only" in other.stderr, other.stderr

    gate.touch()
    assert finish(proc)[0] == 0
    assert hyperctl("job", "list", "-b", "p").returncode == 0


# -- a remote job, with the API where the hosts reach it ---------------------------------------------
REMOTE_ROOT = f".hyperctl-test-hn-{os.getpid()}"


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found[0]


@pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")
def test_a_remote_job_reads_its_params_through_its_portal_which_no_command_line_shows(
    host: Host, shared: Path, tmp_path: Path, batches: Path
) -> None:
    if host.namespace is None:
        pytest.skip("needs the hosts' network namespaces (root): on loopback aliases the API is on the same host")
    gate = shared / "gate"
    # The request Hypernets' client makes, with the host's own python3 (no hypernets there).
    ask = (
        "import os, urllib.request; "
        "print(urllib.request.urlopen(os.environ['HYPERCTL_SERVER_PORTAL'] + '/hyperctl/api/job/' "
        "+ os.environ['HYPERCTL_JOB_NAME']).read().decode())"
    )
    alias = "from hyperctl import hyperctl; print(hyperctl.get_job_params())"  # hyperctl is not installed there
    command = f"{wait_for_file(gate)} && /usr/bin/python3 -S -c {shlex.quote(ask)} && /usr/bin/python3 -S -c '{alias}'"
    bridge = host.address.rsplit(".", 1)[0] + ".1"  # where the hosts reach this machine
    conf = {"machines": [host.machine()], "known_hosts": str(host.known_hosts), "remote_root": REMOTE_ROOT}
    doc = {
        "name": "r",
        "jobs": [job("j", command, {"lr": 0.5})],
        "daemon": {"host": bridge, "port": 0},
        "backend": {"type": "remote", "conf": conf},
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(tmp_path / "b.json", doc))],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: hyperctl("job", "list", "-b", "r").stdout.count("running"), "the job to start")
        token = batch_token(batches, "r")
        command_lines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
        assert not [c for c in command_lines if ".job.j." in c or token in c]
        gate.touch()
        assert run.wait(timeout=30) == 0
    finally:
        if run.poll() is None:
            run.kill()
    answer, params = read_stdout(batches, "r", "j").splitlines()
    assert json.loads(answer)["code"] == 0 and json.loads(answer)["data"]["params"] == {"lr": 0.5}
    assert params == "{'lr': 0.5}"
