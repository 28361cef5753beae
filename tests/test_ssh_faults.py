"""A machine that dies mid-job, against real sshd hosts in network namespaces, no mocks.

Each fault (a host crash, sshd stopped, a partition, every machine down) is injected while a
job runs; the test then checks what a user sees: `hyperctl run`'s exit code and summary, every
job's status and attempts from `hyperctl job list/describe --json`. These hosts are their own
(3, module-scoped): a fault never reaches test_ssh.py's hosts, and every host is brought back
(sshd started, partition healed) after each test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hyperctl, wait_for, write_json
from tests.sshhosts import Host, namespaces_work, ssh_hosts

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")

DETECTED_WITHIN = 30.0  # seconds: the promise for a machine that dies mid-job
LIVENESS = 1  # seconds: backend.conf.liveness_interval, small so that silence is noticed fast
FOREVER = "sleep 600"  # what a first attempt does: it never ends on its own within a test


@pytest.fixture(scope="module")
def fault_hosts() -> Iterator[list[Host]]:
    if not namespaces_work():
        pytest.skip("needs root and network namespaces to crash or partition a host")
    workdir = Path(tempfile.mkdtemp(prefix="hyperctl-faults-"))
    try:
        with ssh_hosts(3, workdir) as found:
            yield found
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def hosts(fault_hosts: list[Host]) -> Iterator[list[Host]]:
    """The hosts, each brought back after the test: partition healed, sshd running again."""
    yield fault_hosts
    for host in fault_hosts:
        host.heal()
        if not host.sshd_running():
            host.start_sshd()


def remote_batch(hosts: list[Host], shared: Path, jobs: list[dict[str, Any]], **conf: Any) -> dict[str, Any]:
    # A remote root of this test's own: another test run at once (same user, same home) never shares it.
    backend = {
        "type": "remote",
        "conf": {
            "machines": [h.machine(cpu=1) for h in hosts],  # one slot each: the tests count on it
            "known_hosts": str(hosts[0].known_hosts),
            "remote_root": str(shared / "remote"),
            **conf,
        },
    }
    return {"name": "f", "jobs": jobs, "daemon": {"port": 0}, "backend": backend}


def marked_job(name: str, started: Path, then: str, **fields: Any) -> dict[str, Any]:
    """A job that writes `<host address> <attempt> <job>` to `started` when it begins, then runs `then`."""
    command = f"echo $(hostname -I | cut -d' ' -f1) $HYPERCTL_ATTEMPT $HYPERCTL_JOB_NAME >> {started}; {then}"
    return {"name": name, "execution": {"command": command}, **fields}


def first_attempt_forever(shared: Path) -> str:
    """A first attempt never ends on its own (only noticing its machine died ends it), unless it
    begins after `shared/release` exists."""
    return f'if [ "$HYPERCTL_ATTEMPT" = 1 ] && [ ! -e {shared}/release ]; then {FOREVER}; fi; echo done'


def starts(started: Path) -> list[tuple[str, int, str]]:
    """Every attempt begun so far, as (host address, attempt number, job)."""
    if not started.exists():
        return []
    lines = [line.split() for line in started.read_text().splitlines()]
    return [(host, int(n), job) for host, n, job in lines]


def host_at(hosts: list[Host], address: str) -> Host:
    return next(h for h in hosts if h.address == address)


def start_run(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(run: subprocess.Popen[str], within: float) -> tuple[int, str]:
    """The run's exit code and stderr; fails (and stops it) if it does not end within `within` seconds."""
    try:
        _, err = run.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        run.kill()
        _, err = run.communicate()
        raise AssertionError(f"hyperctl run did not end within {within:.0f} s; it said:\n{err}") from None
    return run.returncode, err


def jobs(batch: str = "f") -> dict[str, dict[str, Any]]:
    listed = hyperctl("job", "list", "-b", batch, "--json")
    assert listed.returncode == 0, listed.stderr
    return {j["name"]: j for j in json.loads(listed.stdout)}


def attempts(job: str, batch: str = "f") -> list[tuple[str, str | None]]:
    described = hyperctl("job", "describe", "-b", batch, "-j", job, "--json")
    assert described.returncode == 0, described.stderr
    return [(a["status"], a["host"]) for a in json.loads(described.stdout)["attempts"]]


