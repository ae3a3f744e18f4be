"""The source's pages: safety advice, the report form, thanks.

The form works without JavaScript. A form that fails validation comes back
with everything typed still in it, each error next to its field and listed at
the top; files cannot be refilled by a browser, so the page says they need
choosing again.

A report that is filed gets a receipt (`intake.crypto.receipt`), shown in the
answer to the submission itself: without JavaScript the server draws it and
answers the POST with the thank-you page (there is no redirect, since the
receipt must not travel in a URL); with JavaScript the page drew it, sent it
when its upload was created, and posts it to ``/<lang>/thanks`` once the
upload is filed, which answers with the same page. The receipt is printed in
the page's own digits, with Western digits beside them in Arabic and
Persian. Every answer carries ``Cache-Control: no-store``. The thank-you page
shows nothing else that identifies the report.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import CombinedMultiDict, MultiDict

from intake import schema
from intake.crypto import keyring as kr
from intake.crypto.receipt import format_receipt, new_receipt, normalise_receipt
from intake.limits import MAX_ATTACHMENTS
from intake.web.api import keyring_document
from intake.web.forms import ReceiptForm, ReportForm, report_fields
from intake.web.i18n import language_prefixed
from intake.web.keyring_state import IntakeClosed
from intake.web.pipeline import Upload, store_report
from intake.web.receipts import PAGE_DIGITS, keys_for_report

bp = language_prefixed(Blueprint("report", __name__, url_prefix="/<lang>"))



def _keyring() -> kr.Keyring:
    return current_app.extensions["intake"].watcher.current()


def recipients_view(keyring: kr.Keyring) -> list[dict[str, str]]:
    return [
        {"label": r.label, "fingerprint": kr.fingerprint(r.recipient)}
        for r in keyring.recipients
        if r.status == "active"
    ]


#: The longest estimate the page words in hours; beyond it, "more than two days".
ESTIMATE_HOURS = 48
_TIME_LEFT: dict[str, dict[str, Any]] = {}


def time_left_messages() -> dict[str, Any]:
    """The page's words for the time left, every count pre-rendered in the page's language.

    The page's script picks an entry by number (minutes 1 to 59, hours 1 to 48), so each
    is in the language's own plural form (Arabic has six). Rendered once per language.
    """
    cached = _TIME_LEFT.get(g.lang)
    if cached is None:
        cached = {
            "estimating": _("Estimating the time left…"),
            "under_a_minute": _("Less than a minute left."),
            "minutes": [""] + [
                ngettext("About %(num)d minute left.", "About %(num)d minutes left.", n)
                for n in range(1, 60)
            ],
            "hours": [""] + [
                ngettext("About %(num)d hour left.", "About %(num)d hours left.", n)
                for n in range(1, ESTIMATE_HOURS + 1)
            ],
            "over": _("More than two days left."),
        }
        _TIME_LEFT[g.lang] = cached
    return cached


def browser_config(keyring: kr.Keyring) -> dict[str, Any] | None:
    """What the page's script needs to encrypt in the browser; None without the bundle."""
    vendor = current_app.extensions["intake"].vendor
    if vendor is None:
        return None
    return {
        "lang": g.lang,
        "api": url_for("api.get_keyring").rsplit("/", 1)[0],
        "csrf": generate_csrf(),
        "worker": url_for("static", filename="js/encrypt-worker.js"),
        "vendor": url_for("static", filename=f"vendor/{vendor['file']}"),
        "integrity": vendor["integrity"],
        "thanks": url_for("report.thanks_with_receipt"),
        "keyring": keyring_document(keyring),
        "max_attachments": MAX_ATTACHMENTS,
        "fields": [
            {"name": f.name, "kind": f.kind, "label": str(f.label), "required": f.required,
             "multi": f.kind in schema.MULTI_KINDS}
            for f in schema.FIELDS.values()
        ],
        "messages": {
            "unsupported": _("This browser cannot encrypt the report itself."),
            "preparing": _("Preparing your report…"),
            "encrypting": _("Encrypting your report on this device…"),
            "uploading": _("Sending the encrypted report…"),
            "retrying": _("The connection dropped; trying again…"),
            "keyring_changed": _("The list of readers changed; encrypting again for them…"),
            "done": _("Sent."),
            "too_many_files": _("Too many files"),
            # After "send", when the encrypted path fails: the page offers a choice.
            "busy": _("The intake is busy: many reports are being sent at this moment."),
            "closed": _("The intake is temporarily closed. Try again later."),
            "not_sent": _("Encrypting it on this device or sending it did not work."),
            "chosen_server": _("You chose to send the report through the server."),
            "too_large": _(
                "The report is larger than the intake accepts. Send fewer or smaller files."
            ),
            "time_left": time_left_messages(),
        },
    }


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
        recipients=recipients_view(keyring),
        notice=notice,
        files_dropped=files_dropped,
        browser=browser_config(keyring),
    ), status


