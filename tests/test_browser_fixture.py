"""The real-browser fixtures of tests/browser.py, against a real Tornado server on loopback."""

from __future__ import annotations

import asyncio
import secrets
import struct
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tornado.web
from playwright.sync_api import Browser, Page, expect

import tests.browser
from tests.browser import LIVE_MS, PageProblems, Served, _Session, _start, screenshot, serve

HEAD = '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>test</title>'
PAGES = {  # path -> (content type, body); scripts in files of their own, as a CSP of 'self' wants
    "/": ("text/html", HEAD + '</head><body><h1>Hello</h1><p id="text">read from a real server</p></body></html>'),
    "/throws": ("text/html", HEAD + '<script src="/throws.js"></script></head><body>throws</body></html>'),
    "/throws.js": ("application/javascript", 'throw new Error("boom from throws.js");'),
    "/logs-error": ("text/html", HEAD + '<script src="/logs-error.js"></script></head><body>logs</body></html>'),
    "/logs-error.js": ("application/javascript", 'console.error("something broke");'),
    "/unreachable": ("text/html", HEAD + '<script src="/drops.js"></script></head><body></body></html>'),
    "/tall": ("text/html", HEAD + '<script src="/tall.js" defer></script></head><body><h1>Tall</h1></body></html>'),
    "/tall.js": ("application/javascript", 'document.body.style.height = "3000px";'),
    "/live": ("text/html", HEAD + '<script src="/live.js"></script></head><body><p id="value">-</p></body></html>'),
    "/live.js": (
        "application/javascript",
        # EventSource sends the page's cookies, never an Authorization header.
        'const events = new EventSource("/events");\n'
        'events.addEventListener("open", () => { document.body.dataset.live = "on"; });\n'
        'events.addEventListener("value", (e) => { document.getElementById("value").textContent = e.data; });\n',
    ),
}


class Drops(tornado.web.RequestHandler):
    """Closes the connection without an answer."""

    def get(self) -> None:
        self.detach().close()


class Fixed(tornado.web.RequestHandler):
    def initialize(self, kind: str, body: str) -> None:
        self.kind, self.body = kind, body

    def get(self) -> None:
        self.set_header("Content-Type", f"{self.kind}; charset=utf-8")
        self.finish(self.body)


@dataclass
class Hub:
    """The Server-Sent Events streams open now, and the session cookie that opens one."""

    session: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    streams: set[Events] = field(default_factory=set)

    def publish(self, value: str) -> int:
        for stream in self.streams:
            stream.write(f"event: value\ndata: {value}\n\n")
            stream.flush()
        return len(self.streams)


class Login(tornado.web.RequestHandler):
    """The one-time-link recipe: ?token= swapped for an HttpOnly, SameSite=Strict cookie."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def get(self) -> None:
        self.set_cookie("session", self.hub.session, httponly=True, samesite="Strict")
        self.redirect("/live")


class Events(tornado.web.RequestHandler):
    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    async def get(self) -> None:
        if self.get_cookie("session") != self.hub.session:
            raise tornado.web.HTTPError(403)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-store")
        self.closed = asyncio.Event()
        self.write(": open\n\n")
        self.flush()  # the browser fires "open" on the first bytes
        self.hub.streams.add(self)
        await self.closed.wait()

    def on_connection_close(self) -> None:
        self.hub.streams.discard(self)
        self.closed.set()


@dataclass
class Site:
    served: Served
    hub: Hub

    @property
    def url(self) -> str:
        return self.served.url


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """The test pages, served from a thread for the module (requested before `page`: it outlives it)."""
    hub = Hub()
    app = tornado.web.Application(
        [(path, Fixed, {"kind": kind, "body": body}) for path, (kind, body) in PAGES.items()]
        + [("/drops.js", Drops), ("/login", Login, {"hub": hub}), ("/events", Events, {"hub": hub})]
    )
    with serve(app) as served:
        yield Site(served, hub)


def watched(browser: Browser) -> tuple[PageProblems, Page]:
    """A page of a context of its own whose problems go to a PageProblems of the test's own."""
    problems = PageProblems()
    context = browser.new_context()
    problems.watch(context)
    return problems, context.new_page()


