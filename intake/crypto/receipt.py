"""The source's receipt, and the keys the server derives from it.

A **receipt** is 20 random decimal digits (about 66.4 bits), shown in five
groups of four. `new_receipt` draws one with `secrets`; the browser draws its
own with `crypto.getRandomValues` (report.js, rejection sampling). People copy
it by hand and type it back in any digit system, so `normalise_receipt` is the
one reading of what was typed: Western, Arabic-Indic (٠-٩), Persian (۰-۹) or
any other Unicode decimal digits, with any spaces, dashes and direction marks
between them, become 20 ASCII digits, or None. `format_receipt` prints it in
groups, in a page's own digits.

**Keys.** `derive_keys` turns a normalised receipt into two independent
32-byte secrets:

    password = HMAC-SHA256(pepper, "intake receipt v1" NUL receipt)
    root     = Argon2id(password, salt, opslimit, memlimit)      (PyNaCl)
    lookup   = HKDF-SHA256(root, info="intake mailbox lookup v1")
    wrapping = HKDF-SHA256(root, info="intake mailbox wrapping v1")

The server stores only SHA-256 of `lookup` (`ReceiptKeys.lookup_hash`) to
find the mailbox, and uses `wrapping` (never stored) to wrap the mailbox's
reply identity (`wrap`, `unwrap`: XSalsa20-Poly1305, PyNaCl's SecretBox).

The salt, the pepper and the Argon2id parameters are a deployment's
`DerivationSecrets`, kept in one file beside the secret key (mode 0600,
made on first run by `load_or_create_secrets`), never in the database: a
database dump or backup alone gives lookup hashes that cannot be tested
against any guess without the pepper. With the file too, every guess costs one
Argon2id run, and there are 10^20 receipts.

Refused: a receipt that is not 20 digits once normalised (None), a secrets
file that is not exactly this format or whose values are out of bounds
(`ReceiptSecretsError`, one sentence), an unwrap whose box was altered or made
with another key (`WrongWrappingKey`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from intake.errors import IntakeError
from intake.fsutil import atomic_write

#: Digits in a receipt, and how they are grouped for people.
RECEIPT_DIGITS = 20
GROUP = 4
_RECEIPT = re.compile(r"[0-9]{20}")
#: Bound on what is read as a typed receipt: 20 digits with generous spacing.
MAX_TYPED = 200

#: Characters a person or a copy-paste may put between digits: white space of
#: every kind, dashes and hyphens of every kind, and direction marks.
_SEPARATORS = frozenset(
    " \t\r\n\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"  # spaces
    "-\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"  # dashes, minus signs
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # direction
    "\u0640"  # the Arabic tatweel, which some keyboards slip between characters
)

#: The digit systems a page prints in: Western (en, fr), Arabic-Indic (ar), Persian (fa).
DIGIT_SYSTEMS = {
    "western": "0123456789",
    "arabic": "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    "persian": "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",
}

SECRETS_FORMAT = "intake-receipt-secrets/v1"
SECRETS_FILE = "receipt_secrets.json"
SALT_BYTES = argon2id.SALTBYTES  # 16
PEPPER_BYTES = 32
KEY_BYTES = 32

#: The Argon2id cost every new deployment gets: 128 MiB and 6 passes took
#: 0.27-0.31 s of CPU per derivation on the development machine (x86_64, 2
#: cores; `bench/receipt_derivation.py` prints the figure on any machine).
DEFAULT_OPSLIMIT = 6
DEFAULT_MEMLIMIT = 128 * 1024 * 1024
#: What a secrets file may set (libsodium's own bounds are wider): never weaker
#: than RFC 9106's low-memory choice in memory, never so costly that one
#: derivation takes the server down.
MIN_OPSLIMIT, MAX_OPSLIMIT = 1, 64
MIN_MEMLIMIT, MAX_MEMLIMIT = 8 * 1024, 4 * 1024 * 1024 * 1024

_PASSWORD_DOMAIN = b"intake receipt v1\x00"
_LOOKUP_INFO = b"intake mailbox lookup v1"
_WRAPPING_INFO = b"intake mailbox wrapping v1"


class ReceiptSecretsError(IntakeError):
    """The deployment's receipt secrets file is missing its values or damaged."""


