"""Private folders and files: what hyperctl makes is its user's alone, and what it finds must be too.

A batches data dir may be one that other users can write (under /tmp, say). Another user could
then put a folder, a file or a symbolic link where hyperctl is about to write, to have it write
into their file, or read what it writes. So every folder and file of hyperctl's own is made here:
folders 0700, files 0600, whatever the umask; never through a symbolic link; and one that is there
already is used only when it is the user's own (else NotOursError, one line naming it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from hyperctl.errors import HyperctlError

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_LOOSE = 0o077  # bits that let a group or the others in


class NotOursError(HyperctlError):
    """A folder or file where hyperctl keeps its own is another user's, or a symbolic link."""

    def __init__(self, path: str | Path, why: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {why}; hyperctl uses only folders and files of its own user: refused")


def check_ours(path: str | Path, st: os.stat_result, folder: bool) -> None:
    """Refuse what lstat() found at path unless it is the user's own folder (or file), not a link;
    a looser mode (a batch of an older hyperctl) is narrowed to the private one."""
    if stat.S_ISLNK(st.st_mode):
        raise NotOursError(path, "is a symbolic link")
    if st.st_uid != os.geteuid():
        raise NotOursError(path, f"belongs to uid {st.st_uid}, not to this user ({os.geteuid()})")
    if folder != stat.S_ISDIR(st.st_mode):
        raise NotOursError(path, "is a file, not a folder" if folder else "is not a regular file")
    if st.st_mode & _LOOSE:
        with contextlib.suppress(OSError):  # a read-only file system: read as it is
            os.chmod(path, FOLDER_MODE if folder else FILE_MODE)


def make_dir(path: str | Path) -> None:
    """A private folder at path: made 0700 (its parent exists), or checked when it is there."""
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        check_ours(path, os.lstat(path), folder=True)


def make_dirs(path: str | Path, base: str | Path) -> None:
    """Every folder from base (not included: the user's choice, perhaps shared) down to path,
    each private (make_dir). base is made, as the user's own, when it is missing."""
    path, base = Path(path), Path(base)
    if not os.path.isdir(base):
        os.makedirs(base, FOLDER_MODE, exist_ok=True)
    mode = os.stat(base).st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        # Anyone may rename what is in it: another user could swap the folder for one of theirs
        # between the check here and a write. The sticky bit (as /tmp has it) stops that.
        raise HyperctlError(
            f"{base}: any user may write it, and it has no sticky bit (chmod +t): another user could "
            "swap what hyperctl keeps there for theirs: refused"
        )
    folder = base
    for part in path.relative_to(base).parts:
        folder = folder / part
        make_dir(folder)


def make_missing_dirs(path: Path) -> None:
    """path and the folders above it that are missing, each private (those there are not checked:
    this is for folders inside a batch folder, which was checked when the batch started)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        make_dir(folder)


def open_file(path: str | Path, flags: int, exclusive: bool = False) -> int:
    """A file descriptor of a private file: created 0600, never through a link; one that is there
    already (unless exclusive, when it must not be) must be the user's own."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if exclusive else 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotOursError(path, "is a symbolic link") from None
        if e.errno == errno.EISDIR:
            raise NotOursError(path, "is a folder, not a file") from None
        raise
    try:
        if not exclusive:
            check_ours(path, os.fstat(fd), folder=False)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file(path: str | Path) -> bool:
    """Whether a private file is at path (False: none); one there must be the user's own."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    check_ours(path, st, folder=False)
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write a private file so that readers see the old one or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        os.unlink(tmp)  # left by a crash of a process with our pid
    except FileNotFoundError:
        pass
    fd = open_file(tmp, os.O_WRONLY, exclusive=True)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk, a folder in its place: no part left behind
            os.unlink(tmp)
        raise


def user_umask() -> int:
    """This process's umask (what the user's jobs run with), read without changing it: a
    round trip through os.umask() would, for a moment, in every thread."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # no /proc (not Linux): at start, before any thread writes
    os.umask(mask)
    return mask