def test_a_page_loads_and_its_text_is_read(site: Site, page: Page) -> None:
    page.goto(site.url + "/")
    assert page.locator("#text").inner_text() == "read from a real server"
    expect(page.locator("h1")).to_have_text("Hello")


def test_an_uncaught_exception_is_reported(site: Site, browser: Browser) -> None:
    problems, page = watched(browser)
    page.goto(site.url + "/throws")
    problems.flush()
    assert problems.report() == f"the page had problems:\n  uncaught boom from throws.js ({site.url}/throws)"
    problems.expect("boom from throws")
    assert problems.report() == ""
    page.context.close()


def test_a_console_error_is_reported(site: Site, browser: Browser) -> None:
    problems, page = watched(browser)
    page.goto(site.url + "/logs-error")
    problems.flush()
    assert problems.report() == (
        f"the page had problems:\n  console error: something broke ({site.url}/logs-error.js:0)"
    )
    page.context.close()


def test_a_failed_request_is_reported(site: Site, browser: Browser) -> None:
    problems, page = watched(browser)
    page.goto(site.url + "/unreachable")
    problems.flush()
    assert problems.report() == (
        "the page had problems:\n"
        f"  request failed: GET {site.url}/drops.js: net::ERR_EMPTY_RESPONSE\n"
        f"  console error: Failed to load resource: net::ERR_EMPTY_RESPONSE ({site.url}/drops.js:0)"
    )
    page.context.close()


def test_an_expected_problem_that_never_comes_is_reported(site: Site, browser: Browser) -> None:
    problems, page = watched(browser)
    problems.expect("boom")
    problems.allow("whatever")
    page.goto(site.url + "/")
    problems.flush()
    assert problems.report() == "the page had problems:\n  expected, not seen: boom"
    page.context.close()


def test_a_test_that_expects_a_console_error_passes(site: Site, page: Page, page_problems: PageProblems) -> None:
    page_problems.expect("console error: something broke")
    page.goto(site.url + "/logs-error")
    # and the fixture's teardown finds all well


def test_a_screenshot_is_a_full_page_png_in_the_tests_folder(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url + "/tall")
    path = screenshot(page, "tall")
    assert path == tmp_path / "tall.png"
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])  # the IHDR chunk
    assert width == 1280
    assert height == page.evaluate("document.documentElement.scrollHeight") > 3000  # the page, not the window


def test_a_server_sent_event_reaches_the_dom(site: Site, page: Page) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the cookie, no stream
        urllib.request.urlopen(site.url + "/events", timeout=5)
    assert refused.value.code == 403
    page.goto(site.url + "/login?token=one-time")
    expect(page.locator("body[data-live=on]")).to_be_attached()
    assert page.url == site.url + "/live"
    assert site.served.call(lambda: site.hub.publish("42")) == 1
    expect(page.locator("#value")).to_have_text("42", timeout=LIVE_MS)


def test_other_tests_may_run_asyncio_while_the_browser_is_up(_browser_session: _Session) -> None:
    async def one() -> int:
        await asyncio.sleep(0)
        return 1

    assert asyncio.run(one()) == 1


@pytest.mark.parametrize(
    "missing, reason",
    [
        ("chromium", "/nowhere/chromium-headless-shell is missing: apt-get install chromium-headless-shell"),
        ("playwright", "playwright is missing: pip install -e '.[test]' (never `playwright install`)"),
    ],
)
def test_without_the_browser_a_test_fails_saying_what_to_install(
    missing: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if missing == "chromium":
        monkeypatch.setattr(tests.browser, "CHROMIUM", "/nowhere/chromium-headless-shell")
    else:
        monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import raises ImportError
    with pytest.raises(pytest.fail.Exception) as failed:
        _start()
    assert str(failed.value) == reason
