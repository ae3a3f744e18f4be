"""The follow-up pages: a source comes back with the receipt.

``GET /<lang>/follow-up`` asks for the receipt; ``POST`` the same address
with it (a plain form: no JavaScript needed) and the page shows the mailbox:
the status of each submission sent through it, the reviewers' replies, newest
first, each in its own direction, the day it will be deleted, a form to send
more and a button to delete it. The server derives the receipt's keys
(`intake.web.receipts`, the follow-up pool of derivation slots), unwraps the
mailbox's reply identity and decrypts the replies for this one answer, and
forgets them. It sees the receipt on both paths: Argon2id cannot run in a
browser at Tor Browser's "Safer" level.

What the answers promise:

- A receipt that is not 20 digits gets one sentence about its shape (400).
- A well-formed receipt that opens nothing (mistyped, or its mailbox
  deleted) gets one answer whichever it is, after the same derivation.
- When every follow-up slot stays taken, the page says "busy, try in a
  minute" (503, ``Retry-After: 60``). Reports never wait for these slots.
- ``/<lang>/follow-up/send`` takes text and files through exactly the
  report's no-JavaScript pipeline (encrypted spool, container, age to the
  keyring); with JavaScript the page encrypts them itself and uploads through
  ``/api/v1/`` with the page's ticket. Either way the submission is linked to
  the mailbox, and sending counts as activity.
- ``/<lang>/follow-up/delete`` asks for a confirmation, then deletes the
  mailbox, its statuses and its replies.

Every answer carries ``Cache-Control: no-store`` and ``Referrer-Policy:
no-referrer`` (`intake.web.security`, on every response).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import CombinedMultiDict, MultiDict

from intake.crypto import keyring as kr
from intake.crypto.receipt import normalise_receipt
from intake.storage.derivation import DerivationsBusy
from intake.web import api
from intake.web.forms import MAX_MESSAGE, FollowUpForm, MailboxActionForm, ReceiptForm
from intake.web.i18n import language_prefixed
from intake.web.keyring_state import IntakeClosed
from intake.web.pipeline import Upload, store_report
from intake.web.receipts import keys_for_follow_up, make_ticket, read_ticket
from intake.web.report import browser_config as report_config
from intake.web.report import recipients_view

bp = language_prefixed(Blueprint("followup", __name__, url_prefix="/<lang>/follow-up"))

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")



@bp.before_request
def housekeeping() -> None:
    api.cleanup_now_and_then()


def _state():
    return current_app.extensions["intake"]


def _keyring() -> kr.Keyring:
    return _state().watcher.current()


def _entry(form: ReceiptForm | None = None, *, problem: str | None = None,
           status: int = 200) -> tuple[str, int]:
    return render_template(
        "follow_up.html", form=form or ReceiptForm(formdata=None), problem=problem,
        mailbox_days=_state().settings.mailbox_days,
    ), status


@bp.get("")
def entry() -> tuple[str, int]:
    return _entry()


@bp.post("")
def open_mailbox() -> Any:
    form = ReceiptForm()
    if not form.validate():
        if form.csrf_token.errors:
            return _entry(problem=_("This page expired. Type your receipt again."), status=400)
        return _entry(problem=_shape_problem(), status=400)
    receipt = normalise_receipt(form.receipt.data or "")
    if receipt is None:
        return _entry(problem=_shape_problem(), status=400)
    try:
        keys = keys_for_follow_up(receipt)
    except DerivationsBusy:
        response = current_app.make_response((render_template("follow_up_busy.html"), 503))
        response.headers["Retry-After"] = "60"
        return response
    opened = _state().mailboxes.open(keys)
    del receipt, keys
    if opened is None:
        return render_template("follow_up_nothing.html", form=ReceiptForm(formdata=None),
                               mailbox_days=_state().settings.mailbox_days)
    ticket = make_ticket(opened.thread)
    try:
        keyring = _keyring()
    except IntakeClosed:
        # Nothing can be sent while the intake is closed; the replies can still be read.
        return render_template("mailbox.html", mailbox=opened, send_form=None,
                               delete_form=_delete_form(ticket), browser=None)
    send_form = FollowUpForm(formdata=None)
    send_form.mailbox.data = ticket
    send_form.keyring_version.data = str(keyring.version)
    return render_template(
        "mailbox.html",
        mailbox=opened,
        send_form=send_form,
        delete_form=_delete_form(ticket),
        browser=browser_config(keyring, ticket),
        **_send_context(keyring),
    )


def _send_context(keyring: kr.Keyring) -> dict[str, Any]:
    """What the send form shows besides itself: who can read it, and its bound."""
    return {"recipients": recipients_view(keyring), "max_message": MAX_MESSAGE}


def _shape_problem() -> str:
    return _("A receipt is 20 digits, in five groups of four. Check that none is missing or "
             "extra, and type it again.")


def _delete_form(ticket: str) -> MailboxActionForm:
    form = MailboxActionForm(formdata=None)
    form.mailbox.data = ticket
    return form


def browser_config(keyring: kr.Keyring, ticket: str) -> dict[str, Any] | None:
    """What the page's script needs to encrypt a follow-up in the browser: the report
    form's configuration, with the message as the only field and the ticket."""
    config = report_config(keyring)
    if config is None:
        return None
    config.update(
        mode="follow-up",
        mailbox=ticket,
        thanks=url_for("followup.sent"),
        fields=[{"name": "narrative", "source": "message", "kind": "textarea",
                 "label": _("Your message"), "required": False, "multi": False}],
    )
    config["messages"].update(
        empty=_("Write a message or choose at least one file."),
        unsupported=_("This browser cannot encrypt the message itself."),
        preparing=_("Preparing your message…"),
        encrypting=_("Encrypting your message on this device…"),
        uploading=_("Sending the encrypted message…"),
        chosen_server=_("You chose to send the message through the server."),
        too_large=_("The message is larger than the intake accepts. Send fewer or smaller "
                    "files."),
    )
    return config


