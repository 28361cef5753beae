"""Running batches on this machine: real processes, real files, real SQLite."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    REPO,
    attempt_dir,
    hyperctl,
    job_names,
    process_alive,
    read_stdout,
    run_on_terminal,
    wait_for,
    write_json,
)


def batch(jobs: list[dict[str, Any]], name: str = "b", **extra: Any) -> dict[str, Any]:
    return {"name": name, "jobs": jobs, "daemon": {"port": 0}, **extra}


def job(command: str, **fields: Any) -> dict[str, Any]:
    return {
        "params": fields.pop("params", {}),
        "execution": {"command": command, **fields.pop("execution", {})},
        **fields,
    }


def statuses(batches: Path, name: str = "b") -> dict[str, str]:
    with sqlite3.connect(batches / name / ".hyperctl" / "state.db") as db:
        return dict(db.execute("SELECT name, status FROM jobs"))


def test_hostile_param_values_stay_one_literal_argument(tmp_path: Path, batches: Path) -> None:
    hostile = ["x; touch PWNED1", "$(touch PWNED2)", "`touch PWNED3`", "a'b\"c", "--flag value", "*", "", "{{ v }}"]
    # The working dir is each job's own folder: out.txt and any PWNED file would land there.
    jobs = [job("printf '[%s]\\n' {{ v }} > out.txt", params={"v": v}) for v in hostile]
    config = write_json(tmp_path / "b.json", batch(jobs))

    result = hyperctl("run", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for name, value in zip(job_names(batches, "b"), hostile):
        assert (batches / "b" / name / "out.txt").read_text() == f"[{value}]\n"
    assert not list(tmp_path.rglob("PWNED*"))


def test_assets_are_copied_into_a_local_job_and_max_jobs_caps_the_machine(tmp_path: Path, batches: Path) -> None:
    (tmp_path / "data.txt").write_text("original\n")
    # Each job changes its own copy: the original and the other job's copy stay as they were.
    command = "cat data.txt; echo changed > data.txt; date +%s.%N; sleep 0.3; date +%s.%N"
    jobs = [job(command, execution={"assets": ["data.txt"]}) for _ in range(3)]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"type": "local", "conf": {"cpu": 4, "max_jobs": 1}}))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    outputs = [read_stdout(batches, "b", job_names(batches, "b")[i]).split() for i in range(3)]
    assert [o[0] for o in outputs] == ["original"] * 3
    assert (tmp_path / "data.txt").read_text() == "original\n"
    spans = sorted((float(o[1]), float(o[2])) for o in outputs)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # one at a time


def test_jobs_really_run_at_once(tmp_path: Path, batches: Path) -> None:
    """Each of 4 jobs waits until all 4 have started: only true concurrency lets them finish."""
    meet = tmp_path / "meet"
    meet.mkdir()
    wait = (
        f"touch {meet}/$HYPERCTL_JOB_NAME; for i in $(seq 200); do "
        f"[ $(ls {meet} | wc -l) -ge 4 ] && exit 0; sleep 0.05; done; exit 1"
    )
    config = write_json(tmp_path / "b.json", batch([job(wait) for _ in range(4)], backend={"conf": {"cpu": 4}}))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert set(statuses(batches).values()) == {"succeeded"}


def test_gpus_are_exclusive_under_contention(tmp_path: Path, batches: Path) -> None:
    """12 jobs asking 0-2 GPUs of 4: each holds a lock file per GPU it sees; a shared GPU would fail it."""
    locks = tmp_path / "gpu-locks"
    locks.mkdir()
    script = tmp_path / "use_gpus.py"
    script.write_text(f"""\
import json, os, sys, time
visible = os.environ["CUDA_VISIBLE_DEVICES"]
gpus = [g for g in visible.split(",") if g]
assert visible == os.environ.get("HYPERCTL_GPUS", ""), "HYPERCTL_GPUS differs"
held = []
for g in gpus:
    os.close(os.open("{locks}/" + g, os.O_CREAT | os.O_EXCL))  # fails if another job holds it
    held.append(g)
