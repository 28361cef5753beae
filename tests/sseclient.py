"""Server-Sent Events with their data, read one by one as a page's EventSource does (the job
page's log: tests/webclient.py's Session.events tells the events' names only), and the dashboard
link a `hyperctl run` prints."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import Any

from tests.webclient import DEADLINE, Session, link_in


@dataclass
class Event:
    kind: str
    data: Any  # JSON-decoded
    id: str | None


class Events:
    """A stream of Server-Sent Events, read as they come."""

    def __init__(self, session: Session, path: str, headers: dict[str, str] | None = None) -> None:
        request = urllib.request.Request(session.base + path, headers=headers or {})
        self.answer: HTTPResponse = session.opener.open(request, timeout=DEADLINE)
        assert self.answer.headers["Content-Type"].startswith("text/event-stream")
        self.seen: list[Event] = []

    def __iter__(self) -> Iterator[Event]:
        kind, data, id = "message", "", None
        while line := self.answer.readline():
            text = line.decode().rstrip("\n")
            if not text:
                if data:
                    event = Event(kind, json.loads(data), id)
                    self.seen.append(event)
                    yield event
                kind, data, id = "message", "", None
            elif text.startswith("event: "):
                kind = text[7:]
            elif text.startswith("data: "):
                data += text[6:]
            elif text.startswith("id: "):
                id = text[4:]

    def until(self, check: Callable[[Event], bool]) -> Event:
        """Read on until an event passes check (the stream's timeout fails the test)."""
        for event in self:
            if check(event):
                return event
        raise AssertionError(f"the stream ended first; it sent {[(e.kind, e.data) for e in self.seen]}")

    def text(self) -> str:
        return "".join(e.data for e in self.seen if e.kind == "text")

    def close(self) -> None:
        self.answer.close()


def daemon_session(proc: subprocess.Popen[str]) -> Session:
    """Logged in to the pages of a `hyperctl run`'s daemon, with the link it prints as it starts."""
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, ""):
        link = link_in(line)
        if link:
            session = Session(link.split("/login", 1)[0])
            session.login(link)
            return session
    raise AssertionError("hyperctl run printed no dashboard link")