class WrongWrappingKey(Exception):
    """A wrapped value did not open with this key (altered, or another receipt's)."""


# -- The receipt as people see it -----------------------------------------------------------------


def new_receipt() -> str:
    """20 random decimal digits (ASCII), drawn with `secrets`."""
    return f"{secrets.randbelow(10**RECEIPT_DIGITS):0{RECEIPT_DIGITS}d}"


def normalise_receipt(typed: str) -> str | None:
    """The receipt in `typed` as 20 ASCII digits, or None if it is not one.

    Any Unicode decimal digit counts as its value (so ٠١٢ and ۰۱۲ read as
    012); spaces, dashes and direction marks anywhere are dropped; anything
    else (a letter, a dot, a 19th or 21st digit) makes it not a receipt.
    """
    if not isinstance(typed, str) or len(typed) > MAX_TYPED:
        return None
    digits = []
    for character in typed:
        if character in _SEPARATORS:
            continue
        value = unicodedata.decimal(character, None)
        if value is None:
            return None
        digits.append(str(value))
    receipt = "".join(digits)
    return receipt if _RECEIPT.fullmatch(receipt) else None


def format_receipt(receipt: str, digits: str = "western") -> str:
    """`receipt` (20 ASCII digits) in five groups of four, in the digit system named."""
    if not _RECEIPT.fullmatch(receipt):
        raise ValueError("a receipt is 20 ASCII digits")
    table = str.maketrans("0123456789", DIGIT_SYSTEMS[digits])
    groups = [receipt[i : i + GROUP] for i in range(0, RECEIPT_DIGITS, GROUP)]
    return " ".join(groups).translate(table)


# -- The deployment's secrets ---------------------------------------------------------------------


@dataclass(frozen=True)
class DerivationSecrets:
    """The salt, the pepper and the fixed Argon2id parameters of one deployment."""

    salt: bytes
    pepper: bytes
    opslimit: int
    memlimit: int

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_BYTES or len(self.pepper) != PEPPER_BYTES:
            raise ValueError("the salt is 16 bytes and the pepper 32")
        if not (MIN_OPSLIMIT <= self.opslimit <= MAX_OPSLIMIT
                and MIN_MEMLIMIT <= self.memlimit <= MAX_MEMLIMIT):
            raise ValueError("the Argon2id parameters are out of bounds")

    @property
    def weaker_than_default(self) -> bool:
        return self.opslimit < DEFAULT_OPSLIMIT or self.memlimit < DEFAULT_MEMLIMIT

    def document(self) -> dict[str, object]:
        return {
            "format": SECRETS_FORMAT,
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "pepper": base64.b64encode(self.pepper).decode("ascii"),
            "argon2id": {"opslimit": self.opslimit, "memlimit": self.memlimit},
        }


def generate_secrets(
    opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT
) -> DerivationSecrets:
    """A fresh random salt and pepper with the given (by default the calibrated) cost."""
    return DerivationSecrets(
        salt=secrets.token_bytes(SALT_BYTES),
        pepper=secrets.token_bytes(PEPPER_BYTES),
        opslimit=opslimit,
        memlimit=memlimit,
    )


def _parse_secrets(data: bytes, path: Path) -> DerivationSecrets:
    damaged = ReceiptSecretsError(
        f"The receipt secrets file {path} is damaged; restore it from the deployment's backup "
        "(without it no source's receipt opens its mailbox)."
    )
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise damaged from None
    if not (
        isinstance(document, dict)
        and set(document) == {"format", "salt", "pepper", "argon2id"}
        and document["format"] == SECRETS_FORMAT
        and isinstance(document["salt"], str)
        and isinstance(document["pepper"], str)
        and isinstance(document["argon2id"], dict)
        and set(document["argon2id"]) == {"opslimit", "memlimit"}
        and all(type(v) is int for v in document["argon2id"].values())
    ):
        raise damaged
    try:
        return DerivationSecrets(
            salt=base64.b64decode(document["salt"], validate=True),
            pepper=base64.b64decode(document["pepper"], validate=True),
            opslimit=document["argon2id"]["opslimit"],
            memlimit=document["argon2id"]["memlimit"],
        )
    except (binascii.Error, ValueError):
        raise damaged from None