# -- Sending more ---------------------------------------------------------------------------------


def _formdata() -> CombinedMultiDict:
    files = MultiDict([("attachments", f) for f in request.files.getlist("attachments")])
    text = MultiDict([(k, v) for k, v in request.form.items(multi=True) if k != "attachments"])
    return CombinedMultiDict([files, text])


def _send_page(form: FollowUpForm, *, status: int, notice: str | None = None,
               files_dropped: bool = False) -> tuple[str, int]:
    keyring = _keyring()
    form.keyring_version.data = str(keyring.version)
    ticket = form.mailbox.data or ""
    return render_template(
        "follow_up_send.html", send_form=form, notice=notice, files_dropped=files_dropped,
        browser=browser_config(keyring, ticket) if read_ticket(ticket) else None,
        **_send_context(keyring),
    ), status


@bp.post("/send")
def send() -> Any:
    if request.mimetype not in FORM_TYPES:
        abort(415)
    keyring = _keyring()
    form = FollowUpForm(formdata=_formdata())
    uploads = [
        Upload(filename=f.filename or "", content_type=f.mimetype or "", spool=f.stream)
        for f in request.files.getlist("attachments")
        if f.filename or f.stream.size
    ]
    dropped = bool(uploads)
    ticket = read_ticket(form.mailbox.data)
    if ticket is None or not _state().mailboxes.exists(ticket.thread):
        return render_template("follow_up_expired.html"), 409
    if any("\ufffd" in value for value in request.form.values()):
        return _send_page(form, status=400, files_dropped=dropped, notice=_(
            "Some of the text could not be read (it was not valid text). "
            "Check it and send again."))
    if not form.validate():
        if form.csrf_token.errors:
            form.csrf_token.errors = []
            return _send_page(form, status=400, files_dropped=dropped, notice=_(
                "This form expired or was opened in another window. "
                "Your text is still here: check it and send again."))
        return _send_page(form, status=400, files_dropped=dropped)
    if not (form.message.data or "").strip() and not uploads:
        return _send_page(form, status=400, notice=_(
            "Write a message or choose at least one file."))
    if form.keyring_version.data != str(keyring.version):
        return _send_page(form, status=409, files_dropped=dropped, notice=_(
            "The list of people who can read reports changed while you were writing. "
            "Check it, then send again."))
    state = _state()
    mailboxes = state.mailboxes
    store_report(
        lang=g.lang,
        fields={"narrative": form.message.data or ""},
        uploads=uploads,
        keyring=keyring,
        store=state.store,
        session_factory=state.session_factory,
        also=lambda session, submission_id: mailboxes.link(session, ticket.thread,
                                                           submission_id),
    )
    return render_template("follow_up_sent.html")


@bp.get("/sent")
def sent() -> str:
    """Where the page's script goes once a follow-up it encrypted is filed."""
    return render_template("follow_up_sent.html")


# -- Deleting -------------------------------------------------------------------------------------


@bp.post("/delete")
def delete() -> Any:
    form = MailboxActionForm()
    ticket = read_ticket(form.mailbox.data) if form.validate() else None
    if ticket is None:
        return render_template("follow_up_expired.html"), 409
    if form.confirm.data != "yes":
        return render_template("follow_up_delete.html", form=_delete_form(form.mailbox.data))
    _state().mailboxes.delete(ticket.thread)
    return render_template("follow_up_deleted.html")

