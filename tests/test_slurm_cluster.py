"""The Slurm test cluster itself (tests/slurmcluster.py): jobs spread over its nodes, fake GPUs,
scancel, a node crash, squeue forgetting ended jobs, and a stop that leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import process_alive, slurm_cluster_or_fail, wait_for
from tests.slurmcluster import SlurmCluster


@pytest.fixture
def out(slurm: SlurmCluster) -> Path:
    """A folder of the test's own in the cluster's shared folder (jobs of any user may write it)."""
    folder = Path(tempfile.mkdtemp(prefix="t-", dir=slurm.shared))
    os.chmod(folder, 0o777)
    return folder


def test_twenty_jobs_spread_over_nodes_and_write_to_the_shared_folder(slurm: SlurmCluster, out: Path) -> None:
    script = "echo $SLURMD_NODENAME; hostname"
    jobs = [slurm.sbatch("-o", f"{out}/{k}.out", "--wrap", script) for k in range(20)]
    assert [slurm.wait_state(job, "COMPLETED", "FAILED") for job in jobs] == ["COMPLETED"] * 20
    nodes = [(out / f"{k}.out").read_text().split()[0] for k in range(20)]
    assert set(nodes) <= set(slurm.nodes) and len(set(nodes)) >= 2, nodes
    # sdiag counts the controller's RPCs (slurmctld's load); sacct needs accounting, which is off.
    assert "REQUEST_SUBMIT_BATCH_JOB" in slurm.run("sdiag").stdout
    sacct = slurm.run("sacct", check=False)
    assert sacct.returncode == 1 and "accounting storage is disabled" in sacct.stderr


def test_fake_gpus_have_distinct_indices(slurm: SlurmCluster, out: Path) -> None:
    both = slurm.sbatch("--gres=gpu:2", "-o", f"{out}/both", "--wrap", 'echo "$CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS"')
    # Two one-GPU jobs on one node at once: each waits (at most 20 s) until the other has written its GPU.
    wait_other = (
        f"echo $CUDA_VISIBLE_DEVICES >{out}/$SLURM_JOB_ID.gpu; "
        f"for i in $(seq 200); do [ $(ls {out}/*.gpu | wc -l) = 2 ] && exit 0; sleep 0.1; done; exit 1"
    )
    ones = [slurm.sbatch("--gres=gpu:1", "-w", slurm.nodes[1], "-o", "/dev/null", "--wrap", wait_other) for _ in "ab"]
    assert slurm.wait_state(both, "COMPLETED", "FAILED") == "COMPLETED"
    assert (out / "both").read_text().split() == ["0,1", "0,1"]
    assert [slurm.wait_state(job, "COMPLETED", "FAILED") for job in ones] == ["COMPLETED", "COMPLETED"]
    assert sorted((out / f"{job}.gpu").read_text().strip() for job in ones) == ["0", "1"]
    # More GPUs than a node has: sbatch refuses at once.
    refused = slurm.run("sbatch", "--gres=gpu:3", "--wrap", "true", check=False)
    assert refused.returncode == 1 and "Requested node configuration is not available" in refused.stderr


def test_a_job_of_another_user_runs_as_that_user(slurm: SlurmCluster, out: Path) -> None:
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    submitted = slurm.run(*as_nobody, "sbatch", "--parsable", "-o", f"{out}/who", "--wrap", "id -un")
    assert slurm.wait_state(submitted.stdout.strip(), "COMPLETED", "FAILED") == "COMPLETED"
    assert (out / "who").read_text() == "nobody\n"


def test_scancel_ends_a_running_job_and_its_processes(slurm: SlurmCluster, out: Path) -> None:
    job = slurm.sbatch("-w", slurm.nodes[2], "-o", "/dev/null", "--wrap", f"sleep 300 & echo $! >{out}/pid; wait")
    slurm.wait_state(job, "RUNNING")
    pid = int(wait_for(lambda: (out / "pid").exists() and (out / "pid").read_text().strip(), "the job's sleep"))
    slurm.run("scancel", job)
    assert slurm.wait_state(job, "CANCELLED") == "CANCELLED"
    assert slurm.job_field(job, "ExitCode") == "0:15"
    wait_for(lambda: not process_alive(pid), "the job's sleep gone", deadline=10)


def test_a_crashed_node_fails_or_requeues_its_jobs_and_comes_back(slurm: SlurmCluster, out: Path) -> None:
    node = slurm.nodes[3]
    run = "echo $SLURM_RESTART_COUNT >{}; sleep 300"
    once = slurm.sbatch("-w", node, "--no-requeue", "-o", "/dev/null", "--wrap", run.format(out / "once"))
    again = slurm.sbatch("-w", node, "-o", "/dev/null", "--wrap", run.format(out / "again"))
    for job in (once, again):
        slurm.wait_state(job, "RUNNING")
    wait_for(lambda: (out / "once").exists() and (out / "again").exists(), "both jobs started")
    slurm.crash(node)
    slurm.wait_node(node, "down*", within=40)
    # As the notes measured: --no-requeue ends NODE_FAIL; a requeueable job waits to run again.
    assert slurm.wait_state(once, "NODE_FAIL") == "NODE_FAIL"
    assert slurm.wait_state(again, "PENDING") == "PENDING"
    assert slurm.job_field(again, "Restarts") == "1"
    slurm.revive(node)
    assert slurm.node_state(node) == "idle"
    slurm.run("scancel", again)


def test_a_job_goes_on_without_its_slurmd(slurm: SlurmCluster, out: Path) -> None:
    node = slurm.nodes[2]
    job = slurm.sbatch(
        "-w", node, "-o", "/dev/null", "--wrap", f"touch {out}/started; while [ ! -e {out}/go ]; do sleep 0.05; done"
    )
    wait_for(lambda: (out / "started").exists(), "the job started")
    slurm.kill_slurmd(node)
    (out / "go").touch()
    slurm.revive(node)
    assert slurm.wait_state(job, "COMPLETED", "FAILED", "NODE_FAIL") == "COMPLETED"


def test_a_short_min_job_age_makes_squeue_forget_ended_jobs(slurm_short_age: SlurmCluster) -> None:
    job = slurm_short_age.sbatch("-o", "/dev/null", "--wrap", "true")
    slurm_short_age.wait_state(job, "COMPLETED")
    slurm_short_age.wait_state(job, "", within=20)  # '': squeue no longer knows it
    gone = slurm_short_age.run("squeue", "-j", job, check=False)
    assert gone.returncode == 1 and "Invalid job id specified" in gone.stderr


class Failed(Exception):
    """A test failing while its cluster runs."""


def test_stop_after_a_failure_leaves_nothing_behind() -> None:
    """Jobs running on a live node, orphaned on the root namespace's node and on a crashed one:
    a failing test body, and afterwards no process, namespace, link, cgroup or file of the cluster."""
    with pytest.raises(Failed), slurm_cluster_or_fail(nodes=3) as cluster:
        pids = cluster.shared / "pids"
        script = f"sleep 300 & echo $! >>{pids}; wait"
        jobs = [cluster.sbatch("-w", node, "-o", "/dev/null", "--wrap", script) for node in cluster.nodes]
        for job in jobs:
            cluster.wait_state(job, "RUNNING")
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3, "3 jobs started")
        started = [int(p) for p in pids.read_text().split()]
        daemons = [d.pid for d in cluster._daemons.values()]
        cluster.kill_slurmd(cluster.nodes[0])
        cluster.crash(cluster.nodes[1])
        raise Failed
    assert not [pid for pid in started + daemons if process_alive(pid)]
    for listing in (["ip", "netns", "list"], ["ip", "link"]):
        assert cluster.prefix not in subprocess.run(listing, capture_output=True, text=True).stdout
    assert not list(Path("/sys/fs/cgroup").glob(f"*/slurm_{cluster.prefix}*"))
    assert not cluster.root.exists()
