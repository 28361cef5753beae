"""The job page's log of a job running on a remote machine (real sshd hosts): read on its host by
the batch's daemon while it runs; `hyperctl ui`, which reaches no host, says where it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import attempt_dir, wait_for, write_json
from tests.sseclient import Events, daemon_session
from tests.sshhosts import Host, hosts_for_module
from tests.test_ssh import REMOTE_ROOT, job, remote_batch, tails_on
from tests.webclient import ui


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found


def test_a_remote_job_s_log_is_read_on_its_host_while_it_runs(hosts: list[Host], shared: Path, batches: Path) -> None:
    gate = shared / "gate"
    command = f"echo one; while [ ! -e {gate} ]; do sleep 0.05; done; echo two"
    doc = remote_batch(hosts, [job(command, name="j")])
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        session = daemon_session(run)
        log = Events(session, "/ui/log?batch=r&job=j")
        head = log.until(lambda e: e.kind == "head")
        assert head.data["remote"] is True and head.data["host"] == hosts[0].address
        log.until(lambda e: e.kind == "text")
        assert log.text() == "one\n"
        assert not (attempt_dir(batches, "r", "j") / "stdout").exists()  # nothing came home yet
        # `hyperctl ui` reaches no host: it says where the job runs, and that its log comes home.
        with ui(batches) as served:
            elsewhere = Events(served.session(), "/ui/log?batch=r&job=j")
            end = elsewhere.until(lambda e: e.kind == "end")
            assert elsewhere.seen[0].data == (
                f"job j runs on {hosts[0].address}: its stdout comes home when it ends (this page reads it then)"
            )
            assert end.data["elsewhere"] is True and elsewhere.text() == ""
        # A page that leaves stops the `tail` reading its log on the host.
        other = Events(session, "/ui/log?batch=r&job=j&stream=stderr")
        other.until(lambda e: e.kind == "head")
        wait_for(lambda: tails_on("stderr"), "a tail of stderr on the host")
        other.close()
        wait_for(lambda: not tails_on("stderr"), "the host's tail of stderr to stop")
        gate.touch()
        list(log)  # the stream ends with the job there (or as its batch's daemon stops)
        assert log.text() == "one\ntwo\n"
        assert run.wait(timeout=30) == 0
    finally:
        gate.touch()
        if run.poll() is None:
            run.kill()
        run.communicate()


pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")
