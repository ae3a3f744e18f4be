"""What the server can check of browser-made ciphertext without a key, beyond its header.

An age v1 file is a header (`intake.crypto.header`) followed by the payload:
a 16-byte nonce, then the plaintext in chunks of 64 KiB, each sealed with a
16-byte tag (ChaCha20-Poly1305, the STREAM construction). Every chunk but the
last is full (65,552 bytes sealed); the last holds 1 to 65,536 bytes of
plaintext (17 to 65,552 sealed), or none at all (16 bytes) only when it is
the only chunk. So a payload's length alone says how long its plaintext is,
or that it is not age.

The plaintext of an intake submission is a report container: a tar of
512-byte blocks, at least a report.json header, one block of it and the
two-block end-of-archive marker, padded with Padmé (`container.padme`). So
its length is a multiple of 512, at least `MIN_CONTAINER`, and a fixed point
of Padmé. `declared_size_problem` checks a size announced at create against
all of this for the keyring's recipient count; `check_payload` checks the
arrived bytes at finish, and also refuses a payload whose first chunk
compresses (ciphertext never does; readable text always does).

What these checks cannot do: tell ciphertext from random bytes of the right
length, or tell which keys it was made for. They stop a careless or
downgraded client that sends plaintext, or junk of the wrong shape; a client
that sends random bytes of a valid length gets through, and only the
reviewers' tools, which decrypt, can refuse that submission.
"""

from __future__ import annotations

import zlib

from intake.crypto.container import BLOCK, padme, unpadded_length
from intake.errors import EnvelopeError
from intake.limits import MAX_CONTAINER

#: age's STREAM framing (C2SP age, "Payload").
NONCE = 16
TAG = 16
CHUNK = 64 * 1024
SEALED_CHUNK = CHUNK + TAG

#: The smallest container: report.json's tar header, one block of it, the end-of-archive marker.
MIN_CONTAINER = padme(unpadded_length(1, []))

#: How much of the payload `check_payload` wants to see: the nonce and the first sealed chunk.
SAMPLE = NONCE + SEALED_CHUNK

#: The payload's first chunk must not shrink below this share of its length when
#: compressed. zlib makes random bytes a few bytes *longer*; the chance that
#: ChaCha20 output of 2 KiB or more compresses by 10 % is far below 2^-100.
MAX_COMPRESSED_RATIO = 0.9


def plaintext_length(payload_length: int) -> int:
    """The plaintext length a payload of `payload_length` bytes carries; EnvelopeError if none."""
    sealed = payload_length - NONCE
    if sealed < TAG:
        raise EnvelopeError("The ciphertext's payload is too short to be age.")
    if sealed == TAG:
        return 0  # the empty plaintext: one empty chunk, and only then
    full_chunks = (sealed - 1) // SEALED_CHUNK
    last = sealed - full_chunks * SEALED_CHUNK  # 1 .. SEALED_CHUNK
    if last <= TAG:
        raise EnvelopeError(
            "The ciphertext's length does not match age's chunk framing (an empty last chunk)."
        )
    return full_chunks * CHUNK + last - TAG


def sealed_length(plaintext: int) -> int:
    """The payload length (nonce included) age gives `plaintext` bytes."""
    chunks = max(1, -(-plaintext // CHUNK))
    return NONCE + plaintext + chunks * TAG


def container_length_problem(length: int) -> str | None:
    """Why no report container is `length` bytes long, or None if one can be."""
    if length < MIN_CONTAINER:
        return f"it is shorter than the smallest report ({MIN_CONTAINER} bytes)"
    if length > MAX_CONTAINER:
        return "it is longer than any report the reviewers' tools open"
    if length % BLOCK or padme(length) != length:
        return "its length is not one a padded report container has"
    return None


def declared_size_problem(size: int, header_length: int) -> str | None:
    """Why `size` bytes, behind a header of `header_length` bytes, cannot be a submission."""
    try:
        length = plaintext_length(size - header_length)
    except EnvelopeError:
        return "it is too short, or not a length age's chunk framing gives"
    problem = container_length_problem(length)
    return None if problem is None else f"the report inside would not fit: {problem}"


def check_payload(sample: bytes, payload_length: int) -> int:
    """Check a payload from its length and its first `SAMPLE` bytes; return its plaintext length.

    `sample` is the start of the payload (all of it if it is shorter than
    `SAMPLE`). Raises EnvelopeError, in one sentence, for a payload that is not
    an age-framed, Padmé-padded report container, or that compresses.
    """
    length = plaintext_length(payload_length)
    problem = container_length_problem(length)
    if problem is not None:
        raise EnvelopeError(f"The ciphertext cannot hold a report: {problem}.")
    sample = sample[:SAMPLE]
    if len(sample) < min(payload_length, SAMPLE):
        raise EnvelopeError("The ciphertext's payload is shorter than its size says.")
    if len(zlib.compress(sample, 6)) < MAX_COMPRESSED_RATIO * len(sample):
        raise EnvelopeError(
            "The ciphertext's payload compresses, so it is not encrypted; "
            "reload the page and send again."
        )
    return length