def test_a_host_crash_loses_the_attempt_and_it_runs_elsewhere(hosts: list[Host], shared: Path, batches: Path) -> None:
    """Every process of the host dies mid-job (sshd, sessions, the job): lost at once, retried on another."""
    started = shared / "started"
    doc = remote_batch(hosts[:2], shared, [marked_job("j", started, first_attempt_forever(shared), max_retries=1)])
    run = start_run(write_json(shared / "b.json", doc))
    (first, _, _), *_ = wait_for(lambda: starts(started), "the job to start")
    crashed, other = host_at(hosts, first), next(h for h in hosts[:2] if h.address != first)

    crashed.crash()
    crashed_at = time.monotonic()
    wait_for(lambda: len(starts(started)) == 2, "the job to run again", deadline=DETECTED_WITHIN)
    detected = time.monotonic() - crashed_at
    code, err = finish(run, within=20)

    assert code == 0, err
    assert starts(started) == [(crashed.address, 1, "j"), (other.address, 2, "j")]
    assert attempts("j") == [("lost", crashed.address), ("succeeded", other.address)]
    assert jobs()["j"]["status"] == "succeeded"
    assert hyperctl("job", "logs", "-b", "f", "-j", "j").stdout == "done\n"
    print(f"crash: the job began again {detected:.2f} s after")
    assert detected < 5, f"a crash closes the connection at once, yet the retry began only after {detected:.1f} s"


