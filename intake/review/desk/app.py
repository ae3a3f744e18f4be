"""`build_desk_app`: the reviewers' desk, a small Flask app for 127.0.0.1 only.

One readable place for everything the desk is made of: its settings (a
random secret key held in memory, the session cookie HttpOnly and
SameSite=Strict under a name of its own, small request bodies), the guard that
runs before anything else (`guard.DeskGuard`), CSRF on every change, the
intake's security headers on every response plus ``Cache-Control: no-store``,
its own templates and stylesheet next to the intake's, and the catalogues:
the schema's labels from the intake's, the review side's words (statuses,
indicator kinds) from ``review/translations`` and the desk's own strings from
``desk/translations``, merged by Flask-Babel in that order.

The cases come from one `intake.review.store.CaseStore`, opened when the app
is built and shared by the server's threads (the store gives each thread a
connection of its own); the command line may change the same database while
the desk runs, and the desk shows what it wrote at the next page.
"""

from __future__ import annotations

import functools
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_babel import Babel, format_decimal
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from intake.review.desk import display
from intake.review.desk.guard import DeskGuard
from intake.review.desk.images import ImageReencoder, Limits
from intake.review.i18n import REVIEW_TRANSLATIONS
from intake.review.store import CaseStore, CaseStoreBusy
from intake.web.i18n import LANGUAGES
from intake.web.security import SECURITY_HEADERS, configure_logging

HERE = Path(__file__).resolve().parent
INTAKE_STATIC = HERE.parent.parent / "static"
DESK_STATIC = HERE / "static"
DESK_CATALOGUES = HERE / "translations"
INTAKE_CATALOGUES = HERE.parent.parent / "translations"
#: The reviewer's language when the browser names none the desk speaks.
DEFAULT_LANGUAGE = "en"
#: The desk's forms are a few fields, the largest a note of at most 20,000 characters
#: (`intake.review.triage.MAX_NOTE`): up to 4 bytes each, each percent-encoded as 3.
MAX_REQUEST = 256 * 1024
#: The only files served as static: the intake's stylesheet and the desk's own.
STYLESHEETS = {"intake.css": INTAKE_STATIC / "intake.css", "desk.css": DESK_STATIC / "desk.css"}
SESSION_KEY = "desk"

log = logging.getLogger("intake.desk")


def missing_files() -> list[str]:
    """What of its own files the desk cannot find: templates, stylesheets, compiled catalogues.

    Without a compiled catalogue Flask-Babel would fall back to English without a word;
    the desk says so at start instead.
    """
    missing = [str(path) for path in [HERE / "templates" / "base.html", *STYLESHEETS.values()]
               if not path.is_file()]
    for folder in (DESK_CATALOGUES, REVIEW_TRANSLATIONS, INTAKE_CATALOGUES):
        missing += [str(folder / lang / "LC_MESSAGES" / "messages.mo") for lang in LANGUAGES
                    if not (folder / lang / "LC_MESSAGES" / "messages.mo").is_file()]
    return missing


@dataclass
class DeskState:
    store: CaseStore
    guard: DeskGuard
    images: ImageReencoder


def desk_state() -> DeskState:
    return current_app.extensions["desk"]


