"""Headers on every response, and logs that carry no client.

`SECURITY_HEADERS` go on every response the app makes, errors and static
files included. The session cookie (the CSRF token's only home) is HttpOnly,
SameSite=Strict, and Secure whenever the request came over HTTPS.
`PrivacyFilter` is installed on the loggers a request can reach (Flask's,
Werkzeug's, gunicorn's): records carry no time and no client address.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "connect-src 'self'; worker-src 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.pop("Server", None)
    return response


class RequestSecureSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure exactly when the request is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request and request.is_secure) or super().get_cookie_secure(app)


# ASCII digits, bounded by lookarounds rather than \b: a Unicode \b sees no edge
# between an Arabic letter and a digit, so "مرسل192.0.2.1" would keep its address.
_ADDRESS = re.compile(
    r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])|\[?[0-9a-fA-F]*:[0-9a-fA-F:]{2,}\]?"
)


class PrivacyFilter(logging.Filter):
    """Blank anything shaped like an IP address out of a log record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _ADDRESS.sub("-", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """Log to stderr without times or addresses (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:  # under gunicorn, its own (address-free) configuration is in place
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(PrivacyFilter())
        handler._intake = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if root.level == logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in ("werkzeug", "gunicorn.error", "gunicorn.access", "intake", "intake.admin"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, PrivacyFilter) for f in logger.filters):
            logger.addFilter(PrivacyFilter())
