"""The return file (a contract: the reviewers write it, the server reads it).

``intake-ack/v2``::

    {"format": "intake-ack/v2", "reviewer": "<recipient id>",
     "proofs": [{"bundle": "<32 hex>", "recipient_id": "<id>", "signature": "<base64>"}],
     "submissions": [{"id": "<32 hex>", "sha256": "<64 hex>"}],
     "replies": [{"reply_id": "<32 hex>", "thread": "<32 hex>", "ciphertext": "<base64 age>"}]}

Each proof signs everything but ``proofs`` (`signed_body`), with the key
that reviewer's challenge for that bundle seeds (`intake.transfer.proof`).
``replies`` is always present: each is a reviewer's reply to a source, age
ciphertext (base64) to the source mailbox's ``reply_to``, written by
`intake review reply`; its entries are checked here in shape and size, and
the server delivers them (`intake.transfer.server_side`) only when a proof
holds. ``intake-ack/v1`` (``{"format", "submissions"}``, no reviewer, no
proof) is still read: the server counts it only when the admin accepts
unproven acks.

Everything is bounded: the file's size, the number of entries of each kind,
and each entry's exact keys and ASCII shape (`re.fullmatch`). A file that
breaks any rule is refused whole, with one sentence.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.errors import IntakeError
from intake.limits import MAX_RECIPIENTS
from intake.transfer import proof
from intake.transfer.bundle import BUNDLE_ID, MAX_BUNDLE_SUBMISSIONS, RECIPIENT_ID, SHA256

ACK_V1 = "intake-ack/v1"
ACK_V2 = "intake-ack/v2"

#: Bound on a return file: every submission of the largest bundle and the largest replies.
MAX_ACK_FILE = 128 * 1024 * 1024
MAX_ACK_SUBMISSIONS = MAX_BUNDLE_SUBMISSIONS
#: One proof per reviewer identity that opened the bundle.
MAX_PROOFS = MAX_RECIPIENTS
MAX_REPLIES = 1000
#: Bound on one reply's base64 age ciphertext (a long letter, padded, encrypted).
MAX_REPLY_CIPHERTEXT = 96 * 1024

_ID = re.compile(r"[0-9a-f]{32}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{86}==")  # 64 bytes of Ed25519 signature
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")

AGAIN = "copy it again from the reviewers"


class AckFileError(IntakeError):
    """A return file that is refused whole."""


@dataclass(frozen=True)
class Proof:
    bundle_id: str
    recipient_id: str
    signature: str


@dataclass(frozen=True)
class Reply:
    reply_id: str
    thread: str
    ciphertext: str  # base64 age, to the thread's reply_to recipient


@dataclass(frozen=True)
class AckFile:
    format: str
    reviewer: str | None  # None in a v1 file
    proofs: list[Proof]
    submissions: list[tuple[str, str]]  # (id, sha256)
    replies: list[Reply]
    body: dict[str, Any]  # what the proofs sign

    @property
    def proven_format(self) -> bool:
        return self.format == ACK_V2


def signed_body(document: dict[str, Any]) -> dict[str, Any]:
    """The part of a return file its proofs sign: everything but ``proofs``."""
    return {k: v for k, v in document.items() if k != "proofs"}


def _malformed(what: str) -> AckFileError:
    return AckFileError(f"The return file has a malformed {what}; {AGAIN}.")


def _exact(raw: Any, keys: set[str]) -> bool:
    return isinstance(raw, dict) and set(raw) == keys and all(
        isinstance(v, str) for v in raw.values()
    )


def _submissions(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or len(raw) > MAX_ACK_SUBMISSIONS:
        raise _malformed("submission list")
    entries = []
    for entry in raw:
        if not (
            _exact(entry, {"id", "sha256"})
            and _ID.fullmatch(entry["id"])
            and SHA256.fullmatch(entry["sha256"])
        ):
            raise _malformed("submission entry")
        entries.append((entry["id"], entry["sha256"]))
    if len({i for i, _ in entries}) != len(entries):
        raise AckFileError(f"The return file lists a submission twice; {AGAIN}.")
    return entries


def _proofs(raw: Any) -> list[Proof]:
    if not isinstance(raw, list) or len(raw) > MAX_PROOFS:
        raise _malformed("proof list")
    proofs = []
    for entry in raw:
        if not (
            _exact(entry, {"bundle", "recipient_id", "signature"})
            and BUNDLE_ID.fullmatch(entry["bundle"])
            and RECIPIENT_ID.fullmatch(entry["recipient_id"])
            and _SIGNATURE.fullmatch(entry["signature"])
        ):
            raise _malformed("proof")
        proofs.append(Proof(entry["bundle"], entry["recipient_id"], entry["signature"]))
    return proofs


def check_reply(entry: Any) -> Reply:
    """One reply entry, checked in shape and size (`AckFileError` otherwise)."""
    if not (
        _exact(entry, {"reply_id", "thread", "ciphertext"})
        and _ID.fullmatch(entry["reply_id"])
        and _ID.fullmatch(entry["thread"])
        and len(entry["ciphertext"]) <= MAX_REPLY_CIPHERTEXT
        and _BASE64.fullmatch(entry["ciphertext"])
    ):
        raise _malformed("reply")
    try:
        base64.b64decode(entry["ciphertext"], validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("reply") from None
    return Reply(entry["reply_id"], entry["thread"], entry["ciphertext"])


def _replies(raw: Any) -> list[Reply]:
    if not isinstance(raw, list) or len(raw) > MAX_REPLIES:
        raise _malformed("reply list")
    replies = [check_reply(entry) for entry in raw]
    if len({r.reply_id for r in replies}) != len(replies):
        raise AckFileError(f"The return file carries a reply twice; {AGAIN}.")
    return replies


def parse_ack(data: bytes) -> AckFile:
    """A return file, v2 or v1, checked in full (see the module docstring)."""
    if len(data) > MAX_ACK_FILE:
        raise AckFileError(f"The return file is larger than any reviewer writes; {AGAIN}.")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AckFileError(f"The return file is not valid JSON; {AGAIN}.") from None
    if not isinstance(document, dict):
        raise AckFileError(f"This is not an intake return file ({ACK_V2}).")
    if document.get("format") == ACK_V1:
        if set(document) != {"format", "submissions"}:
            raise _malformed(f"{ACK_V1} document")
        return AckFile(ACK_V1, None, [], _submissions(document["submissions"]), [], document)
    if document.get("format") != ACK_V2:
        raise AckFileError(f"This is not an intake return file ({ACK_V2} or {ACK_V1}).")
    if set(document) != {"format", "reviewer", "proofs", "submissions", "replies"}:
        raise _malformed(f"{ACK_V2} document (it must have exactly its five fields)")
    reviewer = document["reviewer"]
    if not (isinstance(reviewer, str) and RECIPIENT_ID.fullmatch(reviewer)):
        raise _malformed("reviewer id")
    return AckFile(
        format=ACK_V2,
        reviewer=reviewer,
        proofs=_proofs(document["proofs"]),
        submissions=_submissions(document["submissions"]),
        replies=_replies(document["replies"]),
        body=signed_body(document),
    )


def read_ack(path: Path) -> AckFile:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_ACK_FILE + 1)
    except FileNotFoundError:
        raise AckFileError(f"There is no return file at {path}.") from None
    except IsADirectoryError:
        raise AckFileError(f"{path} is a folder; give the return file (ack.json).") from None
    return parse_ack(data)


@dataclass(frozen=True)
class Opening:
    """A challenge this reviewer's identity opened: what signs a proof."""

    bundle_id: str
    recipient_id: str
    challenge: bytes


def build_ack(
    openings: list[Opening],
    submissions: list[tuple[str, str]],
    replies: list[Reply],
) -> dict[str, Any]:
    """A signed ``intake-ack/v2`` document: one proof per opening, all over the same body."""
    if not openings:
        raise ValueError("a v2 return file needs at least one opened challenge")
    body = {
        "format": ACK_V2,
        "reviewer": openings[0].recipient_id,
        "submissions": [{"id": i, "sha256": s} for i, s in submissions],
        "replies": [
            {"reply_id": r.reply_id, "thread": r.thread, "ciphertext": r.ciphertext}
            for r in replies
        ],
    }
    proofs = [
        {
            "bundle": o.bundle_id,
            "recipient_id": o.recipient_id,
            "signature": proof.sign(o.challenge, o.bundle_id, o.recipient_id, body),
        }
        for o in openings
    ]
    return {
        "format": ACK_V2,
        "reviewer": body["reviewer"],
        "proofs": proofs,
        "submissions": body["submissions"],
        "replies": body["replies"],
    }
