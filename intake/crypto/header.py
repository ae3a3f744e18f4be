"""A key-less check of age headers arriving from untrusted clients.

When the browser encrypts a report, the server receives only ciphertext. Before
that ciphertext is filed as a submission, `check_client_header` makes sure it
is what the page was told to produce: an age v1 file (binary, not armored)
whose header holds only X25519 stanzas, exactly one per active recipient of
the keyring version the client named, within `MAX_AGE_HEADER` bytes, and with
at least one payload chunk after it. It cannot tell *which* keys the stanzas
were made for (X25519 stanzas do not say), so it guarantees shape, not
destination; a server that serves malicious JavaScript is out of its reach.
It does refuse an ephemeral share that is a low-order point of Curve25519
(the all-zero identity, the other small-order points and their non-canonical
encodings): X25519 with such a share gives the all-zero secret, so no
identity could ever open the file. The test is an X25519 exchange with a
fresh private key through pyca/cryptography, which refuses exactly those
shares; no curve arithmetic is written here.

After those stanzas the header may carry one "grease" stanza of exactly the
shape rage (and so the server's own path, through pyrage) adds to every file:
a type of 1 to 8 printable characters followed by ``-grease``, 0 to 4
arguments of 1 to 8 printable characters, and a body of 0 to 99 bytes. Every
age implementation ignores it; the browser adds one so that its files have the
same shape, and the same spread of lengths, as the server's, and a blob's size
does not tell which path a report took.

`check_client_ciphertext` adds the payload checks of `intake.crypto.payload`
(age's chunk framing, a Padmé-padded container inside, a first chunk that does
not compress) and that the size the client declared is the size that arrived.

The grammar follows the C2SP age specification: a version line, stanzas of
``-> type args`` and a base64 body wrapped at 64 columns whose last line is
shorter than 64, and a ``--- MAC`` line. Base64 must be canonical and unpadded.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from intake.crypto import payload
from intake.errors import EnvelopeError
from intake.limits import MAX_AGE_HEADER

VERSION_LINE = b"age-encryption.org/v1\n"
#: A payload is a 16-byte nonce and at least one chunk with its 16-byte tag.
MIN_PAYLOAD = payload.NONCE + payload.TAG
#: ``-> X25519 <43 base64>\n<43 base64>\n``: every X25519 stanza has this length.
X25519_STANZA_LENGTH = len(b"-> X25519 ") + 43 + 1 + 43 + 1
#: ``--- <43 base64>\n``
MAC_LINE_LENGTH = len(b"--- ") + 43 + 1
#: rage's grease stanza (age-core's ``grease_the_joint``): a type of 1 to 8 printable
#: characters and "-grease", 0 to 4 arguments of 1 to 8, a body of 0 to 99 bytes.
GREASE_MAX_ARGS = 4
GREASE_MAX_BODY = 99
_GREASE_TYPE = re.compile(r"[\x21-\x7e]{1,8}-grease")
_GREASE_ARG = re.compile(r"[\x21-\x7e]{1,8}")
#: The shortest grease stanza, ``-> x-grease\n\n``, and the longest: a type and four
#: arguments of 8 characters, then 99 bytes of body in base64 (132 characters: 64, 64, 4).
GREASE_MIN_LENGTH = len(b"-> x-grease\n") + 1
GREASE_MAX_LENGTH = (len(b"-> ") + 8 + len(b"-grease") + GREASE_MAX_ARGS * 9 + 1
                     + 65 + 65 + 5)
_ARG = re.compile(rb"[\x21-\x7e]+")
_B64 = re.compile(rb"[A-Za-z0-9+/]*")


@dataclass(frozen=True)
class Stanza:
    type: str
    args: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class AgeHeader:
    stanzas: tuple[Stanza, ...]
    length: int  # bytes from the start of the file to the end of the MAC line


def _b64(data: bytes, what: str) -> bytes:
    if not _B64.fullmatch(data):
        raise EnvelopeError(f"The age header has a {what} that is not unpadded base64.")
    try:
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise EnvelopeError(f"The age header has a {what} that is not valid base64.") from None
    if base64.b64encode(raw).rstrip(b"=") != data:
        raise EnvelopeError(f"The age header has a {what} in non-canonical base64.")
    return raw


def parse_header(prefix: bytes) -> AgeHeader:
    """Parse the age header at the start of `prefix` (the first bytes of a file).

    Reads no more than `MAX_AGE_HEADER` bytes of it; a header that does not end
    within that bound is refused.
    """
    if prefix.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----"):
        raise EnvelopeError("The ciphertext is ASCII-armored; send the binary age file.")
    if not prefix.startswith(VERSION_LINE):
        raise EnvelopeError(
            "This is not an age v1 file (its first line is not age-encryption.org/v1)."
        )
    window = prefix[:MAX_AGE_HEADER]
    pos = len(VERSION_LINE)
    stanzas: list[Stanza] = []

    def next_line() -> bytes:
        nonlocal pos
        end = window.find(b"\n", pos)
        if end < 0:
            if len(prefix) > MAX_AGE_HEADER:
                raise EnvelopeError(f"The age header is longer than {MAX_AGE_HEADER} bytes.")
            raise EnvelopeError("The age header is truncated.")
        line = window[pos:end]
        pos = end + 1
        return line

    while True:
        line = next_line()
        if line.startswith(b"---"):
            if not line.startswith(b"--- ") or len(line) != 4 + 43:
                raise EnvelopeError("The age header's MAC line is malformed.")
            _b64(line[4:], "MAC")
            break
        if not line.startswith(b"-> "):
            raise EnvelopeError("The age header has a line that is neither a stanza nor the MAC.")
        args = line[3:].split(b" ")
        if not all(_ARG.fullmatch(a) for a in args):
            raise EnvelopeError(
                "The age header has a stanza with an empty or non-printable argument."
            )
        body = b""
        while True:
            body_line = next_line()
            if len(body_line) > 64:
                raise EnvelopeError("The age header has a stanza body line longer than 64 columns.")
            body += body_line
            if len(body_line) < 64:
                break
        stanzas.append(
            Stanza(
                type=args[0].decode("ascii"),
                args=tuple(a.decode("ascii") for a in args[1:]),
                body=_b64(body, "stanza body"),
            )
        )
    if not stanzas:
        raise EnvelopeError("The age header has no recipient stanza.")
    return AgeHeader(stanzas=tuple(stanzas), length=pos)


def x25519_header_length(recipients: int) -> int:
    """The exact length of an age header with `recipients` X25519 stanzas and nothing else."""
    return len(VERSION_LINE) + recipients * X25519_STANZA_LENGTH + MAC_LINE_LENGTH


def client_header_lengths(recipients: int) -> list[int]:
    """Every length a client header may have: the X25519 stanzas, then perhaps a grease one.

    (A length inside the grease range that no grease stanza can take is refused
    again when the header itself arrives.)
    """
    base = x25519_header_length(recipients)
    return [base, *range(base + GREASE_MIN_LENGTH, base + GREASE_MAX_LENGTH + 1)]


def is_grease(stanza: Stanza) -> bool:
    """Whether `stanza` has the shape of rage's grease stanza (see the module docstring)."""
    return (
        _GREASE_TYPE.fullmatch(stanza.type) is not None
        and len(stanza.args) <= GREASE_MAX_ARGS
        and all(_GREASE_ARG.fullmatch(arg) for arg in stanza.args)
        and len(stanza.body) <= GREASE_MAX_BODY
    )


