"""What a server of pages knows: the data dir it shows, its logins, where it listens, and, in a
daemon, the batch it runs (live, with actions)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hyperctl.web.login import LOGIN_PATH, Logins

if TYPE_CHECKING:
    from hyperctl.daemon.scheduler import Scheduler
    from hyperctl.web.events import Changes

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
WILDCARDS = ("", "0.0.0.0", "::")


@dataclass
class Site:
    batches_dir: Path
    logins: Logins
    host: str = "127.0.0.1"  # the address it listens on
    port: int = 0  # set once bound
    scheduler: Scheduler | None = None  # a daemon's: its batch, live (None: `hyperctl ui`)
    _changes: Changes | None = field(default=None, repr=False)

    @property
    def changes(self) -> Changes:
        """Made once a page is asked for (a daemon nobody looks at loads none of it)."""
        if self._changes is None:
            from hyperctl.web.events import Changes

            self._changes = Changes(self.batches_dir)
        return self._changes

    def close(self) -> None:
        """The server stops: its pages' streams end now."""
        if self._changes is not None:
            self._changes.close()

    @property
    def read_only(self) -> bool:
        """`hyperctl ui`: no action (only a daemon acts, and on its own batch)."""
        return self.scheduler is None

    @property
    def own_batch(self) -> str | None:
        return self.scheduler.batch_dir.name if self.scheduler is not None else None

    def allowed_host(self, header: str) -> bool:
        """Whether a request's Host header names this server: a loopback name or the address it
        listens on, with its port. Anything else (a DNS-rebinding page's name) is refused."""
        name, _, port = header.rpartition(":")
        if not name or not port.isdigit() or int(port) != self.port:
            return False
        name = name.lower()
        if name in LOOPBACK_NAMES or name in (self.host.lower(), f"[{self.host.lower()}]"):
            return True
        return self.host in WILDCARDS and _is_address(name.strip("[]"))  # a rebinding name is no address

    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in WILDCARDS else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def login_url(self) -> str:
        """A new one-time login link to the pages."""
        return f"{self.base_url()}{LOGIN_PATH}?token={self.logins.link_token()}"


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
