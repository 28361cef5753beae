"""Bringing a remote attempt home: the reader that files it as it arrives, and the unpacking.

When an attempt ends, the host sends on the job's own channel, with no second connection
(sshscripts.collect() is the program that sends it): the sizes of stdout, stderr and exitcode
(one per line), their bytes, then a tar of the job's data dir (what the job made, limited by
`download`), which runs to the end of the stream.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from hyperctl import privatefs
from hyperctl.attemptfiles import parse_exit_code
from hyperctl.errors import HyperctlError
from hyperctl.layout import ATTEMPT_FILES

_TAR = ".download.tar"  # in the local attempt folder while it arrives


class AttemptReader:
    """Files what an attempt's channel sends, chunk by chunk, as it arrives (on the event loop):
    the attempt files into the local attempt folder, the tar to a file extracted at the end."""

    def __init__(self, attempt_dir: Path) -> None:
        self.attempt_dir = attempt_dir
        self.pending = bytearray()
        self.sizes: list[int] | None = None
        self.index = 0  # which attempt file is being written
        self.file: BinaryIO | None = None
        self.tar: BinaryIO | None = None
        self.exitcode = b""
        self.complete = False  # every attempt file arrived whole

    def feed(self, data: bytes) -> None:
        if self.sizes is None:
            self.pending.extend(data)
            lines = self.pending.split(b"\n", len(ATTEMPT_FILES))
            if len(lines) <= len(ATTEMPT_FILES):
                return  # the sizes are not all here yet
            if not all(line.strip().isdigit() for line in lines[:-1]):
                self.sizes = []  # not our framing (stat failed): nothing to file
                return
            self.sizes = [int(line) for line in lines[:-1]]
            data, self.pending = bytes(lines[-1]), bytearray()
        while data and self.index < len(self.sizes):
            data = self._file_some(data)
        if data and self.sizes:
            if self.tar is None:
                self.tar = self._open(_TAR)  # closed in finish()
            self.tar.write(data)

    def _file_some(self, data: bytes) -> bytes:
        assert self.sizes is not None
        name = ATTEMPT_FILES[self.index]
        take = data[: self.sizes[self.index]]
        if name == "exitcode":
            self.exitcode += take  # written last, at once
        else:  # empty ones too: `job logs` tells a missing file (removed) from an empty one
            if self.file is None:
                self.file = self._open(name)
            self.file.write(take)
        self.sizes[self.index] -= len(take)
        if self.sizes[self.index] == 0:
            if self.file is not None:
                self.file.close()
                self.file = None
            self.index += 1
            self.complete = self.index == len(ATTEMPT_FILES)
            if self.complete:
                with self._open("exitcode") as f:
                    f.write(self.exitcode)
        return data[len(take) :]

    def _open(self, name: str) -> BinaryIO:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = privatefs.open_file(self.attempt_dir / name, flags)
        except FileNotFoundError:  # the first file of the attempt to come home
            privatefs.make_missing_dirs(self.attempt_dir)
            fd = privatefs.open_file(self.attempt_dir / name, flags)
        return os.fdopen(fd, "wb")

    def finish(self) -> Path | None:
        """The stream ended: close what is open; the tar to extract, if one came."""
        if self.sizes is not None:
            while self.index < len(self.sizes) and self.sizes[self.index] == 0:
                self._file_some(b"")  # empty files still exist at home
        if self.file is not None:
            self.file.close()
        if self.tar is None:
            return None
        self.tar.close()
        return self.attempt_dir / _TAR

    def exit_code(self) -> int | None:
        return parse_exit_code(self.exitcode) if self.complete else None


def extract(tar_path: Path, into: Path) -> None:
    """Unpack a data dir that came home: regular files and folders only, never outside `into`."""
    try:
        privatefs.make_missing_dirs(into)  # the job's folder in the batch folder: private
        with tarfile.open(tar_path) as tar:
            for member in tar:
                name = os.path.normpath(member.name)
                if name.startswith(("/", "..")) or os.path.isabs(name) or not (member.isfile() or member.isdir()):
                    continue  # a path out of the folder, a link or a device: never written
                target = into / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with source, open(target, "wb") as f:
                    while chunk := source.read(1 << 20):
                        f.write(chunk)
    except (tarfile.TarError, OSError) as e:
        raise HyperctlError(f"the data dir that came home could not be unpacked: {e}") from None
    finally:
        tar_path.unlink(missing_ok=True)
