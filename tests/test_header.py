"""The key-less check of client ciphertext: binary, X25519-only, of the promised shape."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pyrage
import pytest
from conftest import require_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519

from intake.crypto import envelope
from intake.crypto.header import (
    MIN_PAYLOAD,
    VERSION_LINE,
    check_client_header,
    client_header_lengths,
    is_grease,
    parse_header,
)
from intake.errors import EnvelopeError
from intake.limits import MAX_AGE_HEADER, MAX_RECIPIENTS


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def x25519_stanza(seed: int = 0) -> bytes:
    rng = bytes((seed + i) % 256 for i in range(32))
    return b"-> X25519 " + b64(rng) + b"\n" + b64(rng[::-1]) + b"\n"


def synthetic(stanzas: bytes, payload: bytes = bytes(MIN_PAYLOAD)) -> bytes:
    """A well-formed age file shape (the MAC is not checked without keys)."""
    return VERSION_LINE + stanzas + b"--- " + b64(bytes(range(32))) + b"\n" + payload


#: Two X25519 stanzas, a MAC line and a minimal payload: the shape the browser must send.
VALID = synthetic(x25519_stanza(1) + x25519_stanza(2))
VALID_HEADER_LENGTH = len(VALID) - MIN_PAYLOAD


def age_encrypt(tmp: Path, args: list[str], plaintext: bytes = b"a report\n" * 100) -> bytes:
    age = require_tool("age")
    source = tmp / "plain"
    source.write_bytes(plaintext)
    target = tmp / "cipher.age"
    done = subprocess.run([age, *args, "-o", str(target), str(source)], capture_output=True)
    assert done.returncode == 0, done.stderr
    return target.read_bytes()


def recipients(n: int) -> list[str]:
    return [str(x25519.Identity.generate().to_public()) for _ in range(n)]


@pytest.fixture(scope="module")
def go_age_two(tmp_path_factory) -> bytes:
    """Ciphertext the reference Go tool wrote for two recipients."""
    r1, r2 = recipients(2)
    return age_encrypt(tmp_path_factory.mktemp("age"), ["-r", r1, "-r", r2])


def refused(data: bytes, message: str, **kwargs) -> None:
    kwargs.setdefault("expected_recipients", 2)
    with pytest.raises(EnvelopeError, match=message):
        check_client_header(data, **kwargs)


# --------------------------------------------------------------------------- the real age tool


def test_age_output_for_two_recipients_passes_when_two_are_expected(go_age_two):
    header = check_client_header(go_age_two, expected_recipients=2, total_size=len(go_age_two))
    assert [s.type for s in header.stanzas] == ["X25519", "X25519"]
    assert go_age_two[: header.length].endswith(b"\n")
    mac_line = go_age_two[: header.length].rsplit(b"\n", 2)[-2]
    assert mac_line.startswith(b"--- ")
    assert len(go_age_two) - header.length >= MIN_PAYLOAD


@pytest.mark.parametrize("expected", [1, 3])
def test_age_output_for_two_recipients_fails_when_another_count_is_expected(go_age_two, expected):
    refused(
        go_age_two,
        f"encrypted to 2 recipients but the keyring has {expected} active",
        expected_recipients=expected,
    )


def test_age_output_for_the_maximum_recipient_count_fits_within_the_header_bound(tmp_path):
    args = [arg for r in recipients(MAX_RECIPIENTS) for arg in ("-r", r)]
    data = age_encrypt(tmp_path, args)
    header = check_client_header(data, expected_recipients=MAX_RECIPIENTS, total_size=len(data))
    assert header.length <= MAX_AGE_HEADER


def test_armored_age_output_is_refused_as_armored(tmp_path):
    data = age_encrypt(tmp_path, ["-a", "-r", recipients(1)[0]])
    refused(data, "ASCII-armored", expected_recipients=1)


# --------------------------------------------------------------------------- other producers


def test_pyrage_output_passes_grease_and_all_so_both_paths_have_one_shape():
    # The server's path writes with rage, which adds a grease stanza; the browser adds one
    # drawn the same way, so that a blob's length does not tell which path a report took.
    for _ in range(200):
        data = envelope.encrypt_bytes(b"x", recipients(2))
        header = parse_header(data)
        assert len(header.stanzas) == 3 and is_grease(header.stanzas[-1])
        assert check_client_header(data, expected_recipients=2).length == header.length
        assert header.length in client_header_lengths(2)


def grease(type_: bytes = b"a-grease", args: bytes = b"", body: bytes = b"") -> bytes:
    """A grease stanza's lines: its first line, then its body wrapped at 64 columns."""
    encoded = b64(body)
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")  # the last body line is short, empty if need be
    return b"-> " + type_ + (b" " + args if args else b"") + b"\n" + b"\n".join(lines) + b"\n"