def build_desk_app(
    cases_dir: Path, *, port: int, image_limits: Limits | None = None,
    overrides: dict[str, Any] | None = None, store: CaseStore | None = None,
) -> Flask:
    configure_logging()
    app = Flask(
        "intake.review.desk",
        template_folder=str(HERE / "templates"),
        static_folder=None,
    )
    guard = DeskGuard(port)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # in memory only: a restart ends every session
        SESSION_COOKIE_NAME="intake_desk",  # cookies ignore ports: not the intake's "session"
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain HTTP on loopback
        SESSION_COOKIE_PATH=guard.path_prefix + "/",  # no other port gets it (see guard.py)
        MAX_CONTENT_LENGTH=MAX_REQUEST,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST,
        WTF_CSRF_TIME_LIMIT=None,  # the session itself ends when the desk stops
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        # Merged in this order, a later catalogue winning: the desk's words are its own.
        BABEL_TRANSLATION_DIRECTORIES=(
            f"{INTAKE_CATALOGUES};{REVIEW_TRANSLATIONS};{DESK_CATALOGUES}"
        ),
        TRAP_HTTP_EXCEPTIONS=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.config.update(overrides or {})
    app.extensions["desk"] = DeskState(
        store or CaseStore(cases_dir), guard, ImageReencoder(image_limits)
    )
    Babel(app, locale_selector=reviewer_language)

    # The guard first, so that nothing (not even CSRF or routing) answers a stranger.
    app.before_request(check_guard)
    CSRFProtect(app)

    from intake.review.desk import views

    app.register_blueprint(views.entry)
    app.register_blueprint(views.bp, url_prefix=guard.path_prefix)
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["languages"] = LANGUAGES
    app.jinja_env.filters["shown"] = display.shown
    app.jinja_env.filters["identifier"] = functools.partial(display.shown, identifier=True)
    app.jinja_env.filters["decimal"] = format_decimal
    app.jinja_env.filters["is_day"] = display.is_day
    app.jinja_env.filters["without_page"] = display.without_page
    app.jinja_env.globals["language_links"] = views.language_links
    app.after_request(add_desk_headers)

    @app.errorhandler(CaseStoreBusy)
    def store_busy(exc: CaseStoreBusy) -> tuple[str, int]:
        return render_error(
            _("The case store is busy"),
            _("Another intake command is writing to the case store (an import, perhaps). "
              "Nothing was changed; wait for it to finish, then go back and try again."),
        ), 503

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        return render_error(
            _("This form has expired or did not come from the desk"),
            _("Nothing was changed. Go back, reload the page and try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        if code == 404:
            return render_error(
                _("Not found"), _("There is no such page or case; go back to the list of cases.")
            ), 404
        if code == 413:
            return render_error(
                _("Too much data"), _("Nothing was changed; send less text at once.")
            ), 413
        return render_error(
            _("This request cannot be used"),
            _("Nothing was changed; go back to the list of cases."),
        ), code

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[str, int]:
        log.error("internal error while serving %s: %s", request.endpoint, type(exc).__name__)
        return render_error(
            _("Something went wrong"),
            _("Nothing was changed. Go back to the list of cases and try again."),
        ), 500

    return app


def reviewer_language() -> str:
    """The language in the path (also for a page that does not exist), else the browser's."""
    if g.get("lang"):
        return g.lang
    for part in request.path.split("/")[1:3]:  # /<prefix>/<lang>/…
        if part in LANGUAGES:
            return part
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LANGUAGE)


def current_language():
    return LANGUAGES[reviewer_language()]


def render_error(title: str, message: str, *, styled: bool = True) -> str:
    return render_template("error.html", title=title, message=message, styled=styled)


def check_guard() -> Any:
    guard = desk_state().guard
    refusal = guard.refusal(
        request.headers.get("Host"),
        request.method,
        request.headers.get("Sec-Fetch-Site"),
        request.headers.get("Origin"),
    )
    if refusal == "wrong_host":
        # The page of whoever sent this (a rebound DNS name) learns nothing but this sentence.
        return Response(
            f"This desk answers only at {guard.origin}/; open the address the command printed.\n",
            status=421,
            mimetype="text/plain",
        )
    if refusal == "other_site":
        return render_error(
            _("Refused"),
            _("The desk does not accept requests from other sites; use the desk's own pages."),
            styled=False,
        ), 403
    if request.endpoint == "entry.login":
        return None
    if not guard.admits(session.get(SESSION_KEY)):
        return render_error(
            _("This browser is not signed in to the desk"),
            _("Stop the desk with Ctrl+C and run \u201cintake review serve\u201d again; open "
              "the new address it prints, in this computer's browser."),
            styled=False,
        ), 403
    return None


def add_desk_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    response.headers.pop("Server", None)
    return response
