"""Reviewer proofs: which reviewer's identity opened a bundle, shown without a new key.

At export the server draws, for each active recipient of the keyring, a
random 32-byte challenge and age-encrypts it to that recipient (it goes into
the bundle's manifest). The challenge is the seed of an Ed25519 signing key;
the server keeps only the matching *public* key, a one-way image of the
challenge, with the recipient id, the bundle id and the day, and forgets the
challenge itself. Only the holder of that reviewer's age identity can open
the challenge, so only they can sign.

The return file carries, instead of the challenge, a signature by that key
over the file's whole content (`proof_message`): the reviewer id, the
submissions acknowledged and any replies. A proof therefore cannot be lifted
from one return file into another, nor reused for other submissions, by
anyone who carries or copies the files: a revealed challenge could be, so
the challenge never leaves the reviewer's machine.

Refused: a challenge whose plaintext is not exactly `CHALLENGE_BYTES`
(treated as not opened), a public key or signature that is not the right
length or not base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyrage import x25519

from intake.crypto.envelope import decrypt_bytes, encrypt_bytes
from intake.errors import EnvelopeError

CHALLENGE_BYTES = 32
#: Separates the signed message from any other use of the same bytes.
_DOMAIN = b"intake-ack/v2 proof\x00"


def new_challenge() -> bytes:
    """A fresh random challenge (the seed of a one-bundle signing key)."""
    return secrets.token_bytes(CHALLENGE_BYTES)


def encrypt_challenge(challenge: bytes, recipient: str) -> bytes:
    """`challenge` as an age file to the one reviewer `recipient` (``age1...``)."""
    return encrypt_bytes(challenge, [recipient])


def open_challenge(ciphertext: bytes, identities: Sequence[x25519.Identity]) -> bytes | None:
    """The challenge, if one of `identities` opens it and it has the right length."""
    try:
        plaintext = decrypt_bytes(ciphertext, identities)
    except EnvelopeError:
        return None
    return plaintext if len(plaintext) == CHALLENGE_BYTES else None


def public_key(challenge: bytes) -> str:
    """What the server keeps of `challenge`: its Ed25519 public key, base64."""
    raw = (
        Ed25519PrivateKey.from_private_bytes(challenge)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode("ascii")


def canonical_body(body: dict[str, Any]) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8 (as the keyring's signatures)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def proof_message(bundle_id: str, recipient_id: str, body: dict[str, Any]) -> bytes:
    """The bytes a proof signs: the bundle, the reviewer and the return file's content."""
    return b"".join(
        [_DOMAIN, bundle_id.encode("ascii"), b"\x00", recipient_id.encode("ascii"), b"\x00",
         canonical_body(body)]
    )


def sign(challenge: bytes, bundle_id: str, recipient_id: str, body: dict[str, Any]) -> str:
    """The proof signature (base64) over `body` by the key `challenge` seeds."""
    key = Ed25519PrivateKey.from_private_bytes(challenge)
    return base64.b64encode(key.sign(proof_message(bundle_id, recipient_id, body))).decode("ascii")


def verify(
    stored_public_key: str, signature: str, bundle_id: str, recipient_id: str, body: dict[str, Any]
) -> bool:
    """Whether `signature` over `body` was made with the challenge behind `stored_public_key`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(stored_public_key, validate=True))
        key.verify(
            base64.b64decode(signature, validate=True),
            proof_message(bundle_id, recipient_id, body),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