def is_low_order(share: bytes, probe: X25519PrivateKey | None = None) -> bool:
    """Whether the 32-byte X25519 `share` is a low-order point (no key can open its stanza).

    An exchange with any private key (`probe`, else a fresh one) gives the
    all-zero secret exactly for those shares, and pyca/cryptography refuses it.
    """
    probe = probe or X25519PrivateKey.generate()
    try:
        probe.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        return True
    return False


def check_client_header(
    prefix: bytes, *, expected_recipients: int, total_size: int | None = None
) -> AgeHeader:
    """Accept ciphertext from a client only if its header has the promised shape.

    `prefix` is the start of the file (at least the whole header; reading
    ``MAX_AGE_HEADER + 1`` bytes is always enough); `expected_recipients` is the
    number of active recipients of the keyring version the client encrypted to.
    """
    header = parse_header(prefix)
    probe = X25519PrivateKey.generate()
    stanzas = header.stanzas
    if len(stanzas) > 1 and is_grease(stanzas[-1]):
        stanzas = stanzas[:-1]  # one grease stanza, last, as rage writes it
    for stanza in stanzas:
        if stanza.type != "X25519":
            raise EnvelopeError(
                f"The ciphertext has a {stanza.type[:20]!r} stanza; "
                "only X25519 recipients are accepted."
            )
        if len(stanza.args) != 1:
            raise EnvelopeError("An X25519 stanza must have exactly one argument.")
        share = _b64(stanza.args[0].encode("ascii"), "X25519 share")
        if len(share) != 32:
            raise EnvelopeError("An X25519 stanza's ephemeral share is not 32 bytes.")
        if len(stanza.body) != 32:
            raise EnvelopeError("An X25519 stanza's wrapped key is not 32 bytes.")
        if is_low_order(share, probe):
            raise EnvelopeError(
                "An X25519 stanza's ephemeral share is a low-order point; no key can open it."
            )
    if len(stanzas) != expected_recipients:
        raise EnvelopeError(
            f"The ciphertext is encrypted to {len(stanzas)} recipients but the keyring has "
            f"{expected_recipients} active ones; reload the page and submit again."
        )
    if total_size is not None and total_size < header.length + MIN_PAYLOAD:
        raise EnvelopeError("The ciphertext ends right after its header; the upload is incomplete.")
    return header


def check_client_ciphertext(
    prefix: bytes, *, expected_recipients: int, total_size: int
) -> AgeHeader:
    """Everything checkable without a key about `total_size` bytes of client ciphertext.

    `prefix` is the start of the file: reading ``MAX_AGE_HEADER + payload.SAMPLE``
    bytes is always enough. The header must pass `check_client_header`; the
    payload after it, `intake.crypto.payload.check_payload`.
    """
    header = check_client_header(prefix, expected_recipients=expected_recipients,
                                 total_size=total_size)
    payload.check_payload(prefix[header.length:], total_size - header.length)
    return header


def declared_size_problem(size: int, *, expected_recipients: int) -> str | None:
    """Why a client's announced ciphertext `size` cannot be a submission, or None.

    Browser ciphertext has a header of a known length (X25519 stanzas, one per
    active recipient, perhaps a grease stanza) and a payload that must frame a
    padded container: the size must fit one of those header lengths.
    """
    problem = None
    for header_length in client_header_lengths(expected_recipients):
        problem = payload.declared_size_problem(size, header_length)
        if problem is None:
            return None
    return problem
