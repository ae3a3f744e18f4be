"""Hostile sequences of upload API calls, each step with the exact answer it must get.

Anyone who can load the form can call /api/v1/: create uploads of any size,
send any bytes, finish with any body. Every sequence here is one attack (or
the honest limit of a defence), written as the requests in order and, for
each, the status and `error` code the API must answer; and, at the end, how
many submissions were filed and how many uploads are still open.

The ciphertext is built here by hand from the age format (C2SP age: the
version line, X25519 stanzas of a base64 share and wrapped key, the MAC line,
then a 16-byte nonce and 64 KiB chunks sealed with 16-byte tags), never with
the modules under test, so that a mistake in their arithmetic cannot hide the
same mistake here. The keyring has `RECIPIENTS` active recipients; `$version`
in a body stands for its version, `{id}` in a path for the upload created
last, `{first}` for the first one.

`CORPUS` maps each attack's name to its `Sequence`; tests/test_hostile_api.py
runs every one against the app, with the upload store's clock under its
control (`advance`), so that 15 minutes pass without a sleep.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

RECIPIENTS = 2
MiB = 1024 * 1024
#: age's STREAM framing.
NONCE, TAG, CHUNK = 16, 16, 64 * 1024
#: The smallest report container: report.json's tar header and block, and the end marker.
SMALLEST_CONTAINER = 4 * 512
VERSION_LINE = b"age-encryption.org/v1\n"


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def age_header(shares: list[bytes] | None = None) -> bytes:
    """An age header of X25519 stanzas (random shares unless given) and a MAC line."""
    shares = shares or [os.urandom(32) for _ in range(RECIPIENTS)]
    stanzas = b"".join(b"-> X25519 " + b64(share) + b"\n" + b64(os.urandom(32)) + b"\n"
                       for share in shares)
    return VERSION_LINE + stanzas + b"--- " + b64(os.urandom(32)) + b"\n"


def sealed(plaintext: int) -> int:
    """The payload length (nonce and tags included) age gives `plaintext` bytes."""
    return NONCE + plaintext + TAG * max(1, -(-plaintext // CHUNK))


def age_shaped(container: int = SMALLEST_CONTAINER, shares: list[bytes] | None = None,
               payload: bytes | None = None) -> bytes:
    """A header and a random payload (ciphertext looks random) framing `container` bytes.

    The container lengths used below are 2048 bytes, powers of two and 20 MiB:
    lengths a padded container has (Padmé leaves them as they are).
    """
    return age_header(shares) + (payload if payload is not None else os.urandom(sealed(container)))


#: Curve25519 points of small order: X25519 with them gives the all-zero secret.
IDENTITY = bytes(32)
ORDER_EIGHT_HIGH_BIT = bytes.fromhex(
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7")  # bit 255 set
P_PLUS_ONE = bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")

READABLE = b"PLAINTEXT: they took my phone at the border and read me my own messages.\n"


@dataclass(frozen=True)
class Step:
    """One request and the answer it must get."""

    method: str
    path: str
    status: int
    error: str | None = None  # the `error` code of the answer; None: a success
    json: Any = None
    data: bytes | None = None
    times: int = 1  # the same request, this many times, each answer as given
    fresh_token: bool = False  # load the form again first: a new CSRF token each time
    advance: int = 0  # seconds the upload store's clock moves before the request


@dataclass(frozen=True)
class Sequence:
    steps: tuple[Step, ...]
    filed: int  # submissions filed at the end
    open_uploads: int  # uploads still open (not expired, not filed) at the end
    budget: dict[str, int] = field(default_factory=dict)  # Budget(...) overrides, if any
    slow: bool = False


def create(size: int, status: int = 201, error: str | None = None, **kw: Any) -> Step:
    return Step("POST", "/api/v1/uploads", status, error,
                json={"size": size, "keyring_version": "$version"}, **kw)


def put(data: bytes, offset: int = 0, status: int = 200, error: str | None = None,
        upload: str = "{id}", **kw: Any) -> Step:
    return Step("PUT", f"/api/v1/uploads/{upload}?offset={offset}", status, error, data=data,
                **kw)


def finish(size: int | None, status: int, error: str | None = None, upload: str = "{id}",
           **kw: Any) -> Step:
    body = {} if size is None else {"size": size}
    return Step("POST", f"/api/v1/uploads/{upload}/finish", status, error, json=body, **kw)


def status_of(status: int, error: str | None = None, **kw: Any) -> Step:
    return Step("GET", "/api/v1/uploads/{id}", status, error, **kw)


def a_real_source(ciphertext: bytes | None = None) -> tuple[Step, ...]:
    """Create, send, finish: what the page does for a source who just wants to report."""
    ciphertext = ciphertext or age_shaped(256 * 1024)
    return (create(len(ciphertext)), put(ciphertext), finish(len(ciphertext), 201))


CORPUS: dict[str, Sequence] = {}


def hostile(name: str, sequence: Sequence) -> None:
    assert name not in CORPUS, name
    CORPUS[name] = sequence


SMALLEST = len(age_shaped())  # 22 + 2 x 98 + 48 + 16 + 2048 + 16 = 2346 bytes

# -- item 6: the JavaScript path shut for a day ------------------------------------------------

hostile("500 creates of size 1, each with a fresh token, then a real source", Sequence(
    (create(1, 422, "impossible_size", times=500, fresh_token=True), *a_real_source()),
    filed=1, open_uploads=0, slow=True))

hostile("500 creates of the smallest valid size, then a real source", Sequence(
    (create(SMALLEST, times=500, fresh_token=True), *a_real_source()),
    filed=1, open_uploads=500, slow=True))

hostile("20 MiB announced and never sent fills a small budget, for 15 minutes only", Sequence(
    (create(len(age_shaped(20 * MiB)), times=4),
     create(SMALLEST, 503, "busy"),  # four windows of 64 KiB: the budget is full
     create(SMALLEST, 503, "busy", advance=15 * 60 - 61),  # 14 minutes on: not yet
     create(SMALLEST, advance=121)),  # 16 minutes on: they have expired
    filed=0, open_uploads=1, budget={"bytes": 4 * 64 * 1024, "window": 64 * 1024}))

STALLED = age_shaped(256 * 1024)
hostile("an upload that stalls for 15 minutes is gone", Sequence(
    (create(len(STALLED)), put(STALLED[:100_000]),
     put(STALLED[100_000:200_000], 100_000, advance=15 * 60 - 1),  # progress: alive again
     status_of(200, advance=15 * 60 - 1),
     status_of(404, "unknown_upload", advance=61),
     put(STALLED[200_000:], 200_000, 404, "unknown_upload"),
     finish(len(STALLED), 404, "unknown_upload")),
    filed=0, open_uploads=0))

hostile("resending the same chunk is not progress", Sequence(
    (create(len(STALLED)), put(STALLED[:100_000]),
     put(STALLED[:100_000], advance=10 * 60),
     status_of(404, "unknown_upload", advance=6 * 60)),
    filed=0, open_uploads=0))

# -- item 7: bytes behind a valid header filed as "ciphertext" ---------------------------------

NAIVE = age_header() + READABLE
hostile("readable plaintext behind a valid header, any length", Sequence(
    (create(len(NAIVE), 422, "impossible_size"),),
    filed=0, open_uploads=0))

PADDED = age_shaped(payload=(READABLE * 40)[:sealed(SMALLEST_CONTAINER)])
hostile("readable plaintext padded to a length a report can have", Sequence(
    (create(len(PADDED)), put(PADDED), finish(len(PADDED), 422, "bad_ciphertext"),
     status_of(404, "unknown_upload")),
    filed=0, open_uploads=0))

ZEROS = age_shaped(payload=bytes(sealed(8192)))
hostile("zeros padded to a length a report can have", Sequence(
    (create(len(ZEROS)), put(ZEROS), finish(len(ZEROS), 422, "bad_ciphertext")),
    filed=0, open_uploads=0))

for share_name, share in (("the identity (all zero)", IDENTITY),
                          ("a point of order 8, bit 255 set", ORDER_EIGHT_HIGH_BIT),
                          ("p + 1, a non-canonical 1", P_PLUS_ONE)):
    LOW = age_shaped(shares=[os.urandom(32), share])
    hostile(f"an X25519 share that is {share_name}", Sequence(
        (create(len(LOW)), put(LOW), finish(len(LOW), 422, "bad_ciphertext")),
        filed=0, open_uploads=0))

HEADER = len(age_header())
hostile("an empty plaintext (one empty chunk)", Sequence(
    (create(HEADER + NONCE + TAG, 422, "impossible_size"),), filed=0, open_uploads=0))
# Sizes these payloads have could also come from a header with a grease stanza (13 to 190
# bytes, as rage and the page write it), so create admits them; the finish, which sees the
# header that arrived, refuses them and drops what was stored.
EMPTY_LAST = age_header() + os.urandom(NONCE + (CHUNK + TAG) + TAG)
hostile("a full chunk followed by an empty last chunk", Sequence(
    (create(len(EMPTY_LAST)), put(EMPTY_LAST),
     finish(len(EMPTY_LAST), 422, "bad_ciphertext")),
    filed=0, open_uploads=0))
NOT_BLOCKS = age_header() + os.urandom(sealed(SMALLEST_CONTAINER + 100))
hostile("a container that is not whole 512-byte blocks", Sequence(
    (create(len(NOT_BLOCKS)), put(NOT_BLOCKS), finish(len(NOT_BLOCKS), 422, "bad_ciphertext")),
    filed=0, open_uploads=0))
hostile("a container of whole blocks that Padmé never gives (1 MiB + 512)", Sequence(
    (create(HEADER + sealed(MiB + 512), 422, "impossible_size"),), filed=0, open_uploads=0))
THREE = age_shaped(shares=[os.urandom(32) for _ in range(3)])
hostile("a header for three recipients where the keyring has two", Sequence(
    (create(len(THREE)), put(THREE), finish(len(THREE), 422, "bad_ciphertext")),
    filed=0, open_uploads=0))

RIGHT = age_shaped()
hostile("finish without a size, then with another, then with the right one", Sequence(
    (create(len(RIGHT)), put(RIGHT),
     finish(None, 400, "bad_size"),
     finish(len(RIGHT) + 512, 409, "size_mismatch"),
     finish(len(RIGHT), 201)),
    filed=1, open_uploads=0))

RANDOM = age_shaped(64 * 1024)
hostile("random bytes of a valid length get through (the honest limit)", Sequence(
    (create(len(RANDOM)), put(RANDOM), finish(len(RANDOM), 201)),
    filed=1, open_uploads=0))

# -- the rest of the protocol, from the attacker's side ------------------------------------------

hostile("a chunk past the announced size", Sequence(
    (create(len(RIGHT)), put(RIGHT + b"x", 0, 413, "beyond_size"), put(RIGHT),
     finish(len(RIGHT), 201)),
    filed=1, open_uploads=0))

hostile("chunks and finishes after the upload was filed", Sequence(
    (*a_real_source(RIGHT), put(RIGHT, 0, 409, "not_open"),
     finish(len(RIGHT), 200), finish(len(RIGHT) + 1, 200), status_of(200)),
    filed=1, open_uploads=0))

hostile("a gap in the chunks", Sequence(
    (create(len(STALLED)), put(STALLED[1000:], 1000, 409, "offset_mismatch"),
     finish(len(STALLED), 409, "incomplete")),
    filed=0, open_uploads=1))

hostile("an old keyring version", Sequence(
    (Step("POST", "/api/v1/uploads", 409, "keyring_changed",
          json={"size": SMALLEST, "keyring_version": 0}),),
    filed=0, open_uploads=0))
