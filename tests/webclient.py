"""The dashboard from a test: a real `hyperctl ui` (or a daemon's pages), its login link, and an
HTTP client that keeps cookies as a browser does (http.cookiejar), for tests of what a page
answers; tests/browser.py drives a real browser over the same servers."""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LINK = re.compile(r"(http://\S+/login\?token=\S+)")
DEADLINE = 30.0


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str


class Session:
    """A browser's view of one server: its cookies, sent back as a browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), urllib.request.ProxyHandler({})
        )

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
        url = path if path.startswith("http") else self.base + path
        data = b"" if method == "POST" else None
        request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
        try:
            with self.opener.open(request, timeout=DEADLINE) as response:
                return Answer(response.status, response.headers, response.read().decode(errors="replace"))
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read().decode(errors="replace"))

    def login(self, link: str) -> Answer:
        answer = self.get(link)
        assert answer.status == 200, answer.text[:300]  # redirected to the page
        return answer

    def cookie(self, name: str) -> http.cookiejar.Cookie | None:
        return next((c for c in self.jar if c.name == name), None)

    def events(self, path: str = "/ui/events", count: int = 1, within: float = 10.0) -> list[str]:
        """The first `count` SSE events (`event: NAME` lines' names, comments left out) the stream sends."""
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=within)
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()
        assert response.status == 200, response.read()[:300]
        found: list[str] = []
        try:
            while len(found) < count:
                line = response.fp.readline().decode()
                if not line:
                    break
                if line.startswith("event: "):
                    found.append(line[len("event: ") :].strip())
        finally:
            conn.close()
        return found


@dataclass
class Ui:
    """A running `hyperctl ui`."""

    process: subprocess.Popen[str]
    link: str

    @property
    def base(self) -> str:
        return self.link.split("/login", 1)[0]

    def session(self, logged_in: bool = True) -> Session:
        session = Session(self.base)
        if logged_in:
            session.login(self.link)
        return session


def link_in(text: str) -> str | None:
    found = LINK.search(text)
    return found.group(1) if found else None


@contextlib.contextmanager
def ui(batches: Path, *args: str) -> Iterator[Ui]:
    """`hyperctl ui` on a free port of loopback for the batches in `batches`, stopped at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "ui", "--port", "0", "--batches-data-dir", str(batches), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        link = link_in(line)
        assert link is not None, f"no link in {line!r}; stderr: {process.stderr.read() if process.stderr else ''}"
        yield Ui(process, link)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop(process: subprocess.Popen[str], signum: int, within: float = 5.0) -> tuple[int, float]:
    """Send signum; the exit code and how long it took to exit."""
    start = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=within)
    return code, time.monotonic() - start
