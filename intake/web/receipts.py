"""What the web layer does with receipts: derive their keys, and mailbox tickets.

**Deriving.** `keys_for_report` derives a new report's receipt keys in the
report pool of derivation slots (waits, never refused); `keys_for_follow_up`
in the follow-up pool (`DerivationsBusy` when it stays full). Either way the
receipt lives in this request's memory only: it is never logged, stored, put
in a cookie or a URL.

**Tickets.** Once a receipt has opened a mailbox, the page that shows it
carries a *ticket* instead of the receipt, for the forms that send more or
delete the mailbox: the mailbox's thread and an expiry minute, sealed
(XSalsa20-Poly1305) under a key derived from the app's secret key. A ticket
lets its holder send into, or delete, that one mailbox for
`TICKET_MINUTES`, never read it; it needs no second derivation, and the
receipt does not have to sit in the page. A ticket that is altered, expired,
or made with another secret key reads as None.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass

import nacl.exceptions
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from intake.crypto.receipt import ReceiptKeys, derive_keys

#: How long a mailbox page's forms work: time to write a message and send files over Tor.
TICKET_MINUTES = 180
_THREAD = re.compile(r"[0-9a-f]{32}")
_TICKET = re.compile(r"[A-Za-z0-9_-]{40,200}")
_TICKET_INFO = b"intake mailbox ticket v1"

#: The digit system each page language prints a receipt in (`format_receipt`).
PAGE_DIGITS = {"ar": "arabic", "fa": "persian", "en": "western", "fr": "western"}


def _state():
    return current_app.extensions["intake"]


def keys_for_report(receipt: str) -> ReceiptKeys:
    """A new report's receipt keys (report pool: waits its turn, never refused)."""
    state = _state()
    with state.slots.report():
        return derive_keys(receipt, state.derivation)


def keys_for_follow_up(receipt: str) -> ReceiptKeys:
    """The keys of a receipt typed on the follow-up page; `DerivationsBusy` when full."""
    state = _state()
    with state.slots.follow_up():
        return derive_keys(receipt, state.derivation)


def _ticket_box() -> nacl.secret.SecretBox:
    secret = current_app.config["SECRET_KEY"]
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_TICKET_INFO).derive(raw)
    return nacl.secret.SecretBox(key)


def _minute() -> int:
    return int(time.time() // 60)


def make_ticket(thread: str) -> str:
    """A ticket for the mailbox `thread`, valid for `TICKET_MINUTES`."""
    if not _THREAD.fullmatch(thread):
        raise ValueError("a thread is 32 lower-case hex digits")
    body = json.dumps({"t": thread, "e": _minute() + TICKET_MINUTES}).encode("ascii")
    sealed = _ticket_box().encrypt(body)
    return base64.urlsafe_b64encode(bytes(sealed)).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Ticket:
    thread: str


def read_ticket(text: object) -> Ticket | None:
    """The mailbox a ticket names, if it is intact and unexpired; else None."""
    if not isinstance(text, str) or not _TICKET.fullmatch(text):
        return None
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(_ticket_box().decrypt(sealed).decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError, nacl.exceptions.CryptoError):
        return None
    if not (isinstance(document, dict) and set(document) == {"t", "e"}
            and isinstance(document["t"], str) and _THREAD.fullmatch(document["t"])
            and type(document["e"]) is int and document["e"] >= _minute()):
        return None
    return Ticket(document["t"])
