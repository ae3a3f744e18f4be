"""Durable, atomic file writes.

`atomic_write` puts bytes in place so that a reader (or a crash) sees either
the old file or the whole new one, never a part: a temporary file in the same
directory, fsync, rename, fsync of the directory. The temporary name carries no
time and no content.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a file object; on a clean exit its bytes replace `path` atomically.

    On any exception the temporary file is removed and `path` is untouched.
    With ``overwrite=False`` an existing `path` is never replaced, even if it
    appears while writing (the final step is a hard link, which refuses to
    clobber).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    tmp = directory / f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write `data` to `path` atomically and durably (see `atomic_writer`)."""
    with atomic_writer(path, mode=mode, overwrite=overwrite) as fh:
        fh.write(data)


def copy_stream(src: BinaryIO, write: Callable[[bytes], object], chunk: int = 1 << 16) -> int:
    """Copy `src` to `write` in bounded chunks; return the number of bytes."""
    total = 0
    while block := src.read(chunk):
        write(block)
        total += len(block)
    return total
