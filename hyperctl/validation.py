"""Config validation: reading untrusted dicts field by field, collecting one line per problem."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from hyperctl.errors import ConfigError

_MISSING: Any = object()

_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "list": (list,),
}


def kind_of(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name in ("integer", "number", "string", "object", "list"):
        if isinstance(value, _KINDS[name]):
            return name
    return type(value).__name__


LARGEST = 2**53  # a number setting past this is no count of anything, and floats lose it


def unsendable(text: str) -> str | None:
    """Why a string cannot go to a command line, a path or an environment: NUL ends it there, and a
    lone surrogate (JSON "\\ud800") is no text at all."""
    if "\x00" in text:
        return "holds a NUL byte"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"holds a lone surrogate (\\u{ord(text[e.start]):04x}): not text"
    return None


def is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False  # True is an int to Python, never to a user
    return isinstance(value, _KINDS[kind])


class Problems:
    """Collects problems across a whole document, so the user sees all at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}" if path else message)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Section:
    """One JSON object being read; unknown keys are reported by done()."""

    def __init__(self, data: Any, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.add(path, f"must be an object, not {kind_of(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.data

    def at(self, key: str | int) -> str:
        return join(self.path, key)

    def get(
        self,
        key: str,
        kind: str,
        default: Any = _MISSING,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The value at key if it is of kind and passes check; else default."""
        self.seen.add(key)
        if key not in self.data or (self.data[key] is None and default is not _MISSING):
            if default is _MISSING:
                self.problems.add(self.at(key), "required")
                return None
            return default
        value = self.data[key]
        if not is_kind(value, kind):
            self.problems.add(self.at(key), f"must be {_article(kind)}, not {kind_of(value)}")
            return None if default is _MISSING else default
        if kind in ("number", "integer") and not -LARGEST <= value <= LARGEST:
            self.problems.add(self.at(key), f"is too large (at most {LARGEST:,} either way)")
            return None if default is _MISSING else default
        if check is not None:
            message = check(value)
            if message:
                self.problems.add(self.at(key), message)
                return None if default is _MISSING else default
        return value

    def section(self, key: str) -> Section:
        self.seen.add(key)
        return Section(self.data.get(key), self.at(key), self.problems)

    def ignore(self, *keys: str) -> None:
        self.seen.update(keys)

    def done(self) -> None:
        for key in self.data:
            if key not in self.seen:
                close = difflib.get_close_matches(str(key), sorted(self.seen), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problems.add(self.at(key), f"unknown key{hint}")


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low:g}, not {v}"


def above(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v > low else f"must be more than {low:g}, not {v}"