RECIPIENTS = x25519_stanza(1) + x25519_stanza(2)


@pytest.mark.parametrize(
    "stanza",
    [grease(), grease(b"12345678-grease", b"a bb ccc dddddddd", bytes(99)),
     grease(b"~!-grease", body=b"xyz"), grease(body=bytes(48))],
    ids=["empty-body", "longest", "punctuation", "one-full-line"],
)
def test_one_grease_stanza_of_rage_s_shape_after_the_recipients_is_accepted(stanza):
    data = synthetic(RECIPIENTS + stanza)
    header = check_client_header(data, expected_recipients=2)
    assert is_grease(header.stanzas[-1])
    assert header.length in client_header_lengths(2)


@pytest.mark.parametrize(
    "stanzas",
    [
        RECIPIENTS + grease() + grease(b"b-grease"),
        grease() + RECIPIENTS,
        x25519_stanza(1) + grease() + x25519_stanza(2),
        RECIPIENTS + grease(b"123456789-grease"),
        RECIPIENTS + grease(b"-grease"),
        RECIPIENTS + grease(b"grease"),
        RECIPIENTS + grease(args=b"1 2 3 4 5"),
        RECIPIENTS + grease(args=b"123456789"),
        RECIPIENTS + grease(body=bytes(100)),
        RECIPIENTS + grease(b"a-greasy"),
        x25519_stanza(1) + grease(),
    ],
    ids=["two", "first", "between", "long-type", "empty-type", "bare", "five-args",
         "long-arg", "body-100", "greasy", "in-place-of-a-recipient"],
)
def test_anything_but_one_rage_grease_after_the_recipients_is_refused(stanzas):
    with pytest.raises(EnvelopeError):
        check_client_header(synthetic(stanzas), expected_recipients=2)


def test_a_passphrase_file_is_refused():
    data = pyrage.passphrase.encrypt(b"a report", "correct horse")
    refused(data, "'scrypt' stanza; only X25519 recipients are accepted", expected_recipients=1)


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04" + bytes(100), b"age-encryption.org/v2\n", b"AGE-ENCRYPTION.ORG/V1\n",
     b"\xef\xbb\xbf" + VALID, b" " + VALID],
    ids=["empty", "zip", "v2", "uppercase", "bom", "leading-space"],
)
def test_a_file_that_is_not_age_v1_is_refused(data):
    refused(data, "not an age v1 file")


def test_a_header_truncated_at_any_byte_is_refused_with_an_envelope_error(go_age_two):
    length = parse_header(go_age_two).length
    for cut in range(length):
        with pytest.raises(EnvelopeError):
            check_client_header(go_age_two[:cut], expected_recipients=2)
        with pytest.raises(EnvelopeError):
            parse_header(go_age_two[:cut])


def test_the_synthetic_header_passes_so_the_mutations_below_mean_something():
    header = check_client_header(VALID, expected_recipients=2, total_size=len(VALID))
    assert header.length == VALID_HEADER_LENGTH


def test_a_header_longer_than_the_bound_is_refused():
    count = MAX_AGE_HEADER // 90 + 10
    data = synthetic(b"".join(x25519_stanza(i) for i in range(count)))
    assert len(data) > MAX_AGE_HEADER + MIN_PAYLOAD
    refused(data, f"longer than {MAX_AGE_HEADER} bytes", expected_recipients=count)


def test_a_single_line_longer_than_the_bound_is_refused():
    data = VERSION_LINE + b"-> X25519 " + b"A" * (MAX_AGE_HEADER + 10)
    refused(data, f"longer than {MAX_AGE_HEADER} bytes")


