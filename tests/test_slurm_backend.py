"""The Slurm backend on a real 4-node Slurm cluster (tests/slurmcluster.py): the same batch file
as for any backend but its `backend` section; every end state; kill; timeout; resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperctl.layout import BatchDir
from tests.conftest import attempt_dir, hyperctl, read_stdout, start_hyperctl, wait_for, write_json
from tests.slurmcluster import SlurmCluster


@pytest.fixture
def cluster(slurm: SlurmCluster, batches: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    """The session's cluster, its commands reachable by every hyperctl the test starts; the test's
    jobs cancelled at its end, whatever it left."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    yield slurm
    slurm.run("scancel", "--user", "root", check=False)


def slurm_batch(jobs: list[dict[str, Any]], name: str = "b", **conf: Any) -> dict[str, Any]:
    return {"name": name, "backend": {"type": "slurm", "conf": conf}, "daemon": {"port": 0}, "jobs": jobs}


def job(name: str, command: str, **fields: Any) -> dict[str, Any]:
    execution = {"command": command, **fields.pop("execution", {})}
    return {"name": name, "params": fields.pop("params", {}), "execution": execution, **fields}


def rows(batches: Path, query: str, name: str = "b") -> list[tuple[Any, ...]]:
    with sqlite3.connect(batches / name / ".hyperctl" / "state.db") as db:
        return db.execute(query).fetchall()


def run(tmp_path: Path, doc: dict[str, Any], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), timeout=timeout)


