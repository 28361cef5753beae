"""The remote backend against real OpenSSH servers, each in a network namespace of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import attempt_dir, hyperctl, job_names, process_alive, wait_for, write_json
from tests.sshhosts import Host, hosts_for_module

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    with hosts_for_module(2, REMOTE_ROOT) as found:
        yield found


# On the hosts, a folder per test run: two runs at once share the test user's home, not its files.
REMOTE_ROOT = f".hyperctl-test-{os.getpid()}"


def remote_batch(hosts: list[Host], jobs: list[dict[str, Any]], name: str = "r", **conf: Any) -> dict[str, Any]:
    machines = conf.pop("machines", [h.machine() for h in hosts])
    conf = {"machines": machines, "known_hosts": str(hosts[0].known_hosts), "remote_root": REMOTE_ROOT, **conf}
    backend = {"type": "remote", "conf": conf}
    return {"name": name, "jobs": jobs, "daemon": {"port": 0}, "backend": backend}


def job(command: str, **fields: Any) -> dict[str, Any]:
    execution = fields.pop("execution", {})
    return {"params": fields.pop("params", {}), "execution": {"command": command, **execution}, **fields}


def remote_stdout(host: Host, batch: str, job_name: str, attempt: int = 1) -> str:
    # The batch folder's layout, under remote_root on the host.
    return (
        host.home / REMOTE_ROOT / batch / ".hyperctl" / "jobs" / job_name / f"attempt-{attempt}" / "stdout"
    ).read_text()


def test_jobs_spread_over_two_hosts_with_exclusive_gpus(hosts: list[Host], shared: Path, batches: Path) -> None:
    """Each job holds a lock file per (host, GPU) it was given: a GPU given twice would fail a job."""
    script = shared / "gpu.sh"
    script.write_text(
        'set -e\nme=$(hostname -I | cut -d" " -f1)\nlock="$1/$me-$CUDA_VISIBLE_DEVICES"\n'
        'mkdir "$lock"\nsleep 0.3\nrmdir "$lock"\necho "$me $CUDA_VISIBLE_DEVICES $2"\n'
    )
    jobs = [job(f"sh {script} {shared} {{{{ i }}}}", params={"i": i}, resource={"gpu": 1}) for i in range(12)]
    machines = [h.machine(cpu=8, gpu=[0, 1]) for h in hosts]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs, machines=machines))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    outputs = [remote_stdout(hosts[0], "r", name).split() for name in job_names(batches, "r")]
    assert {o[0] for o in outputs} == {h.address for h in hosts}  # both hosts were used
    assert all(o[1] in ("0", "1") and o[2] == str(i) for i, o in enumerate(outputs))
    # Its output came home: `hyperctl job logs` reads it as for a local job.
    print(result.stderr)
    assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[5]).stdout.split()[2] == "5"


def test_many_jobs_at_once_on_one_transport(hosts: list[Host], shared: Path, batches: Path) -> None:
    """20 jobs that each wait for all 20 to start: more channels than sshd's default of 10 sessions."""
    meet = shared / "meet"
    meet.mkdir()
    meet.chmod(0o777)
    wait = (
        f"touch {meet}/$HYPERCTL_JOB_NAME; i=0; while [ $(ls {meet} | wc -l) -lt 20 ]; do "
        "i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.05; done"
    )
    config = write_json(
        shared / "b.json", remote_batch(hosts, [job(wait) for _ in range(20)], machines=[hosts[0].machine(cpu=20)])
    )

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr


