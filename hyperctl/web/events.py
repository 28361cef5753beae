"""Live pages: the server tells open pages that something changed, and they fetch what they show.

Changes watches the data dir while at least one page listens (inotify, daemon/dirwatch.py): a
batch's store written (its -wal file: every status change and every chunk of metrics is a
commit), a batch made or removed. Changes are told at most every THROTTLE seconds, however
many commits there are; with nobody listening nothing is watched and nothing wakes. Without
inotify, the stores' sizes and times are looked at every FALLBACK seconds instead, again only
while someone listens.

A page listens over Server-Sent Events (EventsHandler): an event `change` with the new version,
and a comment every KEEPALIVE seconds so that a dead connection is found. Streams end at once
when the server stops (close()), never holding up the daemon's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from hyperctl.daemon.dirwatch import CREATED, MODIFIED, MOVED_IN, DirWatch
from hyperctl.layout import BatchDir

THROTTLE = 0.2  # seconds: changes told at most this often (a job's end shows within it)
FALLBACK = 1.0  # seconds between looks without inotify
KEEPALIVE = 15.0  # seconds between comments on an idle stream


def _store_written(mask: int, name: str) -> bool:
    """A commit to a store (its WAL, or a checkpoint into the database), or a folder made or moved
    in (a new batch): not the -shm and -wal files a reader's connection makes."""
    if mask & MODIFIED:
        return name.endswith((".db-wal", ".db"))
    return bool(mask & (CREATED | MOVED_IN)) and "." not in name


class Changes:
    """A version of the data dir's batches, moved on by their changes while anyone listens."""

    def __init__(self, batches_dir: Path) -> None:
        self.batches_dir = batches_dir
        self.version = 0
        self.closed = False
        self._listeners = 0
        self._changed: asyncio.Future[None] | None = None
        self._watch: DirWatch | None = None
        self._watched: dict[Path, int] = {}
        self._looking: asyncio.Task[None] | None = None
        self._later: asyncio.TimerHandle | None = None

    async def wait(self, after: int, timeout: float) -> int:
        """The version once it passes `after` (or as it is after timeout seconds, or on close())."""
        if self.version <= after and not self.closed:
            if self._changed is None or self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._changed), timeout)
        return self.version

    def listen(self) -> None:
        self._listeners += 1
        if self._listeners == 1:
            self._start()

    def unlisten(self) -> None:
        self._listeners -= 1
        if self._listeners == 0:
            self._stop()

    def close(self) -> None:
        """The server stops: every stream ends now."""
        self.closed = True
        self._stop()
        self._tell()

    def bump(self) -> None:
        """Something changed that no file tells of (an action taken here)."""
        self.version += 1
        self._tell()

    def _tell(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    # -- watching --------------------------------------------------------------------------------
    def _start(self) -> None:
        watch = DirWatch(self._on_change, _store_written)
        if watch.available and watch.add(self.batches_dir) is not None:
            self._watch = watch
            self._watch_batches()
            watch.resume()
        else:
            watch.close()
            self._looking = asyncio.get_running_loop().create_task(self._look())

    def _stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
            self._watched.clear()
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self._looking is not None:
            self._looking.cancel()
            self._looking = None

    def _watch_batches(self) -> None:
        assert self._watch is not None
        for batch_dir in self._batch_dirs():
            if batch_dir.internal not in self._watched:
                wd = self._watch.add(batch_dir.internal)
                if wd is not None:
                    self._watched[batch_dir.internal] = wd

    def _batch_dirs(self) -> list[BatchDir]:
        try:
            names = os.listdir(self.batches_dir)
        except OSError:
            return []
        return [BatchDir(self.batches_dir, n) for n in names if not n.startswith(".")]

    def _on_change(self) -> None:
        """A change: told now; the watch sleeps THROTTLE seconds (the changes meanwhile are told then)."""
        self.version += 1
        self._tell()
        self._later = asyncio.get_running_loop().call_later(THROTTLE, self._wake)

    def _wake(self) -> None:
        self._later = None
        if self._watch is not None:
            self._watch_batches()  # a batch made meanwhile
            self._watch.resume()

    async def _look(self) -> None:
        """Without inotify: the stores' sizes and times, every FALLBACK seconds."""
        seen = self._stamp()
        while True:
            await asyncio.sleep(FALLBACK)
            now = self._stamp()
            if now != seen:
                seen = now
                self.version += 1
                self._tell()

    def _stamp(self) -> list[tuple[str, int, int]]:
        found = []
        for batch_dir in self._batch_dirs():
            for path in (batch_dir.db, batch_dir.db.with_name(batch_dir.db.name + "-wal")):
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    found.append((str(path), st.st_size, st.st_mtime_ns))
        return found
