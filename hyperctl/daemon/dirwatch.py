"""Being told when files in some folders change (Linux's inotify, by ctypes: no dependency), so
that the daemon reads running attempts' files when they grow, and sleeps while they do not.

One inotify descriptor for the daemon; a watch per attempt folder. The descriptor is left out of
the event loop between a change and the read it calls for (pause() / resume()): a job writing a
line a millisecond costs a wake-up per read, not per line. Where inotify cannot be had (another
system, a container without it, the user's watches used up), DirWatch says so and the caller
looks at a bounded interval instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

_IN_MODIFY = 0x2  # a file in the folder was written (appended: a metrics file, stdout)
_IN_MOVED_TO = 0x80  # or renamed into it
_IN_CREATE = 0x100  # or made there (a remote attempt's copies, its files coming home)
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE | _IN_ONLYDIR


MODIFIED, MOVED_IN, CREATED = _IN_MODIFY, _IN_MOVED_TO, _IN_CREATE
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


class DirWatch:
    def __init__(self, on_change: Callable[[], None], wanted: Callable[[int, str], bool] | None = None) -> None:
        self.on_change = on_change  # something changed in a watched folder (called once, until resume())
        # Which changes count, by their mask and file name (None: every one): a reader of a SQLite
        # store makes its -shm and -wal files, and that is no change to tell of.
        self.wanted = wanted
        self.fd: int | None = None
        self.reading = False  # the descriptor is in the event loop
        try:
            self._libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):  # no libc by that name, no inotify in it
            return
        if fd >= 0:
            self.fd = fd

    @property
    def available(self) -> bool:
        return self.fd is not None

    def add(self, folder: Path) -> int | None:
        """Watch folder; its watch descriptor, or None when it cannot be watched (gone, or the
        user's inotify watches used up: fs.inotify.max_user_watches)."""
        if self.fd is None:
            return None
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), _MASK)
        return wd if wd >= 0 else None

    def remove(self, wd: int) -> None:
        if self.fd is not None:
            self._libc.inotify_rm_watch(self.fd, wd)  # fails only for a folder gone already: no matter

    def resume(self) -> None:
        """Tell of the next change (any since the last pause() at once)."""
        if self.fd is not None and not self.reading:
            asyncio.get_running_loop().add_reader(self.fd, self._readable)
            self.reading = True

    def pause(self) -> None:
        if self.fd is not None and self.reading:
            asyncio.get_running_loop().remove_reader(self.fd)
            self.reading = False

    def close(self) -> None:
        if self.fd is not None:
            self.pause()
            os.close(self.fd)
            self.fd = None

    def _readable(self) -> None:
        assert self.fd is not None
        wanted = self.wanted is None  # which file it was does not matter: the reader looks at all
        try:
            while data := os.read(self.fd, 1 << 16):
                wanted = wanted or any(self._wanted(data))
        except BlockingIOError:
            pass
        if wanted:
            self.pause()
            self.on_change()

    def _wanted(self, data: bytes) -> Iterator[bool]:
        assert self.wanted is not None
        at = 0
        while at < len(data):
            _, mask, _, length = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size : at + _EVENT.size + length].rstrip(b"\0")
            yield self.wanted(mask, os.fsdecode(name))
            at += _EVENT.size + length
