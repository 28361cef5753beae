"""`scheduler.objective`: the metric that names a batch's best job. Read from the batch file
here; the best job is found in the store (metricstore.best_job) and named by `batch describe`
and the end of `hyperctl run`.

    "objective": {"metric": "acc", "mode": "max"}     each succeeded job's last acc; the greatest wins
    "objective": {"metric": "loss", "mode": "min", "value": "best"}   each one's least loss
    "objective": "max acc"                             the same as the first, in short
"""

from __future__ import annotations

from typing import Any

from hyperctl.metricsfile import RESERVED
from hyperctl.metricstore import Best
from hyperctl.spec import OBJECTIVE_MODES, OBJECTIVE_VALUES, Objective
from hyperctl.tablefit import show_number
from hyperctl.validation import Section, kind_of, unsendable

_SHAPE = 'must be an object like {"metric": "acc", "mode": "max"}, or "max acc" / "min loss"'


def parse_objective(scheduler: Section) -> Objective | None:
    """The objective in a scheduler section, or None (none given, or wrong: a problem then)."""
    raw = scheduler.data.get("objective")
    scheduler.ignore("objective")
    where = scheduler.at("objective")
    if raw is None:
        return None
    if isinstance(raw, str):
        words = raw.split()
        if len(words) != 2 or words[0] not in OBJECTIVE_MODES:
            scheduler.problems.add(where, f'{_SHAPE}, not "{raw}"')
            return None
        raw = {"mode": words[0], "metric": words[1]}
    elif not isinstance(raw, dict):
        scheduler.problems.add(where, f"{_SHAPE}, not {kind_of(raw)}")
        return None
    sec = Section(raw, where, scheduler.problems)
    metric = sec.get("metric", "string", check=_check_metric)
    if raw.get("mode") is None:  # required: no guess of which way is better; the line says what to write
        sec.problems.add(sec.at("mode"), f"required: {' or '.join(OBJECTIVE_MODES)} (is a greater value better?)")
    mode = sec.get("mode", "string", None, check=_one_of(OBJECTIVE_MODES))
    value = sec.get("value", "string", "last", check=_one_of(OBJECTIVE_VALUES))
    sec.done()
    if metric is None or mode is None or value is None:
        return None
    return Objective(metric, mode, value)


def _check_metric(name: str) -> str | None:
    if not name.strip():
        return "must not be empty"
    if name in RESERVED:
        return f"'{name}' is not a metric: t and step are every point's time and step"
    return unsendable(name)


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be {' or '.join(choices)}, not '{value}'"

    return check


def best_text(objective: Objective, best: Best | None, succeeded: int) -> str:
    """`lr-0.1 acc=0.97 (max of 4 succeeded jobs' last acc)`; with value "best", the step it was
    at. When no succeeded job reported the metric, that (a metric misspelt in the batch or the job
    shows); when no job succeeded, that rather (the metric's name is not in question)."""
    if best is None:
        if not succeeded:
            return "none: no job has succeeded"
        return f"none: no succeeded job has reported {objective.metric}"
    at = f" at step {best.step}" if objective.value == "best" else ""
    which = "last" if objective.value == "last" else "least" if objective.mode == "min" else "greatest"
    jobs = "1 succeeded job's" if best.among == 1 else f"{best.among} succeeded jobs'"
    value = show_number(best.value)  # as compare and job metrics show it (--json: in full)
    return f"{best.job} {objective.metric}={value}{at} ({objective.mode} of {jobs} {which} {objective.metric})"
