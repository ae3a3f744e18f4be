"""Key files: reviewer identities and admin signing keys, passphrase-encrypted.

A **reviewer identity** is the text ``age-keygen`` writes (``# created:``,
``# public key:``, ``AGE-SECRET-KEY-1...``), encrypted with an age passphrase
(scrypt), so that the standard ``age -d -i reviewer.key`` opens it as well.
An **admin key** is an Ed25519 private key in PKCS#8 PEM with comment lines
naming its id and public key, encrypted the same way. Both are written once,
atomically, with mode 0600, and never overwrite an existing file. A new key
file's passphrase must be at least as strong as six random diceware words
(`intake.crypto.passphrase`); a weaker one is refused before any key is made.

Unencrypted identity files (plain ``age-keygen`` output) are read too, for
interoperability; the intake never writes one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from intake.crypto.envelope import parse_identity
from intake.crypto.keyring import admin_id_for, format_time, utc_now
from intake.crypto.passphrase import check_new_passphrase
from intake.errors import IdentityError
from intake.fsutil import atomic_write

AGE_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
#: Bound on a key file, so that a wrong path (a video, a disk image) fails fast.
MAX_KEY_FILE = 64 * 1024

PassphraseSource = Callable[[], str]


def is_encrypted(data: bytes) -> bool:
    return data.startswith(AGE_MAGIC) or data.lstrip().startswith(ARMOR_MAGIC)


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()[: MAX_KEY_FILE + 1]
    except FileNotFoundError:
        raise IdentityError(f"There is no {what} at {path}.") from None
    except OSError as exc:
        raise IdentityError(f"The {what} {path} cannot be read ({exc.strerror}).") from None
    if len(data) > MAX_KEY_FILE:
        raise IdentityError(f"{path} is far too large to be a {what}; check the path.")
    return data


def _unlock(data: bytes, passphrase: PassphraseSource, path: Path) -> bytes:
    if not is_encrypted(data):
        return data
    try:
        return pyrage.passphrase.decrypt(data, passphrase())
    except pyrage.DecryptError:
        raise IdentityError(
            f"The passphrase for {path} is wrong, or the file is damaged; try again."
        ) from None


def _write_new(path: Path, text: str, passphrase: str) -> None:
    path = Path(path)
    check_new_passphrase(passphrase, context=(path.stem,))
    if path.exists():
        raise IdentityError(
            f"{path} already exists; a key file is never overwritten, choose another name."
        )
    ciphertext = pyrage.passphrase.encrypt(text.encode("utf-8"), passphrase)
    try:
        atomic_write(path, ciphertext, mode=0o600, overwrite=False)
    except FileExistsError:
        raise IdentityError(f"{path} already exists; a key file is never overwritten.") from None
    except OSError as exc:
        raise IdentityError(f"Cannot write {path} ({exc.strerror}).") from None


def write_reviewer_identity(path: Path, passphrase: str) -> str:
    """Create a new reviewer identity at `path`; return its ``age1...`` public key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    text = f"# created: {format_time(utc_now())}\n# public key: {public}\n{identity}\n"
    _write_new(path, text, passphrase)
    return public


def load_identities(path: Path, passphrase: PassphraseSource) -> list[x25519.Identity]:
    """The identities in an identity file (passphrase asked only if it is encrypted)."""
    text = _unlock(_read_key_file(path, "identity file"), passphrase, path)
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise IdentityError(f"{path} is not an age identity file.") from None
    identities = [
        parse_identity(line) for line in lines if line.strip() and not line.startswith("#")
    ]
    if not identities:
        raise IdentityError(f"{path} holds no AGE-SECRET-KEY line; is it an identity file?")
    return identities


@dataclass(frozen=True)
class AdminKey:
    id: str
    public_key_b64: str
    private_key: Ed25519PrivateKey | None = None


def write_admin_key(path: Path, passphrase: str) -> AdminKey:
    """Create a new admin signing key at `path`; return its id and public key."""
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    admin = AdminKey(
        id=admin_id_for(raw_public), public_key_b64=base64.b64encode(raw_public).decode("ascii")
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    text = (
        "# intake admin signing key (Ed25519)\n"
        f"# created: {format_time(utc_now())}\n"
        f"# admin id: {admin.id}\n"
        f"# public key: {admin.public_key_b64}\n"
        f"{pem}"
    )
    _write_new(path, text, passphrase)
    return admin


def load_admin_key(path: Path, passphrase: PassphraseSource) -> AdminKey:
    text = _unlock(_read_key_file(path, "admin key"), passphrase, path)
    start = text.find(b"-----BEGIN PRIVATE KEY-----")
    try:
        private = (
            serialization.load_pem_private_key(text[start:], password=None) if start >= 0 else None
        )
    except ValueError:
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise IdentityError(f"{path} is not an intake admin key.")
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return AdminKey(
        id=admin_id_for(raw_public),
        public_key_b64=base64.b64encode(raw_public).decode("ascii"),
        private_key=private,
    )