def test_twenty_jobs_run_on_the_cluster_with_params_and_exit_codes(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    echo = 'echo "$SLURMD_NODENAME $(python3 -c "import hyperctl; print(hyperctl.get_job_params()[\'k\'])")"'
    jobs = [job(f"j{k}", f"{echo}; exit $(( {k} % 5 == 4 ? 3 : 0 ))", params={"k": k}) for k in range(20)]

    result = run(tmp_path, slurm_batch(jobs, arrays="never"))

    assert result.returncode == 1, result.stderr
    ends = dict(rows(batches, "SELECT job, exit_code FROM attempts"))
    assert ends == {f"j{k}": 3 if k % 5 == 4 else 0 for k in range(20)}
    nodes = set()
    for k in range(20):
        node, k_seen = read_stdout(batches, "b", f"j{k}").split()
        assert k_seen == str(k)
        nodes.add(node)
    assert nodes <= set(cluster.nodes) and len(nodes) >= 2
    # Where each ran (the node Slurm chose) and its Slurm id are in the store.
    placed = rows(batches, "SELECT host, ref FROM attempts")
    assert {host for host, _ in placed} == nodes
    assert all(ref and ref.isdigit() for _, ref in placed)
    assert "[20/20]" in result.stderr and "j4: failed (exit 3)" in result.stderr


def test_a_sweep_of_100_goes_as_one_job_array(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    jobs = [job(f"j{k}", 'echo "$HYPERCTL_JOB_NAME $SLURM_ARRAY_TASK_ID"', params={"k": k}) for k in range(100)]

    result = run(tmp_path, slurm_batch(jobs, max_jobs=100))

    assert result.returncode == 0, result.stderr
    refs = [ref for (ref,) in rows(batches, "SELECT ref FROM attempts")]
    assert len({ref.split("_")[0] for ref in refs}) == 1, "one sbatch for the whole sweep"
    assert sorted(int(ref.split("_")[1]) for ref in refs) == list(range(100))
    for k in (0, 57, 99):
        name, task = read_stdout(batches, "b", f"j{k}").split()
        assert name == f"j{k}" and task.isdigit()


def test_arrays_are_cut_at_array_max_and_throttled(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    jobs = [job(f"j{k}", "true", params={"k": k}) for k in range(70)]

    result = run(tmp_path, slurm_batch(jobs, max_jobs=100, array_max=30, max_running=8))

    assert result.returncode == 0, result.stderr
    arrays: dict[str, list[int]] = {}
    for (ref,) in rows(batches, "SELECT ref FROM attempts"):
        array, task = ref.split("_")
        arrays.setdefault(array, []).append(int(task))
    assert sorted(sorted(tasks) for tasks in arrays.values()) == [list(range(10)), list(range(30)), list(range(30))]
    for array in arrays:
        assert "ArrayTaskThrottle=8" in cluster.run("scontrol", "-o", "show", "job", array).stdout


def test_gpus_are_slurms_and_never_shared(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    # 8 one-GPU jobs on 4 nodes of 2 GPUs: all at once, each on its own (node, GPU).
    hold = f"echo $CUDA_VISIBLE_DEVICES $HYPERCTL_GPUS; touch {tmp_path}/$HYPERCTL_JOB_NAME; "
    hold += f"for i in $(seq 300); do [ $(ls {tmp_path} | grep -c '^g') -ge 8 ] && exit 0; sleep 0.1; done; exit 1"
    jobs = [job(f"g{k}", hold, resource={"gpu": 1}) for k in range(8)]

    result = run(tmp_path, slurm_batch(jobs))

    assert result.returncode == 0, result.stderr
    placed = rows(batches, "SELECT host, gpus FROM attempts")
    assert len(set(placed)) == 8, placed
    for k in range(8):
        seen, ours = read_stdout(batches, "b", f"g{k}").split()
        assert seen == ours and len(seen.split(",")) == 1


def test_end_states(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    hog = "python3 -c 'b = bytearray(400 * 2**20); import time; time.sleep(5)'"
    jobs = [
        job("three", "exit 3"),
        job("signal", "kill -KILL $$"),
        job("oom", hog, resource={"ram": 100}),
        job("gpus", "true", resource={"gpu": 3}, max_retries=2),  # nodes have 2: sbatch refuses at once
        job("cancelled", f"touch {tmp_path}/cancel-me; sleep 60"),
    ]
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", slurm_batch(jobs))))
    # Cancelled from outside hyperctl, by Slurm's own scancel.
    wait_for(lambda: (tmp_path / "cancel-me").exists(), "the job to run", 60)
    (ref,) = wait_for(lambda: rows(batches, "SELECT ref FROM attempts WHERE job = 'cancelled'"), "its id")[0]
    cluster.run("scancel", ref)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 1, err
    ends = {job: rest for job, *rest in rows(batches, "SELECT job, status, exit_code, reason FROM attempts")}
    assert ends["three"] == ["failed", 3, None]
    # Its launcher killed (the job's $$ is the launcher's): no exit code, the signal, as locally.
    assert rows(batches, "SELECT status, exit_code, signal FROM attempts WHERE job = 'signal'") == [("failed", None, 9)]
    assert ends["oom"][0] == "failed"
    assert ends["oom"][1] == 137 or "out of memory" in (ends["oom"][2] or ""), ends["oom"]
    assert ends["gpus"][0] == "failed" and "Requested node configuration is not available" in ends["gpus"][2]
    assert rows(batches, "SELECT attempts FROM jobs WHERE name = 'gpus'") == [(1,)], "refused: not retried"
    assert ends["cancelled"][0] == "killed"
    assert "gpus: could not start" in err


def test_a_working_dir_gone_when_the_job_starts_fails_it(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # One job at a time (max_jobs: 1): the first removes the folder the second starts in.
    jobs = [job("remover", f"rmdir {work}"), job("w", "true", execution={"working_dir": str(work)})]

    result = run(tmp_path, slurm_batch(jobs, max_jobs=1))

    assert result.returncode == 1
    assert rows(batches, "SELECT job, status, exit_code FROM attempts ORDER BY job") == [
        ("remover", "succeeded", 0),
        ("w", "failed", 126),
    ]


def test_kill_ends_the_whole_process_tree_within_its_grace(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    # The job leaves a grandchild behind and cleans up for 1 s on TERM: the kill waits for it.
    tree = f"sleep 300 & trap 'echo cleaned > {tmp_path}/cleaned; exit 5' TERM; echo $! > {tmp_path}/child; wait"
    doc = slurm_batch([job("tree", tree, execution={"kill_grace": 10}), job("stays", "sleep 300")])
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    wait_for(lambda: (tmp_path / "child").exists(), "the job to run", 60)

    killed = hyperctl("job", "kill", "b", "tree")

    assert killed.returncode == 0, killed.stderr
    assert rows(batches, "SELECT status, exit_code FROM attempts WHERE job = 'tree'") == [("killed", 5)]
    assert (tmp_path / "cleaned").read_text() == "cleaned\n"
    child = int((tmp_path / "child").read_text())
    wait_for(lambda: not os.path.exists(f"/proc/{child}"), "the job's child to be gone", 10)
    # The batch kill: one scancel for every job left.
    assert hyperctl("batch", "kill", "b").returncode == 0
    assert proc.wait(timeout=60) != 0
    assert rows(batches, "SELECT status FROM jobs WHERE name = 'stays'") == [("killed",)]
    # Nothing of the batch left in Slurm (once the last job's processes are cleaned up: COMPLETING).
    squeue = ["squeue", "-h", "--name", f"hyperctl.{_key(batches)}"]
    wait_for(lambda: cluster.run(*squeue).stdout == "", "the batch's jobs to leave Slurm's queue", 15)


def test_timeout_is_hyperctls_not_slurms_minute(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    doc = slurm_batch([job("slow", "sleep 120", execution={"timeout": 2, "kill_grace": 1})])
    started = time.monotonic()

    result = run(tmp_path, doc)

    assert result.returncode == 1
    assert time.monotonic() - started < 30, "Slurm's own limit would take 60 s or more"
    assert rows(batches, "SELECT status FROM attempts") == [("timeout",)]


def test_resume_after_the_daemon_is_killed_runs_nothing_twice(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    log = f"echo $HYPERCTL_JOB_NAME >> {ledger}"

    def held(name: str, until: str, **fields: Any) -> dict[str, Any]:
        return job(name, f"{log}; while [ ! -e {until} ]; do sleep 0.1; done", **fields)

    # At the crash: "ends" runs (and ends before the resume); "runs" and three more hold every GPU of
    # the cluster (4 nodes of 2), so "waits" waits in Slurm's queue; "later" never reached Slurm (max_jobs: 6).
    gpus = {"resource": {"gpu": 2}}
    jobs = [
        held("ends", f"{gate}.1"),
        *(held(name, f"{gate}.2", **gpus) for name in ("runs", "h2", "h3", "h4")),
        job("waits", log, **gpus),
        job("later", log),
    ]
    daemon = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", slurm_batch(jobs, max_jobs=6))))
    wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) == 5, "five jobs to run", 60)
    (waiting,) = wait_for(lambda: rows(batches, "SELECT ref FROM attempts WHERE job = 'waits'"), "waits' id")[0]
    assert cluster.job_state(waiting) == "PENDING"
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    (tmp_path / "gate.1").touch()  # "ends" ends while no daemon watches
    wait_for(lambda: (attempt_dir(batches, "b", "ends") / "exitcode").exists(), "ends to end", 30)

    resumed = start_hyperctl("batch", "resume", "b")
    time.sleep(2)
    (tmp_path / "gate.2").touch()
    _, err = resumed.communicate(timeout=120)

    assert resumed.returncode == 0, err
    names = ["ends", "h2", "h3", "h4", "later", "runs", "waits"]
    assert sorted(ledger.read_text().split()) == names
    assert rows(batches, "SELECT job, n, status FROM attempts ORDER BY job") == [(n, 1, "succeeded") for n in names]


def test_resume_finds_jobs_whose_id_never_reached_the_store_and_kill_needs_no_daemon(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    # Two jobs of one shape (one array) and one alone; the daemon dies as if between sbatch and
    # saving the ids: the store has none. Resume finds each by what sbatch was told (--comment).
    wait = f"touch {tmp_path}/$HYPERCTL_JOB_NAME; sleep 300"
    jobs = [job("a1", wait), job("a2", wait), job("alone", wait, resource={"cpu": 2})]
    daemon = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", slurm_batch(jobs))))
    wait_for(lambda: all((tmp_path / name).exists() for name in ("a1", "a2", "alone")), "the jobs to run", 60)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    refs = dict(rows(batches, "SELECT job, ref FROM attempts"))
    for name in refs:
        (attempt_dir(batches, "b", name) / "slurm").unlink()  # no trace on disk either: squeue alone tells
    with sqlite3.connect(batches / "b" / ".hyperctl" / "state.db") as db:
        db.execute("UPDATE attempts SET ref = NULL")

    killed = hyperctl("batch", "kill", "b")  # no daemon: hyperctl finds the jobs in Slurm and cancels them

    assert killed.returncode == 0, killed.stderr
    assert dict(rows(batches, "SELECT job, ref FROM attempts")) == refs
    assert rows(batches, "SELECT DISTINCT status FROM attempts") == [("killed",)]
    squeue = ["squeue", "-h", "--name", f"hyperctl.{_key(batches)}"]
    wait_for(lambda: cluster.run(*squeue).stdout == "", "the batch's jobs to leave Slurm's queue", 15)


def test_a_node_crash_loses_the_job_and_its_retry_runs_elsewhere(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    log = f'echo "$HYPERCTL_ATTEMPT $SLURMD_NODENAME" >> {tmp_path}/ran'
    command = f'{log}; [ "$HYPERCTL_ATTEMPT" = 2 ] || sleep 300'
    # Not on the first node, which shares this machine's namespace (a crash kills a namespace).
    doc = slurm_batch([job("victim", command, max_retries=1)], sbatch_args=[f"--exclude={cluster.nodes[0]}"])
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    first = wait_for(lambda: (tmp_path / "ran").exists() and (tmp_path / "ran").read_text().split(), "it to run", 60)
    node = first[1]
    try:
        cluster.crash(node)
        _, err = proc.communicate(timeout=120)
    finally:
        cluster.revive(node, within=60)

    assert proc.returncode == 0, err
    assert rows(batches, "SELECT n, status, host FROM attempts ORDER BY n") == [
        (1, "lost", node),
        (2, "succeeded", (tmp_path / "ran").read_text().split()[3]),
    ]
    assert (tmp_path / "ran").read_text().split()[3] != node


def test_a_preempted_job_is_lost_and_runs_again_elsewhere(cluster: SlurmCluster, batches: Path, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    command = f'echo "$HYPERCTL_ATTEMPT $SLURMD_NODENAME" >> {ran}; [ "$HYPERCTL_ATTEMPT" = 2 ] || sleep 300'
    # The whole node (4 CPUs): a job of the higher-priority partition can only run by preempting it.
    doc = slurm_batch([job("low", command, max_retries=1, resource={"cpu": 4})])
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    node = wait_for(lambda: ran.exists() and ran.read_text().split(), "it to run", 60)[1]

    cluster.sbatch("-p", "high", "-w", node, "--cpus-per-task=4", "-o", "/dev/null", "--wrap", "sleep 1")
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 0, err
    second = ran.read_text().split()[3]
    assert second != node
    assert rows(batches, "SELECT n, status, host FROM attempts ORDER BY n") == [
        (1, "lost", node),
        (2, "succeeded", second),
    ]


def test_a_job_slurm_requeues_is_the_same_job_in_a_new_attempt(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    restarts = "${SLURM_RESTART_COUNT:-0}"
    command = f'echo "$HYPERCTL_ATTEMPT {restarts}" >> {ran}; [ "{restarts}" = 1 ] || sleep 300'
    doc = slurm_batch([job("low", command, resource={"cpu": 4})], requeue=True)  # max_retries 0: Slurm's doing
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    placed = "SELECT host FROM attempts WHERE host != 'slurm-queue'"
    node = wait_for(lambda: ran.exists() and rows(batches, placed), "it to run", 60)[0][0]
    (ref,) = rows(batches, "SELECT ref FROM attempts")[0]

    cluster.sbatch("-p", "high", "-w", node, "--cpus-per-task=4", "-o", "/dev/null", "--wrap", "sleep 1")
    # Preempted and requeued: Slurm holds it about two minutes before it may run again; now.
    requeued = ("PENDING", "1")  # not while it is still COMPLETING: the requeue would set its start again
    wait_for(lambda: (cluster.job_state(ref), cluster.job_field(ref, "Restarts")) == requeued, "the requeue", 60)
    cluster.run("scontrol", "update", f"jobid={ref}", "StartTime=now")
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 0, err
    assert ran.read_text().split() == ["1", "0", "2", "1"]
    assert rows(batches, "SELECT n, status, reason, ref FROM attempts ORDER BY n") == [
        (1, "lost", "requeued", ref),
        (2, "succeeded", None, ref),
    ]
    assert read_stdout(batches, "b", "low", 2) == ""


def test_a_job_squeue_forgot_before_its_end_was_seen_is_lost(
    slurm_short_age: SlurmCluster, batches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # squeue is asked every 20 s; the cluster forgets an ended job within about 2-10 s; there is
    # no accounting to ask: the job cancelled meanwhile is gone without a trace.
    monkeypatch.setenv("SLURM_CONF", str(slurm_short_age.conf))
    doc = slurm_batch(
        [job("forgotten", f"touch {tmp_path}/started; sleep 300")],
        poll={"min": 20, "max": 20},
        exit_read_timeout=1,
    )
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    wait_for(lambda: (tmp_path / "started").exists(), "it to run", 60)
    (ref,) = wait_for(lambda: rows(batches, "SELECT ref FROM attempts"), "its id")[0]
    slurm_short_age.run("scancel", ref)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert rows(batches, "SELECT status, reason FROM attempts") == [("lost", "lost")]
    assert "forgotten: it left Slurm's queue but wrote no exit code within 1 s" in err


def test_jobs_on_other_nodes_reach_the_api_on_the_clusters_network(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    # As Hypernets' job client asks: GET {portal}/hyperctl/api/job/{its name}, from a node that is
    # not this machine (the first node shares its loopback).
    (tmp_path / "ask.py").write_text(
        "import os, urllib.request\n"
        "url = os.environ['HYPERCTL_SERVER_PORTAL'] + '/hyperctl/api/job/' + os.environ['HYPERCTL_JOB_NAME']\n"
        "print(urllib.request.urlopen(url).read().decode())\n"
    )
    doc = slurm_batch(
        [job("asks", f"python3 {tmp_path}/ask.py", params={"lr": 0.5})], sbatch_args=[f"--nodelist={cluster.nodes[1]}"]
    )
    doc["daemon"] = {"host": cluster.controller, "port": 0}

    result = run(tmp_path, doc)

    assert result.returncode == 0, result.stderr
    answer = json.loads(read_stdout(batches, "b", "asks"))
    assert answer["code"] == 0 and answer["data"]["params"] == {"lr": 0.5}


def test_metrics_reach_the_store_while_the_job_runs_and_logs_follow(
    cluster: SlurmCluster, batches: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "train.py").write_text(
        "import os, time, hyperctl\n"
        "for step in range(5):\n"
        "    hyperctl.report(step=step, loss=1.0 / (step + 1))\n"
        "    print('step', step, flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n"
        "    time.sleep(0.1)\n"
    )
    doc = slurm_batch([job("train", f"python3 {tmp_path}/train.py")])
    proc = start_hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))
    count = "SELECT count, last FROM metric_summaries WHERE key = 'loss'"
    started = batches / "b" / ".hyperctl" / "jobs" / "train" / "attempt-1" / "stdout"
    wait_for(started.exists, "it to start", 60)
    # Written on a node (shared storage, where inotify sees nothing): read all the same, while it runs.
    wait_for(lambda: rows(batches, count) == [(5, 0.2)], "its points", 30)
    follow = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "job", "logs", "b", "train", "-f"], stdout=subprocess.PIPE, text=True
    )
    gate.touch()
    out, _ = follow.communicate(timeout=30)
    assert out.splitlines() == [f"step {k}" for k in range(5)]
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def _key(batches: Path, name: str = "b") -> str:
    return BatchDir(batches, name).key
