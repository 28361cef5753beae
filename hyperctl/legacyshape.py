"""The batch and template shapes of Hypernets' hyperctl, read as ours: its keys moved where ours
keep them (`job_command`, a job's own `working_dir` and `assets`, `server`, machines'
`connection`; a template's top-level `command`, `working_dir`, `data_dir`). A key given both
ways is a problem naming it. Its `scheduler` {interval, exit_on_finish} is read with ours."""

from __future__ import annotations

from typing import Any

from hyperctl.validation import Problems, join

# What Hypernets' jobs carry beside their params, where ours keep them in `execution`.
_LEGACY_JOB_KEYS = ("working_dir", "assets")
# What Hypernets' templates carry at the top, where ours keep them in `execution`.
_LEGACY_TEMPLATE_KEYS = ("command", "working_dir", "data_dir")


def from_legacy(data: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """Map the older Hypernets shape (job_command, jobs' own working_dir and assets, server,
    machines[].connection) onto ours.

    Its `scheduler` {interval, exit_on_finish} is read by _parse_scheduler.
    """
    jobs = data.get("jobs")
    legacy_jobs = isinstance(jobs, list) and any(
        isinstance(job, dict) and any(k in job for k in _LEGACY_JOB_KEYS) for job in jobs
    )
    if not legacy_jobs and not any(k in data for k in ("job_command", "server")) and not _legacy_machines(data):
        return data
    data = dict(data)
    command = data.pop("job_command", None)
    if isinstance(jobs, list):
        data["jobs"] = [
            _into_execution(job, _LEGACY_JOB_KEYS, join("jobs", i), problems, command) for i, job in enumerate(jobs)
        ]
    _legacy_server(data, problems)
    machines = _legacy_machines(data)
    if machines is not None:
        backend = dict(data["backend"])
        conf = dict(backend.get("conf") or {})
        conf["machines"] = [
            {**m.get("connection", {}), **{k: v for k, v in m.items() if k != "connection"}}
            if isinstance(m, dict)
            else m
            for m in machines
        ]
        backend.pop("machines")
        backend["conf"] = conf
        data["backend"] = backend
    return data


def template_from_legacy(template: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """A template of the older Hypernets shape (`command`, `working_dir`, `data_dir` at the top;
    `server`) in ours."""
    if not any(k in template for k in (*_LEGACY_TEMPLATE_KEYS, "server")):
        return template
    template = _into_execution(template, _LEGACY_TEMPLATE_KEYS, "", problems)
    _legacy_server(template, problems)
    return template


def _into_execution(obj: Any, keys: tuple[str, ...], path: str, problems: Problems, command: Any = None) -> Any:
    """obj (a job or a template) with its own `keys` moved into its execution, and `command` (the
    older shape's job_command) there unless it has one. A key given both ways is a problem."""
    execution = obj.get("execution", {}) if isinstance(obj, dict) else None
    if not isinstance(execution, dict):
        return obj  # reported as it is
    moved = {k: obj[k] for k in keys if k in obj}
    if not moved and (command is None or "command" in execution):
        return obj
    for key in moved.keys() & execution.keys():
        problems.add(join(path, key), f"given twice: here (the older Hypernets shape) and as execution.{key}")
    execution = {**({"command": command} if command is not None else {}), **moved, **execution}
    return {**{k: v for k, v in obj.items() if k not in moved}, "execution": execution}


def _legacy_server(data: dict[str, Any], problems: Problems) -> None:
    """`server` {host, port} of the older shape into `daemon`, in place. A key given both ways is a problem."""
    server = data.pop("server", None)
    daemon = data.get("daemon") or {}
    if not isinstance(daemon, dict):
        return  # reported as it is
    daemon = dict(daemon)
    if isinstance(server, dict):
        moved = {k: server[k] for k in ("host", "port") if k in server}
        for key in sorted(moved.keys() & daemon.keys()):
            problems.add(f"server.{key}", f"given twice: here (the older Hypernets shape) and as daemon.{key}")
        daemon.update(moved)
    if daemon:
        data["daemon"] = daemon


def _legacy_machines(data: dict[str, Any]) -> list[Any] | None:
    backend = data.get("backend")
    if isinstance(backend, dict) and isinstance(backend.get("machines"), list):
        return backend["machines"]
    return None
