"""A machine others share: what hyperctl makes is private, what another user planted is refused, the
batch token is out of the jobs' reach, and no secret is on a command line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperctl.layout import BatchDir
from tests.conftest import attempt_dir, batch_token, hyperctl, read_stdout, wait_for, write_json
from tests.sshhosts import USER, ensure_user

# Another user's files: root makes them (runuser), as on CI.
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="another user's files need root to make")


def batch(jobs: list[dict[str, Any]], name: str = "b") -> dict[str, Any]:
    return {"name": name, "jobs": jobs, "daemon": {"port": 0}}


def job(command: str, **fields: Any) -> dict[str, Any]:
    execution = fields.pop("execution", {})
    return {"params": fields.pop("params", {}), "execution": {"command": command, **execution}, **fields}


@pytest.fixture
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.fixture
def sticky(shared: Path) -> Path:
    """A folder every user may write, as /tmp (mode 1777): the batches data dir of this test."""
    ensure_user()
    os.chmod(shared, 0o1777)
    return shared


def as_other_user(script: str) -> None:
    """Run a shell script as another user of this machine (the SSH tests' user)."""
    subprocess.run(["runuser", "-u", USER, "--", "/bin/sh", "-c", script], check=True)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_everything_a_run_makes_is_private_whatever_the_umask(umask_022: None, tmp_path: Path, batches: Path) -> None:
    command = "touch made && mkdir sub && sleep 0.1"  # the command keeps the user's umask for its own files
    doc = batch([job(command, name="j", params={"x": 1}, execution={"env": {"K": "v"}})])

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    found = modes(batches / "b")
    theirs = {"j/made": 0o644, "j/sub": 0o755}
    ours = {path: mode for path, mode in found.items() if path not in theirs}
    assert {"j", ".hyperctl/state.db", ".hyperctl/lock", ".hyperctl/batch.json", ".hyperctl/jobs/j/params.json"} <= set(
        ours
    )
    assert {"stdout", "stderr", "exitcode"} <= {Path(p).name for p in ours}
    wrong = {p: oct(m) for p, m in ours.items() if m != (0o700 if (batches / "b" / p).is_dir() else 0o600)}
    assert wrong == {}
    assert {p: found[p] for p in theirs} == theirs
    token = BatchDir(batches, "b").token_file
    assert (stat.S_IMODE(token.stat().st_mode), stat.S_IMODE(token.parent.stat().st_mode)) == (0o600, 0o700)


def test_a_detached_run_s_log_is_private(umask_022: None, tmp_path: Path, batches: Path) -> None:
    doc = batch([job("true", name="j")])

    result = hyperctl("run", "--detach", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((batches / "b" / ".hyperctl" / "daemon.log").stat().st_mode) == 0o600


@as_root
@pytest.mark.parametrize(
    ("plant", "refused", "why"),
    [
        # Another user makes the batch folder first, with a lock that links to the owner's file.
        ("mkdir -m 777 b b/.hyperctl && ln -s {victim} b/.hyperctl/lock", "b", "belongs to uid"),
        ("ln -s {victim_dir} b", "b", "is a symbolic link"),
    ],
)
def test_a_batch_folder_another_user_planted_is_refused(
    sticky: Path, tmp_path: Path, batches: Path, plant: str, refused: str, why: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    as_other_user(f"cd {sticky} && " + plant.format(victim=victim, victim_dir=tmp_path))
    doc = batch([job("echo ran", name="j")])

    result = hyperctl(
        "run", "--config", str(write_json(tmp_path / "b.json", doc)), env={"HYPERCTL_BATCHES_DATA_DIR": str(sticky)}
    )

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, naming the path
    assert result.stderr.startswith(f"hyperctl: error: {sticky / refused}: {why}")
    assert result.stderr.strip().endswith("hyperctl uses only folders and files of its own user: refused")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "victim"]  # nothing made of ours


@as_root
@pytest.mark.parametrize(
    ("name", "plant", "why"),
    [
        ("token", "echo planted > {internal}/token", "belongs to uid"),  # a token of theirs, where old batches keep it
        ("lock", "ln -s {victim} {internal}/lock", "is a symbolic link"),  # the daemon would write its pid there
        ("state.db", "ln -s {victim} {internal}/state.db", "is a symbolic link"),
    ],
)
def test_what_another_user_put_in_a_batch_folder_left_open_is_refused(
    sticky: Path, tmp_path: Path, batches: Path, name: str, plant: str, why: str
) -> None:
    """A batch folder of the owner's that was left writable: what another user put in it is not used."""
    env = {"HYPERCTL_BATCHES_DATA_DIR": str(sticky)}
    config = write_json(tmp_path / "b.json", batch([job("echo ran", name="j")]))
    assert hyperctl("run", "--config", str(config), env=env).returncode == 0
    internal = sticky / "b" / ".hyperctl"
    os.chmod(sticky / "b", 0o777)
    os.chmod(internal, 0o777)
    BatchDir(sticky, "b").token_file.unlink()
    (internal / name).unlink(missing_ok=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    as_other_user(plant.format(internal=internal, victim=victim))

    result = hyperctl("run", "--config", str(config), env=env)

    assert result.returncode == 2
    assert result.stderr.startswith(f"hyperctl: error: {internal / name}: {why}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not BatchDir(sticky, "b").token_file.exists()  # nothing taken for the batch's
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(internal.stat().st_mode) == 0o700  # narrowed again


def test_an_older_batch_s_loose_files_are_narrowed(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("true", name="j")]))
    assert hyperctl("run", "--config", str(config)).returncode == 0
    internal = batches / "b" / ".hyperctl"
    for path, mode in ((batches / "b", 0o755), (internal, 0o755), (internal / "state.db", 0o644)):
        path.chmod(mode)  # as hyperctl made them under umask 022 before

    assert hyperctl("run", "--config", str(config)).returncode == 0

    assert [stat.S_IMODE(p.stat().st_mode) for p in (batches / "b", internal, internal / "state.db")] == [
        0o700,
        0o700,
        0o600,
    ]


@as_root
def test_a_job_folder_another_user_linked_elsewhere_is_refused(sticky: Path, tmp_path: Path, batches: Path) -> None:
    env = {"HYPERCTL_BATCHES_DATA_DIR": str(sticky)}
    config = write_json(tmp_path / "b.json", batch([job("true", name="i")]))
    assert hyperctl("run", "--config", str(config), env=env).returncode == 0
    os.chmod(sticky / "b", 0o777)  # the owner's batch folder, left open
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    as_other_user(f"ln -s {elsewhere} {sticky}/b/j")
    write_json(config, batch([job("echo ran > out", name="j", max_retries=0)]))

    result = hyperctl("run", "--config", str(config), env=env)

    assert result.returncode == 1
    assert f"j: failed (could not start: {sticky / 'b' / 'j'}: is a symbolic link; " in result.stderr, result.stderr
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE((sticky / "b").stat().st_mode) == 0o700  # narrowed again


def test_a_job_finds_no_batch_token_in_its_batch_folder(tmp_path: Path, batches: Path) -> None:
    command = (
        'cat "$HYPERCTL_JOB_DATA_DIR/../.hyperctl/token" > stolen 2>&1; '
        'ls -a "$HYPERCTL_JOB_DATA_DIR/../.hyperctl" > listing; true'
    )
    doc = batch([job(command, name="j")])

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    token = batch_token(batches, "b").encode()
    assert "token" not in (batches / "b" / "j" / "listing").read_text().split()
    holding = [p for p in (batches / "b").rglob("*") if p.is_file() and token in p.read_bytes()]
    assert holding == []


def test_an_older_batch_keeps_its_token_out_of_the_batch_folder(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("true", name="j")]))
    assert hyperctl("run", "--config", str(config)).returncode == 0
    token_file = BatchDir(batches, "b").token_file
    token = token_file.read_text()
    token_file.unlink()
    legacy = batches / "b" / ".hyperctl" / "token"  # where hyperctl 0.2 kept it
    legacy.write_text(token)
    legacy.chmod(0o600)

    assert hyperctl("run", "--config", str(config)).returncode == 0

    assert token_file.read_text() == token  # the same: what its running jobs' tokens derive from
    assert not legacy.exists()


