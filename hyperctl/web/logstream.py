"""A job's log, live, for its page: Server-Sent Events of an attempt's stdout or stderr as it grows.

GET /ui/log?batch=B&job=J&attempt=N&stream=stdout|stderr&tail=BYTES (or &offset=BYTES) sends:
- `head`: where the text starts ({"offset", "size", "reset", ...}: reset tells the page to clear
  what it shows; a reconnect that sends Last-Event-ID goes on from there instead);
- `text`: a JSON string of the bytes appended, decoded as UTF-8 (bad bytes as U+FFFD), control
  characters shown as \\xNN escapes (a newline aside), with `id:` the byte offset after it;
- `note`: a JSON string to show above the text (it runs on another machine, it left no file);
- `end`: the attempt has ended and every byte was sent ({"why", "again"}: again, read it anew
  soon: a remote job's output is coming home).

A file in the batch folder is followed by inotify on the attempt's folder (daemon/dirwatch.py:
only writes to that file and its exitcode wake the stream), or looked at every FALLBACK seconds
without it. A running remote job of the daemon's own batch is read on its host through
scheduler.follow_output, as the API's log handler does; elsewhere (`hyperctl ui`) the page says
where it runs and that its output comes home when it ends. A stream ends when the page goes, when
the attempt ends, and at once when the server stops (Site.close()).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, Awaitable
from pathlib import Path
from typing import Any, BinaryIO

import tornado.iostream
import tornado.web

from hyperctl import joblogs
from hyperctl.daemon.dirwatch import DirWatch
from hyperctl.errors import HyperctlError, NoSuchJobError
from hyperctl.layout import BatchDir
from hyperctl.output import visible
from hyperctl.web.jobdata import JobPage, attempt_number, job_page
from hyperctl.web.pages import PartHandler
from hyperctl.web.site import Site

TAIL = 64 * 1024  # bytes of a log a page shows at first
MOST_TAIL = 64 * 1024 * 1024  # what "more" may ask for at most
CHUNK = 256 * 1024  # bytes read and sent at a time (a page catching up on a big log is sent it in steps)
FALLBACK = 1.0  # seconds between looks at a file without inotify
LOOK_FOR_END = 5.0  # seconds between looks whether an attempt that writes nothing has ended (lost)
LINE_BYTES = 64  # a remote tail is asked in lines: the bytes asked for, at this many a line
STREAMS = ("stdout", "stderr")


def shown(text: str) -> str:
    """A log's text as the page shows it: control characters as escapes, its lines kept."""
    return "\n".join(visible(line) for line in text.split("\n"))


