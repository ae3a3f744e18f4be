"""The age envelope: who can open it, and that damage is always an EnvelopeError."""

from __future__ import annotations

import io
import random
import subprocess

import pytest
from conftest import require_tool
from pyrage import x25519

from intake.crypto import envelope
from intake.crypto.header import parse_header
from intake.errors import EnvelopeError, IntakeError
from intake.limits import MAX_RECIPIENTS

CHUNK = 64 * 1024
TAG = 16
NONCE = 16
PLAINTEXT = random.Random(7).randbytes(200 * 1024)  # three full chunks and a short fourth


def public(identity: x25519.Identity) -> str:
    return str(identity.to_public())


@pytest.fixture(scope="module")
def keys() -> list[x25519.Identity]:
    return [x25519.Identity.generate() for _ in range(3)]


@pytest.fixture(scope="module")
def ciphertext(keys) -> bytes:
    out = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(PLAINTEXT), out, [public(k) for k in keys])
    return out.getvalue()


def payload_start(data: bytes) -> int:
    return parse_header(data).length + NONCE


def decrypt_stream(data: bytes, identities) -> bytes:
    out = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(data), out, identities)
    return out.getvalue()


BOTH = pytest.mark.parametrize(
    "decrypt",
    [decrypt_stream, envelope.decrypt_bytes],
    ids=["decrypt_stream", "decrypt_bytes"],
)


