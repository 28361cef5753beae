"""The compare table's expressions, in Guild's grammar: columns, sort keys and filters.

    =lr                 a param
    loss                a metric's last value (or a param, or an attribute, when the name is only that)
    min loss, max acc   a metric's least or greatest value; `count loss`: how many points
    loss step           the step of that value (`min loss step`: the step of the least)
    .name, status       an attribute: batch, name, status, attempt, duration, host, started, ended, exit_code
    ... as NAME         the column's header
    -acc, acc           a sort key: descending, ascending (NaN and missing last either way)
    lr>=0.01            a filter: =, !=, <, <=, >, >=, ~ (a regular expression, searched)

Parsing needs no data; a plain name (`loss`) is resolved against the params and metrics the
jobs have (Ref.resolve), once they are read.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hyperctl.errors import HyperctlError
from hyperctl.output import visible
from hyperctl.spec import JobStatus
from hyperctl.unwatched import UNKNOWN

ATTRIBUTES = ("batch", "name", "status", "attempt", "duration", "host", "started", "ended", "exit_code")
STATS = ("last", "min", "max", "count")
# What a row's status may be: a job's, or unknown (a remote job of a batch whose daemon died).
STATUSES = (*(s.value for s in JobStatus), UNKNOWN)
ATTR, PARAM, METRIC, PLAIN = "attribute", "param", "metric", "plain"


class CompareError(HyperctlError):
    """A column, sort key or filter that cannot be read, or that names nothing the jobs have."""


@dataclass(frozen=True)
class Ref:
    """What a column shows of a job: an attribute, a param, or a statistic of a metric."""

    kind: str  # ATTR, PARAM, METRIC, or PLAIN (a bare name, not resolved yet)
    key: str
    stat: str = "last"
    step: bool = False  # the step of the value rather than the value
    label: str | None = None  # `as NAME`
    text: str = ""  # as written, for messages

    @property
    def header(self) -> str:
        if self.label:
            return self.label
        if self.kind != METRIC:
            return self.key
        return ("" if self.stat == "last" else f"{self.stat} ") + self.key + (" step" if self.step else "")

    def resolve(self, params: set[str], metrics: set[str], what: str) -> Ref:
        """A PLAIN name made an attribute, a metric or a param, as the jobs have it; else an error
        naming it (what: where it was given, e.g. "column 'loss'")."""
        if self.kind == PLAIN:
            if self.key in ATTRIBUTES:
                return replace(self, kind=ATTR)
            is_metric, is_param = self.key in metrics, self.key in params
            if is_metric and is_param:
                raise CompareError(
                    f"{what}: '{self.key}' is both a param and a metric: write ={self.key} for the param, "
                    f"last {self.key} for the metric"
                )
            if is_metric or is_param:
                return replace(self, kind=METRIC if is_metric else PARAM)
        known = {PARAM: params, METRIC: metrics}.get(self.kind if self.kind != PLAIN else "")
        if self.kind == PLAIN or (known is not None and self.key not in known):
            noun = {PARAM: "param", METRIC: "metric"}.get(self.kind, "param or metric")
            names = {PARAM: sorted(params), METRIC: sorted(metrics)}.get(self.kind, [*ATTRIBUTES, *params, *metrics])
            close = difflib.get_close_matches(self.key, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise CompareError(f"{what}: no job has a {noun} named '{self.key}' ({hint}{_known(params, metrics)})")
        return self


def _known(params: set[str], metrics: set[str]) -> str:
    def names(found: set[str]) -> str:
        listed = sorted(found)
        shown = map(visible, listed[:10])  # jobs' names for metrics: the error stays one line
        return ", ".join(shown) + (", ..." if len(listed) > 10 else "") if listed else "none"

    return f"params: {names(params)}; metrics: {names(metrics)}"


_AS = re.compile(r"^(.*?)\s+as\s+(\S.*)$")


def parse_column(text: str, what: str = "column") -> Ref:
    """One column expression (see the module's doc)."""
    where = f"{what} '{text}'"
    body, label = text.strip(), None
    found = _AS.match(body)
    if found:
        body, label = found.group(1).strip(), found.group(2).strip()
    if not body:
        raise CompareError(f"{where}: empty; write a param (=lr), a metric (loss, min loss) or an attribute (status)")
    if body.startswith("="):
        key = body[1:].strip()
        if not key:
            raise CompareError(f"{where}: '=' needs a param's name (=lr)")
        return Ref(PARAM, key, label=label, text=text)
    if body.startswith("."):
        key = body[1:].strip()
        if key not in ATTRIBUTES:
            raise CompareError(f"{where}: no attribute '{key}' (attributes: {', '.join(ATTRIBUTES)})")
        return Ref(ATTR, key, label=label, text=text)
    words = body.split()
    stat = None
    if len(words) > 1 and words[0] in STATS:
        stat, words = words[0], words[1:]
    step = len(words) > 1 and words[-1] == "step"
    if step:
        words = words[:-1]
        if stat == "count":
            raise CompareError(f"{where}: a count has no step (write count {' '.join(words)})")
    key = " ".join(words)
    if stat is None and not step:
        return Ref(PLAIN, key, label=label, text=text)
    return Ref(METRIC, key, stat or "last", step, label, text)


def parse_columns(texts: list[str]) -> list[Ref]:
    """Columns as given (each text may hold several, comma-separated)."""
    return [parse_column(part) for text in texts for part in text.split(",")]


@dataclass(frozen=True)
class SortKey:
    """A column to sort by, and which way."""

    ref: Ref
    descending: bool


def parse_sort(text: str) -> SortKey:
    """`-acc` (descending), `acc` or `+acc` (ascending)."""
    body = text.strip()
    descending = body.startswith("-")
    if body and body[0] in "+-":
        body = body[1:]
    return SortKey(parse_column(body, "sort key"), descending)


# Longest first, so that `<=` is not read as `<` then `=...`.
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "~": lambda value, pattern: pattern.search(str(value)) is not None,
}
_FILTER = re.compile(r"(.+?)\s*(" + "|".join(re.escape(op) for op in _OPERATORS) + r")\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Filter:
    """`ref OP value`: a job is kept when its value compares true (a missing value never does)."""

    ref: Ref
    op: str
    value: Any  # a number, a string, or a compiled pattern for ~
    text: str
    written: str = ""  # the value as written

    def checked(self, ref: Ref) -> Filter:
        """This filter on its resolved column, refused where it could keep no row for a reason a
        user would rather hear: a status that is none (status=succeded), a metric against text."""
        if ref.kind == ATTR and ref.key == "status" and self.op in ("=", "!="):
            if self.written not in STATUSES:
                close = difflib.get_close_matches(self.written, STATUSES, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise CompareError(
                    f"filter '{self.text}': no status '{self.written}' ({hint}statuses: {', '.join(STATUSES)})"
                )
        if ref.kind == METRIC and self.op != "~" and not _is_number(self.value):
            raise CompareError(f"filter '{self.text}': '{self.written}' is not a number, and {ref.key} is a metric")
        return replace(self, ref=ref)

    def keeps(self, value: Any) -> bool:
        if value is None or value != value:  # missing, or NaN: nothing to compare
            return False
        if self.op == "~":
            return _OPERATORS["~"](_text(value), self.value)
        given = self.value
        if _is_number(value) and _is_number(given) and not isinstance(value, bool):
            return bool(_OPERATORS[self.op](value, given))
        if self.op in ("=", "!="):  # text against the text as written: tag=007 is the string "007"
            return (_text(value) == self.written) == (self.op == "=")
        if isinstance(value, str) and isinstance(given, str):
            return bool(_OPERATORS[self.op](value, given))
        return False  # a number against text: neither less nor more


def parse_filter(text: str) -> Filter:
    """`status=succeeded`, `lr>=0.01`, `min loss<0.3`, `name~^lr-0\\.1`."""
    where = f"filter '{text}'"
    body = text.strip()
    prefix = "=" if body.startswith("=") else ""  # =lr>=0.1: the param lr
    found = _FILTER.match(body[len(prefix) :])
    if not found:
        raise CompareError(f"{where}: write NAME OP VALUE, with OP one of {' '.join(_OPERATORS)} (e.g. loss<0.3)")
    left, op, right = found.group(1), found.group(2), found.group(3).strip()
    if not right:
        raise CompareError(f"{where}: nothing to compare with after '{op}'")
    ref = parse_column(prefix + left, "filter")
    if ref.label:
        raise CompareError(f"{where}: 'as' names a column, not a filter")
    value: Any
    if op == "~":
        try:
            value = re.compile(right)
        except re.error as e:
            raise CompareError(f"{where}: not a regular expression: {e}") from None
    else:
        value = _number(right)
    return Filter(replace(ref, text=text), op, value, text, right)


def _number(text: str) -> Any:
    """The number text writes, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _text(value: Any) -> str:
    """A value as a filter reads it: true and false as JSON (and the table) write them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))