def write_secrets(path: Path, derivation: DerivationSecrets) -> None:
    """Write `derivation` to `path` (mode 0600); never replaces an existing file."""
    data = json.dumps(derivation.document(), indent=1).encode("ascii")
    atomic_write(path, data, mode=0o600, overwrite=False)


#: How to make the file once for instances that share INTAKE_SECRET_KEY_FILE.
MAKE_SECRETS = "intake db receipt-secrets FILE"


def load_or_create_secrets(path: Path, *, create: bool = True) -> DerivationSecrets:
    """The deployment's secrets at `path`; with `create`, made with the default cost on
    first run.

    Several workers may start at once: the first to link its file wins, the
    others read it (the write is atomic and never replaces). Beside a shared
    secret key (`create=False`) the file is only read: each host making its
    own would give each its own mailboxes. It must not be open to every user.
    """
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                write_secrets(path, generate_secrets())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read(64 * 1024)
    except FileNotFoundError:
        raise ReceiptSecretsError(
            f"The receipt secrets file {path} does not exist; make it once with "
            f"`{MAKE_SECRETS.replace('FILE', str(path))}` and give every instance the same "
            "file, beside the shared secret key."
        ) from None
    except OSError as exc:
        raise ReceiptSecretsError(
            f"The receipt secrets file {path} cannot be read ({exc.strerror}); check its owner "
            "and mode (0600 or 0640, readable by the intake's user)."
        ) from None
    if mode & 0o007:
        raise ReceiptSecretsError(
            f"The receipt secrets file {path} is open to every user on this host; restrict it "
            f"with chmod 0640 {path}."
        )
    return _parse_secrets(data, path)


# -- Derivation and wrapping ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptKeys:
    """What a receipt opens: the mailbox's lookup hash and the key that wraps its identity."""

    lookup_hash: str  # hex SHA-256 of the lookup key: what the database keeps
    wrapping_key: bytes = b""

    def __repr__(self) -> str:  # never print a key, even in a traceback's locals
        return f"ReceiptKeys(lookup_hash={self.lookup_hash[:8]}…)"


def _hkdf(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(root)


def derive_keys(receipt: str, derivation: DerivationSecrets) -> ReceiptKeys:
    """The lookup hash and wrapping key of a normalised receipt (one Argon2id run)."""
    if not _RECEIPT.fullmatch(receipt):
        raise ValueError("derive_keys takes a normalised receipt (20 ASCII digits)")
    password = hmac.new(
        derivation.pepper, _PASSWORD_DOMAIN + receipt.encode("ascii"), hashlib.sha256
    ).digest()
    root = argon2id.kdf(
        KEY_BYTES, password, derivation.salt,
        opslimit=derivation.opslimit, memlimit=derivation.memlimit,
    )
    lookup = _hkdf(root, _LOOKUP_INFO)
    return ReceiptKeys(
        lookup_hash=hashlib.sha256(lookup).hexdigest(),
        wrapping_key=_hkdf(root, _WRAPPING_INFO),
    )


def wrap(secret: bytes, keys: ReceiptKeys) -> bytes:
    """`secret` encrypted and authenticated under the receipt's wrapping key (random nonce)."""
    return bytes(nacl.secret.SecretBox(keys.wrapping_key).encrypt(secret))


def unwrap(wrapped: bytes, keys: ReceiptKeys) -> bytes:
    """The secret `wrap` sealed; `WrongWrappingKey` if this key did not seal it."""
    try:
        return nacl.secret.SecretBox(keys.wrapping_key).decrypt(wrapped)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise WrongWrappingKey() from None
