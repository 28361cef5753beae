"""A real browser for the tests of web pages: Playwright driving Debian's chromium-headless-shell.

Fixtures (registered in tests/conftest.py):

- `page`: a fresh page in a context of its own (no cookies shared with other tests), on the
  session's one browser. Every console error or warning, uncaught exception (also an unhandled
  promise rejection) and failed request of any page of that context fails the test at teardown.
- `page_problems`: what `page` recorded. A test that means to provoke a problem says so first:
  `page_problems.expect(r"regex")` (it must occur, and does not fail the test) or
  `page_problems.allow(r"regex")` (it may occur). `page_problems.seen` lists all of them. An
  answer of 4xx or 5xx (the page itself, a script, a fetch) is a console error too: a test of an
  error page expects "status of 404". Requests the page cancels itself (it navigates away under
  an EventSource) are not problems.
- `browser`: the session's browser itself, for a test that makes its own contexts.

    from playwright.sync_api import Page, expect
    from tests.browser import LIVE_MS, screenshot

    def test_the_batch_list(dashboard: str, page: Page) -> None:  # dashboard: a login link, say
        page.goto(dashboard)
        expect(page.locator("h1")).to_have_text("Batches")
        expect(page.locator("#done")).to_have_text("3", timeout=LIVE_MS)  # live, as the jobs end
        screenshot(page, "batches")  # tmp_path/batches.png, to look at

Waits and actions time out after TIMEOUT_MS (a busy 2-core box); a live update (a change on the
server seen in the DOM, over Server-Sent Events) is asserted with `timeout=LIVE_MS`.

Pitfalls this module handles, or that a test must:
- Playwright's sync API refuses to start inside a running asyncio loop, and while it is in use
  it marks its own loop as running in the main thread: a Tornado server under test runs in a
  thread (`serve(app)`) or a subprocess (`hyperctl ui`, `hyperctl run`). Between browser tests
  the loop is parked (`_parked`), so the other tests may still call asyncio.run().
- EventSource cannot send an Authorization header: a live page authenticates with a cookie.
- A server must outlive the page (request it as a fixture before `page`): a server stopped
  under an open EventSource makes it reconnect, and the failed requests fail the test.
- Never `playwright install` (it downloads browsers): the browser is Debian's package, installed
  by .ci/test, and the playwright package is pinned in setup.cfg's test and dev extras.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, WebError

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"  # .ci/test installs it (not the /usr/bin/chromium wrapper)
ARGS = [  # as root the sandbox must be off (Playwright's default); no GPU, no calls home
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000  # any wait or action; a page answers in well under a second even on a busy box
LIVE_MS = 1_500  # a server change seen in the DOM: 12-36 ms typical, 200 ms seen at worst
T = TypeVar("T")


# -- what went wrong in a page -------------------------------------------------------------------
@dataclass
class PageProblems:
    """Console errors and warnings, uncaught exceptions and failed requests of a browser context."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    context: BrowserContext | None = None

    def expect(self, pattern: str) -> None:
        """A problem matching this regex must occur; it does not fail the test."""
        self.expected.append(re.compile(pattern))

    def allow(self, pattern: str) -> None:
        """A problem matching this regex may occur; it does not fail the test."""
        self.allowed.append(re.compile(pattern))

    def watch(self, context: BrowserContext) -> None:
        """Record the problems of every page of context (popups included) from now on."""
        self.context = context
        context.on("console", self._console)
        context.on("weberror", self._error)
        context.on("requestfailed", self._request)

    def flush(self) -> None:
        """Take in the problems the browser has told of but Playwright has not delivered yet.

        Events arrive in order on one pipe, and only while a Playwright call is under way: the
        answer to a call on each page comes after every event that page sent before it."""
        for page in self.context.pages if self.context else []:
            with contextlib.suppress(Exception):  # a page closing under us has nothing more to say
                page.evaluate("0")

    def report(self) -> str:
        """'' when all is well, else one line per unexpected problem, and per expected one missing."""
        anything = self.expected + self.allowed
        lines = [f"  {seen}" for seen in self.seen if not any(p.search(seen) for p in anything)]
        lines += [f"  expected, not seen: {p.pattern}" for p in self.expected if not any(map(p.search, self.seen))]
        return "the page had problems:\n" + "\n".join(lines) if lines else ""

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            where = message.location
            at = f" ({where['url']}:{where['lineNumber']})" if where["url"] else ""
            self.seen.append(f"console {message.type}: {message.text}{at}")

    def _error(self, error: WebError) -> None:
        page = error.page
        self.seen.append(f"uncaught {error.error.message} ({page.url if page else '?'})")

    def _request(self, request: Request) -> None:
        # ERR_ABORTED is the page's own doing (it navigated or closed under a fetch or an
        # EventSource), not a fault of the server.
        if request.failure != "net::ERR_ABORTED":
            self.seen.append(f"request failed: {request.method} {request.url}: {request.failure}")


