"""The source's pages: safety advice, the report form, thanks.

The form works without JavaScript. A form that fails validation comes back
with everything typed still in it, each error next to its field and listed at
the top; files cannot be refilled by a browser, so the page says they need
choosing again. The thank-you page shows nothing that identifies the report.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from intake import schema
from intake.crypto import keyring as kr
from intake.web.forms import ReportForm, report_fields
from intake.web.keyring_state import IntakeClosed
from intake.web.pipeline import StorageFull, Upload, store_report

LANGUAGES = ("en",)
DEFAULT_LANGUAGE = "en"

bp = Blueprint("report", __name__, url_prefix="/<lang>")


@bp.url_value_preprocessor
def pull_language(endpoint: str | None, values: dict[str, Any] | None) -> None:
    lang = (values or {}).pop("lang", None)
    if lang not in LANGUAGES:
        abort(404)
    g.lang = lang


@bp.url_defaults
def add_language(endpoint: str, values: dict[str, Any]) -> None:
    values.setdefault("lang", g.get("lang", DEFAULT_LANGUAGE))


def _keyring() -> kr.Keyring:
    return current_app.extensions["intake"].watcher.current()


def _recipients_view(keyring: kr.Keyring) -> list[dict[str, str]]:
    return [
        {"label": r.label, "fingerprint": kr.fingerprint(r.recipient)}
        for r in keyring.recipients
        if r.status == "active"
    ]


def render_form(
    form: Any,
    keyring: kr.Keyring,
    *,
    status: int = 200,
    notice: str | None = None,
    files_dropped: bool = False,
) -> tuple[str, int]:
    form.keyring_version.data = str(keyring.version)
    return render_template(
        "form.html",
        form=form,
        sections=schema.SECTIONS,
        schema_fields=schema.FIELDS,
        recipients=_recipients_view(keyring),
        notice=notice,
        files_dropped=files_dropped,
    ), status


@bp.get("/")
def safety() -> str:
    return render_template("safety.html", advice=schema.SAFETY_ADVICE)


@bp.get("/report")
def form() -> tuple[str, int]:
    return render_form(ReportForm(), _keyring())


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@bp.post("/report")
def submit() -> Any:
    if request.mimetype not in FORM_TYPES:
        abort(415)
    keyring = _keyring()
    form = ReportForm()
    uploads = [
        Upload(filename=f.filename or "", content_type=f.mimetype or "", spool=f.stream)
        for f in request.files.getlist("attachments")
        if f.filename or f.stream.size  # an empty file input posts a nameless, empty part
    ]
    if any("\ufffd" in value for value in request.form.values()):
        form.validate()
        return render_form(
            form,
            keyring,
            status=400,
            files_dropped=bool(uploads),
            notice=_(
                "Some of the text could not be read (it was not valid text). "
                "Check the fields and send again."
            ),
        )
    if not form.validate():
        if form.csrf_token.errors:
            form.csrf_token.errors = []
            return render_form(
                form,
                keyring,
                status=400,
                files_dropped=bool(uploads),
                notice=_(
                    "This form expired or was opened in another window. "
                    "Your text is still here: check it and send again."
                ),
            )
        return render_form(form, keyring, status=400, files_dropped=bool(uploads))
    if form.keyring_version.data != str(keyring.version):
        return render_form(
            form,
            keyring,
            status=409,
            files_dropped=bool(uploads),
            notice=_(
                "The list of people who can read reports changed while you were writing. "
                "Check it below, then send again."
            ),
        )
    try:
        store_report(
            lang=g.lang,
            fields=report_fields(form),
            uploads=uploads,
            keyring=keyring,
            store=current_app.extensions["intake"].store,
            session_factory=current_app.extensions["intake"].session_factory,
        )
    except StorageFull:
        return render_template(
            "error.html",
            title=_("The intake is full"),
            message=_(
                "The server has no room for this report right now. Nothing was stored. "
                "Please try again later, or send a shorter report without large files."
            ),
        ), 507
    return redirect(url_for("report.thanks"), code=303)


@bp.get("/thanks")
def thanks() -> str:
    return render_template("thanks.html")


@bp.app_errorhandler(IntakeClosed)
def closed(exc: IntakeClosed) -> tuple[str, int]:
    return render_template("closed.html"), 503
