"""The encrypted upload spool: where a no-JavaScript upload waits, as ciphertext.

When JavaScript is off, the browser sends the report's files in plaintext over
the (Tor or TLS) connection. Werkzeug would spool large uploads to a temporary
file; `EncryptedSpool` takes that place. Every byte is encrypted with
libsodium's ``crypto_secretstream_xchacha20poly1305`` (authenticated,
streaming, through PyNaCl) under a random key that exists only in this
process's memory, before it reaches the disk.

The file is anonymous (``O_TMPFILE``: it never has a name, so a crash or a
``kill -9`` leaves nothing to find) where the file system allows it, and is
unlinked at once otherwise. Closing the spool frees it.

Writing, then ``seek(0)``, seals the stream (the last chunk carries the FINAL
tag) and turns the spool into a reader of its plaintext, decrypted on the fly:
a truncated, reordered or altered spool fails to read, never yields wrong
bytes. Size and SHA-256 of the plaintext are counted while writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from intake.errors import IntakeError

#: Plaintext per sealed chunk. Bigger chunks mean fewer calls into libsodium and fewer
#: copies (bench/large_upload.py); each spool holds at most one chunk in memory while
#: it is written, so hundreds of slow uploads at once hold a few dozen MiB.
CHUNK = 256 * 1024
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_HEADER = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class SpoolError(IntakeError):
    """The spool cannot be written or read back intact."""


def _anonymous_file(directory: Path) -> int:
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    if hasattr(os, "O_TMPFILE"):
        with contextlib.suppress(OSError):
            return os.open(directory, flags | os.O_TMPFILE, 0o600)
    path = directory / f".spool-{secrets.token_hex(8)}"
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.unlink(path)
    return fd


class EncryptedSpool(io.RawIOBase):
    """A write-once, read-many temporary file whose disk bytes are ciphertext."""

    def __init__(self, directory: Path):
        super().__init__()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
        self._fd = _anonymous_file(directory)
        self._file = os.fdopen(self._fd, "r+b", buffering=0)
        self._push = sodium.crypto_secretstream_xchacha20poly1305_state()
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._push, self._key)
        self._file.write(header)
        self._buffer = bytearray()
        self._sealed = False
        self._digest = hashlib.sha256()
        self.size = 0
        self._reader: _SpoolReader | None = None

    # -- writing ---------------------------------------------------------
    def writable(self) -> bool:
        return not self._sealed

    def write(self, data: Any) -> int:
        if self._sealed:
            raise SpoolError("The spool is sealed; it can no longer be written.")
        view = memoryview(data).cast("B")
        written = len(view)
        self._digest.update(view)
        self.size += written
        if self._buffer:  # complete the chunk begun by an earlier write first
            take = min(CHUNK - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < CHUNK:
                return written
            self._push_chunk(bytes(self._buffer), _TAG_MESSAGE)
            self._buffer.clear()
        while len(view) >= CHUNK:  # whole chunks from the caller's bytes, one copy each
            self._push_chunk(bytes(view[:CHUNK]), _TAG_MESSAGE)
            view = view[CHUNK:]
        self._buffer += view
        return written

    def _push_chunk(self, chunk: bytes, tag: int) -> None:
        self._file.write(
            sodium.crypto_secretstream_xchacha20poly1305_push(self._push, chunk, None, tag)
        )

    def seal(self) -> None:
        """End the stream: the remaining bytes go out with the FINAL tag."""
        if not self._sealed:
            self._push_chunk(bytes(self._buffer), _TAG_FINAL)
            self._buffer.clear()
            self._sealed = True

    @property
    def sha256(self) -> str:
        if not self._sealed:
            raise SpoolError("The spool's hash is known only once it is sealed.")
        return self._digest.hexdigest()

    # -- reading ---------------------------------------------------------
    def readable(self) -> bool:
        return self._sealed

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("An encrypted spool can only be rewound to its start.")
        self.seal()
        self._reader = _SpoolReader(self._file, self._key)
        return 0

    def tell(self) -> int:
        return self._reader.position if self._reader else self.size

    def readinto(self, buffer: Any) -> int:
        if self._reader is None:
            self.seek(0)
        assert self._reader is not None
        return self._reader.readinto(buffer)

    def open_plaintext(self) -> io.BufferedReader:
        """A fresh reader of the plaintext from the start (independent position)."""
        self.seal()
        return io.BufferedReader(_SpoolReader(self._file, self._key), buffer_size=CHUNK)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._file.close()
            self._key = b""
            self._buffer.clear()
        super().close()


class _SpoolReader(io.RawIOBase):
    def __init__(self, file: io.RawIOBase, key: bytes):
        super().__init__()
        self._file = file
        self._offset = _HEADER
        header = os.pread(file.fileno(), _HEADER, 0)
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        self._pending = memoryview(b"")
        self._finished = False
        self.position = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        sealed = os.pread(self._file.fileno(), CHUNK + _ABYTES, self._offset)
        if not sealed:
            raise SpoolError("The spool is truncated; the upload cannot be trusted.")
        self._offset += len(sealed)
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, sealed, None
            )
        except Exception:
            raise SpoolError(
                "The spool was altered on disk; the upload cannot be trusted."
            ) from None
        if tag == _TAG_FINAL:
            if os.pread(self._file.fileno(), 1, self._offset):
                raise SpoolError("The spool has data after its end; the upload cannot be trusted.")
            self._finished = True
        self._pending = memoryview(plain)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._finished:
                return 0
            self._next_chunk()
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.position += n
        return n
