"""Who may drive the desk: the browser that opened the one-time URL, and nobody else.

The desk listens on 127.0.0.1, which every local user and every web page the
reviewer opens can reach. `DeskGuard` keeps them out:

- `login_url` carries a random token that works once; `exchange` trades it for a
  random session secret held only in memory, which the desk puts in its
  HttpOnly, SameSite=Strict session cookie. Every other request must carry it
  (`admits`); `lock` forgets it, after which only a restart lets anyone in.
- Every page lives under `path_prefix`, a random path, and the cookie is scoped
  to it. Browsers send a host's cookies to every port of that host, so without
  it the cookie would also go to any other program listening on 127.0.0.1 that
  the browser visits, and that program could replay it.
- `refusal` checks what comes before the cookie: the Host header must be
  exactly ``127.0.0.1:<port>`` (a DNS-rebinding page sends its own name), and a
  request a browser marks as coming from another site or another origin
  (``Sec-Fetch-Site``, ``Origin``) is refused, so that a page served by another
  program on 127.0.0.1 cannot use the cookie either. A change whose ``Origin``
  is ``null`` (what browsers send for the desk's own forms, since its pages
  send no referrer) passes only with ``Sec-Fetch-Site: same-origin``.

Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import secrets
import threading

LOOPBACK = "127.0.0.1"


class DeskGuard:
    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"{LOOPBACK}:{port}"
        self.origin = f"http://{self.host}"
        self.path_prefix = "/" + secrets.token_urlsafe(16)
        self._token: str | None = secrets.token_urlsafe(32)
        self._session: str | None = None
        self._lock = threading.Lock()

    @property
    def login_url(self) -> str:
        if self._token is None:
            raise RuntimeError("the one-time token has been used")
        return f"{self.origin}/login?token={self._token}"

    def exchange(self, token: str) -> str | None:
        """The new session secret if `token` is the unused one-time token, else None."""
        with self._lock:
            if self._token is None or not hmac.compare_digest(
                token.encode("utf-8", "replace"), self._token.encode("ascii")
            ):
                return None
            self._token = None
            self._session = secrets.token_urlsafe(32)
            return self._session

    def admits(self, session_secret: object) -> bool:
        with self._lock:
            current = self._session
        return (
            current is not None
            and isinstance(session_secret, str)
            and hmac.compare_digest(session_secret.encode("utf-8", "replace"), current.encode())
        )

    def lock(self) -> None:
        with self._lock:
            self._session = None

    def refusal(self, host: str | None, method: str, fetch_site: str | None,
                origin: str | None) -> str | None:
        """Why a request is refused before its cookie is looked at, or None.

        ``wrong_host``: not addressed to 127.0.0.1:<port>; ``other_site``: a page of
        another origin sent it.
        """
        if host != self.host:
            return "wrong_host"
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return "other_site"
        # Every desk page has Referrer-Policy no-referrer, for which browsers send
        # "Origin: null" with the page's own forms: such a change is the desk's only
        # when the browser also says it comes from the same origin.
        own_form = origin == "null" and fetch_site == "same-origin"
        if (method not in ("GET", "HEAD") and origin is not None and origin != self.origin
                and not own_form):
            return "other_site"
        return None