class LogHandler(PartHandler):
    """One open log of a job's page."""

    def initialize(self, site: Site) -> None:
        super().initialize(site)
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_connection_close(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)

    async def get(self) -> None:
        arg = self.get_query_argument
        batch_dir = self.batch_dir(arg("batch", ""))
        stream = arg("stream", "stdout")
        try:
            if stream not in STREAMS:
                raise HyperctlError(f"stream: must be stdout or stderr, not '{stream}'")
            tail = _bytes_argument("tail", arg("tail", str(TAIL)))
            offset = _offset(self.request.headers.get("Last-Event-ID"), arg("offset", ""))
            page = await self.in_thread(job_page, batch_dir, arg("job", ""), time.time())
            n = attempt_number(page, arg("attempt", ""))
        except NoSuchJobError as e:
            raise tornado.web.HTTPError(404, reason=str(e)) from None
        except HyperctlError as e:
            raise tornado.web.HTTPError(400, reason=str(e)) from None
        self.set_header("Content-Type", "text/event-stream")
        self.write("retry: 2000\n\n")
        try:
            await self._until_gone(self._send(batch_dir, page, n, stream, tail, offset))
        except tornado.iostream.StreamClosedError:
            return
        if not self._gone.done():
            self.finish()

    async def _until_gone(self, sending: Awaitable[None]) -> None:
        """Send until done, the page goes, or the server stops: whichever comes first."""
        task = asyncio.ensure_future(sending)
        closing = asyncio.ensure_future(_closing(self.site))
        cut = False
        try:
            await asyncio.wait([task, closing, self._gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                cut = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, tornado.iostream.StreamClosedError):
                    await task
        if cut and not self._gone.done():  # the server stops: the page is told, and reconnects no more
            self.write(_event("end", {"why": "the server stopped", "again": False}))
        elif not cut:
            task.result()  # its error, if any

    async def event(self, kind: str, data: Any, id: int | None = None) -> None:
        self.write(_event(kind, data, id))
        await self.flush()

    async def _send(
        self, batch_dir: BatchDir, page: JobPage, n: int, stream: str, tail: int, offset: int | None
    ) -> None:
        record = page.record
        row = next(r for r in page.attempts if r.n == n)
        host = row.attempt.host or "its machine"
        output = await self.in_thread(joblogs.output_of, batch_dir, record, n, stream)
        if not output.elsewhere:
            await self._follow_file(batch_dir, record.name, n, output, tail, offset)
            return
        scheduler = self.site.scheduler
        if scheduler is not None and self.site.own_batch == batch_dir.name:
            try:
                lines = None if offset else tail // LINE_BYTES
                chunks = scheduler.follow_output(record.name, stream, offset or 0, lines, True)
            except HyperctlError:  # it ended meanwhile: its output is coming home
                await self.event("end", {"why": f"attempt {n} ended on {host}", "again": True})
                return
            await self._follow_remote(chunks, host, n, tail, offset)
            return
        await self.event(
            "note", f"job {record.name} runs on {host}: its {stream} comes home when it ends (this page reads it then)"
        )
        await self.event("end", {"why": "runs elsewhere", "again": False, "elsewhere": True})

    async def _follow_remote(
        self, chunks: AsyncGenerator[bytes, None], host: str, n: int, tail: int, offset: int | None
    ) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        head: dict[str, Any] = {"reset": not offset, "host": host, "remote": True}
        head.update({"offset": offset} if offset else {"lines": tail // LINE_BYTES})
        await self.event("head", head)
        at = offset
        try:
            async for chunk in chunks:
                if at is not None:
                    at += len(chunk)
                text = decoder.decode(chunk)
                if text:
                    await self.event("text", shown(text), at - len(decoder.getstate()[0]) if at is not None else None)
        finally:
            await chunks.aclose()
        await self.event("end", {"why": f"attempt {n} ended on {host}: its output is coming home", "again": True})

    async def _follow_file(
        self, batch_dir: BatchDir, job: str, n: int, output: joblogs.Output, tail: int, offset: int | None
    ) -> None:
        path, folder = output.path, output.folder
        woken = asyncio.Event()
        watch = DirWatch(woken.set, lambda mask, name: name in (path.name, "exitcode"))
        watching = watch.available and folder.is_dir() and watch.add(folder) is not None
        f: BinaryIO | None = None
        try:
            if watching:
                watch.resume()
            while (f := await self.in_thread(_open, path)) is None:
                if await self.in_thread(joblogs.attempt_ended, batch_dir, job, n, folder):
                    await self.event("note", output.missing)
                    await self.event("end", {"why": f"attempt {n} ended", "again": False})
                    return
                if not watching and folder.is_dir():  # made since: watch it now
                    watching = watch.available and watch.add(folder) is not None
                    watch.resume()
                await _woken(woken, watch, LOOK_FOR_END if watching else FALLBACK)
            at, size = await self.in_thread(_start, f, tail, offset)
            await self.event("head", {"offset": at, "size": size, "reset": offset is None, "path": str(path)})
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while True:
                chunk = await self.in_thread(f.read, CHUNK)
                if chunk:
                    at += len(chunk)
                    text = decoder.decode(chunk)
                    if text:
                        await self.event("text", shown(text), at - len(decoder.getstate()[0]))
                    continue
                if await self.in_thread(joblogs.attempt_ended, batch_dir, job, n, folder):
                    if not await self.in_thread(f.read, 1):  # nothing written since: all was sent
                        await self.event("end", {"why": f"attempt {n} ended", "again": False})
                        return
                    f.seek(-1, os.SEEK_CUR)
                    continue
                await _woken(woken, watch, LOOK_FOR_END if watching else FALLBACK)
        finally:
            watch.close()
            if f is not None:
                f.close()


def _event(kind: str, data: Any, id: int | None = None) -> str:
    return f"event: {kind}\n" + (f"id: {id}\n" if id is not None else "") + f"data: {json.dumps(data)}\n\n"


async def _woken(woken: asyncio.Event, watch: DirWatch, timeout: float) -> None:
    """Until the watched file is written (or timeout), then watch for the next write."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(woken.wait(), timeout)
    woken.clear()
    watch.resume()


async def _closing(site: Site) -> None:
    changes = site.changes
    while not changes.closed:
        await changes.wait(sys.maxsize, 3600.0)  # wakes on close() (and on changes, while others listen)


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # noqa: SIM115 - followed, closed by the caller
    except FileNotFoundError:
        return None


def _start(f: BinaryIO, tail: int, offset: int | None) -> tuple[int, int]:
    """Put f where the page's text starts: at offset, or at the first whole line of its last `tail`
    bytes. Where that is, and the file's size."""
    size = os.fstat(f.fileno()).st_size
    if offset is not None:
        return f.seek(min(offset, size)), size
    at = max(0, size - tail)
    f.seek(at)
    if at > 0:
        line = f.readline(4096)  # a line cut in two: from the next one (if another follows)
        if line.endswith(b"\n") and at + len(line) < size:
            at += len(line)
        f.seek(at)
    return at, size


def _bytes_argument(name: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MOST_TAIL:
        raise HyperctlError(f"{name}: must be a number of bytes from 1 to {MOST_TAIL}, not '{text}'")
    return int(text)


def _offset(last_event_id: str | None, text: str) -> int | None:
    """Where a reconnecting page goes on from (its Last-Event-ID), or the offset asked for."""
    for value in (last_event_id, text):
        if value:
            if not value.isdigit():
                raise HyperctlError(f"offset: must be a byte offset, not '{value}'")
            return int(value)
    return None
