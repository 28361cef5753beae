"""What a Slurm job runs: the attempt's job script (the same launcher as every backend's, under
sbatch) and the private file of its environment; an array's script that runs one of them per task.

Every file is in the batch folder, which the nodes see (shared storage), and private to the user.
The job's environment (its token among it) is in a 0600 file the script reads, never on sbatch's
command line nor in the script, which Slurm keeps a copy of.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from hyperctl import privatefs
from hyperctl.backends.base import LAUNCHER, Launch
from hyperctl.reporting import METRICS_ENV

# The attempt's files the daemon reads (besides the launcher's stdout, stderr and exitcode).
STARTED = "slurm"  # written first when the job starts: where it runs; its mtime: when it started
SLURM_LOG = "slurm.log"  # Slurm's own lines about the job (time limit, out of memory, node failure)
SCRIPT = "job.sh"
ENV = "env"

# Written by the job on its node before anything else: the link from the attempt to its Slurm job
# (which survives a daemon that died before it saved the id), where it runs and on which GPUs.
# Made whole under another name and renamed: a reader never sees half of it. A job Slurm runs
# again (requeued: preempted, its node failed) is a new attempt, numbered on from the one it was
# submitted as by Slurm's count of its restarts; its environment is the first one's, but for that.
_STARTED = """\
_hc_n=$(({attempt} + ${{SLURM_RESTART_COUNT:-0}}))
_hc_dir={records}/attempt-$_hc_n
umask 077
[ -d "$_hc_dir" ] || mkdir "$_hc_dir"
printf 'job=%s\\narray=%s\\ntask=%s\\nnode=%s\\ngpus=%s\\nrestarts=%s\\nattempt=%s\\n' \\
  "${{SLURM_JOB_ID-}}" "${{SLURM_ARRAY_JOB_ID-}}" "${{SLURM_ARRAY_TASK_ID-}}" "${{SLURMD_NODENAME-}}" \\
  "${{SLURM_JOB_GPUS-${{CUDA_VISIBLE_DEVICES-}}}}" "${{SLURM_RESTART_COUNT-0}}" "$_hc_n" >"$_hc_dir/{started}.new" \\
  && mv -f "$_hc_dir/{started}.new" "$_hc_dir/{started}"
. {env}
HYPERCTL_ATTEMPT=$_hc_n {metrics}="$_hc_dir/metrics"
export HYPERCTL_ATTEMPT {metrics}
"""
# Slurm's TERM (a kill: scancel --signal=TERM --full) reaches every process of the job. The
# launcher waits on (a no-op handler, reset to the default in the command's subshell) so the
# command's end is still written, with the exit code TERM gave it: kill_grace works as elsewhere.
_BEFORE_LAUNCHER = """\
if [ -n "${CUDA_VISIBLE_DEVICES-}" ]; then HYPERCTL_GPUS=$CUDA_VISIBLE_DEVICES; export HYPERCTL_GPUS; fi
trap : TERM
"""


def write_attempt(launch: Launch, env: dict[str, str], setup: tuple[str, ...], umask: str) -> Path:
    """Write the attempt's environment file and job script; the script's path."""
    folder = launch.attempt_dir
    env_text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    privatefs.write_atomic(folder / ENV, env_text)
    args = (
        launch.command,
        "$_hc_dir",  # the attempt's folder (not quoted: the script's variable)
        launch.working_dir,
        str(launch.params_file),
        umask,
        launch.execution.shell or "",
    )
    script = (
        "#!/bin/sh\n"
        f"# hyperctl: job {launch.job!r}, attempt {launch.attempt} (kept for debugging; the daemon wrote it)\n"
        + _STARTED.format(
            attempt=launch.attempt,
            records=shlex.quote(str(folder.parent)),
            started=STARTED,
            env=shlex.quote(str(folder / ENV)),
            metrics=METRICS_ENV,
        )
        + "".join(line + "\n" for line in setup)
        + _BEFORE_LAUNCHER
        + "set -- "
        + " ".join('"$_hc_dir"' if a == "$_hc_dir" else shlex.quote(a) for a in args)
        + "\n"
        + LAUNCHER
    )
    path = folder / SCRIPT
    privatefs.write_atomic(path, script)
    return path


def write_array(folder: Path, name: str, scripts: list[Path]) -> Path:
    """An array's list of job scripts (task i runs line i + 1) and its script; the script's path."""
    listing = folder / f"{name}.list"
    privatefs.write_atomic(listing, "".join(f"{s}\n" for s in scripts))
    path = folder / f"{name}.sh"
    privatefs.write_atomic(
        path,
        "#!/bin/sh\n# hyperctl: an array of attempts; task i runs the job script on line i + 1 of the list\n"
        f'exec /bin/sh "$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(listing))})"\n',
    )
    return path


def read_started(text: str) -> dict[str, str]:
    """The STARTED file's fields (job, array, task, node, gpus, restarts)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def remove_new(folder: Path) -> None:
    """Left by a job killed while it wrote its STARTED file: never read."""
    try:
        os.unlink(folder / f"{STARTED}.new")
    except FileNotFoundError:
        pass
