"""`build_app`: the whole web application, from settings, in one readable place.

The blob and upload stores come from INTAKE_BLOB_STORE (`open_blob_store`,
`open_upload_store`); the app uses them only through their interfaces. A
database that cannot answer (stopped, restarting, unreachable) gets 503 and
"nothing was stored, try again" (a page, or JSON under the API), never a 500:
every write is whole or absent, so sending again is always safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from flask_babel import Babel
from flask_babel import gettext as _
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

from intake.config import QUICK_EXIT_URL, Settings, load_secret_key
from intake.crypto.receipt import DerivationSecrets, load_or_create_secrets
from intake.errors import IntakeError, is_storage_full
from intake.resources import STATIC, TRANSLATIONS, check_installed
from intake.storage import db
from intake.storage.blobs import BlobStore, FilesystemBlobStore, open_blob_store
from intake.storage.derivation import DerivationSlots
from intake.storage.mailboxes import MailboxStore
from intake.storage.submissions import (
    SubmissionNotStored,
    find_orphans,
    highest_keyring_version,
    raise_keyring_version,
)
from intake.storage.uploads import UploadStore, open_upload_store
from intake.web import api, followup, report
from intake.web.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    choose_language,
    current_language,
    language_links,
    long_day,
    page_digits,
)
from intake.web.keyring_state import IntakeClosed, KeyringWatcher
from intake.web.request import IntakeRequest
from intake.web.security import (
    RequestSecureSessionInterface,
    add_security_headers,
    configure_logging,
)

admin_log = logging.getLogger("intake.admin")


@dataclass
class IntakeState:
    settings: Settings
    store: BlobStore
    session_factory: sessionmaker
    watcher: KeyringWatcher
    uploads: UploadStore
    mailboxes: MailboxStore
    derivation: DerivationSecrets
    slots: DerivationSlots
    vendor: dict[str, str] | None = None
    last_cleanup: float = float("-inf")

    def clean_up(self) -> None:
        """Expired uploads, and mailboxes past their days (or empty and orphaned)."""
        self.uploads.cleanup()
        self.mailboxes.delete_inactive()


def build_app(settings: Settings, overrides: dict[str, Any] | None = None) -> Flask:
    configure_logging()
    # Templates and catalogues are checked once here: without them every page would be a 500.
    templates = check_installed(LANGUAGES)
    app = Flask(
        "intake",
        template_folder=str(templates),
        static_folder=str(STATIC),
    )
    app.request_class = IntakeRequest
    app.session_interface = RequestSecureSessionInterface()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    app.config.update(
        # A shared INTAKE_SECRET_KEY_FILE is read, never made: every instance must have the same.
        SECRET_KEY=load_secret_key(settings.secret_key_path,
                                   create=settings.secret_key_file is None),
        MAX_CONTENT_LENGTH=settings.max_upload,
        SESSION_COOKIE_NAME="session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
        INTAKE_SETTINGS=settings,
        TRAP_HTTP_EXCEPTIONS=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    app.config.update(overrides or {})

    engine = db.make_engine(settings.database_url)
    if not db.is_up_to_date(engine):
        raise IntakeError("The database is not up to date; run `intake db upgrade` first.")
    session_factory = db.make_session_factory(engine)
    store = open_blob_store(settings, engine)
    watcher = KeyringWatcher(
        settings.keyring_path,
        settings.admins_path,
        highest_version=lambda: highest_keyring_version(session_factory),
        raise_version=lambda v: raise_keyring_version(session_factory, v),
        interval=settings.keyring_check_seconds,
    )
    uploads = open_upload_store(settings, session_factory, engine)
    # Beside a shared INTAKE_SECRET_KEY_FILE the receipt secrets are read, never made: each
    # host making its own would split the mailboxes between hosts.
    derivation = load_or_create_secrets(settings.receipt_secrets_path,
                                         create=settings.secret_key_file is None)
    if derivation.weaker_than_default:
        admin_log.warning(
            "the receipt secrets file sets a weaker Argon2id cost than the default; "
            "a seized server's receipts are cheaper to guess"
        )
    app.extensions["intake"] = IntakeState(
        settings, store, session_factory, watcher, uploads,
        mailboxes=MailboxStore(session_factory, days=settings.mailbox_days),
        derivation=derivation,
        slots=DerivationSlots(engine, settings.data_dir),
        vendor=load_vendor_manifest(),
    )
    Babel(app, locale_selector=lambda: g.get("lang", DEFAULT_LANGUAGE))

    report_orphans(session_factory, store)
    if store.kind == "postgresql":
        report_unmoved_blobs(settings)
    # Check the keyring once at start: a refusal is logged for the admin, and
    # the form stays closed until a valid keyring arrives.
    with contextlib.suppress(IntakeClosed):
        watcher.current()

    app.register_blueprint(report.bp)
    app.register_blueprint(followup.bp)
    app.register_blueprint(api.bp)
    app.jinja_env.globals["quick_exit_url"] = QUICK_EXIT_URL
    app.jinja_env.globals["language_links"] = language_links
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.filters["long_day"] = long_day
    app.jinja_env.filters["page_digits"] = page_digits
    app.after_request(add_security_headers)

    @app.get("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204

    @app.get("/")
    def index() -> Any:
        response = redirect(url_for("report.safety", lang=choose_language(request)), code=302)
        response.headers["Vary"] = "Accept-Language"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        # Routing errors (an unknown path, a wrong method) never reach the API
        # blueprint's own handler: answer them in the API's JSON all the same.
        if _is_api_request():
            return api.http_error(exc)
        return render_template("error.html", **_http_error_text(exc)), exc.code or 500

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Any, int]:
        if is_storage_full(exc):
            return storage_full()
        if db.is_unavailable(exc) or isinstance(exc, SubmissionNotStored):
            return unavailable(exc)
        app.logger.error(
            "internal error while serving %s: %s", request.endpoint, type(exc).__name__
        )
        if _is_api_request():
            return jsonify(error="internal",
                           message="Nothing was stored. Please try again in a few minutes."), 500
        return render_template(
            "error.html",
            title=_("Something went wrong"),
            message=_("Nothing was stored. Please try again in a few minutes."),
        ), 500

    return app


def _is_api_request() -> bool:
    """Whether the request is for the upload API, whose answers are JSON."""
    return request.path.startswith(api.bp.url_prefix + "/")


def storage_full() -> tuple[Any, int]:
    """507 for a report that found no room: on disk (spool, blob, upload) or in the database.

    Whatever was written is gone already (the spool has no name, the blob
    writer removes its temporary file, an upload keeps what it had), so the
    source can send again once an admin has freed space.
    """
    admin_log.error("out of space in the data directory or the database: a report was refused")
    message = _(
        "The server has no room for this report right now. Nothing was stored. "
        "Please try again later, or send a shorter report without large files."
    )
    if _is_api_request():
        return jsonify(error="storage_full", message=message), 507
    return render_template("error.html", title=_("The intake is full"), message=message), 507


#: Seconds a source is asked to wait before sending again when the database is away.
RETRY_AFTER_SECONDS = 60


def unavailable(exc: Exception) -> tuple[Any, int, dict[str, str]]:
    """503 for a report the database could not take now (stopped, restarting, unreachable).

    Nothing of it was kept: a blob is written in one transaction, and its row
    after it, so sending again is safe. The admin log names only the error's
    class (the database's message may quote a row).
    """
    admin_log.error("the database did not answer (%s): a report was refused, nothing stored",
                    type(exc).__name__)
    message = _("Nothing was stored. Please try again in a few minutes.")
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _is_api_request():
        return jsonify(error="unavailable", message=message), 503, headers
    return render_template(
        "error.html", title=_("The intake cannot store reports right now"), message=message,
    ), 503, headers


def _http_error_text(exc: HTTPException) -> dict[str, str]:
    code = exc.code or 500
    if code == 413:
        return {
            "title": _("This report is too large"),
            "message": _(
                "The files together are larger than the intake accepts. Nothing was "
                "stored. Send fewer or smaller files, or describe them in the text."
            ),
        }
    if code == 404:
        return {
            "title": _("Page not found"),
            "message": _("Check the address, or start again from the first page."),
        }
    if code == 405:
        return {
            "title": _("This page cannot be used this way"),
            "message": _("Start again from the first page."),
        }
    if code == 415:
        return {
            "title": _("The form was sent in a way the intake does not accept"),
            "message": _("Send the report from the form on this site."),
        }
    return {
        "title": _("The request could not be understood"),
        "message": _("Nothing was stored. Go back to the form and send it again."),
    }


def load_vendor_manifest() -> dict[str, str] | None:
    """The vendored age bundle and its SRI hash, if it has been built."""
    manifest = STATIC / "vendor" / "SRI.json"
    if not manifest.exists():
        return None
    vendor = json.loads(manifest.read_text())
    return vendor if (STATIC / "vendor" / vendor["file"]).is_file() else None


def report_unmoved_blobs(settings: Settings) -> None:
    """With the PostgreSQL store, say if the data folder still holds blobs that no one serves."""
    if not settings.blob_dir.is_dir():
        return
    left = FilesystemBlobStore(settings.blob_dir).ids()
    if left:
        admin_log.warning(
            "%d blob(s) are still in the data folder's blobs/ and are not served with "
            "INTAKE_BLOB_STORE=postgresql; move them with `intake db move-blobs`", len(left)
        )


def report_orphans(session_factory: sessionmaker, store: BlobStore) -> None:
    """Say what a crash left behind: the admin decides, nothing is served."""
    orphans = find_orphans(session_factory, store)
    if orphans.blobs_without_row:
        admin_log.warning(
            "%d blob(s) without a row (an interrupted submission); they are not "
            "served as submissions",
            len(orphans.blobs_without_row),
        )
    if orphans.rows_without_blob:
        admin_log.warning(
            "%d submission row(s) without a blob; they are not served",
            len(orphans.rows_without_blob),
        )
    if orphans.temp_files:
        admin_log.warning("%d unfinished blob temp file(s) removed", len(orphans.temp_files))
        store.remove_temp_files()
