"""Where each `{{ }}` of a command template stands in the shell text around it.

A placeholder becomes one single-quoted word. That holds as one literal word only where the
shell reads quotes: not inside other quotes ('...', "...", $'...'), backquotes or a heredoc body
(where `$(...)` in the value would run), and not right after a backslash or `$`. Where the
shell evaluates arithmetic, quotes protect nothing: those placeholders are marked for a
number-only check at render time. This is a
small lexical scan of the template's own text (Jinja tags add no text), enough for commands
as people write them; it errs on the side of refusing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SLOT = "\x00"  # stands for a placeholder in the scanned text (a command may hold no NUL)
_BREAKS = " \t\n;&|()<>"  # after these a new word starts (a `#` there starts a comment)

_WHERE = {
    "sq": "inside single quotes",
    "ansi": "inside $'...' quotes",
    "dq": "inside double quotes",
    "bq": "inside backquotes",
    "heredoc": "inside a heredoc",
    "delimiter": "a heredoc's delimiter",
    "backslash": "right after a backslash",
    "dollar": "right after a $",
}


@dataclass
class Placement:
    """What the scan found: the first placeholder that would not be one word (a message), and
    the placeholders (by order) that the shell reads as arithmetic, where it runs `$(...)` and
    `a[$(...)]` even from a quoted value: there a value must be a number."""

    problem: str | None
    numeric: set[int]


# bash evaluates these as arithmetic: `[[ A -eq B ]]`, `let ...`, `declare -i ...` (to the line's end)
_ARITH_SPANS = re.compile(
    r"\[\[(?:(?!\]\]).)*?\s-(?:eq|ne|lt|le|gt|ge)\s(?:(?!\]\]).)*\]\]"
    r"|(?:^|[\s;&|(])(?:let|(?:declare|typeset|local|export|readonly)\s+-[a-zA-Z]*i[a-zA-Z]*)\s[^\n;&|]*",
    re.S,
)


def placement(tokens: Iterable[tuple[int, str, str]]) -> Placement:
    """Where the placeholders of a template (from Jinja's lex()) stand in its shell text."""
    text: list[str] = []
    shown: list[str] = []
    inner: list[str] | None = None
    for _, kind, value in tokens:
        if kind == "data":
            text.append(value)
        elif kind == "variable_begin":
            inner = []
        elif kind == "variable_end" and inner is not None:
            text.append(SLOT)
            shown.append("{{ " + "".join(inner).strip() + " }}")
            inner = None
        elif inner is not None:
            inner.append(value)
    scan = _Scan("".join(text))
    found = scan.run()
    for span in _ARITH_SPANS.finditer(scan.s):
        scan.numeric.update(range(scan.s.count(SLOT, 0, span.start()), scan.s.count(SLOT, 0, span.end())))
    return Placement(None if found is None else _message(shown[found[0]], found[1]), scan.numeric)


def _message(ph: str, where: str) -> str:
    if where == "heredoc":
        return f'{ph} is {_WHERE[where]}, where quotes do not protect it: set a variable first (X={ph}) and use "$X"'
    if where == "delimiter":
        return f"{ph} is {_WHERE[where]}: write the delimiter out (<<EOF)"
    if where == "bq":
        return f"{ph} is {_WHERE[where]}: write $( ... ) instead of `...`"
    if where in ("backslash", "dollar"):
        return f"{ph} is {_WHERE[where]}: remove it; hyperctl quotes {ph} as one word"
    return f"{ph} is {_WHERE[where]}: write {ph} without quotes: hyperctl quotes it"


@dataclass
class _Scan:
    """The shell's quoting state, one character at a time; contexts nest ($( ) inside "...")."""

    s: str
    i: int = 0
    slot: int = 0
    stack: list[list[str | int]] = field(default_factory=lambda: [["cmd", 0]])
    heredocs: list[tuple[str, bool]] = field(default_factory=list)
    word_start: bool = True
    numeric: set[int] = field(default_factory=set)  # placeholders in $(( )), (( )), ${a[...]}

    def run(self) -> tuple[int, str] | None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == SLOT:
                where = self._where()
                if where:
                    return self.slot, where
                ctx = self.stack[-1]
                if ctx[0] == "arith" or (ctx[0] == "brace" and len(ctx) > 2 and ctx[2]):
                    self.numeric.add(self.slot)
                self.slot += 1
                self.i += 1
                self.word_start = False
                continue
            top = str(self.stack[-1][0])
            step = getattr(self, f"_{top}")(c)
            if step is not None:
                return self.slot, step
        return None

    def _where(self) -> str | None:
        if any(ctx[0] == "bq" for ctx in self.stack):
            return "bq"
        top = self.stack[-1]
        if top[0] == "brace" and top[1]:
            return "dq"
        if top[0] in ("sq", "ansi", "dq"):
            return str(top[0])
        if self.i and self.s[self.i - 1] == "$":
            return "dollar"
        return None

    def _escape(self) -> str | None:
        """A backslash: the next character is taken literally (a quote it precedes is no quote)."""
        if self.s[self.i + 1 : self.i + 2] == SLOT:
            return "backslash"
        self.i += 2
        self.word_start = False
        return None

    def _opens(self, c: str, quoted: bool) -> bool:
        """Quotes and expansions that open a context; True when one did."""
        two = self.s[self.i : self.i + 2]
        if two == "$(":
            self.stack.append(["arith" if self.s.startswith("$((", self.i) else "cmd", 1])
        elif two == "${":
            self.stack.append(["brace", int(quoted), 0])

        elif two == "$'" and not quoted:
            self.stack.append(["ansi", 0])
        elif c == "`":
            self.stack.append(["bq", 0])
            self.i += 1
            return True
        elif c == '"':
            self.stack.append(["dq", 0])
            self.i += 1
            return True
        elif c == "'" and not quoted:
            self.stack.append(["sq", 0])
            self.i += 1
            return True
        else:
            return False
        self.i += 2
        return True

    def _cmd(self, c: str) -> str | None:
        top = self.stack[-1]
        if c == "\\":
            return self._escape()
        if self._opens(c, quoted=False):
            self.word_start = False
            return None
        arith = top[0] == "arith"  # `$(( a << 2 ))` is no heredoc, `$(( $# ))` no comment
        if self.word_start and self.s.startswith("((", self.i):  # bash's arithmetic command
            self.stack.append(["arith", 2])
            self.i += 2
            return None
        if c == "#" and self.word_start and not arith:
            end = self.s.find("\n", self.i)
            end = len(self.s) if end < 0 else end
            self.slot += self.s.count(SLOT, self.i, end)  # placeholders in a comment are harmless
            self.i = end
            return None
        if c == "(":
            top[1] = int(top[1]) + 1
        elif c == ")" and len(self.stack) > 1:
            top[1] = int(top[1]) - 1
            if int(top[1]) <= 0:
                self.stack.pop()
        elif c == "<" and self.s.startswith("<<", self.i) and not self.s.startswith("<<<", self.i) and not arith:
            return self._heredoc()
        elif c == "\n" and self.heredocs:
            return self._bodies()
        self.word_start = c in _BREAKS
        self.i += 1
        return None

    _arith = _cmd

    def _heredoc(self) -> str | None:
        """`<<WORD` or `<<-WORD`: its body starts on the next line, up to a line that is WORD."""
        self.i += 2
        strip = self.s.startswith("-", self.i)
        self.i += strip
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1
        word = []
        while self.i < len(self.s) and self.s[self.i] not in _BREAKS:
            c = self.s[self.i]
            if c == "\\":
                word.append(self.s[self.i + 1 : self.i + 2])
                self.i += 2
                continue
            if c == SLOT:  # a delimiter hyperctl would quote: where would the body end?
                return "delimiter"
            if c not in "'\"":
                word.append(c)
            self.i += 1
        self.heredocs.append(("".join(word), strip))
        self.word_start = True
        return None

    def _bodies(self) -> str | None:
        self.i += 1
        for delimiter, strip in self.heredocs:
            while self.i < len(self.s):
                end = self.s.find("\n", self.i)
                end = len(self.s) if end < 0 else end
                line = self.s[self.i : end]
                self.i = end + 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                if SLOT in line:
                    return "heredoc"
                self.slot += line.count(SLOT)
        self.heredocs = []
        self.word_start = True
        return None

    def _brace(self, c: str) -> str | None:
        quoted = bool(self.stack[-1][1])
        if c == "\\":
            return self._escape()
        if self._opens(c, quoted):
            return None
        if c == "}":
            self.stack.pop()
        elif c in "[]":  # `${a[i]}`: an indexed array's subscript is arithmetic
            self.stack[-1][2] = int(c == "[")
        self.i += 1
        return None

    def _dq(self, c: str) -> str | None:
        if c == "\\":
            return self._escape()
        if c == '"':
            self.stack.pop()
            self.i += 1
            return None
        if c in "$`" and self._opens(c, quoted=True):
            return None
        self.i += 1
        return None

    def _sq(self, c: str) -> str | None:
        if c == "'":
            self.stack.pop()
        self.i += 1
        return None

    def _ansi(self, c: str) -> str | None:
        if c == "\\":
            return self._escape()
        return self._sq(c)

    def _bq(self, c: str) -> str | None:
        if c == "\\":
            return self._escape()
        if c == "`":
            self.stack.pop()
            self.i += 1
            return None
        if self._opens(c, quoted=False):
            return None
        self.i += 1
        return None
