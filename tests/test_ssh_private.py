"""SSH hosts others share: no secret on a command line there, private files, a remote_root of
another user refused, and assets of any name; against a real sshd host."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json
from tests.sshhosts import Host, hosts_for_module
from tests.test_private_files import command_lines

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")

REMOTE_ROOT = f".hyperctl-private-{os.getpid()}"


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    with hosts_for_module(1, REMOTE_ROOT) as found:
        yield found[0]


def remote_batch(host: Host, jobs: list[dict[str, Any]], root: str, **conf: Any) -> dict[str, Any]:
    """A batch named r, on the host under a remote_root of its own (a test's jobs leave their folders there)."""
    conf.setdefault("remote_root", f"{REMOTE_ROOT}/{root}")
    conf = {"machines": [host.machine()], "known_hosts": str(host.known_hosts), **conf}
    return {"name": "r", "jobs": jobs, "daemon": {"port": 0}, "backend": {"type": "remote", "conf": conf}}


def job(command: str, **fields: Any) -> dict[str, Any]:
    execution = fields.pop("execution", {})
    return {"params": fields.pop("params", {}), "execution": {"command": command, **execution}, **fields}


def test_env_and_params_are_on_no_command_line_of_the_host(host: Host, shared: Path, batches: Path) -> None:
    gate = shared / "gate"
    secret_env, secret_param = "env-s3cret\nwith 'quotes' and $(no expansion)", "param-s3cret-9e01"
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    command = f'echo started; {wait}; printf "%s\\n" "$SECRET"; cat "$HYPERCTL_JOB_PARAMS_FILE"'
    execution = {"env": {"SECRET": secret_env}}
    doc = remote_batch(host, [job(command, name="j", params={"p": secret_param}, execution=execution)], "env")
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        remote = (
            host.home
            / doc["backend"]["conf"]["remote_root"]
            / "r"
            / ".hyperctl"
            / "jobs"
            / "j"
            / "attempt-1"
            / "stdout"
        )
        wait_for(lambda: remote.exists() and remote.read_text(), "the job to start")
        # The host's processes are this machine's (a network namespace, not a pid namespace).
        leaks = [c for c in command_lines() if "env-s3cret" in c or secret_param in c]
        assert leaks == []
    finally:
        gate.touch()
        assert run.wait(timeout=30) == 0
    out = (attempt_dir(batches, "r", "j") / "stdout").read_text()
    assert out == f'started\n{secret_env}\n{{"p": "{secret_param}"}}\n'


def test_what_a_remote_job_leaves_is_private_on_the_host_and_at_home(host: Host, shared: Path, batches: Path) -> None:
    doc = remote_batch(host, [job("echo hi > made; umask", name="j", params={"x": 1})], "modes")

    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    umask = (attempt_dir(batches, "r", "j") / "stdout").read_text().strip()
    assert umask == "0022"  # the host's own, for the command
    remote = host.home / doc["backend"]["conf"]["remote_root"] / "r"
    records = remote / ".hyperctl" / "jobs" / "j"
    for path in (remote, remote / ".hyperctl", records, records / "attempt-1", remote / "j"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (records / "params.json", *(records / "attempt-1").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in attempt_dir(batches, "r", "j").iterdir():  # what came home
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((batches / "r" / "j").stat().st_mode) == 0o700


def test_a_remote_root_of_another_user_is_refused(host: Host, shared: Path, batches: Path) -> None:
    planted = shared / "planted"  # made by this test's user (root): another user than the host's
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    doc = remote_batch(host, [job("true", name="j")], "", remote_root=str(planted))

    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)), timeout=60)

    assert result.returncode == 1
    why = f"remote_root {planted}: is another user's; hyperctl uses only folders of its own user: refused"
    assert why in result.stderr, result.stderr
    assert list(planted.iterdir()) == []  # nothing written into it


def test_a_batch_folder_of_another_user_on_the_host_is_refused(host: Host, shared: Path, batches: Path) -> None:
    root = shared / "root"
    root.mkdir()
    shutil.chown(root, host.user)
    (root / "r").mkdir(mode=0o777)  # this test's user (root) is the other one here
    (root / "r").chmod(0o777)
    doc = remote_batch(host, [job("echo ran > out", name="j", max_retries=0)], "", remote_root=str(root))

    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)), timeout=60)

    assert result.returncode == 1
    assert f"j: failed (could not start: {host.address}: the job did not start: {root / 'r'}: is another user's" in (
        result.stderr
    )
    assert list((root / "r").iterdir()) == []


def test_assets_whose_names_are_globs_go_up_and_results_come_home(host: Host, shared: Path, batches: Path) -> None:
    names = ["*", "a?b", "[x]", "plain.txt"]
    for name in names:
        (shared / name).write_text(f"{name}\n")
    command = "cat ./'*' ./'a?b' ./'[x]' plain.txt > out.txt && mkdir -p model && echo w > model/w.bin"
    doc = remote_batch(host, [job(command, name="j", execution={"assets": names})], "globs")

    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    home = batches / "r" / "j"
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) == ["model/w.bin", "out.txt"]
    assert (home / "out.txt").read_text() == "*\na?b\n[x]\nplain.txt\n"


def test_a_machine_s_environment_is_on_no_command_line_while_its_gpus_are_asked(
    host: Host, shared: Path, batches: Path
) -> None:
    gate, asked = shared / "gate", shared / "asked"
    fake = shared / "bin"
    fake.mkdir()
    # nvidia-smi that waits: the set-up program is still running while the test looks.
    (fake / "nvidia-smi").write_text(f"#!/bin/sh\n: > {asked}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\necho 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    secret = "machine-s3cret-51d0"
    machine = host.machine(gpu="auto", environments={"PATH": f"{fake}:/usr/bin:/bin", "API_KEY": secret})
    doc = remote_batch(host, [job("echo $API_KEY", name="j")], "machine-env", machines=[machine])
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(asked.exists, "nvidia-smi to be asked")
        assert [c for c in command_lines() if secret in c] == []
    finally:
        gate.touch()
        assert run.wait(timeout=30) == 0
    assert (attempt_dir(batches, "r", "j") / "stdout").read_text() == f"{secret}\n"