def test_a_hundred_short_jobs_all_come_home(hosts: list[Host], shared: Path, batches: Path) -> None:
    """Short jobs end in bursts: each one's output must come home whole, even when the host's
    exit status overtakes the last bytes of output on the channel."""
    jobs = [job("echo $HYPERCTL_JOB_NAME") for _ in range(100)]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs, machines=[h.machine(cpu=4) for h in hosts]))

    result = hyperctl("run", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["succeeded"] == 100
    names = job_names(batches, "r")
    assert len(set(names)) == 100  # repeats of one command are told apart by their order
    assert [(attempt_dir(batches, "r", name) / "stdout").read_text() for name in names] == [f"{n}\n" for n in names]


def test_a_remote_job_that_empties_its_data_dir_keeps_its_records(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    """On the host as at home, hyperctl's records are out of reach of `rm -rf "$HYPERCTL_JOB_DATA_DIR"/*`."""
    command = (
        'echo before; rm -rf "$HYPERCTL_JOB_DATA_DIR"/* "$HYPERCTL_JOB_DATA_DIR"/.[!.]*; echo made > out.txt; exit 5'
    )
    config = write_json(
        shared / "b.json", remote_batch(hosts, [job(command, name="wipes")], machines=[hosts[0].machine()])
    )

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert (attempt_dir(batches, "r", "wipes") / "exitcode").read_text() == "5\n"
    assert hyperctl("job", "logs", "-b", "r", "-j", "wipes").stdout == "before\n"
    assert hyperctl("job", "logs", "-b", "r", "-j", "wipes", "--stderr").returncode == 0  # empty, and there
    assert sorted(os.listdir(batches / "r" / "wipes")) == ["out.txt"]  # what it made came home, and only that
    assert remote_stdout(hosts[0], "r", "wipes") == "before\n"


def test_a_remote_job_that_leaves_its_folder_still_leaves_its_exit_code(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    # Whatever the command does to its shell (a `cd`, an `exec`), its exit code comes home.
    jobs = [job("cd /; echo here; exit 7", name="cd"), job("exec sh -c 'exit 4'", name="exec")]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs, machines=[hosts[0].machine()]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1, result.stderr
    assert (attempt_dir(batches, "r", "cd", 1) / "exitcode").read_text() == "7\n"
    assert (attempt_dir(batches, "r", "cd", 1) / "stdout").read_text() == "here\n"
    assert (attempt_dir(batches, "r", "exec", 1) / "exitcode").read_text() == "4\n"


def test_what_a_remote_job_leaves_running_in_the_background_ends_with_it(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    jobs = [job("sleep 300 & echo $! > bg.pid; echo started", name="bg")]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs, machines=[hosts[0].machine()]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    background = int((batches / "r" / "bg" / "bg.pid").read_text())  # the hosts share our pid namespace
    wait_for(lambda: not process_alive(background), "the background sleep to end", deadline=10)


def test_a_remote_setsid_process_ends_with_its_job_and_with_its_kill(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    """Processes that left the job's process group (setsid) carry its identity: they end with it."""
    stubborn = "setsid sh -c 'trap \"\" TERM; sleep 300' & echo $! > stray.pid; sleep 300"
    jobs = [
        job("setsid sleep 300 & echo $! > stray.pid; echo started", name="ends"),
        job(stubborn, name="killed", execution={"kill_grace": 1}),
    ]
    doc = remote_batch(hosts, jobs, machines=[hosts[0].machine()])
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        remote_data = hosts[0].home / REMOTE_ROOT / "r"
        strays = [remote_data / name / "stray.pid" for name in ("ends", "killed")]
        wait_for(lambda: all(f.exists() and f.read_text().strip() for f in strays), "both jobs to start a stray")
        ended, stubborn_stray = (int(f.read_text()) for f in strays)  # the hosts share our pid namespace
        wait_for(lambda: not process_alive(ended), "the stray of the job that ended to end", deadline=10)

        killed = hyperctl("job", "kill", "r", "killed", timeout=20)

        assert killed.returncode == 0, killed.stderr
        assert not process_alive(stubborn_stray)  # it ignores TERM: KILL after the grace
        assert run.wait(timeout=30) == 1
    finally:
        run.kill()


def test_execution_shell_on_a_remote_host(hosts: list[Host], shared: Path, batches: Path) -> None:
    command = 'words=(a b); [[ ${#words[@]} == 2 ]] && echo "${words[1]} as $(id -un)"'
    doc = remote_batch(hosts[:1], [job(command, name="j", execution={"shell": "bash"})])

    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)))

    assert result.returncode == 0, result.stderr
    assert (attempt_dir(batches, "r", "j") / "stdout").read_text() == f"b as {hosts[0].user}\n"


def test_an_unknown_host_is_refused_with_a_way_to_trust_it(hosts: list[Host], shared: Path, batches: Path) -> None:
    empty = shared / "known_hosts"
    empty.write_text("")
    doc = remote_batch(hosts, [job("true")], known_hosts=str(empty), machines=[hosts[0].machine()])
    config = write_json(shared / "b.json", doc)

    refused = hyperctl("run", "--config", str(config), env={"HOME": str(shared)})  # no ~/.ssh/known_hosts either

    assert refused.returncode == 1
    assert f"unknown host key; trust it with `ssh -p 22 {hosts[0].address}`" in refused.stderr

    doc["backend"]["conf"]["host_key_policy"] = "accept-new"
    write_json(config, doc)
    accepted = hyperctl("run", "--config", str(config), env={"HOME": str(shared)})
    assert accepted.returncode == 0, accepted.stderr
    assert hosts[0].address in empty.read_text()  # recorded for next time


def test_a_changed_host_key_is_always_refused(hosts: list[Host], shared: Path, batches: Path) -> None:
    wrong = shared / "known_hosts"
    other_key = (hosts[1].known_hosts.read_text().splitlines()[1]).split()[1:]
    wrong.write_text(f"{hosts[0].address} {' '.join(other_key)}\n")
    doc = remote_batch(
        hosts, [job("true")], known_hosts=str(wrong), host_key_policy="accept-new", machines=[hosts[0].machine()]
    )
    config = write_json(shared / "b.json", doc)

    result = hyperctl("run", "--config", str(config), env={"HOME": str(shared)})

    assert result.returncode == 1
    assert "its host key has CHANGED since it was recorded; refusing to connect" in result.stderr


def test_kill_a_remote_job_tree(hosts: list[Host], shared: Path, batches: Path) -> None:
    stubborn = "sh -c 'trap \"\" TERM; sleep 60' & trap '' TERM; sleep 60"
    doc = remote_batch(hosts, [job(stubborn, name="s", execution={"kill_grace": 1})], machines=[hosts[0].machine()])
    config = write_json(shared / "b.json", doc)
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    views = {}

    def running() -> bool:
        out = hyperctl("job", "list", "-b", "r", "--json").stdout
        views.update({v["name"]: v for v in json.loads(out or "[]")})
        return views.get("s", {}).get("status") == "running" and bool(views["s"].get("pid"))

    wait_for(running, "the remote job to run")
    pid = views["s"]["pid"]
    wait_for(lambda: len([p for p in psutil.process_iter() if _pgid(p) == pid]) >= 3, "the job's processes")

    killed = hyperctl("job", "kill", "-b", "r", "-j", "s", timeout=20)  # well inside the jobs' 60 s

    assert killed.returncode == 0, killed.stderr
    assert not [p for p in psutil.process_iter() if _pgid(p) == pid and _live(p)], "killed, yet processes are left"
    assert run.wait(timeout=30) == 1


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None


def _live(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_machine_down_at_start_sends_its_jobs_elsewhere(hosts: list[Host], shared: Path, batches: Path) -> None:
    dead = {**hosts[0].machine(), "port": 2}  # nothing listens there: connection refused
    doc = remote_batch(hosts, [job("true") for _ in range(6)], machines=[dead, hosts[1].machine(cpu=2)])
    config = write_json(shared / "b.json", doc)

    result = hyperctl("run", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    assert f"machine {hosts[0].address}:2 is down: " in result.stderr
    assert json.loads(result.stdout)["counts"]["succeeded"] == 6


def test_every_machine_down_ends_the_batch_with_a_clear_error(hosts: list[Host], shared: Path, batches: Path) -> None:
    dead = {**hosts[0].machine(), "port": 2}
    config = write_json(shared / "b.json", remote_batch(hosts, [job("true") for _ in range(3)], machines=[dead]))

    result = hyperctl("run", "--config", str(config), timeout=60)

    assert result.returncode == 1
    assert "every machine is down; 3 jobs not started:" in result.stderr
    assert f"{hosts[0].address}:2: {hosts[0].user}@{hosts[0].address}:2: cannot connect" in result.stderr

    detached = hyperctl("run", "--config", str(config), "--name", "r2", "--detach", timeout=60)
    assert detached.returncode == 1, detached.stderr  # ended at once: said, not "runs in the background"
    assert "every machine is down; 3 jobs not started:" in detached.stderr
    assert "runs in the background" not in detached.stderr


def test_kill_9_then_resume_reattaches_a_remote_job(hosts: list[Host], shared: Path, batches: Path) -> None:
    log, gate = shared / "runs.log", shared / "gate"
    command = f"echo ran >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done; echo finished"
    doc = remote_batch(hosts, [job(command, name="j", max_retries=2)], machines=[hosts[0].machine()])
    config = write_json(shared / "b.json", doc)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.DEVNULL
    )
    wait_for(log.exists, "the remote job to start")
    wait_for(
        lambda: (
            "pid" in hyperctl("job", "describe", "-b", "r", "-j", "j", "--json").stdout
            and json.loads(hyperctl("job", "describe", "-b", "r", "-j", "j", "--json").stdout)["pid"]
        ),
        "its pid",
    )
    daemon.kill()
    daemon.wait()
    resumed = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "batch", "resume", "r"], stderr=subprocess.PIPE, text=True
    )
    ready = batches / "r" / ".hyperctl" / "state.db"
    wait_for(lambda: str(resumed.pid) in _meta(ready, "ready"), "the resumed daemon to take the job over")
    gate.touch()

    assert resumed.wait(timeout=30) == 0, resumed.communicate()[1]
    assert log.read_text() == "ran\n"  # once: watched again, not run again
    described = json.loads(hyperctl("job", "describe", "-b", "r", "-j", "j", "--json").stdout)
    assert [(a["n"], a["status"], a["exit_code"]) for a in described["attempts"]] == [(1, "succeeded", 0)]
    assert hyperctl("job", "logs", "-b", "r", "-j", "j").stdout == "finished\n"


def _meta(db: Path, key: str) -> str:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return ""
    return row[0] if row else ""


def test_a_pulled_cable_loses_the_job_and_it_runs_elsewhere(hosts: list[Host], shared: Path, batches: Path) -> None:
    if hosts[0].link is None:
        pytest.skip("needs network namespaces to pull a host's cable")
    started = shared / "started"
    command = f"echo $(hostname -I | cut -d' ' -f1) >> {started}; sleep 3"
    doc = remote_batch(
        hosts,
        [job(command, name="j", max_retries=1)],
        liveness_interval=1,
        machines=[hosts[0].machine(), hosts[1].machine()],
    )
    config = write_json(shared / "b.json", doc)
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    wait_for(started.exists, "the job to start on the first host")
    subprocess.run(["ip", "link", "set", hosts[0].link, "down"], check=True)
    try:
        assert run.wait(timeout=60) == 0, run.communicate()[1]
    finally:
        subprocess.run(["ip", "link", "set", hosts[0].link, "up"], check=True)
    err = run.communicate()[1]
    assert f"machine {hosts[0].address} does not answer" in err
    assert started.read_text().split() == [hosts[0].address, hosts[1].address]
    attempts = json.loads(hyperctl("job", "describe", "-b", "r", "-j", "j", "--json").stdout)["attempts"]
    assert [(a["status"], a["host"]) for a in attempts] == [("lost", hosts[0].address), ("succeeded", hosts[1].address)]


def test_password_from_the_environment(hosts: list[Host], shared: Path, batches: Path) -> None:
    from tests.sshhosts import PASSWORD

    machine = {"hostname": hosts[1].address, "username": hosts[1].user, "password_env": "HOST_PASSWORD"}
    config = write_json(shared / "b.json", remote_batch(hosts, [job("echo via password")], machines=[machine]))

    result = hyperctl("run", "--config", str(config), env={"HOST_PASSWORD": PASSWORD})
    wrong = hyperctl("run", "--config", str(config), "--name", "r2", env={"HOST_PASSWORD": "wrong"})

    assert result.returncode == 0, result.stderr
    assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[0]).stdout == "via password\n"
    assert PASSWORD not in (batches / "r" / ".hyperctl" / "batch.json").read_text()  # never written down
    assert wrong.returncode == 1 and "authentication failed (tried password)" in wrong.stderr

    machine.pop("password_env")
    machine["password"] = PASSWORD  # written into the file: kept owner-only, and never shown
    config = write_json(shared / "b.json", remote_batch(hosts, [job("true")], machines=[machine]))
    assert hyperctl("run", "--config", str(config), "--name", "r3").returncode == 0
    assert (batches / "r3" / ".hyperctl" / "batch.json").stat().st_mode & 0o077 == 0
    assert PASSWORD not in hyperctl("batch", "describe", "r3", "--json").stdout


