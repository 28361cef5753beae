"""Who may see the pages: a one-time login link, swapped for a session cookie.

A page cannot send the API's bearer token (a browser's EventSource sends no header), and a
token in every URL would end up in the history. So the server hands out login links whose
token works once and for a short while; opening one sets an HttpOnly, SameSite=Strict cookie
signed with the server's secret, and redirects to a URL without it. A daemon's secret derives
from its batch token (its pages' sessions outlive a restart, and nothing new is kept on disk);
`hyperctl ui` makes one per run. A job's token never opens a page: only a link does.

POSTs (a kill, a retry) carry a CSRF token derived from the session as well: SameSite=Strict
already keeps other sites' forms out, and this keeps out any page that slipped past it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from hashlib import sha256

LOGIN_PATH = "/login"
COOKIE = "hyperctl_session"
CSRF_HEADER = "X-Hyperctl-CSRF"
LINK_LIFE = 600.0  # seconds an unused login link keeps working
SESSION_LIFE = 7 * 24 * 3600.0  # then the browser needs a new link
_LINKS_MOST = 1000  # links kept at once: a flood of them costs memory, not the user's own


def secret_of(batch_token: str) -> bytes:
    """A daemon's secret for its pages: derived from its batch token, for nothing else."""
    return hmac.new(batch_token.encode(), b"hyperctl dashboard sessions", sha256).digest()


class Logins:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self._links: dict[str, float] = {}  # one-time token -> when it was made (monotonic)

    def link_token(self) -> str:
        """A new one-time login token (for `LOGIN_PATH?token=...`)."""
        now = time.monotonic()
        self._links = {t: made for t, made in self._links.items() if now - made < LINK_LIFE}
        if len(self._links) >= _LINKS_MOST:
            self._links.pop(next(iter(self._links)))  # the oldest
        token = secrets.token_urlsafe(32)
        self._links[token] = now
        return token

    def redeem(self, token: str) -> bool:
        """Whether token is a login token made here, unused and fresh; it is used up either way."""
        made = self._links.pop(token, None)
        return made is not None and time.monotonic() - made < LINK_LIFE

    def new_session(self) -> str:
        """The value of a session cookie: when it was made, a nonce, their signature."""
        body = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign('session', body)}"

    def is_session(self, value: str | None) -> bool:
        if not value or value.count(".") != 2 or not value.isascii():
            return False
        body, _, mac = value.rpartition(".")
        made = body.partition(".")[0]
        if not hmac.compare_digest(mac, self._sign("session", body)):
            return False
        return made.isdigit() and 0 <= time.time() - int(made) < SESSION_LIFE

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf", session)

    def is_csrf(self, session: str, token: str | None) -> bool:
        return token is not None and token.isascii() and hmac.compare_digest(token, self.csrf_token(session))

    def _sign(self, purpose: str, body: str) -> str:
        return hmac.new(self.secret, f"{purpose}.{body}".encode(), sha256).hexdigest()