def last_char_bumped(text: bytes) -> bytes:
    """The same base64 with non-zero unused low bits: decodes to the same bytes, non-canonical."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    index = alphabet.index(text[-1:])
    assert index & 3 == 0  # a 43-char encoding of 32 bytes leaves two unused bits
    return text[:-1] + alphabet[index | 1 : (index | 1) + 1]


def test_non_canonical_base64_in_a_stanza_body_is_refused():
    share, body = b64(bytes(32)), b64(bytes(range(32)))
    bumped = last_char_bumped(body)
    assert base64.b64decode(bumped + b"=") == base64.b64decode(body + b"=")
    data = synthetic(b"-> X25519 " + share + b"\n" + bumped + b"\n")
    refused(data, "stanza body in non-canonical base64", expected_recipients=1)


def test_non_canonical_base64_in_an_x25519_share_is_refused():
    share, body = b64(bytes(32)), b64(bytes(range(32)))
    data = synthetic(b"-> X25519 " + last_char_bumped(share) + b"\n" + body + b"\n")
    refused(data, "X25519 share in non-canonical base64", expected_recipients=1)


def test_non_canonical_base64_in_the_mac_is_refused():
    mac = b64(bytes(range(32)))
    data = VERSION_LINE + x25519_stanza() + b"--- " + last_char_bumped(mac) + b"\n" + bytes(32)
    refused(data, "MAC in non-canonical base64", expected_recipients=1)


def test_a_padded_stanza_body_is_refused():
    data = synthetic(b"-> X25519 " + b64(bytes(32)) + b"\n" + b64(bytes(range(32))) + b"=\n")
    refused(data, "not unpadded base64", expected_recipients=1)


def test_a_stanza_body_line_over_64_columns_is_refused():
    body = b64(bytes(49))  # 66 columns on one line
    assert len(body) > 64
    data = synthetic(b"-> X25519 " + b64(bytes(32)) + b"\n" + body + b"\n")
    refused(data, "longer than 64 columns", expected_recipients=1)


def test_a_full_64_column_body_line_needs_a_final_short_line():
    body = b64(bytes(48))
    assert len(body) == 64
    ended = synthetic(b"-> other " + b"arg\n" + body + b"\n\n")
    assert parse_header(ended).stanzas[0].body == bytes(48)
    unended = synthetic(b"-> other " + b"arg\n" + body + b"\n")
    with pytest.raises(EnvelopeError):
        parse_header(unended)


@pytest.mark.parametrize(
    ("stanza", "message"),
    [
        (b"-> X25519 " + b64(bytes(32)) + b" extra\n" + b64(bytes(32)) + b"\n",
         "exactly one argument"),
        (b"-> X25519 " + b64(bytes(31)) + b"\n" + b64(bytes(32)) + b"\n", "share is not 32 bytes"),
        (b"-> X25519 " + b64(bytes(32)) + b"\n" + b64(bytes(33)) + b"\n",
         "wrapped key is not 32 bytes"),
        (b"-> X25519  " + b64(bytes(32)) + b"\n" + b64(bytes(32)) + b"\n",
         "empty or non-printable"),
        (b"-> \n" + b64(bytes(32)) + b"\n", "empty or non-printable"),
        (b"-> X25519 \x7f\n" + b64(bytes(32)) + b"\n", "empty or non-printable"),
        (b"=> X25519 x\n", "neither a stanza nor the MAC"),
        (b"", "no recipient stanza"),
    ],
    ids=["two-args", "short-share", "long-body", "double-space", "no-type", "del-char",
         "bad-arrow", "no-stanza"],
)
def test_a_malformed_stanza_is_refused(stanza, message):
    refused(synthetic(stanza), message, expected_recipients=1)


@pytest.mark.parametrize("mac", [b"---", b"--- " + b64(bytes(31)), b"---" + b64(bytes(32)),
                                 b"--- " + b64(bytes(32)) + b" x"])
def test_a_malformed_mac_line_is_refused(mac):
    data = VERSION_LINE + x25519_stanza() + mac + b"\n" + bytes(32)
    refused(data, "MAC line is malformed", expected_recipients=1)


def test_a_header_with_no_payload_after_it_is_refused():
    refused(VALID, "ends right after its header", total_size=VALID_HEADER_LENGTH)
    refused(VALID, "ends right after its header", total_size=VALID_HEADER_LENGTH + MIN_PAYLOAD - 1)


def test_a_header_with_one_minimal_chunk_after_it_passes():
    header = check_client_header(
        VALID, expected_recipients=2, total_size=VALID_HEADER_LENGTH + MIN_PAYLOAD
    )
    assert header.length == VALID_HEADER_LENGTH


def test_age_output_without_its_payload_is_refused(go_age_two):
    length = parse_header(go_age_two).length
    refused(go_age_two[:length], "ends right after its header", total_size=length)


# --------------------------------------------------------------------------- fuzzing


def only_envelope_errors(data: bytes) -> None:
    for expected in (1, 2):
        try:
            check_client_header(data, expected_recipients=expected, total_size=len(data))
        except EnvelopeError as exc:
            assert str(exc)
    try:
        parse_header(data)
    except EnvelopeError as exc:
        assert str(exc)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_nothing_but_envelope_error(data):
    only_envelope_errors(data)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_the_version_line_raise_nothing_but_envelope_error(data):
    only_envelope_errors(VERSION_LINE + data)


@FUZZ
@given(
    st.sampled_from(["flip", "insert", "delete"]),
    st.integers(0, VALID_HEADER_LENGTH),
    st.integers(0, 255),
)
def test_one_byte_mutations_of_a_valid_header_raise_nothing_but_envelope_error(op, index, value):
    data = bytearray(VALID)
    if op == "flip":
        data[min(index, len(data) - 1)] ^= value or 1
    elif op == "insert":
        data.insert(index, value)
    else:
        del data[min(index, len(data) - 1)]
    only_envelope_errors(bytes(data))


def test_random_bytes_inside_a_valid_frame_raise_nothing_but_envelope_error():
    for _ in range(300):
        noise = os.urandom(80)
        only_envelope_errors(VERSION_LINE + b"-> X25519 " + noise + b"\n--- " + noise[:43] + b"\n")


# --------------------------------------------------------------------------- low-order shares

#: Curve25519's small-order u-coordinates as libsodium's blocklist spells them (bit 255
#: clear): 0, 1, the two points of order 8, p - 1, and the non-canonical p and p + 1.
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]
#: X25519 ignores bit 255, so each has a second encoding with it set.
SMALL_ORDER_ENCODINGS = SMALL_ORDER + [p[:31] + bytes([p[31] | 0x80]) for p in SMALL_ORDER]


def test_the_small_order_list_is_what_it_claims():
    p = 2**255 - 19
    values = {int.from_bytes(e, "little") & (2**255 - 1) for e in SMALL_ORDER_ENCODINGS}
    assert len(SMALL_ORDER_ENCODINGS) == 14 and {v % p for v in values} >= {0, 1, p - 1}


@pytest.mark.parametrize("share", SMALL_ORDER_ENCODINGS, ids=lambda s: s.hex()[:8] + s.hex()[-2:])
def test_a_low_order_share_is_refused(share):
    from intake.crypto.header import is_low_order

    assert is_low_order(share)
    stanza = b"-> X25519 " + b64(share) + b"\n" + b64(bytes(range(32))) + b"\n"
    refused(synthetic(x25519_stanza(1) + stanza), "low-order point")


def test_real_shares_are_not_low_order(go_age_two):
    from intake.crypto.header import is_low_order

    shares = [base64.b64decode(s.args[0] + "=") for s in parse_header(go_age_two).stanzas]
    shares += [os.urandom(32) for _ in range(200)]
    assert not any(is_low_order(share) for share in shares)


# --------------------------------------------------------------------------- the payload


def test_the_framing_arithmetic_matches_the_age_tool(tmp_path):
    from intake.crypto import payload

    recipient = recipients(1)[0]
    for size in (0, 1, 2048, 65535, 65536, 65537, 131072, 131073, 3 * 65536 + 5):
        data = age_encrypt(tmp_path, ["-r", recipient], os.urandom(size))
        after_header = len(data) - parse_header(data).length
        assert payload.sealed_length(size) == after_header, size
        assert payload.plaintext_length(after_header) == size


def test_exactly_the_lengths_age_gives_are_accepted_as_payloads():
    from intake.crypto import payload

    bound = 3 * payload.SEALED_CHUNK + 200
    given_lengths = {payload.sealed_length(n): n for n in range(4 * payload.CHUNK)}
    for length in range(bound):
        if length in given_lengths:
            assert payload.plaintext_length(length) == given_lengths[length]
        else:
            with pytest.raises(EnvelopeError):
                payload.plaintext_length(length)


def test_a_final_chunk_of_sixteen_bytes_is_only_the_empty_plaintext():
    from intake.crypto import payload

    assert payload.plaintext_length(16 + 16) == 0
    for full in (1, 2, 5):
        with pytest.raises(EnvelopeError, match="empty last chunk"):
            payload.plaintext_length(16 + full * payload.SEALED_CHUNK + 16)
        assert payload.plaintext_length(16 + full * payload.SEALED_CHUNK + 17) == (
            full * payload.CHUNK + 1)


def test_padme_is_idempotent_and_keeps_whole_blocks():
    from intake.crypto.container import padme

    for n in range(1 << 17):
        assert padme(padme(n)) == padme(n)
    for n in range(2048, 1 << 22, 512):
        assert padme(n) % 512 == 0


@settings(max_examples=2000, deadline=None)
@given(st.integers(2048, 4 * 1024**3))
def test_padme_is_idempotent_up_to_the_largest_container(n):
    from intake.crypto.container import padme

    assert padme(padme(n)) == padme(n) >= n


def test_every_container_the_server_writes_has_a_length_the_check_accepts(tmp_path):
    import hashlib
    import io

    from intake.crypto import payload
    from intake.crypto.container import Attachment, ContainerReader

    for sizes in ([], [1], [511, 512, 513], [65536 * 3 + 7], [300_000, 1, 2]):
        files = [os.urandom(n) for n in sizes]
        attachments = [Attachment(f"f{i}.bin", "application/octet-stream", len(data),
                                  hashlib.sha256(data).hexdigest(),
                                  lambda data=data: io.BytesIO(data))
                       for i, data in enumerate(files)]
        container = ContainerReader("ar", {"narrative": "نص"}, attachments).read()
        assert payload.container_length_problem(len(container)) is None, sizes
        for data in (envelope.encrypt_bytes(container, recipients(2)),
                     age_encrypt(tmp_path, ["-r", recipients(1)[0]], container)):
            length = parse_header(data).length
            assert payload.check_payload(data[length:], len(data) - length) == len(container)


@pytest.mark.parametrize("recipient_count", [1, 2, 5])
def test_the_declared_size_of_real_ciphertext_is_accepted_and_its_neighbours_are_not(
    tmp_path, recipient_count
):
    from intake.crypto.header import declared_size_problem, x25519_header_length

    args = [a for r in recipients(recipient_count) for a in ("-r", r)]
    data = age_encrypt(tmp_path, args, os.urandom(4096))
    assert parse_header(data).length == x25519_header_length(recipient_count)
    assert declared_size_problem(len(data), expected_recipients=recipient_count) is None
    for wrong in (len(data) - 1, len(data) + 1, len(data) + 12, len(data) - 4096, 2, 0):
        assert declared_size_problem(wrong, expected_recipients=recipient_count)
    assert declared_size_problem(len(data), expected_recipients=recipient_count + 1)
    # A grease stanza (13 to 190 bytes, as rage writes it) may lengthen the header.
    for greased in (len(data) + 13, len(data) + 190):
        assert declared_size_problem(greased, expected_recipients=recipient_count) is None
    assert declared_size_problem(len(data) + 191, expected_recipients=recipient_count)


def test_a_payload_that_compresses_is_refused_and_random_bytes_are_not():
    from intake.crypto import payload

    length = payload.sealed_length(2048)
    readable = (b"PLAINTEXT: they quoted my messages back to me. " * 60)[:length]
    for sample in (readable, bytes(length), b"\xff" * length):
        with pytest.raises(EnvelopeError, match="not encrypted"):
            payload.check_payload(sample, length)
    assert payload.check_payload(os.urandom(length), length) == 2048


def test_client_ciphertext_from_the_age_tool_passes_every_check(tmp_path):
    from intake.crypto.header import check_client_ciphertext

    data = age_encrypt(tmp_path, ["-r", recipients(1)[0]], os.urandom(8192))
    header = check_client_ciphertext(data, expected_recipients=1, total_size=len(data))
    assert header.length == len(data) - (16 + 8192 + 16)
    with pytest.raises(EnvelopeError, match="shorter than its size"):
        check_client_ciphertext(data[:-1000], expected_recipients=1, total_size=len(data))