def test_hosts_and_describe_need_no_password_without_a_daemon(hosts: list[Host], shared: Path, batches: Path) -> None:
    """The machines a batch's daemon reached are in its folder: reading them needs no password."""
    from tests.sshhosts import PASSWORD

    machine = {"hostname": hosts[1].address, "username": hosts[1].user, "password_env": "HOST_PASSWORD"}
    config = write_json(shared / "b.json", remote_batch(hosts, [job("true")], machines=[machine]))
    assert hyperctl("run", "--config", str(config), env={"HOST_PASSWORD": PASSWORD}).returncode == 0
    assert "HOST_PASSWORD" not in os.environ

    shown = hyperctl("hosts", "-b", "r", "--json")
    described = hyperctl("batch", "describe", "r")

    assert shown.returncode == 0, shown.stderr
    [seen] = json.loads(shown.stdout)
    assert (seen["name"], seen["cpu"], seen["state"], seen["jobs"]) == (hosts[1].address, os.cpu_count(), None, [])
    assert described.returncode == 0, described.stderr
    assert f"  {hosts[1].address}  -; jobs 0;" in described.stdout


def test_an_ssh_config_alias(hosts: list[Host], shared: Path, batches: Path) -> None:
    home = shared / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host gpu-box\n  HostName {hosts[1].address}\n  User {hosts[1].user}\n"
        # `Match exec` runs a command (paramiko needs invoke for it): the key is found only if it ran.
        f"Match originalhost gpu-box exec true\n  IdentityFile {hosts[1].key_file}\n"
    )
    config = write_json(
        shared / "b.json", remote_batch(hosts, [job("echo via alias")], machines=[{"hostname": "gpu-box"}])
    )

    result = hyperctl("run", "--config", str(config), env={"HOME": str(home)})

    assert result.returncode == 0, result.stderr
    described = json.loads(hyperctl("job", "describe", "-b", "r", "-j", job_names(batches, "r")[0], "--json").stdout)
    assert described["host"] == "gpu-box"
    assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[0]).stdout == "via alias\n"

    # A bare name in `machines` is the same machine.
    short = write_json(shared / "s.json", remote_batch(hosts, [job("echo bare")], machines=["gpu-box"], name="s"))
    assert hyperctl("run", "--config", str(short), env={"HOME": str(home)}).returncode == 0
    assert hyperctl("job", "logs", "-b", "s", "-j", job_names(batches, "s")[0]).stdout == "bare\n"


