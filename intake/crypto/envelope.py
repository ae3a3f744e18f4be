"""The age v1 envelope: streaming encryption to X25519 recipients.

Every submission is one age file, encrypted to every *active* recipient of the
keyring, so that any standard age tool can open it with a reviewer's identity.
Encryption and decryption stream through file objects in 64 KiB chunks; memory
does not grow with the input. The implementation is rage, through pyrage.

Refused: no recipients, a recipient that is not an X25519 ``age1...`` key, the
same recipient twice, more than `MAX_RECIPIENTS`.

Note: rage adds one random "grease" stanza, last, to every header (the age
spec allows it, and every age implementation ignores it). The browser's
worker adds one drawn the same way, and `header.check_client_header` accepts
exactly that, so that files from both paths have the same shape and a blob's
length does not tell which path a report took.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import pyrage
from pyrage import x25519

from intake.errors import EnvelopeError, IdentityError
from intake.limits import MAX_RECIPIENTS


class NoMatchingIdentity(EnvelopeError):
    """No given identity unwraps any stanza: the file was made for other keys."""


class UnreadableHeader(EnvelopeError):
    """The header is not one any identity could open (malformed, truncated, a bad share)."""


def parse_recipient(text: str) -> x25519.Recipient:
    """Parse an ``age1...`` X25519 recipient, or say why it is not one."""
    text = text.strip()
    # A Bech32 string's human-readable part is everything before its last "1":
    # "age" for X25519; post-quantum ("age1pq1...") and plugin keys differ.
    if text.lower().rpartition("1")[0] != "age":
        raise EnvelopeError(
            f"{text[:12]!r}… is not an age X25519 public key; it must start with age1 "
            "(the public key age-keygen or `intake keys new-identity` prints)."
        )
    try:
        return x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        raise EnvelopeError(
            f"{text[:12]!r}… is not a valid age public key; copy it again, in full."
        ) from None


def parse_identity(text: str) -> x25519.Identity:
    """Parse one ``AGE-SECRET-KEY-1...`` line."""
    try:
        return x25519.Identity.from_str(text.strip())
    except pyrage.IdentityError:
        raise IdentityError("The file holds something that is not an age secret key.") from None


def _recipients(recipients: Sequence[str]) -> list[x25519.Recipient]:
    if not recipients:
        raise EnvelopeError("There is no active recipient to encrypt to; add one to the keyring.")
    if len(recipients) > MAX_RECIPIENTS:
        raise EnvelopeError(f"At most {MAX_RECIPIENTS} recipients are allowed.")
    stripped = [r.strip() for r in recipients]
    if len(set(stripped)) != len(stripped):
        raise EnvelopeError("The same recipient is listed twice; list each key once.")
    return [parse_recipient(r) for r in stripped]


def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipients: Sequence[str]) -> None:
    """Encrypt everything `src` yields into `dst`, as one age file to `recipients`."""
    parsed = _recipients(recipients)
    try:
        pyrage.encrypt_io(src, dst, parsed)
    except pyrage.EncryptError as exc:  # I/O failure inside rage
        raise EnvelopeError(f"Encryption failed ({exc}).") from None


def encrypt_bytes(data: bytes, recipients: Sequence[str]) -> bytes:
    """Encrypt a small in-memory value (tests, key files); prefer `encrypt_stream`."""
    return pyrage.encrypt(data, _recipients(recipients))


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Sequence[x25519.Identity]) -> None:
    """Decrypt the age file in `src` into `dst`.

    On failure `dst` may hold a prefix of the plaintext (age authenticates in
    64 KiB chunks): the caller must discard it. Nothing after a tampered chunk
    is ever written.
    """
    if not identities:
        raise IdentityError("No identity was given to decrypt with.")
    try:
        pyrage.decrypt_io(src, dst, list(identities))
    except pyrage.DecryptError as exc:
        raise _decrypt_error(str(exc)) from None
    except OSError as exc:
        if exc.errno is not None:  # a real I/O failure of src or dst, not of the ciphertext
            raise
        # rage reports a failed payload chunk (altered, cut or extended) as an I/O error.
        raise _decrypt_error("payload") from None


def decrypt_bytes(data: bytes, identities: Sequence[x25519.Identity]) -> bytes:
    """Decrypt a small in-memory age file."""
    try:
        return pyrage.decrypt(data, list(identities))
    except pyrage.DecryptError as exc:
        raise _decrypt_error(str(exc)) from None


def _decrypt_error(detail: str) -> EnvelopeError:
    """The error for rage's `detail`, classed by what it shows about the identities.

    `NoMatchingIdentity` and `UnreadableHeader` mean that no given identity
    opened the file. A plain `EnvelopeError` means one did (a file key was
    unwrapped, then the header MAC or the payload failed): the file was made
    for these keys and was damaged or altered.
    """
    lowered = detail.lower()
    if "no matching keys" in lowered or "no identity matched" in lowered:
        return NoMatchingIdentity(
            "None of the given identities can open this file; it was encrypted to other keys."
        )
    header = "This is not an intact age file (its header is damaged, truncated or missing)."
    altered = "The file is truncated or was altered after encryption; it cannot be trusted."
    if "mac" in lowered:
        return EnvelopeError(header)
    if detail == "payload":
        return EnvelopeError(altered)
    if "header" in lowered or "invalid" in lowered or "failed to fill" in lowered:
        return UnreadableHeader(header)
    return UnreadableHeader(altered)
