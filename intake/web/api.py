"""The resumable upload API for ciphertext made in the browser (``/api/v1/``).

The browser encrypts the report itself; this API only ever sees age
ciphertext. Create an upload (an unguessable id, the chunk size and the size
limit come back), send chunks with their offsets (any chunk may be sent
again; a gap is refused with the offset to resume from), ask how much
arrived, finish with the size again. Creating refuses a size that no report
encrypted to the keyring's recipients can have, and answers 503 "busy" only
when the open uploads hold the whole budget (`intake.storage.uploads`).
Finishing checks, without a key, everything about the ciphertext that can be
checked (`intake.crypto.header.check_client_ciphertext`) against the keyring
version the page encrypted to, then files it in the blob store exactly like
the no-JavaScript path, through the upload store's interface (the parts may be
files or rows in PostgreSQL: an upload begun on one app server is finished on
another). Every state-changing call needs the CSRF token in the
``X-CSRFToken`` header. Errors are JSON: ``{"error": code, "message"}``.

**Receipts.** A new report's page draws its receipt itself and sends it with
the create (``"receipt"``), so that an answer to finish that never arrives
cannot lose it: the server derives its keys there (waiting for a report
derivation slot, never refused), makes or finds the mailbox, and keeps only
the mailbox's thread in the upload's row; the submission is linked to it when
it is filed. A follow-up sent from a mailbox page sends the page's ticket
(``"mailbox"``) instead. Without either, the report is filed without a
mailbox. The receipt is never stored, logged or sent back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_wtf.csrf import validate_csrf
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from intake.crypto import keyring as kr
from intake.crypto import payload
from intake.crypto.header import check_client_ciphertext, declared_size_problem
from intake.crypto.receipt import normalise_receipt
from intake.errors import EnvelopeError
from intake.limits import MAX_AGE_HEADER, UPLOAD_CHUNK, MiB
from intake.storage.models import Upload as UploadRow
from intake.storage.uploads import (
    OffsetMismatch,
    UploadBudgetFull,
    UploadGone,
    UploadInProgress,
    UploadNotOpen,
    UploadRefused,
)
from intake.web.keyring_state import IntakeClosed
from intake.web.receipts import Ticket, keys_for_report, read_ticket

CHUNK_SIZE = UPLOAD_CHUNK
MAX_CHUNK = 8 * MiB
CLEANUP_EVERY_SECONDS = 300
#: What finishing reads of the ciphertext: the whole header and the payload's first chunk.
FINISH_PREFIX = MAX_AGE_HEADER + payload.SAMPLE

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: This API described in OpenAPI 3.1 (tests/test_openapi.py keeps it in step with the routes).
OPENAPI = Path(__file__).with_name("openapi.json")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _state():
    return current_app.extensions["intake"]


def keyring_document(keyring: kr.Keyring) -> dict[str, Any]:
    """What the page needs to encrypt: the version and its active recipients."""
    return {
        "version": keyring.version,
        "recipients": [
            {"recipient": r.recipient, "label": r.label, "fingerprint": kr.fingerprint(r.recipient)}
            for r in keyring.recipients
            if r.status == "active"
        ],
    }


def _keyring() -> kr.Keyring:
    try:
        return _state().watcher.current()
    except IntakeClosed:
        closed = "The intake is temporarily closed; try again later."
        raise ApiError(503, "closed", closed) from None


@bp.before_request
def require_csrf() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except ValidationError:
            raise ApiError(400, "csrf", "The page expired; reload it and send again.") from None
    cleanup_now_and_then()


def cleanup_now_and_then() -> None:
    state = _state()
    now = time.monotonic()
    if now - state.last_cleanup >= CLEANUP_EVERY_SECONDS:
        state.last_cleanup = now
        state.clean_up()


@bp.errorhandler(ApiError)
def api_error(exc: ApiError):
    return jsonify(error=exc.code, message=exc.message, **exc.extra), exc.status


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    code = exc.code or 500
    names = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "bad_type"}
    return jsonify(error=names.get(code, "bad_request"),
                   message="The request was refused; reload the page and send again."), code


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "Send a JSON object.")
    return body


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(400, "bad_" + name, f"Send {name} as a whole number.")
    return value


def _stale(keyring: kr.Keyring) -> ApiError:
    return ApiError(409, "keyring_changed",
                    "The list of readers changed; encrypt again to the new keyring.",
                    keyring=keyring_document(keyring))


@bp.get("/openapi.json")
def openapi():
    return current_app.response_class(OPENAPI.read_bytes(), mimetype="application/json")


@bp.get("/keyring")
def get_keyring():
    return jsonify(keyring_document(_keyring()))


@bp.post("/uploads")
def create_upload():
    body = _json()
    size = _int(body.get("size"), "size")
    version = _int(body.get("keyring_version"), "keyring_version")
    keyring = _keyring()
    if version != keyring.version:
        raise _stale(keyring)
    limit = _state().settings.max_upload
    if size > limit:
        raise ApiError(413, "too_large",
                       "The report is larger than the intake accepts; send fewer or smaller files.",
                       max_size=limit)
    problem = declared_size_problem(size, expected_recipients=len(keyring.active_recipients()))
    if problem is not None:
        raise ApiError(422, "impossible_size",
                       f"No report encrypted to this keyring has this size: {problem}.")
    receipt, ticket = _receipt_or_ticket(body)
    try:
        upload_id = _state().uploads.create(size, version)
    except UploadBudgetFull:
        raise ApiError(503, "busy", "The intake is busy; try again in a few minutes.") from None
    try:
        if receipt is not None:
            keys = keys_for_report(receipt)
            del receipt
            _state().mailboxes.attach_upload(upload_id, keys=keys)
        elif ticket is not None:
            _state().mailboxes.attach_upload(upload_id, thread=ticket.thread)
    except BaseException:
        _state().uploads.discard(upload_id)
        raise
    return jsonify(id=upload_id, chunk_size=CHUNK_SIZE, max_chunk=MAX_CHUNK, max_size=limit,
                   offset=0), 201


def _receipt_or_ticket(body: dict[str, Any]) -> tuple[str | None, Ticket | None]:
    """The new report's receipt, or the follow-up's mailbox ticket, or neither."""
    if "receipt" in body and "mailbox" in body:
        raise ApiError(400, "bad_receipt", "Send a receipt or a mailbox ticket, not both.")
    if "receipt" in body:
        receipt = normalise_receipt(body["receipt"]) if isinstance(body["receipt"], str) else None
        if receipt is None:
            raise ApiError(400, "bad_receipt", "Send the receipt as 20 decimal digits.")
        return receipt, None
    if "mailbox" in body:
        ticket = read_ticket(body["mailbox"])
        if ticket is None or not _state().mailboxes.exists(ticket.thread):
            raise ApiError(409, "mailbox_expired",
                           "This mailbox page has expired; open your mailbox again with your "
                           "receipt, then send.")
        return None, ticket
    return None, None


def _upload(upload_id: str):
    try:
        return _state().uploads.get(upload_id)
    except UploadGone:
        raise ApiError(404, "unknown_upload",
                       "This upload is unknown or expired; start the upload again.") from None


@bp.get("/uploads/<upload_id>")
def upload_status(upload_id: str):
    upload = _upload(upload_id)
    if upload.state == "finished":  # a filed upload's row no longer knows its size
        return jsonify(state=upload.state)
    return jsonify(offset=upload.received, size=upload.size, state=upload.state)


@bp.put("/uploads/<upload_id>")
def put_chunk(upload_id: str):
    upload = _upload(upload_id)
    raw_offset = request.args.get("offset", "")
    # ASCII digits only: int() would also take " 7", "1_0" and other scripts' digits.
    if not (raw_offset.isascii() and raw_offset.isdigit()) or len(raw_offset) > 15:
        raise ApiError(400, "bad_offset", "Say where the chunk starts: ?offset=N.")
    offset = int(raw_offset)
    length = request.content_length
    if length is None:
        raise ApiError(411, "length_required", "Send each chunk with its Content-Length.")
    if length > MAX_CHUNK:
        raise ApiError(413, "chunk_too_large", f"Send chunks of at most {MAX_CHUNK} bytes.")
    data = request.get_data(cache=False)
    if len(data) != length:
        raise ApiError(400, "truncated_chunk", "The chunk arrived incomplete; send it again.")
    if upload.state != "open":  # a filed upload's row no longer knows its size
        raise ApiError(409, "not_open", "This upload is already finished.")
    if offset + len(data) > upload.size:
        raise ApiError(413, "beyond_size", "The chunk goes past the announced size.")
    try:
        received = _state().uploads.write_chunk(upload_id, offset, data)
    except OffsetMismatch as exc:
        raise ApiError(409, "offset_mismatch", "Resume from the offset given.",
                       offset=exc.received) from None
    except UploadNotOpen:
        raise ApiError(409, "not_open", "This upload is already finished.") from None
    except UploadGone:
        raise ApiError(404, "unknown_upload",
                       "This upload is unknown or expired; start the upload again.") from None
    return jsonify(offset=received, size=upload.size)


@bp.post("/uploads/<upload_id>/finish")
def finish(upload_id: str):
    state = _state()
    size = _int(_json().get("size"), "size")
    upload = _upload(upload_id)
    if upload.state == "finished":
        return jsonify(status="stored"), 200
    if size != upload.size:
        raise ApiError(409, "size_mismatch",
                       "The size sent to finish is not the size the upload was created with; "
                       "start the upload again.", size=upload.size)
    if upload.received != upload.size:
        raise ApiError(409, "incomplete", "Part of the upload is missing; resume it.",
                       offset=upload.received)
    try:
        filed = state.uploads.file(upload_id, state.store, _checker(upload),
                                   prefix=FINISH_PREFIX, also=_link(upload.mailbox))
    except UploadInProgress:
        raise ApiError(409, "in_progress",
                       "This upload is being filed; ask again in a moment.") from None
    except UploadRefused as refused:
        if isinstance(refused.reason, ApiError):
            raise refused.reason from None
        raise ApiError(404, "unknown_upload",
                       "This upload is unknown or expired; start the upload again.") from None
    except UploadGone:
        raise ApiError(404, "unknown_upload",
                       "This upload is unknown or expired; start the upload again.") from None
    if not filed:  # another request filed it meanwhile: this one was a retry
        return jsonify(status="stored"), 200
    return jsonify(status="stored"), 201


def _link(thread: str | None):
    """What links the filed submission to the upload's mailbox, in its row's transaction."""
    if thread is None:
        return None
    mailboxes = _state().mailboxes
    return lambda session, submission_id: mailboxes.link(session, thread, submission_id)


def _checker(upload: UploadRow):
    """What the upload store calls, under its claim, with the upload's first bytes: check,
    without a key, everything about the ciphertext that can be checked against the keyring
    version the page encrypted to; return the version to record, or refuse (discarded)."""

    def check(prefix: bytes) -> int:
        keyring = _keyring()
        if keyring.version != upload.keyring_version:
            raise UploadRefused(_stale(keyring))
        try:
            check_client_ciphertext(prefix, expected_recipients=len(keyring.active_recipients()),
                                    total_size=upload.size)
        except EnvelopeError as exc:
            raise UploadRefused(ApiError(422, "bad_ciphertext", str(exc))) from None
        return keyring.version

    return check