def test_assets_go_up_and_the_data_dir_comes_home(hosts: list[Host], shared: Path, batches: Path) -> None:
    (shared / "data.txt").write_text("payload\n")
    (shared / "pkg").mkdir()
    (shared / "pkg" / "mod.txt").write_text("module\n")
    made = "cat data.txt pkg/mod.txt > out.txt && mkdir -p model && echo w > model/weights.bin && echo s > scratch.log"
    jobs = [
        job(made, name="all", execution={"assets": ["data.txt", "pkg/"]}),
        job(made, name="some", execution={"assets": ["data.txt", "pkg"], "download": ["*.txt", "model/*"]}),
        job(made, name="none", execution={"assets": ["data.txt", "pkg"], "download": False}),
    ]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs))  # assets: relative to the batch file

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr

    def home(name: str) -> set[str]:
        folder = batches / "r" / name
        return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "attempt-" not in str(p)}

    # What the job made comes home; the assets it was given do not come back.
    assert home("all") == {"out.txt", "model/weights.bin", "scratch.log"}
    assert (batches / "r" / "all" / "out.txt").read_text() == "payload\nmodule\n"
    assert home("some") == {"out.txt", "model/weights.bin"}
    assert home("none") == set()


def test_a_remote_working_dir_is_a_path_on_the_host(hosts: list[Host], shared: Path, batches: Path) -> None:
    wd = hosts[0].home / "project"
    wd.mkdir(exist_ok=True)
    jobs = [job("pwd", name="rel", execution={"working_dir": "project"}), job("pwd", name="dflt")]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs, machines=[hosts[0].machine()]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert hyperctl("job", "logs", "-b", "r", "-j", "rel").stdout == f"{wd}\n"  # the host's home, not ours
    assert hyperctl("job", "logs", "-b", "r", "-j", "dflt").stdout == f"{hosts[0].home}/{REMOTE_ROOT}/r/dflt\n"


