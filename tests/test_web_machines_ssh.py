"""The machines part for jobs on SSH hosts (web/remoteuse.py): what each job uses, read over the
daemon's connection to the host (real sshd hosts in network namespaces), GPUs from an nvidia-smi
on the machine's PATH (a stand-in script), and a host that does not answer said so."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, wait_for
from tests.sshhosts import Host, hosts_for_module
from tests.test_ssh import remote_batch
from tests.test_web_actions import detached, logged_in, running
from tests.test_web_machines import SMI

REMOTE_ROOT = f".hyperctl-test-web-machines-ssh-{os.getpid()}"


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    with hosts_for_module(2, REMOTE_ROOT) as found:
        yield found


def machine_row(part: str, host: Host) -> str:
    row = re.search(rf'<tr class="machine" data-machine="{re.escape(host.address)}">(.*?)</tr>', part, re.S)
    assert row is not None, part
    return row.group(1)


def job_row(part: str, job: str) -> str:
    row = re.search(rf'<tr class="job-use" data-job="{job}">(.*?)</tr>', part, re.S)
    assert row is not None, part
    return row.group(1)


def batch_on(hosts: list[Host], name: str, jobs: dict[str, str], **machine: Any) -> dict[str, Any]:
    return remote_batch(
        hosts,
        [{"name": j, "execution": {"command": c}} for j, c in jobs.items()],
        name=name,
        remote_root=REMOTE_ROOT,
        machines=[h.machine(**machine) for h in hosts],
    )


def test_a_remote_jobs_cpu_memory_and_the_hosts_gpus_are_sampled_over_ssh(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    folder, calls, pids = shared / "bin", shared / "smi-calls", shared / "pids"
    folder.mkdir()
    pids.mkdir(mode=0o777)
    os.chmod(pids, 0o777)  # the host's user writes its pid there
    smi = folder / "nvidia-smi"
    smi.write_text(SMI.format(calls=calls, pids=pids))
    smi.chmod(0o755)
    spin = f"echo $$ > {pids}/busy; while :; do :; done"
    on_path = {"PATH": f"{folder}:/usr/bin:/bin"}  # the machine's environment: where its nvidia-smi is
    doc = batch_on(hosts[:1], "rs", {"idle": "sleep 300", "busy": spin}, cpu=4, gpu=[0, 1], environments=on_path)
    page = logged_in(detached(shared, doc))
    running("rs", "idle", "busy")
    wait_for(lambda: (pids / "busy").exists(), "the busy job's pid")

    part = page.get("/b/rs/machines?part=machines").text

    machine = machine_row(part, hosts[0])
    assert "not sampled" not in part, part
    assert '<span class="gpu" data-gpu="0">GPU 0: 35 % · 1200/16000 MiB</span>' in machine  # the host's nvidia-smi
    assert '<span class="gpu" data-gpu="1">GPU 1: n/a · 5000/16000 MiB</span>' in machine
    busy = job_row(part, "busy")
    cpu = re.search(r'<td class="num cpu-use">(\d+\.\d) %</td>', busy)
    assert cpu is not None and float(cpu.group(1)) > 5, busy  # a spinning shell, read from its /proc
    assert re.search(r'<td class="num rss">\d+\.\d (KB|MB)</td>', busy), busy
    assert "<td>700 MiB</td>" in busy  # its GPU memory: nvidia-smi's compute apps name its pid
    idle = job_row(part, "idle")
    assert '<td class="num cpu-use">0.0 %</td>' in idle and "MiB" not in idle
    asked = calls.read_text().count("--query-gpu")
    page.get("/b/rs/machines?part=machines")  # within 5 s: the same sample, the host not asked again
    assert calls.read_text().count("--query-gpu") == asked == 1
    hyperctl("batch", "kill", "rs")


def test_a_partitioned_host_is_said_not_to_answer_and_a_crashed_one_down(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    doc = batch_on(hosts[:1], "rp", {"r1": "sleep 300"})
    doc["backend"]["conf"]["liveness_interval"] = 60  # the daemon keeps the silent host up meanwhile
    page = logged_in(detached(shared, doc))
    running("rp", "r1")
    hosts[0].partition()
    try:
        started = time.monotonic()
        part = page.get("/b/rp/machines?part=machines").text
        assert time.monotonic() - started < 10  # the timeout, not a hang
        machine = machine_row(part, hosts[0])
        assert f"not sampled: {hosts[0].address} did not answer within 5 s" in machine, part
        assert page.get("/b/rp").status == 200  # the daemon serves on meanwhile
    finally:
        hosts[0].heal()
    hyperctl("batch", "kill", "rp")


def test_a_crashed_host_is_said_down_not_sampled_and_the_other_sampled(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    doc = batch_on(hosts, "rc", {"r1": "sleep 300", "r2": "sleep 300"}, cpu=1)  # one job on each host
    doc["backend"]["conf"]["liveness_interval"] = 1
    page = logged_in(detached(shared, doc))
    running("rc", "r1", "r2")
    hosts[1].crash()
    try:
        wait_for(lambda: "state down" in machine_row(page.get("/b/rc/machines?part=machines").text, hosts[1]), "down")
        part = page.get("/b/rc/machines?part=machines").text
        assert "not sampled: the machine is down" in machine_row(part, hosts[1]), part
        assert '<td class="num cpu-use">0.0 %</td>' in machine_row(part, hosts[0]), part
    finally:
        hosts[1].start_sshd()
    hyperctl("batch", "kill", "rc")
