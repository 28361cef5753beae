"""Loading a batch file (JSON or YAML, ours or the older Hypernets shape) into a BatchSpec."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hyperctl.errors import ConfigError
from hyperctl.identity import derived_name
from hyperctl.legacyshape import from_legacy
from hyperctl.limits import MAX_ARG_BYTES, MAX_DEPTH, MAX_FILE_BYTES, MAX_JOBS, MAX_YAML_BYTES, size
from hyperctl.objective import parse_objective
from hyperctl.outputscalars import pattern_problem
from hyperctl.render import render_command
from hyperctl.spec import (
    JOB_NAME_PATTERN,
    RETRY_REASONS,
    BackendSpec,
    BatchSpec,
    DaemonSpec,
    Execution,
    JobSpec,
    MetricsSpec,
    Resource,
    RetryPolicy,
    SchedulerSpec,
)
from hyperctl.validation import Problems, Section, above, at_least, is_kind, join, kind_of, unsendable

_NAME = re.compile(JOB_NAME_PATTERN)
RESERVED_ENV_PREFIX = "HYPERCTL_"


def load_document(path: str | Path) -> dict[str, Any]:
    """Parse a JSON or YAML file into a dict; errors name the file and line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # no more: `--config /dev/zero` ends too
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: is over {size(MAX_FILE_BYTES)}, the most a batch or template file may be")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty")
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yml", ".yaml") and text.lstrip().startswith(("{", "["))
    )
    if not as_json and len(raw) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: is over {size(MAX_YAML_BYTES)}, the most a YAML file may be: write a larger one as JSON"
        )
    try:
        data = _parse_json(text, path) if as_json else _parse_yaml(text, path)
    except RecursionError:
        raise ConfigError(f"{path}: nests lists or objects too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold an object at the top, not {kind_of(data)}")
    return data


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_key_twice)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno} column {e.colno}: {e.msg}") from None
    except _KeyTwiceError as e:
        raise ConfigError(f"{path}: key '{e}' appears twice in one object") from None
    except ValueError:  # Python's own limit on the digits of an int it reads
        raise ConfigError(f"{path}: {_TOO_LONG}") from None


_TOO_LONG = "holds a number of over 4,300 digits: none can mean anything here"


class _KeyTwiceError(ValueError):
    """A JSON object with one key twice (json keeps the last one: a silent surprise)."""