def test_a_remote_job_reads_long_params_where_hyperctl_is_not_installed(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    # The host's own python (the test user cannot run ours), without site-packages: hyperctl is not installed.
    # (Nor on PYTHONPATH, which a test run may set here to import the tree under test: the host's jobs get no such.)
    python = "/usr/bin/python3 -S"
    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    imported = subprocess.run(f"{python} -c 'import hyperctl'", shell=True, cwd="/", capture_output=True, env=bare)
    assert imported.returncode == 1
    read = f"{python} -c \"import hyperctl; p = hyperctl.get_job_params(); print(len(p['blob']), p['n'])\""
    jobs = [
        job(read, name="big", params={"blob": "x" * 100_000, "n": 1}),
        job(read, name="small", params={"blob": "y", "n": 2}),
    ]
    config = write_json(shared / "b.json", remote_batch(hosts, jobs))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert hyperctl("job", "logs", "-b", "r", "-j", "big").stdout == "100000 1\n"
    assert hyperctl("job", "logs", "-b", "r", "-j", "small").stdout == "1 2\n"


def test_a_remote_job_reports_metrics_where_hyperctl_is_not_installed(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    report = '/usr/bin/python3 -S -c "import hyperctl; hyperctl.report(loss=0.5); hyperctl.report(loss=0.25)"'
    config = write_json(shared / "b.json", remote_batch(hosts[:1], [job(report, name="m")]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    on_host = hosts[0].home / REMOTE_ROOT / "r" / ".hyperctl" / "jobs" / "m" / "attempt-1" / "metrics"
    assert [json.loads(line)["loss"] for line in on_host.read_text().splitlines()] == [0.5, 0.25]


def test_gpu_auto_asks_nvidia_smi_on_the_host(hosts: list[Host], shared: Path, batches: Path) -> None:
    fake = shared / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nprintf '0\\n1\\n2\\n'\n")  # GPUs cannot run here: their count can
    (fake / "nvidia-smi").chmod(0o755)
    machine = hosts[0].machine(gpu="auto", cpu=4, environments={"PATH": f"{fake}:/usr/bin:/bin"})
    config = write_json(
        shared / "b.json",
        remote_batch(hosts, [job("echo $CUDA_VISIBLE_DEVICES", resource={"gpu": 3})], machines=[machine]),
    )

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[0]).stdout == "0,1,2\n"

    too_many = write_json(
        shared / "b.json", remote_batch(hosts, [job("true", resource={"gpu": 4})], machines=[machine], name="r2")
    )
    refused = hyperctl("run", "--config", str(too_many))
    assert refused.returncode == 2
    assert "jobs[0].resource: asks 4 GPUs; the most any machine has is 3" in refused.stderr


def test_max_jobs_caps_a_machine(hosts: list[Host], shared: Path, batches: Path) -> None:
    span = "date +%s.%N; sleep 0.3; date +%s.%N"
    machine = hosts[0].machine(cpu=8, max_jobs=2)
    config = write_json(shared / "b.json", remote_batch(hosts, [job(span) for _ in range(6)], machines=[machine]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    spans = [
        tuple(map(float, hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[i]).stdout.split()))
        for i in range(6)
    ]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2


def test_proxy_jump_reaches_a_host_only_its_neighbour_can(hosts: list[Host], shared: Path, batches: Path) -> None:
    if hosts[1].namespace is None or shutil.which("nft") is None:
        pytest.skip("needs network namespaces and nftables")
    gateway = hosts[1].address.rsplit(".", 1)[0] + ".1"  # the address this machine has on the hosts' bridge
    rules = (
        "table inet hcjump {\n  chain input { type filter hook input priority 0; policy accept;\n"
        f"    ip saddr {gateway} tcp dport 22 reject with tcp reset; }}\n}}\n"
    )
    subprocess.run(["ip", "netns", "exec", hosts[1].namespace, "nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        direct = write_json(shared / "d.json", remote_batch(hosts, [job("true")], machines=[hosts[1].machine()]))
        assert "cannot connect" in hyperctl("run", "--config", str(direct)).stderr  # the rule works
        jump = f"{hosts[0].user}@{hosts[0].address}"
        machine = hosts[1].machine(proxy_jump=jump)
        config = write_json(shared / "b.json", remote_batch(hosts, [job("hostname -I")], machines=[machine], name="j"))

        result = hyperctl("run", "--config", str(config))

        assert result.returncode == 0, result.stderr
        assert (
            hyperctl("job", "logs", "-b", "j", "-j", job_names(batches, "j")[0]).stdout.split()[0] == hosts[1].address
        )
    finally:
        subprocess.run(["ip", "netns", "exec", hosts[1].namespace, "nft", "delete", "table", "inet", "hcjump"])


def test_ssh_agent_logs_in_when_the_conf_names_no_key(hosts: list[Host], shared: Path, batches: Path) -> None:
    home = shared / "home"
    home.mkdir()
    socket_path = shared / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        wait_for(socket_path.exists, "ssh-agent to listen")
        env = {"SSH_AUTH_SOCK": str(socket_path), "HOME": str(home)}
        machine = {"hostname": hosts[0].address, "username": hosts[0].user}
        config = write_json(shared / "b.json", remote_batch(hosts, [job("echo via agent")], machines=[machine]))
        assert hyperctl("run", "--config", str(config), "--name", "before", env=env).returncode == 1  # no key yet

        subprocess.run(["ssh-add", "-q", str(hosts[0].key_file)], env={**os.environ, **env}, check=True)
        result = hyperctl("run", "--config", str(config), env=env)

        assert result.returncode == 0, result.stderr
        assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[0]).stdout == "via agent\n"
    finally:
        agent.kill()
        agent.wait()


def test_a_dropped_connection_loses_nothing(hosts: list[Host], shared: Path, batches: Path) -> None:
    """The job runs detached from its connection: when that drops, the daemon connects again and
    watches the same job; it is not run twice."""
    if hosts[0].namespace is None:
        pytest.skip("needs network namespaces")
    log, gate = shared / "runs.log", shared / "gate"
    command = f"echo ran >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done; echo finished"
    doc = remote_batch(hosts, [job(command, name="j", max_retries=2)], machines=[hosts[0].machine()])
    config = write_json(shared / "b.json", doc)
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    wait_for(log.exists, "the job to start")
    listener = psutil.Process(hosts[0].sshd_pid)
    sessions = listener.children()
    assert sessions
    for session in sessions:  # the daemon's connection, as a dropped link or a restarted sshd would
        session.kill()
    time.sleep(0.5)
    gate.touch()

    assert run.wait(timeout=30) == 0, run.communicate()[1]
    assert log.read_text() == "ran\n"
    attempts = json.loads(hyperctl("job", "describe", "-b", "r", "-j", "j", "--json").stdout)["attempts"]
    assert [(a["status"], a["exit_code"]) for a in attempts] == [("succeeded", 0)]
    assert hyperctl("job", "logs", "-b", "r", "-j", "j").stdout == "finished\n"


def test_job_logs_follows_a_running_remote_job(hosts: list[Host], shared: Path, batches: Path) -> None:
    gate = shared / "gate"
    command = f"echo one; echo err >&2; while [ ! -e {gate} ]; do sleep 0.05; done; echo two"
    config = write_json(shared / "b.json", remote_batch(hosts, [job(command, name="j")], machines=[hosts[0].machine()]))
    run = subprocess.Popen([sys.executable, "-m", "hyperctl", "run", "--config", str(config)], stderr=subprocess.PIPE)
    wait_for(lambda: "running" in hyperctl("job", "list", "-b", "r").stdout, "the job to run")
    follow = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "job", "logs", "-b", "r", "-j", "j", "-f"], stdout=subprocess.PIPE
    )
    assert follow.stdout is not None
    assert follow.stdout.readline() == b"one\n"  # while the job runs, before anything came home
    assert not (attempt_dir(batches, "r", "j", 1) / "stdout").exists()
    # A reader that leaves stops its `tail` on the host.
    quitter = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "job", "logs", "-b", "r", "-j", "j", "-f", "--stderr"],
        stdout=subprocess.PIPE,
    )
    assert quitter.stdout is not None and quitter.stdout.readline() == b"err\n"
    quitter.kill()
    quitter.wait()
    wait_for(lambda: not tails_on("stderr"), "the host's tail of stderr to stop")
    gate.touch()

    assert follow.wait(timeout=30) == 0
    assert follow.stdout.read() == b"two\n"  # then it ends with the job
    assert run.wait(timeout=30) == 0
    assert hyperctl("job", "logs", "-b", "r", "-j", "j").stdout == "one\ntwo\n"


def tails_on(name: str) -> bool:
    return any(
        p.info["name"] == "tail" and any(a.endswith(f"/{name}") for a in p.info["cmdline"] or [])
        for p in psutil.process_iter(["name", "cmdline"])
    )


def test_a_key_with_a_passphrase(hosts: list[Host], shared: Path, batches: Path) -> None:
    key = shared / "id_ecdsa"  # another key type than the fixture's ed25519
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "sesame", "-f", str(key)], check=True)
    authorized = hosts[0].key_file.parent / "authorized_keys"
    before = authorized.read_text()
    authorized.write_text(before + (shared / "id_ecdsa.pub").read_text())
    try:
        machine = {"hostname": hosts[0].address, "username": hosts[0].user, "ssh_rsa_file": str(key)}
        locked = write_json(shared / "l.json", remote_batch(hosts, [job("true")], machines=[machine], name="locked"))
        machine["passphrase_env"] = "KEY_PASSPHRASE"
        config = write_json(shared / "b.json", remote_batch(hosts, [job("echo via ecdsa")], machines=[machine]))

        refused = hyperctl("run", "--config", str(locked))
        result = hyperctl("run", "--config", str(config), env={"KEY_PASSPHRASE": "sesame"})

        assert refused.returncode == 1, refused.stderr
        assert f"the key {key} is encrypted: give its passphrase (passphrase_env)" in refused.stderr
        assert result.returncode == 0, result.stderr
        assert hyperctl("job", "logs", "-b", "r", "-j", job_names(batches, "r")[0]).stdout == "via ecdsa\n"
    finally:
        authorized.write_text(before)