def test_sshd_stopped_mid_job_lets_its_jobs_finish(hosts: list[Host], shared: Path, batches: Path) -> None:
    """`systemctl stop ssh` on a machine is not its death: the open connection (and every session on it)
    goes on. The running job finishes and is recorded succeeded, it runs once, its output comes home,
    and the batch carries on; a new connection to that machine is refused, so the next batch's jobs
    go to the other machine and the summary says why."""
    started, gate = shared / "started", shared / "gate"
    wait_gate = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done"
    # One slot per machine: "a" and "b" hold both; "c", "d", "e" start only after the sshd stop.
    todo = [marked_job(n, started, wait_gate, max_retries=1) for n in "ab"]
    todo += [marked_job(n, started, "echo done", max_retries=1) for n in "cde"]
    doc = remote_batch(hosts[:2], shared, todo, liveness_interval=LIVENESS)
    run = start_run(write_json(shared / "b.json", doc))
    wait_for(lambda: len(starts(started)) == 2, "a and b to start")
    stopped = host_at(hosts, next(host for host, _, job in starts(started) if job == "a"))

    stopped.stop_sshd()
    time.sleep(2.5)  # more than two liveness intervals: the watchdog must not take the quiet for a death
    gate.touch()
    code, err = finish(run, within=20)

    assert code == 0, err
    assert not stopped.sshd_running()
    listed = jobs()
    assert {n: j["status"] for n, j in listed.items()} == dict.fromkeys("abcde", "succeeded")
    assert all(j["attempts"] == 1 for j in listed.values()), "a job ran twice"
    assert attempts("a") == [("succeeded", stopped.address)]
    assert sorted((job, n) for _, n, job in starts(started)) == [(job, 1) for job in "abcde"]
    assert all(hyperctl("job", "logs", "-b", "f", "-j", n).stdout == "done\n" for n in "abcde")
    assert "is down" not in err and "does not answer" not in err, err
    print(f"sshd stopped on {stopped.address}; where each job ran: {[(job, host) for host, _, job in starts(started)]}")

    # A new connection is needed now: refused at once; that machine takes no jobs, and the user is told.
    started.unlink()
    doc = remote_batch(hosts[:2], shared, [marked_job(f"n{i}", started, "echo done") for i in range(4)])
    again = hyperctl("run", "--config", str(write_json(shared / "b2.json", {**doc, "name": "f2"})), timeout=60)

    assert again.returncode == 0, again.stderr
    assert f"machine {stopped.address} is down: " in again.stderr
    assert "Connection refused" in again.stderr
    assert {host for host, _, _ in starts(started)} == {h.address for h in hosts[:2] if h is not stopped}
    assert {j["status"] for j in jobs("f2").values()} == {"succeeded"}


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed: apt-get install -y nftables")
def test_a_partition_is_noticed_by_the_watchdog_and_the_job_runs_elsewhere(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    """Every packet to and from the host is dropped: no error ever arrives; only the liveness check
    (every second here) notices. The attempt is lost, the job runs again on the other host."""
    started = shared / "started"
    doc = remote_batch(
        hosts[:2],
        shared,
        [marked_job("j", started, first_attempt_forever(shared), max_retries=1)],
        liveness_interval=LIVENESS,
    )
    run = start_run(write_json(shared / "b.json", doc))
    (first, _, _), *_ = wait_for(lambda: starts(started), "the job to start")
    cut, other = host_at(hosts, first), next(h for h in hosts[:2] if h.address != first)

    cut.partition()
    cut_at = time.monotonic()
    wait_for(lambda: len(starts(started)) == 2, "the job to run again", deadline=DETECTED_WITHIN)
    detected = time.monotonic() - cut_at
    code, err = finish(run, within=20)

    assert code == 0, err
    assert f"machine {cut.address} does not answer" in err
    assert starts(started) == [(cut.address, 1, "j"), (other.address, 2, "j")]
    assert attempts("j") == [("lost", cut.address), ("succeeded", other.address)]
    assert {j["status"] for j in jobs().values()} == {"succeeded"}
    assert hyperctl("job", "logs", "-b", "f", "-j", "j").stdout == "done\n"
    print(f"partition: the job began again {detected:.2f} s after")
    assert detected < 2 * LIVENESS + 1.5, (
        f"noticed {detected:.1f} s after the partition; promised: 2 x liveness_interval"
    )


@pytest.mark.parametrize("faults", [("crash", "crash"), ("crash", "partition"), ("partition", "partition")])
def test_every_machine_down_mid_batch_ends_it_failed_naming_each_reason(
    faults: tuple[str, str], hosts: list[Host], shared: Path, batches: Path
) -> None:
    """Both machines die while their jobs run, a third job waits: the batch ends, failed, soon; the
    summary names each machine and why; no job is left `running`, and resume can go on later."""
    if "partition" in faults and shutil.which("nft") is None:
        pytest.skip("nftables is not installed: apt-get install -y nftables")
    started = shared / "started"
    pair = hosts[1:]  # another pair than the other tests': each host gets its turn to die
    todo = [marked_job(f"j{i}", started, first_attempt_forever(shared), max_retries=2) for i in range(3)]
    run = start_run(write_json(shared / "b.json", remote_batch(pair, shared, todo, liveness_interval=LIVENESS)))
    wait_for(lambda: len(starts(started)) == 2, "a job to start on each machine")
    assert {host for host, _, _ in starts(started)} == {h.address for h in pair}

    for host, fault in zip(pair, faults):
        if fault == "crash":
            host.crash()
        else:
            host.partition()
    down_at = time.monotonic()
    code, err = finish(run, within=DETECTED_WITHIN)
    took = time.monotonic() - down_at

    assert code == 1, err
    assert "every machine is down; 3 jobs not started:" in err, err
    reasons = dict(line.strip().split(": ", 1) for line in err.split("not started:\n", 1)[1].splitlines())
    assert set(reasons) == {h.address for h in pair}, err
    described = json.loads(hyperctl("batch", "describe", "f", "--json").stdout)
    assert described["status"] == "failed"
    listed = jobs()
    assert not [n for n, j in listed.items() if j["status"] == "running"], listed
    # Not started again, so pending: what `batch resume` goes on with once the machines are back.
    assert {n: j["status"] for n, j in listed.items()} == dict.fromkeys(["j0", "j1", "j2"], "pending")
    ran = {n: attempts(n) for n in listed}
    assert sorted(map(len, ran.values())) == [0, 1, 1], ran  # the two that ran were lost; nothing ran again
    assert all(a == [("lost", a[0][1])] for a in ran.values() if a), ran
    assert len(starts(started)) == 2
    assert took < 10, f"the batch ended {took:.1f} s after its last machine died"
    print(f"{faults}: the batch ended {took:.2f} s after its machines died")

    for host in pair:
        host.heal()
        if not host.sshd_running():
            host.start_sshd()
    (shared / "release").touch()  # j2 has yet to run its first attempt: let it end
    resumed = hyperctl("batch", "resume", "f", timeout=60)

    assert resumed.returncode == 0, resumed.stderr
    assert {j["status"] for j in jobs().values()} == {"succeeded"}
    for host, fault in zip(pair, faults):
        # Why, in words: for a crashed host, what connecting to it met (refused, or reset by a dying sshd);
        # for a silent one, that it did not answer in time.
        why = rf"{host.user}@{host.address}:22: \S.*" if fault == "crash" else r"does not answer: \S.*"
        assert re.fullmatch(why, reasons[host.address]), f"{host.address}: {reasons[host.address]!r}\n{err}"
