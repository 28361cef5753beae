"""Rendering a command template with a job's params, every value shell-quoted."""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported only when a command uses it
    import jinja2


def needs_rendering(command: str) -> bool:
    return "{{" in command or "{%" in command


def shell_word(value: Any) -> str:
    """One shell word for a param value; JSON spelling for non-strings."""
    import jinja2

    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # `{{ opt.nope }}`: an error naming it, not a blank
    if isinstance(value, str):
        return shlex.quote(value)
    try:
        return shlex.quote(json.dumps(value))
    except (TypeError, ValueError):  # a range() or the like: as Python spells it
        return shlex.quote(str(value))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2.sandbox

    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        finalize=shell_word,  # applied to every {{ }} output: nothing reaches the shell unquoted
        autoescape=False,
        keep_trailing_newline=True,
        # `${#var}` is common shell; keep Jinja comments out of its way.
        comment_start_string="{##",
        comment_end_string="##}",
    )


@lru_cache(maxsize=256)
def _compile(command: str) -> tuple[jinja2.Template, frozenset[str]]:
    import jinja2.meta

    env = _environment()
    names = jinja2.meta.find_undeclared_variables(env.parse(command))
    return env.from_string(command), frozenset(names)


def render_command(command: str, params: dict[str, Any]) -> str:
    """The command with {{ name }} replaced; ValueError names what is wrong."""
    if not needs_rendering(command):
        return command
    import jinja2

    try:
        template, names = _compile(command)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"template syntax: {e.message} (line {e.lineno})") from None
    unknown = sorted(names - params.keys())
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise ValueError(f"'{unknown[0]}' is not a param (params: {known})")
    try:
        return template.render(params)
    except jinja2.TemplateError as e:
        raise ValueError(f"template: {e}") from None
    except (TypeError, ValueError, ArithmeticError) as e:  # `{{ lr / 0 }}`, `{{ name * 1.5 }}`
        raise ValueError(f"template: {e}") from None
