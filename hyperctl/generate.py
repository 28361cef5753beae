"""A template (params as lists or distributions) -> a batch document: grid or random. No I/O."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path
from typing import Any

from hyperctl.config import Paths, parse_execution, parse_resource
from hyperctl.errors import ConfigError
from hyperctl.legacyshape import template_from_legacy
from hyperctl.limits import MAX_JOBS
from hyperctl.render import render_command
from hyperctl.spec import BackendSpec
from hyperctl.validation import Problems, Section, at_least, is_kind, join, kind_of

STRATEGIES = ("grid", "random")
# Copied as they are into the batch; `run` validates them.
_PASSED_THROUGH = ("name", "version", "backend", "daemon", "scheduler", "metrics")


def expand_template(template: dict[str, Any], base_dir: Path = Path(".")) -> tuple[dict[str, Any], int | None]:
    """The batch document a template stands for, and the seed used (random only)."""
    if isinstance(template, dict) and "jobs" in template:  # a batch given as a template: say so
        raise ConfigError(
            "jobs: a batch's key, not a template's; this looks like a batch: "
            "hyperctl run --config FILE, or Batch.run(...) without template=True"
        )
    problems = Problems()
    template = template_from_legacy(template, problems)
    top = Section(template, "", problems)
    strategy = top.get("strategy", "string", "grid", check=lambda v: _one_of(v, STRATEGIES))
    params = top.section("params")
    backend = template.get("backend")
    runs_here = not isinstance(backend, dict) or BackendSpec(type=backend.get("type", "local")).runs_here
    execution = parse_execution(top.section("execution"), Paths(base_dir, runs_here))
    if top.has("resource"):
        parse_resource(top.section("resource"))
    num_trials = top.get("num_trials", "integer", None, check=_check_trials)
    seed = top.get("seed", "integer", None)
    top.ignore(*_PASSED_THROUGH)
    top.done()
    spaces = {key: _parse_space(params, key, strategy) for key in params.data}
    params.ignore(*params.data)
    if strategy == "random" and num_trials is None and not top.has("num_trials"):
        problems.add("num_trials", "required with strategy: random")
    if strategy == "grid" and top.has("num_trials"):
        problems.add("num_trials", "only used with strategy: random")
    if strategy == "grid" and spaces:
        count = math.prod(len(space) for space in spaces.values())  # before making any of them
        if count > MAX_JOBS:
            problems.add("params", f"the grid makes {count:,} jobs: a batch may have at most {MAX_JOBS:,}")
    problems.raise_if_any()

    if strategy == "random":
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        combos = _sample(spaces, num_trials or 0, seed)
    else:
        combos = [dict(zip(spaces, values)) for values in itertools.product(*spaces.values())]
    if execution is not None and combos:
        try:  # every combination has the same keys: one rendering finds any unknown name
            render_command(execution.command, combos[0])
        except ValueError as e:
            raise ConfigError(f"execution.command: {e}") from None
    job_parts = {k: template[k] for k in ("execution", "resource") if k in template}
    if execution is not None:  # relative to the template, wherever the batch file is written
        keys = ("working_dir", "data_dir", "assets")
        paths = {k: getattr(execution, k) for k in keys if getattr(execution, k)}
        job_parts["execution"] = {**template["execution"], **paths}
    batch = {k: template[k] for k in _PASSED_THROUGH if k in template}
    batch["jobs"] = [{"params": combo, **job_parts} for combo in combos]
    return batch, (seed if strategy == "random" else None)


DISTRIBUTIONS = ("uniform", "loguniform", "randint")


def _check_trials(value: int) -> str | None:
    if value > MAX_JOBS:
        return f"a batch may have at most {MAX_JOBS:,} jobs, not {value:,}"
    return at_least(1)(value)


def _one_of(value: str, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"must be one of {', '.join(choices)}, not '{value}'"


def _parse_space(params: Section, key: str, strategy: str) -> Any:
    value = params.data[key]
    where = params.at(key)
    if isinstance(value, list):
        if not value:
            params.problems.add(where, "an empty list gives no jobs")
        return value
    if isinstance(value, dict) and strategy == "random":
        return _parse_distribution(value, where, params.problems)
    if strategy == "random":
        params.problems.add(
            where, f"must be a list of choices or a distribution {{{'|'.join(DISTRIBUTIONS)}: [low, high]}}"
        )
    elif isinstance(value, dict):
        params.problems.add(where, "a distribution needs strategy: random; the grid takes a list of values")
    else:
        params.problems.add(where, f"must be a list of values, not {kind_of(value)} (write [{value!r}] for one value)")
    return []


def _parse_distribution(value: dict[str, Any], where: str, problems: Problems) -> tuple[str, float, float] | None:
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        problems.add(where, f"a distribution is one of {', '.join(DISTRIBUTIONS)}: [low, high]")
        return None
    kind, bounds = next(iter(value.items()))
    where = join(where, kind)
    number = "integer" if kind == "randint" else "number"
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(is_kind(b, number) for b in bounds)):
        problems.add(where, f"must be [low, high], two {number}s")
        return None
    low, high = bounds
    if low > high:
        problems.add(where, f"low {low} is above high {high}")
    elif kind == "loguniform" and low <= 0:
        problems.add(where, "loguniform needs low > 0")
    return kind, low, high


_SAMPLERS = {
    "uniform": lambda rng, low, high: rng.uniform(low, high),
    "loguniform": lambda rng, low, high: math.exp(rng.uniform(math.log(low), math.log(high))),
    "randint": lambda rng, low, high: rng.randint(low, high),  # both ends included
}


def _sample(spaces: dict[str, Any], num_trials: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    trials = []
    for _ in range(num_trials):
        trial: dict[str, Any] = {}
        for key, space in spaces.items():  # key order fixes the draw order: same seed, same jobs
            if isinstance(space, list):
                trial[key] = rng.choice(space)
            else:
                kind, low, high = space
                trial[key] = _SAMPLERS[kind](rng, low, high)
        trials.append(trial)
    return trials
