"""Reading SSH channels on the event loop, as they send: nothing polls and no thread waits.

A channel's file descriptor becomes readable when data, its EOF or its exit status arrive;
the loop then takes what is there. Two readers: JobChannel, a job's own channel (for a new
job, the launcher's pid on the first line; then the attempt coming home, framed as
collect.py reads it; then its end), and stream(), a file followed on the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from hyperctl.backends.base import Handle, Launch
from hyperctl.backends.collect import AttemptReader
from hyperctl.backends.sshlib import paramiko

logger = logging.getLogger(__name__)
_CHUNK = 1 << 16
_QUEUED = 64  # chunks a stream holds for a slow reader; the channel's window holds the rest

# Told when a job's channel has closed: the attempt's handle, what came home, and the exit
# status (None: none came, the connection dropped).
Closed = Callable[[Handle, AttemptReader, "int | None"], Awaitable[None]]


def channel_ended(chan: paramiko.Channel) -> bool:
    """Whether the channel has sent all it will: closed, or its EOF and exit status are in.

    Checked before its buffer is read: every byte came before the EOF. The exit status alone
    may come before the last output (OpenSSH sends it when the command is reaped)."""
    return bool(chan.closed or (chan.eof_received and chan.exit_status_ready()))


class JobChannel:
    """A job's channel, read as it sends: first (for a new job) the pid line, then the attempt
    coming home; when the channel closes, `closed` is told how it ended."""

    def __init__(self, launch: Launch, chan: paramiko.Channel, spawned: bool, closed: Closed) -> None:
        self.launch = launch
        self.chan = chan
        # A new job: its pid comes first, and the exit status is setsid's. Else a watching script
        # (whose first line was read already) and its status says nothing of the job.
        self.spawned = spawned
        self.on_closed = closed
        self.first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if not spawned:
            self.first.set_result(b"")
        self.pending = bytearray()
        self.reader = AttemptReader(launch.attempt_dir)
        self.handle: Handle | None = None
        self.closed: tuple[int | None] | None = None  # the exit status, once the channel closed
        self.loop = asyncio.get_running_loop()
        self.fd = chan.fileno()
        self.loop.add_reader(self.fd, self._on_readable)

    def attach(self, handle: Handle) -> None:
        """The attempt's handle, once its pid is known: it ends when the channel closes."""
        self.handle = handle
        if self.closed is not None:
            self._ended()

    def _on_readable(self) -> None:
        chan = self.chan
        ended = channel_ended(chan)
        try:
            while chan.recv_ready():
                self._feed(chan.recv(_CHUNK))
        except OSError as e:  # the local disk: the attempt is over for us, not for the job
            logger.warning("job %s: cannot save its output: %s", self.launch.job, e)
            chan.close()
            ended = True
        if ended:
            self.loop.remove_reader(self.fd)
            status = chan.recv_exit_status() if chan.exit_status_ready() else None
            chan.close()
            if not self.spawned and status is not None:
                status = 0  # a watching script's status says nothing of the job
            if not self.first.done():
                self.first.set_result(bytes(self.pending).strip())  # no pid: it did not start
                return
            self.closed = (status,)
            if self.handle is not None:
                self._ended()

    def _feed(self, data: bytes) -> None:
        if self.first.done():
            self.reader.feed(data)
            return
        self.pending.extend(data)
        line, newline, rest = bytes(self.pending).partition(b"\n")
        if newline:
            self.first.set_result(line.strip())
            if rest:
                self.reader.feed(rest)

    def _ended(self) -> None:
        assert self.handle is not None and self.closed is not None
        asyncio.ensure_future(self.on_closed(self.handle, self.reader, self.closed[0]))


async def stream(chan: paramiko.Channel) -> AsyncGenerator[bytes, None]:
    """What a channel prints, chunk by chunk, until it ends; the channel is closed after."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    fd = chan.fileno()

    def on_readable() -> None:
        ended = channel_ended(chan)
        while chan.recv_ready():
            chunks.put_nowait(chan.recv(_CHUNK))
        if ended:
            loop.remove_reader(fd)
            chunks.put_nowait(b"")
        elif chunks.qsize() > _QUEUED:  # a slow reader: let the channel's window hold the rest
            loop.remove_reader(fd)

    loop.add_reader(fd, on_readable)
    try:
        while chunk := await chunks.get():
            yield chunk
            if chunks.empty() and not chan.closed:
                loop.add_reader(fd, on_readable)
                on_readable()  # what arrived while nobody read
    finally:
        loop.remove_reader(fd)
        chan.close()