def test_a_silent_machine_at_start_holds_up_no_job(hosts: list[Host], shared: Path, batches: Path) -> None:
    """Its connection would take its full timeout to fail: the other machine starts the jobs meanwhile."""
    if hosts[1].namespace is None or shutil.which("nft") is None:
        pytest.skip("needs network namespaces and nftables")
    machines = [hosts[0].machine(cpu=2), hosts[1].machine(cpu=2)]
    config = write_json(shared / "b.json", remote_batch(hosts, [job("true") for _ in range(6)], machines=machines))
    hosts[1].partition()
    try:
        start = time.monotonic()
        result = hyperctl("run", "--config", str(config), "--json")
        took = time.monotonic() - start
    finally:
        hosts[1].heal()

    assert result.returncode == 0, result.stderr
    assert f"machine {hosts[1].address} is down: no answer yet (connecting)" in result.stderr
    assert {j["host"] for j in json.loads(hyperctl("job", "list", "-b", "r", "--json").stdout)} == {hosts[0].address}
    assert took < 10, f"{took:.1f} s: the jobs waited for the silent machine"  # its connect gives up after 15 s


def test_a_remote_root_that_cannot_be_written_downs_the_machine_not_the_jobs(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    doc = remote_batch(hosts, [job("true") for _ in range(3)], machines=[hosts[0].machine()], remote_root="/proc/x")
    result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)), timeout=60)

    assert result.returncode == 1
    assert "every machine is down; 3 jobs not started:" in result.stderr
    why = f"{hosts[0].address}: {hosts[0].user}@{hosts[0].address}:22: remote_root /proc/x: cannot write there: mkdir"
    assert why in result.stderr, result.stderr
    listed = json.loads(hyperctl("job", "list", "-b", "r", "--json").stdout)
    assert [(j["status"], j["attempts"]) for j in listed] == [("pending", 0)] * 3  # no attempt spent on it