time.sleep(0.2)
for g in held:
    os.unlink("{locks}/" + g)
print(json.dumps(gpus))
""")
    asks = [2, 1, 0, 2, 1, 2, 0, 1, 2, 2, 1, 1]
    jobs = [job(f"{sys.executable} {script}", resource={"gpu": n}) for n in asks]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"conf": {"cpu": 8, "gpu": [0, 1, 2, 3]}}))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    for i, n in enumerate(asks):
        seen = json.loads(read_stdout(batches, "b", job_names(batches, "b")[i]))
        assert len(seen) == n and set(seen) <= {"0", "1", "2", "3"}


def test_a_job_printing_100_mb_does_not_hang(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("head -c 100000000 /dev/zero; echo done >&2")]))

    result = hyperctl("run", "--config", str(config), timeout=60)

    assert result.returncode == 0, result.stderr
    attempt = attempt_dir(batches, "b", job_names(batches, "b")[0], 1)
    assert (attempt / "stdout").stat().st_size == 100_000_000
    assert (attempt / "stderr").read_text() == "done\n"


def test_failed_jobs_exit_1_and_are_named_with_their_logs(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("true"), job("echo oops >&2; exit 3", name="bad")]))

    result = hyperctl("run", "--config", str(config), "--json")

    assert result.returncode == 1
    assert f"bad: failed (exit 3)  logs: {attempt_dir(batches, 'b', 'bad')}" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["not_succeeded"] == ["bad"]
    assert (attempt_dir(batches, "b", "bad", 1) / "stderr").read_text() == "oops\n"
    assert (attempt_dir(batches, "b", "bad", 1) / "exitcode").read_text() == "3\n"


def test_every_way_a_command_ends_leaves_its_exit_code_on_disk(tmp_path: Path, batches: Path) -> None:
    # The exitcode file is what a restarted daemon reads for a job that ended while none ran.
    # Whatever the command does to its shell (leave its folder, replace it, trap its exit, change
    # the launcher's own variables, functions or umask), the file must hold its real exit status.
    (tmp_path / "lib.sh").write_text("exec sh -c 'exit 6'\n")
    commands = {
        "exit": ("exit 3", 3),
        "cd": ("cd /; false", 1),
        "exec": ("exec sh -c 'exit 4'", 4),
        "hidden-exec": ("ex''ec sh -c 'exit 4'", 4),
        "trap": ("trap 'echo bye' EXIT; exit 5", 5),
        "sourced": (f". {tmp_path / 'lib.sh'}", 6),
        "set-e": ("set -e; false; echo not here", 1),
        "builtin": ("true", 0),
        "unset": ("unset _hc_dir; exit 6", 6),
        "own-var": ("_hc_dir=elsewhere; exit 3", 3),
        "echo-fn": ("echo() { :; }; exit 3", 3),
        "exit-256": ("exit 256", 0),
        "umask": ("umask 777; exit 3", 3),
        "set-x": ("set -x; exit 0", 0),
    }
    config = write_json(tmp_path / "b.json", batch([job(c, name=name) for name, (c, _) in commands.items()]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 1, result.stderr
    for name, (_, code) in commands.items():
        assert (attempt_dir(batches, "b", name, 1) / "exitcode").read_text() == f"{code}\n", name
    assert "not here" not in read_stdout(batches, "b", "set-e")
    assert read_stdout(batches, "b", "trap") == "bye\n"
    # The command's umask is its own: the launcher's files stay readable by the user (and private).
    assert (attempt_dir(batches, "b", "umask", 1) / "exitcode").stat().st_mode & 0o777 == 0o600
    assert (attempt_dir(batches, "b", "set-x", 1) / "stderr").read_text() == "+ exit 0\n"  # as `sh -c` says it


def test_what_a_job_leaves_running_in_the_background_ends_with_it(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("sleep 300 & echo $! > bg.pid; echo started", name="bg")]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "b", "bg") == "started\n"
    background = int((batches / "b" / "bg" / "bg.pid").read_text())
    wait_for(lambda: not process_alive(background), "the background sleep to end", deadline=10)


def test_a_job_sees_its_environment(tmp_path: Path, batches: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    dump = f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    config = write_json(
        tmp_path / "b.json",
        batch([job(dump, name="envjob", execution={"env": {"MY_VAR": "a b $HOME", "N": 3}, "working_dir": "work"})]),
    )

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    env = json.loads(read_stdout(batches, "b", "envjob"))
    job_dir = batches / "b" / "envjob"
    assert env["MY_VAR"] == "a b $HOME" and env["N"] == "3"
    assert env["HYPERCTL_JOB_NAME"] == "envjob" and env["HYPERCTL_BATCH_NAME"] == "b"
    assert env["HYPERCTL_JOB_DATA_DIR"] == str(job_dir)
    assert env["HYPERCTL_JOB_WORKING_DIR"] == env["PWD"] == str(work)
    assert env["HYPERCTL_SERVER_PORTAL"].startswith("http://127.0.0.1:")
    assert env["HYPERCTL_JOB_TOKEN"].startswith("job.")
    assert json.loads(Path(env["HYPERCTL_JOB_PARAMS_FILE"]).read_text()) == {}
    assert "CUDA_VISIBLE_DEVICES" not in env or env["CUDA_VISIBLE_DEVICES"] == os.environ.get("CUDA_VISIBLE_DEVICES")


def test_rerun_skips_what_succeeded_and_runs_what_changed(tmp_path: Path, batches: Path) -> None:
    log = tmp_path / "runs.log"
    jobs = [job(f"echo {{{{ x }}}} >> {log}", params={"x": x}) for x in (1, 2, 3)]
    jobs.append(job(f"echo fail >> {log}; exit 1", name="flaky"))
    config = write_json(tmp_path / "b.json", batch(jobs))
    assert hyperctl("run", "--config", str(config)).returncode == 1

    jobs[1]["params"]["x"] = 20
    jobs[3]["execution"]["command"] = f"echo fixed >> {log}"
    write_json(config, batch(jobs))
    again = hyperctl("run", "--config", str(config))

    assert again.returncode == 0, again.stderr
    assert "2 skipped: they already succeeded" in again.stderr
    assert sorted(log.read_text().split()) == sorted(["1", "2", "3", "fail", "20", "fixed"])
    assert "1 job of an earlier run no longer in the batch file" in again.stderr  # x=2 became x=20: a new job
    assert attempt_dir(batches, "b", "flaky", 1).is_dir() and attempt_dir(batches, "b", "flaky", 2).is_dir()
    assert statuses(batches) == dict.fromkeys(job_names(batches, "b"), "succeeded")
    assert len(statuses(batches)) == 4


def test_outside_a_job_the_api_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERCTL_")}
    result = subprocess.run(
        [sys.executable, "-c", "import hyperctl; hyperctl.get_job_params()"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "hyperctl.errors.NotInJobError: not inside a hyperctl job: HYPERCTL_JOB_NAME is not set "
        "(start the job with `hyperctl run`)"
    )


def test_import_hyperctl_loads_no_heavy_module() -> None:
    code = (
        "import sys, hyperctl; print(sorted(m for m in ('tornado', 'yaml', 'jinja2', 'psutil', 'paramiko', "
        "'urllib.request', 'sqlite3') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_one_run_builds_its_executor_and_checks_the_jobs_once(tmp_path: Path, batches: Path) -> None:
    """A local machine's capacity is known before prepare(): nothing to check a second time."""
    config = write_json(tmp_path / "b.json", batch([job("true") for _ in range(3)]))
    code = (
        "import sys, collections\n"
        "from hyperctl.daemon import runner\n"
        "calls = collections.Counter()\n"
        "def counted(name, fn):\n"
        "    def call(*args):\n"
        "        calls[name] += 1\n"
        "        return fn(*args)\n"
        "    return call\n"
        "runner.create_executor = counted('build', runner.create_executor)\n"
        "runner.check_fits = counted('check', runner.check_fits)\n"
        "from hyperctl.cli import main\n"
        f"code = main(['run', '--config', {str(config)!r}])\n"
        "print(dict(calls))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'build': 1, 'check': 1}"


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").iterdir() if p.is_dir()))
def test_examples_run_as_written(example: str, batches: Path) -> None:
    folder = REPO / "examples" / example
    command = (
        (folder / "COMMAND").read_text().split()
        if (folder / "COMMAND").exists()
        else ["run", "--config", f"examples/{example}/batch.json"]
    )
    result = hyperctl(*command, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_progress_bar_on_a_terminal(tmp_path: Path, batches: Path) -> None:

    config = write_json(tmp_path / "b.json", batch([job("sleep 0.2"), job("exit 4", name="bad"), job("sleep 0.2")]))

    code, screen = run_on_terminal("run", "--config", str(config))

    assert code == 1
    assert "\r\x1b[K[....................] 0/3  0 ok" in screen
    assert "1 failed" in screen
    assert "hyperctl: batch b failed in 0:00: 2 succeeded, 1 failed" in screen
    assert "[1/3]" not in screen  # plain lines are for logs, not terminals


def test_two_files_with_one_batch_name_do_not_merge(tmp_path: Path, batches: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, word in ((first, "first"), (second, "second")):
        folder.mkdir()
        write_json(folder / "batch.json", {"jobs": [job(f"echo {word}")], "daemon": {"port": 0}})
    assert hyperctl("run", "--config", str(first / "batch.json")).returncode == 0
    [first_job] = job_names(batches, "batch")

    refused = hyperctl("run", "--config", str(second / "batch.json"))
    continued = hyperctl("run", "--config", str(second / "batch.json"), "--name", "batch")

    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"hyperctl: error: a batch named 'batch' already exists in {batches}, run from {first / 'batch.json'}; "
    )
    assert continued.returncode == 0, continued.stderr
    [second_job] = job_names(batches, "batch")  # another command: another job, in a folder of its own
    assert read_stdout(batches, "batch", first_job) == "first\n"
    assert read_stdout(batches, "batch", second_job) == "second\n"


def test_gpu_auto_asks_nvidia_smi(tmp_path: Path, batches: Path) -> None:
    """No GPU here: a stand-in nvidia-smi reports two, as the real one would print them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = --query-gpu=index ] && printf "0\\n1\\n"\n')
    smi.chmod(0o755)
    jobs = [job('echo "$CUDA_VISIBLE_DEVICES"', resource={"gpu": 1}) for _ in range(4)]
    config = write_json(tmp_path / "b.json", batch(jobs, backend={"conf": {"gpu": "auto"}}))

    found = hyperctl("run", "--config", str(config), env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    smi.unlink()
    none = hyperctl("run", "--config", str(config), "--name", "b2")

    assert found.returncode == 0, found.stderr
    assert {read_stdout(batches, "b", job_names(batches, "b")[i]) for i in range(4)} <= {"0\n", "1\n"}
    assert none.returncode == 2
    assert "jobs[0].resource: asks 1 GPU; the most any machine has is 0" in none.stderr


def test_jobs_get_default_signals_so_pipelines_end(tmp_path: Path, batches: Path) -> None:
    """Python ignores SIGPIPE; a job must not inherit that, or `yes | head -1` never ends."""
    config = write_json(tmp_path / "b.json", batch([job("yes | head -1", execution={"timeout": 20})]))

    result = hyperctl("run", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert read_stdout(batches, "b", job_names(batches, "b")[0]) == "y\n"
    assert (attempt_dir(batches, "b", job_names(batches, "b")[0], 1) / "stderr").read_text() == ""


def test_a_closed_output_pipe_does_not_stop_the_batch(tmp_path: Path, batches: Path) -> None:
    config = write_json(tmp_path / "b.json", batch([job("sleep 0.1") for _ in range(4)], backend={"conf": {"cpu": 1}}))
    argv = f"{sys.executable} -m hyperctl run --config {config} 2>&1 | head -1"

    result = subprocess.run(argv, shell=True, capture_output=True, text=True, timeout=60)

    assert result.stdout.startswith("hyperctl: batch b: 4 jobs to run")
    assert set(statuses(batches).values()) == {"succeeded"}


def test_an_unusable_batches_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = write_json(tmp_path / "b.json", batch([job("true")]))

    result = hyperctl("run", "--config", str(config), "--batches-data-dir", str(tmp_path / "file" / "sub"))

    assert result.returncode == 2
    assert (
        result.stderr
        == f"hyperctl: error: cannot make the batch folder {tmp_path / 'file' / 'sub' / 'b'}: Not a directory\n"
    )


def test_a_job_run_by_another_python_imports_hyperctl(tmp_path: Path, batches: Path) -> None:
    """A Python without hyperctl installed (system python3, a conda env) still reads its params."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bare = venv / "bin" / "python"
    alone = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(bare), "-c", "import hyperctl"], capture_output=True, env=alone, cwd=tmp_path)
    assert probe.returncode == 1
    script = "import hyperctl; print(hyperctl.get_job_params()['lr'])"
    jobs = [
        {"name": "j", "params": {"lr": 0.5}, "execution": {"command": f"{bare} -c {shlex.quote(script)}"}},
        # and where hyperctl is installed, all of it stays importable: its CLI too
        {"name": "cli", "execution": {"command": f"{sys.executable} -m hyperctl --version"}},
    ]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 0, (attempt_dir(batches, "b", "j") / "stderr").read_text()
    assert read_stdout(batches, "b", "j") == "0.5\n"
    assert read_stdout(batches, "b", "cli").startswith("hyperctl ")


