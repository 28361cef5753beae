"""The Jinja environment commands render in: a sandbox whose every step is bounded.

A command template is the user's own, but a slip (`{{ 9**99999999 }}`, a loop in a loop, a
value repeated a billion times) must end in a one-line error within seconds, not a hang or
gigabytes: big integers, repetitions, widths, joins and namespace values are checked before
they are made, and rendering one command has a time budget (RENDER_SECONDS).
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from hyperctl.limits import MAX_ARG_BYTES, MAX_INT_BITS, MAX_ITEMS, RENDER_SECONDS

if TYPE_CHECKING:
    import jinja2


class TooBig(Exception):
    """A template asked for more than a command can hold, or took too long."""


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TooBig(f"template: computes an integer of over {MAX_INT_BITS:,} bits")


def _check_length(value: Any, length: int) -> None:
    if isinstance(value, str) and length > MAX_ARG_BYTES:
        raise TooBig(f"template: makes a string of {length:,} characters: a command may be at most 128 KiB")
    if isinstance(value, (list, tuple)) and length > MAX_ITEMS:
        raise TooBig(f"template: makes a list of {length:,} items (at most {MAX_ITEMS:,})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse what would take long or much memory to compute, before computing it."""
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        _check_int_bits(abs(left).bit_length() * right)
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            _check_int_bits(abs(left).bit_length() + abs(right).bit_length())
        elif _is_int(right) and isinstance(left, (str, list, tuple)):
            _check_length(left, len(left) * right)
        elif _is_int(left) and isinstance(right, (str, list, tuple)):
            _check_length(right, len(right) * left)
    elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _check_length(left, len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        check_format(left)


# A width or precision of 7 digits or more, a width given as an argument (`%*d`), a nested field.
_WIDE = re.compile(r"%[-#0 +]*(?:\d{7,}|\*|\d*\.(?:\d{7,}|\*))|\{[^{}]*:[^{}]*(?:\d{7,}|\{)")


def check_format(fmt: str) -> None:
    if _WIDE.search(fmt):
        raise TooBig("template: a format width or precision is too large (a command may be at most 128 KiB)")


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A count given to a string method or filter (`ljust(10**9)`, `center`, `lipsum(n)`)."""
    for value in (*args, *kwargs.values()):
        if _is_int(value) and abs(value) > MAX_ARG_BYTES:
            raise TooBig(f"template: {value:,} is too large a count here: a command may be at most 128 KiB")


def _bounded_filter(f: Callable[..., Any], check_value: bool = False) -> Callable[..., Any]:
    @functools.wraps(f)  # keeps Jinja's pass_* markers
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:], kwargs)
        if check_value and isinstance(args[0], str):
            check_format(args[0])
        return f(*args, **kwargs)

    return bounded


def join_capped(items: tuple[Any, ...]) -> str:
    """`a ~ b`: refused past the longest command, before it is made."""
    parts = [str.__str__(x) if isinstance(x, str) else str(x) for x in items]
    _check_length("", sum(map(len, parts)))
    return "".join(parts)


def _plain(value: Any, *args: Any, **kwargs: Any) -> Any:
    """HTML escaping means nothing in a shell command: every value is shell-quoted instead."""
    return str.__str__(value) if isinstance(value, str) else value


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def number_only(value: Any) -> Any:
    """A value where the shell evaluates arithmetic (`$(( ))`, `(( ))`, `[[ A -eq B ]]`, `a[i]`):
    there even a quoted `$(...)` or `a[$(...)]` runs, so only a number may stand."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return value
    shown = repr(value)[:40]
    raise ValueError(f"{shown} stands where the shell reads arithmetic ($(( )), (( )), -eq, a[i]): it must be a number")


def command_environment(finalize: Callable[[Any], str]) -> jinja2.Environment:
    """The sandbox commands render in; finalize turns every `{{ }}` output into one shell word."""
    import json

    import jinja2
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    class Generator(CodeGenerator):
        """Compiles `~` to the environment's capped join."""

        def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
            self.write("environment.join_capped((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedNamespace(Namespace):
        """`namespace()`: what a loop accumulates in it stays within a command's size."""

        def __setitem__(self, name: str, value: Any) -> None:
            if isinstance(value, (str, list, tuple)):
                _check_length(value, len(value))
            super().__setitem__(name, value)

    class CommandEnvironment(ImmutableSandboxedEnvironment):
        """The sandbox, with the operators that can explode checked first."""

        code_generator_class = Generator
        intercepted_binops = frozenset({"*", "**", "+", "%"})
        join_capped = staticmethod(join_capped)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            inner = getattr(__obj, "__wrapped__", __obj)
            if isinstance(getattr(inner, "__self__", None), str) or __obj is __self.globals.get("lipsum"):
                _check_args(args, kwargs)
                if getattr(inner, "__name__", "") in ("format", "format_map"):
                    check_format(inner.__self__)
            return super().call(__context, __obj, *args, **kwargs)

    env = CommandEnvironment(
        undefined=jinja2.StrictUndefined,
        finalize=finalize,  # applied to every {{ }} output: nothing reaches the shell unquoted
        autoescape=False,
        keep_trailing_newline=True,
        # `${#var}` is common shell; keep Jinja comments out of its way.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.globals["namespace"] = BoundedNamespace
    env.filters["hyperctl_number"] = number_only
    for name in ("e", "escape", "forceescape", "safe"):
        env.filters[name] = _plain
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent, sort_keys=True)
    for name in ("center", "indent", "batch", "slice", "wordwrap", "truncate"):
        env.filters[name] = _bounded_filter(env.filters[name])
    env.filters["format"] = _bounded_filter(env.filters["format"], check_value=True)
    return env


class Budget:
    """Rendering one command may take RENDER_SECONDS (in the main thread, where a timer can
    interrupt it; elsewhere the size checks alone hold)."""

    def __enter__(self) -> None:
        self.armed = threading.current_thread() is threading.main_thread()
        if self.armed:
            if signal.getsignal(signal.SIGALRM) is not _out_of_time:  # once: it costs more than a render
                signal.signal(signal.SIGALRM, _out_of_time)
            signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _out_of_time(signum: int, frame: FrameType | None) -> None:
    raise TooBig(f"template: takes over {RENDER_SECONDS:g} s to render (a loop in a loop?)")
