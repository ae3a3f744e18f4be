"""The encrypted upload spool: the bytes on disk are never the plaintext."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.crypto.spool import CHUNK, EncryptedSpool, SpoolError

MARKER = b"CANARY-7f3a9c-spool-marker"


def disk_bytes(spool: EncryptedSpool) -> bytes:
    fd = spool._file.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0)


def test_the_bytes_on_disk_are_not_the_plaintext(tmp_path):
    spool = EncryptedSpool(tmp_path)
    plaintext = MARKER * 10_000
    spool.write(plaintext)
    spool.seal()
    on_disk = disk_bytes(spool)
    assert MARKER not in on_disk
    assert len(on_disk) >= len(plaintext)
    assert spool.open_plaintext().read() == plaintext
    spool.close()


def test_the_spool_has_no_name_in_its_directory(tmp_path):
    spool = EncryptedSpool(tmp_path)
    spool.write(MARKER)
    assert list(tmp_path.iterdir()) == []
    spool.close()
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3 * CHUNK // 2), max_size=6))
def test_any_sequence_of_writes_reads_back_exactly(tmp_path_factory, pieces):
    spool = EncryptedSpool(tmp_path_factory.mktemp("spool"))
    for piece in pieces:
        spool.write(piece)
    spool.seek(0)
    plaintext = b"".join(pieces)
    assert spool.read() == plaintext
    assert spool.size == len(plaintext)
    assert spool.sha256 == hashlib.sha256(plaintext).hexdigest()
    assert spool.open_plaintext().read() == plaintext  # readers are independent
    spool.close()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_chunk_boundaries_round_trip(tmp_path, size):
    spool = EncryptedSpool(tmp_path)
    data = os.urandom(size)
    spool.write(data)
    assert spool.open_plaintext().read() == data
    spool.close()


@pytest.mark.parametrize("where", ["header", "first chunk", "last byte"])
def test_an_altered_spool_refuses_to_read(tmp_path, where):
    spool = EncryptedSpool(tmp_path)
    spool.write(os.urandom(2 * CHUNK + 100))
    spool.seal()
    fd = spool._file.fileno()
    size = os.fstat(fd).st_size
    offset = {"header": 3, "first chunk": 100, "last byte": size - 1}[where]
    byte = os.pread(fd, 1, offset)
    os.pwrite(fd, bytes([byte[0] ^ 1]), offset)
    with pytest.raises(SpoolError):
        spool.open_plaintext().read()
    spool.close()


@pytest.mark.parametrize(("cut", "message"), [(17, "truncated"), (CHUNK + 17, "altered")])
def test_a_truncated_spool_refuses_to_read(tmp_path, cut, message):
    """Cutting off the final chunk exactly at a chunk boundary is caught too."""
    spool = EncryptedSpool(tmp_path)
    spool.write(os.urandom(3 * CHUNK))
    spool.seal()
    os.ftruncate(spool._file.fileno(), os.fstat(spool._file.fileno()).st_size - cut)
    with pytest.raises(SpoolError, match=message):
        spool.open_plaintext().read()
    spool.close()


def test_two_spools_use_different_keys(tmp_path):
    a, b = EncryptedSpool(tmp_path), EncryptedSpool(tmp_path)
    for spool in (a, b):
        spool.write(b"\0" * 1000)
        spool.seal()
    assert disk_bytes(a) != disk_bytes(b)
    a.close()
    b.close()


def test_writing_after_sealing_is_refused(tmp_path):
    spool = EncryptedSpool(tmp_path)
    spool.write(b"x")
    spool.seek(0)
    with pytest.raises(SpoolError):
        spool.write(b"more")
    spool.close()
