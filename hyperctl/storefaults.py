"""What goes wrong with a batch's store, said in one line: SQLite's errors and rows that do not
decode become StoreError here (the one place), and a store is checked as it is opened."""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hyperctl.errors import HyperctlError
from hyperctl.layout import has_records


class StoreError(HyperctlError):
    """The batch's store cannot be used: `fault` says why, the message is the one line a user sees."""

    def __init__(self, path: Path, fault: str, then: str = "") -> None:
        self.fault = fault
        super().__init__(f"{path}: {fault}{then}")


class StoreDamagedError(StoreError):
    """The store is not what hyperctl wrote (truncated, garbage, a table missing, a bad row):
    nothing is run or changed on its word."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(path, f"the batch's store is damaged: {what}", "; nothing was changed")


class StoreUnavailableError(StoreError):
    """The store is sound but cannot be used now (a full disk, a read-only folder, an I/O error):
    the daemon stops starting jobs; once the cause is gone, `batch resume` goes on."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(path, f"cannot use the batch's store: {what}")


# SQLite's primary result codes that say the file is sound but cannot be used now; every other
# DatabaseError (SQLITE_CORRUPT, SQLITE_NOTADB, "no such table", ...) means it is damaged.
_NOT_DAMAGE = {3: "PERM", 5: "BUSY", 6: "LOCKED", 7: "NOMEM", 8: "READONLY", 10: "IOERR", 13: "FULL", 14: "CANTOPEN"}
_NOT_DAMAGE_TEXT = ("disk is full", "readonly", "read-only", "disk i/o", "locked", "unable to open")


def fault_of(path: Path, e: Exception) -> StoreError:
    """What an error from SQLite or from decoding a row means for the user."""
    if isinstance(e, sqlite3.DatabaseError):
        code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None:
            sound = code & 0xFF in _NOT_DAMAGE
        else:
            sound = isinstance(e, sqlite3.OperationalError) and any(t in str(e).lower() for t in _NOT_DAMAGE_TEXT)
        if sound:
            return StoreUnavailableError(path, str(e))
        return StoreDamagedError(path, str(e))
    return StoreDamagedError(path, f"a bad record ({type(e).__name__}: {e})")


_F = TypeVar("_F", bound=Callable[..., Any])


class _HasPath(Protocol):
    path: Path


def guarded(method: _F) -> _F:
    """The one place where SQLite errors and rows that do not decode become StoreError."""

    @functools.wraps(method)
    def wrapper(self: _HasPath, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except (sqlite3.Error, KeyError, ValueError, TypeError) as e:
            raise fault_of(self.path, e) from None

    return wrapper  # type: ignore[return-value]


_TABLES = {
    "meta": {"key", "value"},
    "jobs": {"name", "position", "spec", "digest", "status", "attempts"},
    "attempts": {"job", "n", "status", "started", "ended", "exit_code", "reason"},
}


def check_tables(conn: sqlite3.Connection, path: Path) -> None:
    """Every table and column this hyperctl reads is there (a few reads of the schema page)."""
    for table, columns in _TABLES.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            raise StoreDamagedError(path, f"its table '{table}' is missing")
        if columns - have:
            raise StoreDamagedError(path, f"its table '{table}' has no column '{sorted(columns - have)[0]}'")


def check_file(path: Path) -> None:
    """A store that is not a file, or that is empty although the batch ran before, is refused:
    taken for a new batch it would run again every job that succeeded."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as e:
        raise StoreDamagedError(path, e.strerror or str(e)) from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise StoreDamagedError(path, "it is not a file")
    if (info is None or info.st_size == 0) and has_records(path.parent):
        what = "it is missing" if info is None else "it is empty"
        raise StoreDamagedError(
            path, f"{what}, though the batch has run before (to start it anew, remove {path.parent.parent})"
        )