def test_a_machine_offers_what_the_host_has_unless_told(hosts: list[Host], shared: Path, batches: Path) -> None:
    machines = [hosts[0].machine(), hosts[1].machine(cpu=3, ram=1000)]
    config = write_json(shared / "b.json", remote_batch(hosts, [job("true")], machines=machines))
    assert hyperctl("run", "--config", str(config)).returncode == 0

    shown = {m["name"]: m for m in json.loads(hyperctl("hosts", "-b", "r", "--json").stdout)}
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20  # the hosts share this machine
    assert shown[hosts[0].address]["cpu"] == os.cpu_count()
    assert abs(shown[hosts[0].address]["ram"] - total_mb) < 64
    assert (shown[hosts[1].address]["cpu"], shown[hosts[1].address]["ram"]) == (3, 1000)


def test_job_logs_of_a_running_remote_job_without_and_with_a_daemon(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    gate = shared / "gate"
    command = f"echo one; echo two; while [ ! -e {gate} ]; do sleep 0.05; done"
    doc = remote_batch(hosts, [job(command, name="j")], machines=[hosts[0].machine()])
    daemon = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: hyperctl("job", "logs", "-b", "r", "-j", "j").stdout == "one\ntwo\n", "its output so far")
    assert hyperctl("job", "logs", "-b", "r", "-j", "j", "--tail", "1").stdout == "two\n"

    daemon.kill()
    daemon.wait()
    for follow in ([], ["-f"]):
        alone = hyperctl("job", "logs", "-b", "r", "-j", "j", *follow, timeout=20)
        assert alone.returncode == 2
        assert f"job 'j' runs on {hosts[0].address}; its output comes home when it ends" in alone.stderr
        assert "hyperctl batch resume r" in alone.stderr
    gate.touch()


