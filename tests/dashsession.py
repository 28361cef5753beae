"""A browser's session with the dashboard, over plain HTTP: the login link swapped for its cookie,
pages and JSON fetched with it, Server-Sent Events read one by one. And the servers to talk to:
`hyperctl ui` and a running batch's daemon, as real processes."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import Any

from tests.conftest import start_hyperctl

DEADLINE = 30.0
_LINK = re.compile(r"(http://\S+/login\?token=\S+)")


class Session:
    """Logged in with a one-time link (its cookie kept), as a browser is."""

    def __init__(self, link: str) -> None:
        self.base = link.split("/login", 1)[0]
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        with self.opener.open(link, timeout=DEADLINE) as answer:
            assert answer.status == 200
        assert any(c.name == "hyperctl_session" for c in self.jar)

    def get(self, path: str, headers: dict[str, str] | None = None, cookie: bool = True) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        opener = self.opener if cookie else urllib.request.build_opener()
        try:
            with opener.open(request, timeout=DEADLINE) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, json.loads(body)

    def events(self, path: str, headers: dict[str, str] | None = None) -> Events:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        answer = self.opener.open(request, timeout=DEADLINE)
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        return Events(answer)


@dataclass
class Event:
    kind: str
    data: Any
    id: str | None


class Events:
    """A stream of Server-Sent Events, read as they come."""

    def __init__(self, answer: HTTPResponse) -> None:
        self.answer = answer
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


def login_link(lines: Iterator[str], what: str) -> str:
    for line in lines:
        found = _LINK.search(line)
        if found:
            return found.group(1)
    raise AssertionError(f"{what} printed no login link")


class Ui:
    """`hyperctl ui` on a free port, stopped at the end (SIGTERM)."""

    def __init__(self) -> None:
        self.proc = start_hyperctl("ui", "--port", "0")
        assert self.proc.stdout is not None
        self.link = login_link(iter(self.proc.stdout.readline, ""), "hyperctl ui")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=DEADLINE)
        self.proc.communicate()
        return code


def daemon_link(proc: subprocess.Popen[str]) -> str:
    """The dashboard link a `hyperctl run` prints as its batch starts."""
    assert proc.stderr is not None
    return login_link(iter(proc.stderr.readline, ""), "hyperctl run")
