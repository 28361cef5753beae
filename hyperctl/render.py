"""Rendering a command template with a job's params, every value shell-quoted, within limits."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from hyperctl.limits import MAX_ARG_BYTES
from hyperctl.rendersafety import Budget, TooBig, command_environment
from hyperctl.shellscan import placement
from hyperctl.validation import unsendable

if TYPE_CHECKING:  # jinja2 is imported only when a command uses it
    import jinja2


def needs_rendering(command: str) -> bool:
    return "{{" in command or "{%" in command


def shell_word(value: Any) -> str:
    """One shell word for a param value; JSON spelling for non-strings. Whatever made the value
    (a filter returning Markup, `~`, a macro), it is quoted as a plain string."""
    import jinja2

    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # `{{ opt.nope }}`: an error naming it, not a blank
    if isinstance(value, str):
        return shlex.quote(str.__str__(value))  # Markup's own + would HTML-escape the quotes
    try:
        return shlex.quote(json.dumps(value))
    except (TypeError, ValueError):  # a range() or the like: as Python spells it
        return shlex.quote(str(value))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return command_environment(shell_word)


@lru_cache(maxsize=256)
def _compile(command: str) -> tuple[jinja2.Template, frozenset[str]]:
    """The template and the names it uses; ValueError for what cannot be a safe command."""
    import jinja2
    import jinja2.meta
    from jinja2 import nodes

    problem = unsendable(command)
    if problem:
        raise ValueError(problem)
    env = _environment()
    try:
        tokens = list(env.lex(command))
        found = placement(tokens)
        if found.problem:
            raise ValueError(found.problem)
        if found.numeric:  # the shell evaluates these: only numbers may go there
            command = _numbers_only(tokens, found.numeric)
        ast = env.parse(command)
        if ast.find(nodes.FilterBlock) is not None:  # its output is not quoted: `{% filter replace("'", "") %}`
            raise ValueError("{% filter %} blocks cannot be used in a command: filter the value ({{ x|upper }})")
        if ast.find(nodes.ScopedEvalContextModifier) is not None:  # HTML escaping would undo the quotes
            raise ValueError("{% autoescape %} blocks cannot be used in a command: hyperctl quotes every value")
        names = jinja2.meta.find_undeclared_variables(ast)
        return env.from_string(command), frozenset(names)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"template syntax: {e.message} (line {e.lineno})") from None
    except (RecursionError, SyntaxError):  # Jinja's parser, or Python's compiler of what it made
        raise ValueError("template: nests too deeply to compile") from None


def _numbers_only(tokens: list[tuple[int, str, str]], numeric: set[int]) -> str:
    """The template with each of those placeholders passed through the `number` check."""
    parts, slot = [], -1
    for _, kind, value in tokens:
        if kind == "variable_begin":
            slot += 1
            parts.append(value + (" (" if slot in numeric else ""))
        elif kind == "variable_end" and slot in numeric:
            parts.append(")|hyperctl_number " + value)
        else:
            parts.append(value)
    return "".join(parts)


def render_command(command: str, params: dict[str, Any]) -> str:
    """The command with {{ name }} replaced; ValueError names what is wrong."""
    if not needs_rendering(command):
        return command
    import jinja2

    template, names = _compile(command)
    unknown = sorted(names - params.keys())
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise ValueError(f"'{unknown[0]}' is not a param (params: {known})")
    try:
        with Budget():
            text = _capped(_joined(template.generate(params)))
    except TooBig as e:
        raise ValueError(str(e)) from None
    except RecursionError:
        raise ValueError("template: calls itself without end (a macro?)") from None
    except jinja2.TemplateError as e:
        raise ValueError(f"template: {e}") from None
    except Exception as e:  # the user's template: `{{ lr / 0 }}`, `{{ name * 1.5 }}`, `{{ s|xmlattr }}`
        raise ValueError(f"template: {e}") from None
    if unsendable(text):  # from a param's value: say which
        for name in sorted(names):
            problem = _unsendable_in(params[name])
            if problem:
                raise ValueError(f"uses params.{name}, which {problem}")
        raise ValueError(f"renders to a command that {unsendable(text)}")
    return text


def _unsendable_in(value: Any) -> str | None:
    if isinstance(value, str):
        return unsendable(value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = (unsendable(key) if isinstance(key, str) else None) or _unsendable_in(item)
        if problem:
            return problem
    return None


def _joined(chunks: Iterator[str]) -> str:
    """The output, stopped as soon as it is too long for a command (a loop in a loop)."""
    parts, total = [], 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_ARG_BYTES:
            raise TooBig(_TOO_LONG)
        parts.append(chunk)
    return "".join(parts)


_TOO_LONG = f"renders to more than {MAX_ARG_BYTES + 1:,} bytes: a command may be at most 128 KiB (the kernel's limit)"


def _capped(text: str) -> str:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
        raise TooBig(_TOO_LONG)
    return text
