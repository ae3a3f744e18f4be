"""`serve_desk`: the desk on 127.0.0.1, in this process, until Ctrl+C.

The reviewer's machine has Werkzeug (Flask's own server) and no gunicorn,
and one person uses the desk at a time: Werkzeug's threaded server, in
process, is enough. It binds 127.0.0.1 and nothing else; any other host is
refused with the reason. It logs no request line (a line would carry the
one-time token, the cases' ids and the time) and sends no ``Server`` header.
The sign-in URL goes to standard output, everything else to standard error.
The case store is opened once, before the port, and closed when the desk stops.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import click
from werkzeug.serving import WSGIRequestHandler, make_server

from intake.errors import IntakeError
from intake.review.desk.guard import LOOPBACK

DEFAULT_PORT = 8001
#: Unprivileged ports only: the desk never runs as root for a port below 1024.
MIN_PORT, MAX_PORT = 1024, 65535

log = logging.getLogger("intake.desk")


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without request lines, addresses, times or a Server header."""

    server_version = "desk"
    sys_version = ""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: object) -> None:
        getattr(log, type if type in ("info", "warning", "error") else "info")(message, *args)

    def version_string(self) -> str:
        return "desk"


def check_bind(host: str, port: int) -> None:
    """Refuse, with the reason, any address but 127.0.0.1 and any port out of range."""
    if host != LOOPBACK:
        raise IntakeError(
            f"The desk listens on {LOOPBACK} only, so that no other computer can reach the "
            f"cases (a name such as localhost could resolve elsewhere); drop --host "
            f"{host[:60]!r} or give --host {LOOPBACK}."
        )
    if not MIN_PORT <= port <= MAX_PORT:
        raise IntakeError(f"--port must be between {MIN_PORT} and {MAX_PORT}; {port} is not.")


def serve_desk(cases_dir: Path, *, host: str = LOOPBACK, port: int = DEFAULT_PORT) -> None:
    check_bind(host, port)
    if not cases_dir.is_dir():
        raise IntakeError(f"There is no case store at {cases_dir}; import a bundle first.")
    from intake.review.desk import create_desk_app
    from intake.review.desk.app import missing_files

    missing = missing_files()
    if missing:
        raise IntakeError(
            f"This installation of the desk lacks {len(missing)} of its files (such as "
            f"{missing[0]}); run `make translations` in a checkout, or reinstall the intake."
        )
    from intake.cli.common import terminal_progress
    from intake.review.store import CaseStore

    # Opening the store indexes what is new; the first time, for many cases, that shows.
    store = CaseStore(cases_dir.resolve(), progress=terminal_progress("Indexing"))
    try:
        app = create_desk_app(cases_dir.resolve(), port=port, store=store)
        server = make_server(
            LOOPBACK, port, app, threaded=True, request_handler=QuietRequestHandler
        )
    except OSError as exc:
        store.close()
        if exc.errno == errno.EADDRINUSE:
            raise IntakeError(
                f"Port {port} on {LOOPBACK} is already in use (another desk?); stop it, or "
                "choose another with --port."
            ) from None
        raise
    except BaseException:
        store.close()
        raise
    guard = app.extensions["desk"].guard
    click.echo(
        f"The reviewers' desk for {cases_dir} is running on this computer only.\n"
        "Open this address in this computer's browser; it works once:",
        err=True,
    )
    click.echo(guard.login_url)
    click.echo("Stop the desk with Ctrl+C.", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    click.echo("The desk has stopped; its address no longer works.", err=True)