BASH_ONLY = 'words=(a b c); [[ ${#words[@]} == 3 ]] && echo "${words[1]} from ${BASH_VERSION:+bash}"'


def test_execution_shell_runs_the_command_with_that_shell(tmp_path: Path, batches: Path) -> None:
    jobs = [
        {"name": "bash", "execution": {"command": BASH_ONLY, "shell": "bash"}},
        {"name": "sh", "execution": {"command": BASH_ONLY}},  # /bin/sh (dash here): no arrays
    ]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}}

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 1
    assert read_stdout(batches, "b", "bash") == "b from bash\n"
    assert read_stdout(batches, "b", "sh") == ""


POSIX_ONLY = "must be a POSIX shell (sh, bash, dash, ksh, zsh), not {}: params are quoted for those"


@pytest.mark.parametrize(
    ("shell", "message"),
    [
        ("ksh93", "jobs[0].execution.shell: no program 'ksh93' here"),
        # Params are quoted for POSIX shells: fish or csh would read a quoted value as code.
        ("fish", f"jobs[0].execution.shell: {POSIX_ONLY.format('fish')}"),
        ("/bin/csh", f"jobs[0].execution.shell: {POSIX_ONLY.format('csh')}"),
        (
            "bash -e",
            "jobs[0].execution.shell: must be one program, such as bash or /bin/zsh (it runs the command with -c)",
        ),
    ],
)
def test_a_shell_that_cannot_run_is_refused_before_anything_runs(
    tmp_path: Path, batches: Path, shell: str, message: str
) -> None:
    doc = {
        "name": "b",
        "jobs": [{"name": "j", "execution": {"command": "true", "shell": shell}}],
        "daemon": {"port": 0},
    }

    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)))

    assert result.returncode == 2
    assert result.stderr == f"hyperctl: error: {message}\n"
    assert not (batches / "b").exists()
