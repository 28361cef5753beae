"""The daemon's reading of running attempts' metrics files, and of the scalars their stdout
prints (outputscalars.py), into the store (metricstore).

Event-driven: nothing runs while no attempt runs, nor while running attempts write nothing.
Each attempt's folder is watched (dirwatch.py, inotify); a change calls one read of every file's
new bytes READ_EVERY later (a curve is live within that, however often the job writes), and each
attempt's files are read once more at its end, before its end is recorded. Where a folder cannot
be watched, its files are looked at every READ_EVERY, doubling up to READ_QUIET_MAX while none
grows. A remote attempt's files are read the same way: while it runs, from the copies the
executor appends their new bytes to (backends/mirror.py); at its end, as they came home whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from hyperctl import metricstore
from hyperctl.daemon.dirwatch import DirWatch
from hyperctl.layout import live_copy
from hyperctl.metricsfile import MAX_LINE_BYTES, Reading
from hyperctl.outputscalars import OutputScalars
from hyperctl.pace import PROGRESS, fraction

logger = logging.getLogger(__name__)

READ_EVERY = 0.5  # seconds between reads while attempts run and report
READ_QUIET_MAX = 2.0  # while none does, the interval doubles up to this: fewer wake-ups beside quiet jobs
_BLOCK = MAX_LINE_BYTES  # bytes read at once (a line longer than this is skipped)
_TICK_BLOCKS = 16  # blocks of one file a tick reads at most: a chatty job never holds the loop long
FILES = {metricstore.REPORT: "metrics", metricstore.OUTPUT: "stdout"}  # each source's file in the attempt folder

Key = tuple[str, int, str]  # a job, an attempt number, a source


class MetricsReader:
    def __init__(
        self, conn: sqlite3.Connection, on_fault: Callable[[Exception], None], scalars: OutputScalars | None = None
    ) -> None:
        self.conn = conn
        self.on_fault = on_fault  # the store could not take a chunk: the scheduler says why
        self.scalars = scalars  # how stdout's scalars are found (None: they are not)
        self.tails: dict[Key, metricstore.Tail] = {}
        self.paths: dict[Key, Path] = {}
        self.shrunk: set[Key] = set()  # files found shorter than read: said once
        self.mid_line: set[Key] = set()  # stdout in a line longer than a block: skipped to its end
        self.live: set[tuple[str, int]] = set()  # attempts whose files grow as copies until they come home
        self.timer: asyncio.TimerHandle | None = None
        self.interval = READ_EVERY
        self.dirwatch = DirWatch(self._changed)  # told when an attempt folder's files change
        self.watches: dict[tuple[str, int], int] = {}  # attempt -> its folder's watch
        self.polled: set[tuple[str, int]] = set()  # attempts with no watch: looked at every interval

    def sources(self) -> tuple[str, ...]:
        return metricstore.SOURCES if self.scalars is not None else (metricstore.REPORT,)

    def files(self) -> tuple[str, ...]:
        """The attempt files read while attempts run."""
        return tuple(FILES[source] for source in self.sources())

    def watch(
        self, job: str, n: int, attempt_dir: Path, fresh: bool = False, live: bool = False, poll: bool = False
    ) -> None:
        """Read this attempt's files from where the store has them (fresh: an attempt just
        started, with nothing stored: no query), until done(). live: its files come home at its
        end, and meanwhile their copies grow beside them (backends/mirror.py). poll: another
        machine writes them (shared storage), which inotify here does not see: look every interval."""
        if live:
            self.live.add((job, n))
        for source in self.sources():
            try:
                tail = (
                    metricstore.Tail(summaries={}, source=source)
                    if fresh
                    else metricstore.tail_of(self.conn, job, n, source)
                )
            except sqlite3.Error as e:
                self.on_fault(e)
                return
            self.tails[job, n, source] = tail
            self.paths[job, n, source] = attempt_dir / FILES[source]
        wd = None if poll else self.dirwatch.add(attempt_dir)
        if wd is None:
            self.polled.add((job, n))
        else:
            self.watches[job, n] = wd
        self.dirwatch.resume()
        self.interval = READ_EVERY  # one look soon: what a recovered attempt wrote meanwhile
        self._arm()

    def done(self, job: str, n: int) -> None:
        """The attempt ended: its last points, then no more reading."""
        for source in self.sources():
            key = (job, n, source)
            if key in self.tails:
                try:
                    self._read(key)
                except sqlite3.Error as e:
                    self.on_fault(e)
                del self.tails[key], self.paths[key]
                self.shrunk.discard(key)
                self.mid_line.discard(key)
        self.live.discard((job, n))
        self.polled.discard((job, n))
        wd = self.watches.pop((job, n), None)
        if wd is not None:
            self.dirwatch.remove(wd)
        if not self.tails:
            self.dirwatch.pause()
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def progress(self) -> dict[str, float]:
        """The progress (0..1, pace.fraction) each attempt being read reported last, by job: from
        memory, no query (the store holds the same: each chunk is stored with its summaries)."""
        found = ((job, self.progress_of(job, n)) for job, n in {(job, n) for job, n, _ in self.tails})
        return {job: value for job, value in found if value is not None}

    def progress_of(self, job: str, n: int) -> float | None:
        """The progress attempt n of job reported last, while it is read (a dict lookup a
        source; the first source's wins, as in metricstore)."""
        for source in self.sources():
            tail = self.tails.get((job, n, source))
            value = _progress(tail) if tail is not None else None
            if value is not None:
                return value
        return None

    def soon(self) -> None:
        """New bytes are on their way (a report through the API): read at the shortest interval."""
        self.interval = READ_EVERY

    def _changed(self) -> None:
        """A watched folder's files changed: read them within READ_EVERY (one read for all the
        changes meanwhile; the watch is paused until then)."""
        self.interval = READ_EVERY
        self._arm()

    def _arm(self) -> None:
        if self.timer is None and self.tails:
            self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.timer = None
        # Every attempt's chunks at one commit; if it fails, the reading goes back to where the
        # store stands, and is done again next time.
        before = {key: (t.offset, t.lines, t.summaries, t.step) for key, t in self.tails.items()}
        mid_line = set(self.mid_line)
        more = False  # a file read only in part (_TICK_BLOCKS): its rest at the next tick
        try:
            with metricstore.transaction(self.conn):
                for key in list(self.tails):
                    more = self._read(key, _TICK_BLOCKS) or more
        except sqlite3.Error as e:
            for key, (offset, lines, summaries, step) in before.items():
                tail = self.tails[key]
                tail.offset, tail.lines, tail.summaries, tail.step = offset, lines, summaries, step
            self.mid_line = mid_line
            self.on_fault(e)
        moved = any(self.tails[key].offset != offset for key, (offset, *_) in before.items() if key in self.tails)
        self.interval = READ_EVERY if moved or more else min(self.interval * 2, READ_QUIET_MAX)
        if self.tails:
            self.dirwatch.resume()  # a change during the read: told at once, read at the next tick
        if more or self.polled:  # else the next change calls the next read
            self._arm()

    def _read(self, key: Key, blocks: int | None = None) -> bool:
        """Read the file's new bytes into the store (at most `blocks` blocks; None: to its end);
        whether it stopped for the blocks with more to read. Raises sqlite3.Error when the store
        does not take them."""
        tail = self.tails[key]
        path = self.paths[key]
        try:  # one stat for a file with nothing new: most of them, most of the time
            size = os.stat(path).st_size
        except OSError:
            if key[:2] not in self.live:
                return False  # nothing reported yet
            path = live_copy(path.parent, path.name)  # its copy as it grows, until the whole file came home
            try:
                size = os.stat(path).st_size
            except OSError:
                return False
        if size < tail.offset and key not in self.shrunk:
            # Rewritten (`>` where `>>` was meant) or cut: what is new there cannot be told by
            # offset. Said once; the points read before stay, the file is read on from there.
            self.shrunk.add(key)
            logger.warning(
                "job %s: its %s file shrank (%d bytes, %d read before): it is appended to (>>), never"
                " rewritten; points written in place of read ones are not read",
                key[0],
                path.name,
                size,
                tail.offset,
            )
        if size <= tail.offset:
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        take = self._take_report if key[2] == metricstore.REPORT else self._take_output
        try:
            while (blocks is None or blocks > 0) and (data := os.pread(fd, _BLOCK, tail.offset)):
                blocks = None if blocks is None else blocks - 1
                if take(key, tail, data) == 0:
                    if len(data) < _BLOCK:
                        break  # a line still being written
                    tail.offset += len(data)  # one line longer than a block: not a point anyone reported
                    self.mid_line.add(key)
        except OSError:
            pass
        finally:
            os.close(fd)
        return blocks == 0 and tail.offset < size

    def _take_report(self, key: Key, tail: metricstore.Tail, data: bytes) -> int:
        if key in self.mid_line:  # the rest of a line too long to read: no point (its end may parse as one)
            newline = data.find(b"\n")
            if newline < 0:
                return 0
            self.mid_line.discard(key)
            # Stored as an empty line: a line of the file still, for the steps of lines without one.
            metricstore.store(self.conn, key[0], key[1], tail, Reading(used=newline + 1, columns={}), b"\n")
            return newline + 1 + metricstore.add(self.conn, key[0], key[1], tail, data[newline + 1 :])
        return metricstore.add(self.conn, key[0], key[1], tail, data)

    def _take_output(self, key: Key, tail: metricstore.Tail, data: bytes) -> int:
        """Store the scalars of stdout's whole lines at the start of data; the bytes taken."""
        skipped = 0
        if key in self.mid_line:  # the rest of a line too long to read: not scalars
            newline = data.find(b"\n")
            if newline < 0:
                return 0
            self.mid_line.discard(key)
            skipped = newline + 1
            tail.offset += skipped
            data = data[skipped:]
        assert self.scalars is not None
        counts = {k: s.count for k, s in (tail.summaries or {}).items()}
        reading, lines, step = self.scalars.read(data, tail.step, counts, round(time.time(), 3))
        if lines:
            metricstore.store(self.conn, key[0], key[1], tail, reading, lines)
            tail.step = step
        else:  # no scalar there: nothing to store, the reading goes on after it
            tail.offset += reading.used
        return skipped + reading.used


def _progress(tail: metricstore.Tail) -> float | None:
    summary = (tail.summaries or {}).get(PROGRESS)
    return fraction(summary.last) if summary is not None else None
