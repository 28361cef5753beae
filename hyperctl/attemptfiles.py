"""What an attempt's own files say, read the same way by the daemon and the CLI.

The launcher writes the exit code of the command to `exitcode` as the last thing it does, so
the file's mtime is when the attempt ended: a daemon that was dead then (and the views of a
batch with no daemon) take the end from there. `stderr` ends with why a job failed: its last
lines are read back from the end, whatever the file's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

EXIT_CODE_LIMIT = 4096  # bytes of an exitcode file read: a number and a newline, or not ours


@dataclass(frozen=True)
class FileEnd:
    """An attempt's end as its exitcode file tells it: the code, and when it was written."""

    exit_code: int
    ended: float | None  # the file's mtime; None when it was read where no mtime is known


def parse_exit_code(text: str | bytes | None) -> int | None:
    """The code in an exitcode file's text; None for no file, an empty one (the launcher has not
    written it yet) or anything else."""
    if text is None:
        return None
    value = text.strip()
    return int(value) if value.isdigit() else None


def read_end(attempt_dir: str | Path) -> FileEnd | None:
    """The end an attempt folder on this machine records, or None while (or if) it has none."""
    try:
        with open(os.path.join(attempt_dir, "exitcode"), "rb") as f:
            code = parse_exit_code(f.read(EXIT_CODE_LIMIT))
            ended = os.fstat(f.fileno()).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if code is None else FileEnd(code, ended)


def seek_last_lines(f: BinaryIO, lines: int) -> None:
    """Put f at the start of its last `lines` lines, reading back from the end in blocks: each
    byte is looked at once, however long the lines (a 100 MB line is one pass, not a square)."""
    end = f.seek(0, os.SEEK_END)
    if lines == 0 or end == 0:
        return
    f.seek(end - 1)
    # Newlines to pass going back: the last line's own one too, when the file ends with one.
    passes = lines + 1 if f.read(1) == b"\n" else lines
    position = end
    while position > 0:
        step = min(1 << 16, position)
        position -= step
        f.seek(position)
        block = f.read(step)
        at = len(block)
        while (at := block.rfind(b"\n", 0, at)) >= 0:
            passes -= 1
            if passes == 0:
                f.seek(position + at + 1)
                return
    f.seek(0)  # fewer lines than asked: all of them


def last_lines(path: str | Path, lines: int, width: int = 500) -> list[str] | None:
    """The last `lines` lines of a file as text (each cut at `width` characters: a job that prints
    a megabyte on one line shows its end, not the megabyte); None when the file is missing."""
    try:
        with open(path, "rb") as f:
            seek_last_lines(f, lines)
            # A line's tail is what tells: read no more than `lines` lines of `width` characters,
            # in the worst encoding, from the end.
            start = f.tell()
            end = f.seek(0, os.SEEK_END)
            limit = lines * (width * 4 + 1)
            f.seek(max(start, end - limit))
            text = f.read().decode(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return [line if len(line) <= width else "..." + line[-width:] for line in text.splitlines()[-lines:]]