def test_params_and_env_are_on_no_command_line(tmp_path: Path, batches: Path) -> None:
    gate = tmp_path / "gate"
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    command = f'echo started; {wait}; echo "$SECRET"; cat "$HYPERCTL_JOB_PARAMS_FILE"'
    secret_env, secret_param = "env-s3cret-4ba1", "param-s3cret-77c2"
    doc = batch([job(command, name="j", params={"p": secret_param}, execution={"env": {"SECRET": secret_env}})])
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(tmp_path / "b.json", doc))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (attempt_dir(batches, "b", "j") / "stdout").exists() and read_stdout(batches, "b", "j"), "j")
        assert [c for c in command_lines() if secret_env in c or secret_param in c] == []
    finally:
        gate.touch()
        assert run.wait(timeout=30) == 0
    assert read_stdout(batches, "b", "j") == f'started\n{secret_env}\n{{"p": "{secret_param}"}}\n'


def command_lines() -> list[str]:
    """The command line of every process of this machine, as any user may read them."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return lines


def test_a_token_folder_that_cannot_be_made_is_one_line(tmp_path: Path, batches: Path) -> None:
    not_a_folder = tmp_path / "state-file"
    not_a_folder.write_text("")
    config = write_json(tmp_path / "b.json", batch([job("true", name="j")]))

    result = hyperctl("run", "--config", str(config), env={"XDG_STATE_HOME": str(not_a_folder)})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"hyperctl: error: cannot keep the batch token in {not_a_folder}/hyperctl/tokens: File exists; "
        "set XDG_STATE_HOME to a folder of yours"
    )
    assert "Traceback" not in result.stderr


def test_a_batches_data_dir_anyone_may_write_without_a_sticky_bit_is_refused(tmp_path: Path, batches: Path) -> None:
    """Anyone may rename a folder there: another user could swap the batch folder for theirs mid-run."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    config = write_json(tmp_path / "b.json", batch([job("true", name="j")]))
    env = {"HYPERCTL_BATCHES_DATA_DIR": str(open_dir)}

    result = hyperctl("run", "--config", str(config), env=env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"hyperctl: error: {open_dir}: any user may write it, and it has no sticky bit (chmod +t): another user "
        "could swap what hyperctl keeps there for theirs: refused"
    ]
    assert list(open_dir.iterdir()) == []
    open_dir.chmod(0o1777)  # as /tmp
    assert hyperctl("run", "--config", str(config), env=env).returncode == 0
