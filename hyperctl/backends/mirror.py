"""Running remote attempts' growing files (the metrics file, and stdout for its scalars), brought
home while they run: the daemon reads the local copies as it reads a local job's files, so a
remote curve is live.

While jobs run on a machine, about once a second one short command on its connection (not a
channel per job: sshd's MaxSessions caps those) prints the new bytes of every running
attempt's files (sshscripts.mirror); they are appended to the local copies, each from its size,
which is where the next request starts: a dropped connection resumes there, and nothing is lost
or written twice. The copies are `NAME.live` beside where the whole files go: at an attempt's
end those come home (collect.py), the truth, and the copies are removed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hyperctl import privatefs
from hyperctl.backends import sshscripts
from hyperctl.layout import live_copy

MIRROR_EVERY = 1.0  # seconds between requests while jobs run on a machine
FILE_LIMIT = 4 << 20  # bytes of one file per request: a chatty stdout catches up over several
TOTAL_LIMIT = 16 << 20  # bytes of all files per request: what the daemon holds at once
PER_REQUEST = 128  # files per request: its command line (two paths a file) stays far below 128 KiB


def remove_live(attempt_dir: Path, names: tuple[str, ...]) -> None:
    """The attempt came home whole: its live copies are of no more use."""
    for name in names:
        try:
            os.unlink(live_copy(attempt_dir, name))
        except OSError:
            pass


@dataclass(frozen=True)
class Grown:
    """One file to bring home: its local copy, its path on the host, and the copy's size."""

    local: Path
    remote: PurePosixPath
    offset: int


async def bring_home(
    files: list[tuple[Path, PurePosixPath, str]],
    run: Callable[[str], Awaitable[tuple[int, bytes, bytes]]],
    still: Callable[[int], bool],
) -> None:
    """One request for the new bytes of these files (each a local attempt folder, the attempt's
    folder on the host, a file name), run on the host by `run`, appended to the live copies of
    those files[i] for which still(i) holds once it answered."""
    grown = wanted([(live_copy(local, name), remote / name) for local, remote, name in files])
    _, out, _ = await run(sshscripts.mirror([(g.remote, g.offset) for g in grown], FILE_LIMIT, TOTAL_LIMIT))
    append([g if still(i) else None for i, g in enumerate(grown)], out)


def wanted(files: list[tuple[Path, PurePosixPath]]) -> list[Grown]:
    """Each file with where its local copy stands (its size; 0 when there is none yet)."""
    grown = []
    for local, remote in files:
        try:
            size = os.stat(local).st_size
        except FileNotFoundError:
            size = 0
        grown.append(Grown(local, remote, size))
    return grown


def append(files: list[Grown | None], out: bytes) -> None:
    """Write what sshscripts.mirror() printed for files onto their local copies, each at its
    offset, and only while the copy still ends there (else it changed meanwhile: left alone).
    A file given as None is skipped."""
    pos = 0
    while pos < len(out):
        newline = out.find(b"\n", pos)
        head = out[pos:newline].split() if newline >= 0 else []
        if len(head) != 2 or not all(word.isdigit() for word in head) or int(head[0]) >= len(files):
            return  # not our framing (cut short): the next request starts from the copies' sizes
        index, length = int(head[0]), int(head[1])
        data = out[newline + 1 : newline + 1 + length]
        pos = newline + 1 + length
        file = files[index]
        if len(data) == length and file is not None:
            _write_at(file, data)


def _write_at(file: Grown, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT
    try:
        fd = privatefs.open_file(file.local, flags)
    except FileNotFoundError:  # the first of the attempt's files to come home
        privatefs.make_missing_dirs(file.local.parent)
        fd = privatefs.open_file(file.local, flags)
    try:
        if os.fstat(fd).st_size == file.offset:
            os.pwrite(fd, data, file.offset)
    finally:
        os.close(fd)