def test_a_remote_job_s_token_is_not_on_its_command_line(hosts: list[Host], shared: Path, batches: Path) -> None:
    gate = shared / "gate"
    command = (
        'printf "%s %s\\n" "${HYPERCTL_JOB_TOKEN%%.*}" "${HYPERCTL_SERVER_PORTAL:-none}"; '
        f'while [ ! -e {gate} ]; do sleep 0.05; done; rm "$HYPERCTL_JOB_PARAMS_FILE"; '
        "/usr/bin/python3 -S -c 'import hyperctl; hyperctl.get_job_params()'"
    )
    doc = remote_batch(hosts, [job(command, name="j")], machines=[hosts[0].machine()])
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(shared / "b.json", doc))],
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: hyperctl("job", "logs", "-b", "r", "-j", "j").stdout, "the job to run")
    command_lines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert not [c for c in command_lines if "HYPERCTL_JOB_TOKEN=" in c or ".job.j." in c]
    gate.touch()

    assert run.wait(timeout=30) == 1
    assert hyperctl("job", "logs", "-b", "r", "-j", "j").stdout == "job none\n"  # the token, and no portal
    err = hyperctl("job", "logs", "-b", "r", "-j", "j", "--stderr").stdout
    assert "its params file is gone, and this machine cannot reach the daemon's API" in err


def test_setup_mistakes_are_config_errors_before_anything_starts(
    hosts: list[Host], shared: Path, batches: Path
) -> None:
    public = f"{hosts[0].key_file}.pub"
    cases = [
        ({"ssh_rsa_file": str(shared / "missing")}, {}, f"machines[0].ssh_rsa_file: no such file: {shared}/missing"),
        ({"ssh_rsa_file": public}, {}, f"machines[0].ssh_rsa_file: {public} is a public key: name the private key"),
        ({}, {"known_hosts": str(shared / "nope")}, f"known_hosts: no such file: {shared}/nope"),
    ]
    for machine, conf, error in cases:
        doc = remote_batch(hosts, [job("true")], machines=[hosts[0].machine(**machine)], **conf)
        result = hyperctl("run", "--config", str(write_json(shared / "b.json", doc)))
        assert result.returncode == 2, result.stderr
        assert f"hyperctl: error: backend.conf.{error}" in result.stderr, result.stderr
    assert not batches.exists()  # nothing was started, nor created