@bp.get("/")
def safety() -> str:
    return render_template("safety.html", advice=schema.SAFETY_ADVICE)


@bp.get("/report")
def form() -> tuple[str, int]:
    return render_form(ReportForm(), _keyring())


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _formdata() -> CombinedMultiDict:
    """What the form reads: the text parts, and file parts only under the file input.

    Flask-WTF would hand the form every file part, so a file sent under a text
    field's name reached that field's validators as a FileStorage (a 500); and
    a text part under the file input's name is not a file.
    """
    files = MultiDict([("attachments", f) for f in request.files.getlist("attachments")])
    text = MultiDict([(k, v) for k, v in request.form.items(multi=True) if k != "attachments"])
    return CombinedMultiDict([files, text])


@bp.post("/report")
def submit() -> Any:
    if request.mimetype not in FORM_TYPES:
        abort(415)
    keyring = _keyring()
    form = ReportForm(formdata=_formdata())
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
    state = current_app.extensions["intake"]
    receipt = new_receipt()
    keys = keys_for_report(receipt)
    mailboxes = state.mailboxes

    def open_mailbox(session: Any, submission_id: str) -> None:
        mailboxes.link(session, mailboxes.ensure(session, keys), submission_id)

    # On a full disk the app answers 507 "the intake is full" (app.storage_full).
    store_report(
        lang=g.lang,
        fields=report_fields(form),
        uploads=uploads,
        keyring=keyring,
        store=state.store,
        session_factory=state.session_factory,
        also=open_mailbox,
    )
    # The answer to the submission itself shows the receipt: never a redirect.
    return render_thanks(receipt)


def receipt_view(receipt: str) -> dict[str, str | None]:
    """The receipt as the page prints it: in its own digits, and in Western digits
    beside them when those differ."""
    digits = PAGE_DIGITS.get(g.lang, "western")
    return {
        "local": format_receipt(receipt, digits),
        "western": None if digits == "western" else format_receipt(receipt),
    }


def render_thanks(receipt: str | None) -> str:
    return render_template(
        "thanks.html",
        receipt=None if receipt is None else receipt_view(receipt),
        # The language links of a page with a receipt are forms that post it again.
        csrf=None if receipt is None else generate_csrf(),
        mailbox_days=current_app.extensions["intake"].settings.mailbox_days,
    )


@bp.get("/thanks")
def thanks() -> str:
    """The thank-you page reached by its address: it has no receipt to show."""
    return render_thanks(None)


@bp.post("/thanks")
def thanks_with_receipt() -> tuple[str, int] | str:
    """The page's script, once its encrypted upload is filed, posts the receipt it drew
    here (never in a URL) to show the same thank-you page as the form path."""
    form = ReceiptForm()
    receipt = normalise_receipt(form.receipt.data or "") if form.validate() else None
    if receipt is None:
        return render_template(
            "error.html",
            title=_("The receipt could not be shown"),
            message=_("Your report was sent. Its receipt could not be shown; without it you "
                      "cannot come back to this report, but you can send a new report."),
        ), 400
    return render_thanks(receipt)


@bp.app_errorhandler(IntakeClosed)
def closed(exc: IntakeClosed) -> tuple[str, int]:
    return render_template("closed.html"), 503
