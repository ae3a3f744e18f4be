"""A reviewer's reply to a source: its plaintext format and its envelope.

A reply is an age file to the source mailbox's reply recipient (``reply_to``,
an ``age1...`` X25519 key whose identity only the mailbox holds, wrapped).
Its plaintext is UTF-8 JSON::

    {"format": "intake-reply/v1", "text": "...", "written_on": "2026-12-01"}

followed by ASCII spaces (which JSON ignores) up to the Padmé length of the
JSON, and never less than `MIN_PADDED` bytes, so that a seized server or ack
file shows only a coarse size: every reply up to about 4 KB looks the same.

`encrypt_reply` is what `intake review reply` calls on the air-gapped
machine; `decrypt_reply` is what the server calls, in memory, while the
source has the mailbox open. The plaintext is hostile to the server (anyone
could have made an age file to a recipient that is in the clear in the
bundle): `read_reply` accepts only exactly this shape, bounded, and its text
is shown escaped, in its own direction.

Refused: a text that is empty, holds a control character other than a line
break or a tab, or is longer than `MAX_REPLY_TEXT` characters or
`MAX_PADDED` bytes once encoded (`ReplyError`, one sentence).
"""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pyrage import x25519

from intake.crypto.container import padme
from intake.crypto.envelope import decrypt_bytes, encrypt_bytes
from intake.errors import EnvelopeError, IntakeError

REPLY_FORMAT = "intake-reply/v1"
#: The longest reply a reviewer may write (a long letter).
MAX_REPLY_TEXT = 16_000
#: Every padded plaintext is at least this long, and at most the larger bound.
MIN_PADDED = 4096
MAX_PADDED = 64 * 1024
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ReplyError(IntakeError):
    """A reply that cannot be written as asked."""


@dataclass(frozen=True)
class ReplyText:
    """A reply as the source reads it."""

    text: str
    written_on: str  # ISO day


def reply_text_problem(text: str) -> str | None:
    """Why `text` cannot be sent as a reply, or None."""
    if not text.strip():
        return "The reply is empty; write something in the file."
    if len(text) > MAX_REPLY_TEXT:
        return (f"The reply is {len(text)} characters long; a reply may be at most "
                f"{MAX_REPLY_TEXT}. Shorten it or send it in two replies.")
    for character in text:
        if character in "\n\t":
            continue
        if unicodedata.category(character) in ("Cc", "Cs") or character in "\u2028\u2029":
            return (f"The reply holds a control character ({ascii(character)}); remove it "
                    "(only line breaks and tabs are kept).")
    return None


def padded_plaintext(text: str, written_on: datetime.date) -> bytes:
    """The reply's JSON, padded with spaces (see the module docstring)."""
    problem = reply_text_problem(text)
    if problem:
        raise ReplyError(problem)
    document = {"format": REPLY_FORMAT, "text": text, "written_on": written_on.isoformat()}
    data = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    length = max(MIN_PADDED, padme(len(data)))
    if length > MAX_PADDED:
        raise ReplyError(
            f"The reply takes {len(data)} bytes once encoded, more than the {MAX_PADDED} a "
            "reply may take; shorten it or send it in two replies."
        )
    return data + b" " * (length - len(data))


def encrypt_reply(text: str, reply_to: str, written_on: datetime.date) -> bytes:
    """The reply as an age file to the source mailbox's recipient `reply_to`."""
    return encrypt_bytes(padded_plaintext(text, written_on), [reply_to])


def read_reply(plaintext: bytes) -> ReplyText | None:
    """The reply in a decrypted plaintext, or None if it is not exactly a v1 reply."""
    if len(plaintext) > MAX_PADDED:
        return None
    try:
        document = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not (
        isinstance(document, dict)
        and set(document) == {"format", "text", "written_on"}
        and document["format"] == REPLY_FORMAT
        and isinstance(document["text"], str)
        and isinstance(document["written_on"], str)
        and _DAY.fullmatch(document["written_on"])
        and reply_text_problem(document["text"]) is None
    ):
        return None
    try:
        datetime.date.fromisoformat(document["written_on"])
    except ValueError:
        return None
    return ReplyText(document["text"], document["written_on"])


def decrypt_reply(ciphertext: bytes, identities: Sequence[x25519.Identity]) -> ReplyText | None:
    """The reply in `ciphertext` if the identity opens it and it is well formed, else None."""
    try:
        return read_reply(decrypt_bytes(ciphertext, identities))
    except EnvelopeError:
        return None