def _no_key_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _KeyTwiceError(key)
            seen.add(key)
    return found


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    from hyperctl.yamlload import Loader, check_depth

    try:
        check_depth(text)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}{e.problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {e}") from None
    except ValueError:
        raise ConfigError(f"{path}: {_TOO_LONG}") from None


def load_batch(path: str | Path, name: str | None = None) -> BatchSpec:
    """Read and validate a batch file; relative paths in it are relative to it."""
    path = Path(path)
    return parse_batch(load_document(path), base_dir=path.parent, default_name=path.stem, name=name)


def parse_batch(data: dict[str, Any], base_dir: Path, default_name: str, name: str | None = None) -> BatchSpec:
    """Validate a batch document; raises ConfigError listing every problem.

    The batch name is `name` (from the command line) if given, else the document's, else
    default_name made safe.
    """
    if isinstance(data, dict) and "jobs" not in data and "params" in data:  # one line saying what to do
        raise ConfigError(
            "jobs: required; this looks like a template (params, no jobs): "
            "hyperctl run --template FILE, or Batch.run(..., template=True)"
        )
    problems = Problems()
    data = from_legacy(data, problems)
    if name is not None:
        if _check_name(name):
            raise ConfigError(f"--name: {_check_name(name)}")
        data = {**data, "name": name}
    top = Section(data, "", problems)
    name = top.get("name", "string", None, check=_check_name) or _safe_name(default_name)
    version = data.get("version")
    if is_kind(version, "number"):
        top.ignore("version")  # `version: 1.0` in YAML is a number; keep it as written
        version = str(version)
    else:
        version = top.get("version", "string", None)
    scheduler, default_retry, legacy_exit = _parse_scheduler(top.section("scheduler"))
    raw_jobs = top.get("jobs", "list", check=_check_job_count)
    backend = _parse_backend(top.section("backend"))
    paths = Paths(base_dir, backend.runs_here)
    shared: dict[Any, Any] = {}  # equal parts of many jobs, held once: 100,000 jobs add up
    jobs = [
        _parse_job(raw, join("jobs", i), paths, default_retry, problems, shared) for i, raw in enumerate(raw_jobs or [])
    ]
    named = [isinstance(raw, dict) and "name" in raw for raw in raw_jobs or []]
    jobs = _number_repeats(jobs, named, problems)
    _check_unique_names(jobs, named, problems)
    daemon = _parse_daemon(top.section("daemon"), legacy_exit)
    metrics = _parse_metrics(top.section("metrics"))
    top.done()
    problems.raise_if_any()
    return BatchSpec(
        name=name,
        version=version,
        jobs=[j for j in jobs if j is not None],
        backend=backend,
        daemon=daemon,
        scheduler=scheduler,
        metrics=metrics,
    )


def _check_job_count(jobs: list[Any]) -> str | None:
    if not jobs:
        return "must list at least one job"
    return None if len(jobs) <= MAX_JOBS else f"lists {len(jobs):,} jobs: a batch may have at most {MAX_JOBS:,}"


def _check_name(value: str) -> str | None:
    if _NAME.fullmatch(value):
        return None
    return "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _safe_name(stem: str) -> str:
    """A batch name made from a file name: invalid characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-")[:128]
    return name or "batch"


def _parse_job(
    raw: Any,
    path: str,
    paths: Paths,
    default_retry: RetryPolicy,
    problems: Problems,
    shared: dict[Any, Any],
) -> JobSpec | None:
    if not isinstance(raw, dict):  # said once: nothing in it to report missing
        problems.add(path, f"must be an object, not {kind_of(raw)}")
        return None
    job = Section(raw, path, problems)
    before = len(problems.lines)
    name = job.get("name", "string", None, check=_check_name)
    params = job.get("params", "object", {})
    _check_json(params, job.at("params"), problems)
    resource = parse_resource(job.section("resource"))
    resource = shared.setdefault(resource, resource)
    execution = parse_execution(job.section("execution"), paths, shared)
    retry = _parse_retry(job, default_retry)
    retry = shared.setdefault(retry, retry)
    job.done()
    if execution is None or len(problems.lines) > before:
        return None
    try:
        command = render_command(execution.command, params)
    except ValueError as e:
        problems.add(join(job.at("execution"), "command"), str(e))
        return None
    return JobSpec(
        name=name or derived_name(params, command),  # unnamed: named for what it runs (identity.py)
        params=params,
        execution=Execution(**{**execution.__dict__, "command": command}),
        resource=resource,
        retry=retry,
    )


def _check_json(value: Any, path: str, problems: Problems, depth: int = 0, top: str = "") -> None:
    """Params go to JSON files and to the API: only what JSON holds, and finite numbers."""
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        problems.add(top, f"nests lists or objects more than {MAX_DEPTH} levels deep")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(path, f"key {key!r} must be a string (in YAML, quote keys like on, off, yes, no, 1)")
            else:
                where = join(path, key)
                _check_json(item, where, problems, depth + 1, top or where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            where = join(path, i)
            _check_json(item, where, problems, depth + 1, top or where)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.add(path, f"must be a finite number, not {value}")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        problems.add(path, f"must be a string, number, boolean, null, list or object, not {type(value).__name__}")


def parse_resource(sec: Section) -> Resource:
    resource = Resource(
        cpu=sec.get("cpu", "number", 1, check=at_least(0)),
        ram=sec.get("ram", "integer", 0, check=at_least(0)),
        gpu=sec.get("gpu", "integer", 0, check=at_least(0)),
    )
    sec.done()
    return resource


@dataclass(frozen=True)
class Paths:
    """How a job's paths read: local files are relative to the batch file; where jobs run on
    another machine, its working_dir and data_dir are that machine's paths, kept as written."""

    base_dir: Path
    jobs_run_here: bool = True

    def local(self, path: str) -> str:
        return str((self.base_dir / os.path.expanduser(path)).absolute())

    def job_dir(self, path: str | None) -> str | None:
        if path is None or not self.jobs_run_here:
            return path
        return self.local(path)


def parse_execution(sec: Section, paths: Paths, shared: dict[Any, Any] | None = None) -> Execution | None:
    """The execution section; the command is left as written (not yet rendered)."""
    command = sec.get("command", "string", check=_check_command)
    working_dir = sec.get("working_dir", "string", None, check=_not_empty)
    data_dir = sec.get("data_dir", "string", None, check=_not_empty)
    env = parse_env(sec.section("env"))
    if shared is not None and not env:  # one empty dict for every job without env (never changed)
        env = shared.setdefault("empty env", env)
    timeout = sec.get("timeout", "number", None, check=above(0))
    kill_grace = sec.get("kill_grace", "number", 10.0, check=at_least(0))
    assets = _parse_assets(sec, paths)
    if shared is not None and not assets:
        assets = shared.setdefault("no assets", assets)
    download = _parse_download(sec)
    shell = sec.get("shell", "string", None, check=_check_shell)
    sec.done()
    if command is None:
        return None
    return Execution(
        command=command,
        working_dir=paths.job_dir(working_dir),
        data_dir=paths.job_dir(data_dir),
        env=env,
        timeout=float(timeout) if timeout is not None else None,
        kill_grace=float(kill_grace),
        assets=assets,
        download=download,
        shell=shell,
    )


# Shells whose quoting is POSIX's, which every value's quoting is written for: fish or csh would
# read a quoted param as code.
_POSIX_SHELL = re.compile(r"(sh|bash|dash|ksh|ksh93|mksh|pdksh|zsh|ash|yash|posh)[-.\d]*")


def _check_shell(value: str) -> str | None:
    if not value or any(c.isspace() or c == "\0" for c in value):
        return "must be one program, such as bash or /bin/zsh (it runs the command with -c)"
    if not _POSIX_SHELL.fullmatch(os.path.basename(value)):
        name = os.path.basename(value)
        return f"must be a POSIX shell (sh, bash, dash, ksh, zsh), not {name}: params are quoted for those"
    return None


def _check_command(value: str) -> str | None:
    return _not_empty(value) or _too_long(value)


def _not_empty(value: str) -> str | None:
    return unsendable(value) or (None if value.strip() else "must not be empty")


def _parse_assets(sec: Section, paths: Paths) -> list[str]:
    """Local files and folders, each put in the job's working dir under its own name."""
    raw = sec.get("assets", "list", [])
    assets = []
    for i, item in enumerate(raw):
        where = join(sec.at("assets"), i)
        if not isinstance(item, str) or not item.strip():
            sec.problems.add(where, "must be the path of a local file or folder")
            continue
        path = paths.local(item)
        if not os.path.exists(path):
            sec.problems.add(where, f"no such file or folder: {path}")
        elif not (os.path.isfile(path) or os.path.isdir(path)):  # a device, a FIFO: copied for ever
            sec.problems.add(where, f"must be a regular file or a folder: {path} is neither")
        elif _holds_batch_file(path, paths.base_dir):
            sec.problems.add(where, f"'{item}' is the batch file's own folder or one above it: list what to copy")
        elif os.path.basename(path.rstrip("/")) in ("", ".", ".."):
            sec.problems.add(where, "must name a file or folder")
        assets.append(path)
    names = [os.path.basename(a) for a in assets]
    for i, name in enumerate(names):
        if name in names[:i]:
            sec.problems.add(join(sec.at("assets"), i), f"another asset is also named '{name}'")
    return assets


def _holds_batch_file(path: str, base_dir: Path) -> bool:
    """`.`, `..`, `/`: an asset that would copy the batch file's whole folder (and the batch
    folder too, when it lies inside: a copy into itself without end)."""
    folder, base = os.path.realpath(path), os.path.realpath(base_dir)
    return base == folder or base.startswith(folder.rstrip("/") + "/")


def _parse_download(sec: Section) -> bool | list[str]:
    """What of a remote job's data dir comes home when it ends: true (all), false, or globs."""
    value = sec.data.get("download", True)
    sec.ignore("download")
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and value and all(isinstance(g, str) and g.strip() for g in value):
        return value
    sec.problems.add(sec.at("download"), "must be true, false or a list of globs (like '*.csv')")
    return True


def parse_env(sec: Section) -> dict[str, str]:
    """An environment section: valid names, string values (numbers spelled as JSON), no HYPERCTL_*."""
    env: dict[str, str] = {}
    for key, value in sec.data.items():
        sec.ignore(key)
        where = sec.at(key)
        if not isinstance(key, str):
            sec.problems.add(sec.path, f"key {key!r} must be a string (in YAML, quote it: '{key}')")
        elif key.upper().startswith(RESERVED_ENV_PREFIX):
            sec.problems.add(where, "reserved: hyperctl sets HYPERCTL_* variables itself")
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            sec.problems.add(where, "not a valid environment variable name")
        elif isinstance(value, str) or is_kind(value, "number") or is_kind(value, "boolean"):
            text = value if isinstance(value, str) else json.dumps(value)
            problem = unsendable(key) or unsendable(text) or _too_long(f"{key}={text}", " with its name")
            if problem:
                sec.problems.add(where, problem)
            else:
                env[key] = text
        else:
            sec.problems.add(where, f"must be a string or number, not {kind_of(value)}")
    return env


def _too_long(text: str, counting: str = "") -> str | None:
    """Past what the kernel takes as one argument or environment entry (MAX_ARG_STRLEN)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= MAX_ARG_BYTES:
        return None
    return f"is {size:,} bytes long{counting}: at most 128 KiB (the kernel's limit)"


def _number_repeats(jobs: list[JobSpec | None], named: list[bool], problems: Problems) -> list[JobSpec | None]:
    """Unnamed jobs that run the same command with the same params (repeats of one run) are told
    apart by their order: the second is `<name>-2`, the third `<name>-3`."""
    seen: dict[str, tuple[int, int]] = {}  # name -> (count, index of the first)
    numbered = []
    for i, (job, has_name) in enumerate(zip(jobs, named)):
        if job is not None and not has_name:
            count, first = seen.get(job.name, (0, i))
            seen[job.name] = (count + 1, first)
            other = jobs[first]
            assert other is not None
            if (job.params, job.execution.command) != (other.params, other.execution.command):
                problems.add(join("jobs", i), f"gets the name of jobs[{first}] ('{job.name}'), unlike it: name one")
                job = None
            elif count:
                job = replace(job, name=f"{job.name}-{count + 1}")
        numbered.append(job)
    return numbered


def _check_unique_names(jobs: list[JobSpec | None], named: list[bool], problems: Problems) -> None:
    first: dict[str, int] = {}
    for i, job in enumerate(jobs):
        if job is None:
            continue
        if job.name not in first:
            first[job.name] = i
            continue
        j = first[job.name]
        whose = f"jobs[{j}]" if named[j] else f"jobs[{j}] (made from its params and command)"
        problems.add(join(join("jobs", i), "name"), f"'{job.name}' is also the name of {whose}")


def _parse_backend(sec: Section) -> BackendSpec:
    backend = BackendSpec(type=sec.get("type", "string", "local"), conf=sec.get("conf", "object", {}))
    sec.done()
    return backend


def _parse_retry(sec: Section, default: RetryPolicy) -> RetryPolicy:
    """`max_retries` and `retry_on` (or the older `retry_on_exit_codes`: exit codes alone), in a job
    or (as the default) in `scheduler`."""
    max_retries = sec.get("max_retries", "integer", default.max_retries, check=at_least(0))
    on = sec.get("retry_on", "list", None, check=_check_retry_on)
    codes = sec.get("retry_on_exit_codes", "list", None, check=_check_exit_codes)
    if on is not None and codes is not None:
        sec.problems.add(sec.at("retry_on_exit_codes"), "give retry_on or retry_on_exit_codes, not both")
    chosen = on if on is not None else codes
    return RetryPolicy(max_retries, tuple(dict.fromkeys(chosen)) if chosen is not None else default.on)


def _is_exit_code(value: Any) -> bool:
    return is_kind(value, "integer") and 0 < value < 256


def _check_exit_codes(codes: list[Any]) -> str | None:
    return None if all(_is_exit_code(c) for c in codes) else "must be a list of exit codes, 1-255"


def _check_retry_on(items: list[Any]) -> str | None:
    for item in items:
        if not (_is_exit_code(item) or item in RETRY_REASONS):
            return f"must list exit codes (1-255) and {', '.join(RETRY_REASONS)}, not {json.dumps(item)}"
    return None


def _parse_scheduler(sec: Section) -> tuple[SchedulerSpec, RetryPolicy, bool | None]:
    """The scheduler section: our retry defaults, halt_on_failures and objective, and the older shape's keys."""
    retry = _parse_retry(sec, RetryPolicy())
    halt = sec.get("halt_on_failures", "integer", None, check=at_least(1))
    sec.get("interval", "number", None)  # the older shape's polling interval: nothing polls here
    legacy_exit = sec.get("exit_on_finish", "boolean", None)  # the older shape kept it here
    objective = parse_objective(sec)
    sec.done()
    return SchedulerSpec(halt_on_failures=halt, objective=objective), retry, legacy_exit


def _parse_daemon(sec: Section, legacy_exit_on_finish: bool | None = None) -> DaemonSpec:
    if legacy_exit_on_finish is not None and sec.has("exit_on_finish"):
        sec.problems.add(
            "scheduler.exit_on_finish", "given twice: here (the older Hypernets shape) and as daemon.exit_on_finish"
        )
    default_exit = True if legacy_exit_on_finish is None else legacy_exit_on_finish
    daemon = DaemonSpec(
        host=sec.get("host", "string", "127.0.0.1", check=_check_host),
        port=sec.get("port", "integer", 8060, check=lambda v: None if 0 <= v <= 65535 else "must be 0-65535"),
        exit_on_finish=sec.get("exit_on_finish", "boolean", default_exit),
        request_timeout=sec.get(
            "request_timeout", "number", 10.0, check=lambda v: None if 0 < v <= 3600 else "must be 0-3600 (seconds)"
        ),
    )
    sec.done()
    return daemon


def _parse_metrics(sec: Section) -> MetricsSpec:
    """`output`: true (stdout's `key: number` lines are metrics), false, or a list of patterns."""
    value = sec.data.get("output", True)
    sec.ignore("output")
    sec.done()
    if isinstance(value, bool):
        return MetricsSpec(output=value)
    if not isinstance(value, list) or not value:
        sec.problems.add(sec.at("output"), "must be true, false or a list of patterns")
        return MetricsSpec()
    for i, item in enumerate(value):
        problem = pattern_problem(item)
        if problem:
            sec.problems.add(join(sec.at("output"), i), problem)
    return MetricsSpec(output=value)


def _check_host(value: str) -> str | None:
    if value.strip():
        return unsendable(value)
    return "must not be empty (that would listen on every interface: write 0.0.0.0 to mean it)"
