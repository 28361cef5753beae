"""What an attempt is started with: its environment (what a job sees of hyperctl) and its Launch."""

from __future__ import annotations

import json

from hyperctl.backends.base import Launch
from hyperctl.daemon.placement import Slot
from hyperctl.daemon.portal import job_portal
from hyperctl.layout import BatchDir, Layout
from hyperctl.reporting import METRICS_ENV
from hyperctl.spec import BatchSpec, JobSpec


def batch_env(spec: BatchSpec, batch_dir: BatchDir) -> dict[str, str]:
    """What every job of the batch sees of it (backends/base.py IDENTITY_ENV: its key)."""
    return {"HYPERCTL_BATCH_NAME": spec.name, "HYPERCTL_BATCH_ID": batch_dir.key}


def make_launch(
    batch_dir: BatchDir,
    env_of_batch: dict[str, str],
    token: str,
    job: JobSpec,
    n: int,
    slot: Slot,
    timeout: float | None,
    layout: Layout,
) -> Launch:
    """Attempt n of job, on slot: env_of_batch is batch_env()'s, with the API's portal if any."""
    data_dir = job.execution.data_dir or str(batch_dir.job_dir(job.name))
    working_dir = job.execution.working_dir or data_dir
    params_file = batch_dir.params_file(job.name, layout)
    env = {
        **job.execution.env,
        **env_of_batch,
        "HYPERCTL_JOB_NAME": job.name,
        "HYPERCTL_JOB_DATA_DIR": data_dir,
        "HYPERCTL_JOB_WORKING_DIR": working_dir,
        "HYPERCTL_JOB_PARAMS_FILE": str(params_file),
        METRICS_ENV: str(batch_dir.attempt_dir(job.name, n, layout) / "metrics"),
        "HYPERCTL_JOB_TOKEN": token,
        "HYPERCTL_ATTEMPT": str(n),
    }
    api = env_of_batch.get("HYPERCTL_SERVER_PORTAL")
    if api:  # its capability in the address: Hypernets' client sends no token
        env["HYPERCTL_SERVER_PORTAL"] = job_portal(api, token)
    if slot.machine.gpus:  # a machine with GPUs: a job sees only its own, or none
        env["CUDA_VISIBLE_DEVICES"] = env["HYPERCTL_GPUS"] = ",".join(map(str, slot.gpus))
    return Launch(
        job=job.name,
        attempt=n,
        command=job.execution.command,
        working_dir=working_dir,
        data_dir=data_dir,
        batch_dir=batch_dir,
        layout=layout,
        params_json=json.dumps(job.params),
        env=env,
        machine=slot.machine,
        execution=job.execution,
        gpus=slot.gpus,
        timeout=job.execution.timeout if timeout is None else timeout,
        kill_grace=job.execution.kill_grace,
        resource=job.resource,
    )
