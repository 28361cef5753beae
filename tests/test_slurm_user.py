"""A user who is not root runs a batch on the Slurm cluster, as every user of a real cluster does:
the jobs run as that user, everything hyperctl writes is theirs and private, and hyperctl's own
commands work for them."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurmcluster import SlurmCluster
from tests.sshhosts import USER, ensure_user
from tests.userpython import REPO, user_python


@pytest.fixture
def home(slurm: SlurmCluster) -> Iterator[Path]:
    """A folder of the user's own in the cluster's shared folder (the nodes see it), and the user."""
    ensure_user()
    folder = Path(tempfile.mkdtemp(prefix="user-", dir=slurm.shared))
    shutil.chown(folder, USER, USER)
    yield folder
    slurm.run("scancel", "--user", USER, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def as_user(slurm: SlurmCluster, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "USER": USER,
        "PYTHONPATH": str(REPO),  # the code under test; the venv holds only its dependencies
        "SLURM_CONF": str(slurm.conf),
        "XDG_STATE_HOME": str(home / "state"),
        "HYPERCTL_BATCHES_DATA_DIR": str(home / "batches"),
    }
    argv = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", str(user_python()), "-m", "hyperctl"]
    return subprocess.run([*argv, *args], env=env, cwd=home, capture_output=True, text=True, timeout=120)


def test_a_user_who_is_not_root_runs_a_batch(slurm: SlurmCluster, home: Path) -> None:
    command = "id -un; python3 -c 'import hyperctl; print(hyperctl.get_job_params())'; touch made-here"
    batch = {
        "name": "mine",
        "backend": {"type": "slurm", "conf": {}},
        "daemon": {"port": 0},
        "jobs": [{"name": f"j{k}", "params": {"k": k}, "execution": {"command": command}} for k in range(3)],
    }
    config = home / "b.json"
    config.write_text(json.dumps(batch))
    shutil.chown(config, USER, USER)

    result = as_user(slurm, home, "run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    folder = home / "batches" / "mine"
    for k in range(3):
        attempt = folder / ".hyperctl" / "jobs" / f"j{k}" / "attempt-1"
        assert (attempt / "stdout").read_text().splitlines() == [USER, f"{{'k': {k}}}"]
        # Its records are the user's own, and nobody else's to read (the job's env file holds its token).
        for path in (attempt, attempt / "env", attempt / "job.sh", attempt / "stdout"):
            info = path.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode) & 0o077) == (_uid(), 0), path
        assert (folder / f"j{k}" / "made-here").exists()  # in its data dir, made by the job itself
    listed = as_user(slurm, home, "job", "list", "mine", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {job["status"] for job in json.loads(listed.stdout)} == {"succeeded"}
    assert all(job["host"] in slurm.nodes for job in json.loads(listed.stdout))


def _uid() -> int:
    return pwd.getpwnam(USER).pw_uid