# -- screenshots -----------------------------------------------------------------------------------
_folders: WeakKeyDictionary[Any, Path] = WeakKeyDictionary()  # BrowserContext -> its test's tmp_path


def screenshot(page: Page, name: str, folder: Path | None = None) -> Path:
    """Save a full-page PNG of page as <the test's tmp_path>/<name>.png (or in folder); its path."""
    where = folder or _folders.get(page.context)
    if where is None:
        raise ValueError("screenshot: this page is not the `page` fixture's: give a folder")
    path = where / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- fixtures --------------------------------------------------------------------------------------
@dataclass
class _Session:
    playwright: Playwright
    browser: Browser
    loop: asyncio.AbstractEventLoop


@contextlib.contextmanager
def _parked(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Playwright's loop marked running in this thread for the block, and not outside it.

    Playwright leaves its loop marked as running in the main thread between its calls (its
    dispatcher is suspended inside the loop), so asyncio.run() in any later test of the session
    would refuse to start. Asyncio's own helper (which Playwright also uses) takes it off while no
    browser test runs, and puts it back for the next one."""
    assert asyncio._get_running_loop() in (None, loop), "a browser test inside a running asyncio loop"
    asyncio._set_running_loop(loop)
    try:
        yield
    finally:
        asyncio._set_running_loop(None)


def _start() -> _Session:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]' (never `playwright install`)", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium-headless-shell", pytrace=False)
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    loop = asyncio._get_running_loop()
    assert loop is not None
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
    except BaseException:
        playwright.stop()
        raise
    asyncio._set_running_loop(None)
    return _Session(playwright, browser, loop)


@pytest.fixture(scope="session")
def _browser_session() -> Iterator[_Session]:
    """One browser for the whole session (launched when a test first needs it, about 0.2 s)."""
    session = _start()
    yield session
    with _parked(session.loop):
        session.browser.close()
        session.playwright.stop()  # ends the loop: nothing left marked running


@pytest.fixture
def browser(_browser_session: _Session) -> Iterator[Browser]:
    """The session's browser, usable for the length of this test."""
    with _parked(_browser_session.loop):
        yield _browser_session.browser


@pytest.fixture
def page_problems() -> PageProblems:
    """The problems the `page` fixture records (say here which ones a test expects)."""
    return PageProblems()


@pytest.fixture
def page(browser: Browser, page_problems: PageProblems, tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh context; its problems fail the test at teardown (see page_problems)."""
    # UTC and en-US: times and numbers on a page read the same on every machine.
    context = browser.new_context(timezone_id="UTC", locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    _folders[context] = tmp_path
    page_problems.watch(context)
    try:
        yield context.new_page()
        page_problems.flush()
        report = page_problems.report()
    finally:
        context.close()
    if report:
        pytest.fail(report, pytrace=False)


# -- a server under test ---------------------------------------------------------------------------
@dataclass
class Served:
    """A Tornado application served from a thread of its own (see serve)."""

    url: str  # http://127.0.0.1:PORT
    loop: asyncio.AbstractEventLoop

    def call(self, function: Callable[[], T]) -> T:
        """Run function in the server's loop (where its handlers run), wait, and return its result."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(function())
            except BaseException as error:
                done.set_exception(error)

        self.loop.call_soon_threadsafe(run)
        return done.result(timeout=TIMEOUT_MS / 1000)


@contextlib.contextmanager
def serve(app: tornado.web.Application) -> Iterator[Served]:
    """Serve app on a free port of 127.0.0.1 from a thread with its own asyncio loop, for the block.

    Not in the test's thread: Playwright's sync API holds that one. Open connections (an
    EventSource) are closed at the end; a handler that waits for events should end on
    on_connection_close."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[tornado.httpserver.HTTPServer] = concurrent.futures.Future()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def listen() -> tornado.httpserver.HTTPServer:
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            return server

        try:
            server = loop.run_until_complete(listen())
        except BaseException as error:
            started.set_exception(error)
            return
        started.set_result(server)
        loop.run_forever()
        server.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(server.close_all_connections(), 5))
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name=f"serve:{port}", daemon=True)
    thread.start()
    started.result(timeout=TIMEOUT_MS / 1000)
    try:
        yield Served(f"http://127.0.0.1:{port}", loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
