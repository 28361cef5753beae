"""The daemon's reading of running local attempts' metrics files into the store (metricstore).

Event-driven where it can be: nothing runs while no attempt runs; while some do, one timer reads
the new bytes of every file at a bounded interval (so a curve is live within that), and each
attempt's file is read once more at its end, before its end is recorded.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hyperctl import metricstore
from hyperctl.pace import PROGRESS, fraction

READ_EVERY = 0.5  # seconds between reads while attempts run
_BLOCK = 1 << 20  # bytes read at once (a line longer than this is skipped)

Key = tuple[str, int]  # a job and an attempt number


class MetricsReader:
    def __init__(self, conn: sqlite3.Connection, on_fault: Callable[[Exception], None]) -> None:
        self.conn = conn
        self.on_fault = on_fault  # the store could not take a chunk: the scheduler says why
        self.tails: dict[Key, metricstore.Tail] = {}
        self.paths: dict[Key, Path] = {}
        self.timer: asyncio.TimerHandle | None = None

    def watch(self, job: str, n: int, path: Path, fresh: bool = False) -> None:
        """Read this attempt's metrics file from where the store has it (fresh: an attempt just
        started, with nothing stored: no query), until done()."""
        try:
            self.tails[job, n] = metricstore.Tail(summaries={}) if fresh else metricstore.tail_of(self.conn, job, n)
        except sqlite3.Error as e:
            self.on_fault(e)
            return
        self.paths[job, n] = path
        self._arm()

    def done(self, job: str, n: int) -> None:
        """The attempt ended: its last points, then no more reading."""
        if (job, n) in self.tails:
            self._read((job, n))
            del self.tails[job, n], self.paths[job, n]
        if not self.tails and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def progress(self) -> dict[str, float]:
        """The progress (0..1, pace.fraction) each attempt being read reported last, by job: from
        memory, no query (the store holds the same: each chunk is stored with its summaries)."""
        found = ((job, _progress(tail)) for (job, _), tail in self.tails.items())
        return {job: value for job, value in found if value is not None}

    def progress_of(self, job: str, n: int) -> float | None:
        """The progress attempt n of job reported last, while it is read (a dict lookup)."""
        tail = self.tails.get((job, n))
        return _progress(tail) if tail is not None else None

    def _arm(self) -> None:
        if self.timer is None and self.tails:
            self.timer = asyncio.get_running_loop().call_later(READ_EVERY, self._tick)

    def _tick(self) -> None:
        self.timer = None
        for key in list(self.tails):
            self._read(key)
        self._arm()

    def _read(self, key: Key) -> None:
        tail = self.tails[key]
        try:
            fd = os.open(self.paths[key], os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # nothing reported yet
        try:
            while data := os.pread(fd, _BLOCK, tail.offset):
                if metricstore.add(self.conn, key[0], key[1], tail, data) == 0:
                    if len(data) < _BLOCK:
                        break  # a line still being written
                    tail.offset += len(data)  # one line longer than a block: not a point anyone reported
        except sqlite3.Error as e:
            self.on_fault(e)
        except OSError:
            pass
        finally:
            os.close(fd)


def _progress(tail: metricstore.Tail) -> float | None:
    summary = (tail.summaries or {}).get(PROGRESS)
    return fraction(summary.last) if summary is not None else None