def flipped(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# --------------------------------------------------------------------------- who can open it


@BOTH
@pytest.mark.parametrize("which", [0, 1, 2])
def test_each_of_three_recipients_alone_decrypts_the_file(ciphertext, keys, decrypt, which):
    assert decrypt(ciphertext, [keys[which]]) == PLAINTEXT


def test_the_header_holds_one_x25519_stanza_per_recipient(ciphertext):
    types = [s.type for s in parse_header(ciphertext).stanzas]
    assert types.count("X25519") == 3


def test_encrypt_bytes_and_encrypt_stream_agree_on_who_can_open(keys):
    data = envelope.encrypt_bytes(b"short", [public(keys[1])])
    assert envelope.decrypt_bytes(data, [keys[1]]) == b"short"
    with pytest.raises(EnvelopeError, match="None of the given identities can open"):
        envelope.decrypt_bytes(data, [keys[0]])


@BOTH
def test_an_unrelated_identity_cannot_open_the_file(ciphertext, decrypt):
    with pytest.raises(EnvelopeError, match="None of the given identities can open this file"):
        decrypt(ciphertext, [x25519.Identity.generate()])


def test_the_reference_age_tool_opens_what_encrypt_stream_wrote(
    tmp_path, ciphertext, keys, identity_text_file, reviewer_keys
):
    age = require_tool("age")
    out = io.BytesIO()
    envelope.encrypt_stream(io.BytesIO(PLAINTEXT), out, [public(reviewer_keys[0]), public(keys[0])])
    source = tmp_path / "c.age"
    source.write_bytes(out.getvalue())
    done = subprocess.run(
        [age, "-d", "-i", str(identity_text_file), str(source)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == PLAINTEXT


def test_decrypt_stream_without_identities_is_an_intake_error(ciphertext):
    with pytest.raises(IntakeError, match="No identity"):
        decrypt_stream(ciphertext, [])


def test_decrypt_bytes_without_identities_is_an_intake_error(ciphertext):
    with pytest.raises(IntakeError):
        envelope.decrypt_bytes(ciphertext, [])


# --------------------------------------------------------------------------- damage


def payload_positions(data: bytes) -> dict[str, int]:
    start = payload_start(data)
    return {
        "nonce": start - NONCE,
        "first-chunk": start + 10,
        "first-tag": start + CHUNK + TAG - 1,
        "second-chunk": start + CHUNK + TAG + 5,
        "last-chunk": len(data) - 100,
        "last-byte": len(data) - 1,
    }


@BOTH
@pytest.mark.parametrize(
    "where", ["nonce", "first-chunk", "first-tag", "second-chunk", "last-chunk", "last-byte"]
)
def test_a_flipped_payload_byte_is_an_envelope_error(ciphertext, keys, decrypt, where):
    index = payload_positions(ciphertext)[where]
    with pytest.raises(EnvelopeError, match="truncated or was altered"):
        decrypt(flipped(ciphertext, index), [keys[0]])


def test_nothing_after_a_tampered_chunk_is_written(ciphertext, keys):
    index = payload_positions(ciphertext)["second-chunk"]
    out = io.BytesIO()
    with pytest.raises(EnvelopeError):
        envelope.decrypt_stream(io.BytesIO(flipped(ciphertext, index)), out, [keys[0]])
    written = out.getvalue()
    assert len(written) <= CHUNK
    assert PLAINTEXT.startswith(written)


@BOTH
def test_a_flipped_header_byte_anywhere_is_an_envelope_error(keys, decrypt):
    data = envelope.encrypt_bytes(b"small report", [public(k) for k in keys])
    for index in range(parse_header(data).length):
        with pytest.raises(EnvelopeError):
            decrypt(flipped(data, index), [keys[0]])


def truncation_points(data: bytes) -> dict[str, int]:
    header = parse_header(data).length
    start = header + NONCE
    return {
        "empty": 0,
        "inside-version-line": 10,
        "inside-header": header // 2,
        "right-after-header": header,
        "inside-nonce": header + 7,
        "right-after-nonce": start,
        "inside-first-chunk": start + 1000,
        "at-first-chunk-boundary": start + CHUNK + TAG,
        "one-past-first-chunk-boundary": start + CHUNK + TAG + 1,
        "at-second-chunk-boundary": start + 2 * (CHUNK + TAG),
        "at-third-chunk-boundary": start + 3 * (CHUNK + TAG),
        "inside-last-tag": len(data) - 5,
        "last-byte-missing": len(data) - 1,
    }


@BOTH
@pytest.mark.parametrize(
    "cut",
    [
        "empty", "inside-version-line", "inside-header", "right-after-header", "inside-nonce",
        "right-after-nonce", "inside-first-chunk", "at-first-chunk-boundary",
        "one-past-first-chunk-boundary", "at-second-chunk-boundary", "at-third-chunk-boundary",
        "inside-last-tag", "last-byte-missing",
    ],
)
def test_a_truncated_file_is_an_envelope_error(ciphertext, keys, decrypt, cut):
    point = truncation_points(ciphertext)[cut]
    assert point < len(ciphertext)
    with pytest.raises(EnvelopeError):
        decrypt(ciphertext[:point], [keys[0]])


@BOTH
@pytest.mark.parametrize(
    "data",
    [b"", b"not an age file at all", b"age-encryption.org/v1\n", bytes(4096),
     b"-----BEGIN AGE ENCRYPTED FILE-----\nnonsense\n-----END AGE ENCRYPTED FILE-----\n"],
    ids=["empty", "text", "version-only", "zeros", "bogus-armor"],
)
def test_a_file_that_is_not_age_is_an_envelope_error(keys, decrypt, data):
    with pytest.raises(EnvelopeError):
        decrypt(data, [keys[0]])


@BOTH
def test_trailing_bytes_after_the_last_chunk_are_an_envelope_error(ciphertext, keys, decrypt):
    with pytest.raises(EnvelopeError):
        decrypt(ciphertext + b"\x00", [keys[0]])


# --------------------------------------------------------------------------- recipients


ENCRYPTORS = pytest.mark.parametrize(
    "encrypt",
    [
        lambda rs: envelope.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), rs),
        lambda rs: envelope.encrypt_bytes(b"x", rs),
    ],
    ids=["encrypt_stream", "encrypt_bytes"],
)


def refusal(encrypt, recipients: list[str]) -> str:
    with pytest.raises(EnvelopeError) as info:
        encrypt(recipients)
    return str(info.value)


@ENCRYPTORS
def test_each_kind_of_bad_recipient_list_is_refused_with_its_own_message(encrypt, keys):
    good = public(keys[0])
    messages = {
        "empty": refusal(encrypt, []),
        "duplicate": refusal(encrypt, [good, public(keys[1]), good]),
        "garbage": refusal(encrypt, ["hello world"]),
        "broken-age1": refusal(encrypt, [good[:-3] + "qqq"]),
        "post-quantum": refusal(encrypt, ["age1pq1" + "q" * 60]),
        "ssh": refusal(encrypt, ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq user@host"]),
        "secret-key-by-mistake": refusal(encrypt, [str(keys[0])]),
        "too-many": refusal(
            encrypt, [public(x25519.Identity.generate()) for _ in range(MAX_RECIPIENTS + 1)]
        ),
    }
    assert "no active recipient" in messages["empty"]
    assert "listed twice" in messages["duplicate"]
    assert "not an age X25519 public key" in messages["garbage"]
    assert "not a valid age public key" in messages["broken-age1"]
    assert "not an age X25519 public key" in messages["post-quantum"]
    assert "not an age X25519 public key" in messages["ssh"]
    assert "not an age X25519 public key" in messages["secret-key-by-mistake"]
    assert str(keys[0])[12:] not in messages["secret-key-by-mistake"]  # never echo a secret
    assert f"At most {MAX_RECIPIENTS} recipients" in messages["too-many"]
    distinct = ["empty", "duplicate", "garbage", "broken-age1", "too-many"]
    assert len({messages[kind] for kind in distinct}) == len(distinct)


@ENCRYPTORS
def test_the_same_recipient_with_surrounding_whitespace_is_still_a_duplicate(encrypt, keys):
    good = public(keys[0])
    with pytest.raises(EnvelopeError, match="listed twice"):
        encrypt([good, f"  {good}\n"])


def test_exactly_the_maximum_number_of_recipients_is_accepted():
    identities = [x25519.Identity.generate() for _ in range(MAX_RECIPIENTS)]
    data = envelope.encrypt_bytes(b"report", [public(k) for k in identities])
    assert envelope.decrypt_bytes(data, [identities[-1]]) == b"report"
    assert [s.type for s in parse_header(data).stanzas].count("X25519") == MAX_RECIPIENTS


def test_a_recipient_with_surrounding_whitespace_is_accepted(keys):
    data = envelope.encrypt_bytes(b"report", [f" {public(keys[2])}\n"])
    assert envelope.decrypt_bytes(data, [keys[2]]) == b"report"


def test_an_unreadable_source_is_an_envelope_error(keys):
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise OSError("device gone")

    with pytest.raises(EnvelopeError, match="Encryption failed"):
        envelope.encrypt_stream(Broken(), io.BytesIO(), [public(keys[0])])


def _decrypt_error(data: bytes, identity: x25519.Identity) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as caught:
        envelope.decrypt_stream(io.BytesIO(data), io.BytesIO(), [identity])
    return caught.value


def test_decryption_errors_say_whether_a_given_identity_opened_the_file(keys):
    """The reviewer's import sorts blobs by this: not for us, versus made for us and damaged."""
    made_for_us = envelope.encrypt_bytes(b"x" * 200_000, [public(keys[0])])
    for_others = envelope.encrypt_bytes(b"report", [public(keys[1])])
    assert type(_decrypt_error(for_others, keys[0])) is envelope.NoMatchingIdentity
    not_age = b"PLAINTEXT: a report, not ciphertext\n" * 10
    assert type(_decrypt_error(not_age, keys[0])) is envelope.UnreadableHeader
    mac = bytearray(made_for_us)
    at = mac.index(b"\n--- ") + 6
    mac[at] = ord("A") if mac[at] != ord("A") else ord("B")
    assert type(_decrypt_error(bytes(mac), keys[0])) is EnvelopeError
    cut = made_for_us[:-1000]
    assert type(_decrypt_error(cut, keys[0])) is EnvelopeError
