"""The blob store: one age file per submission, written atomically and durably.

``<root>/<id>.age``, where the id is exactly 32 lower-case hex digits (no
path can be smuggled in). `BlobStore.writer` yields a file in the same
directory under a random temporary name; only a clean exit makes it the blob:
flush, fsync, link into place (never replacing an existing blob), fsync of the
directory. Its times are set to midnight UTC of the day it arrived, so that
file metadata leaks no time of day. On any error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import BinaryIO

from intake.fsutil import fsync_dir

_ID = re.compile(r"^[0-9a-f]{32}$")
_TEMP_PREFIX = ".tmp-"


def check_id(submission_id: str) -> str:
    if not isinstance(submission_id, str) or not _ID.match(submission_id):
        raise ValueError("a submission id is 32 lower-case hex digits")
    return submission_id


def day_timestamp(day: date) -> float:
    return datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp()


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, submission_id: str) -> Path:
        return self.root / f"{check_id(submission_id)}.age"

    @contextlib.contextmanager
    def writer(self, submission_id: str, day: date) -> Iterator[BinaryIO]:
        target = self.path(submission_id)
        temp = self.root / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            stamp = day_timestamp(day)
            os.utime(temp, (stamp, stamp))
            os.link(temp, target)  # refuses to replace an existing blob
            os.unlink(temp)
            fsync_dir(self.root)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def adopt(self, source: Path, submission_id: str, day: date) -> None:
        """Link the finished file `source` (same file system) as the blob of `submission_id`.

        The caller unlinks `source` once the row is committed.
        """
        target = self.path(submission_id)
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        stamp = day_timestamp(day)
        os.utime(source, (stamp, stamp))
        os.chmod(source, 0o600)
        os.link(source, target)  # refuses to replace an existing blob
        fsync_dir(self.root)

    def exists(self, submission_id: str) -> bool:
        return self.path(submission_id).is_file()

    def open(self, submission_id: str) -> BinaryIO:
        return self.path(submission_id).open("rb")

    def size(self, submission_id: str) -> int:
        return self.path(submission_id).stat().st_size

    def sha256(self, submission_id: str) -> str:
        digest = hashlib.sha256()
        with self.open(submission_id) as fh:
            while block := fh.read(1 << 16):
                digest.update(block)
        return digest.hexdigest()

    def delete(self, submission_id: str) -> None:
        self.path(submission_id).unlink(missing_ok=True)
        fsync_dir(self.root)

    def ids(self) -> set[str]:
        return {p.name[:-4] for p in self.root.glob("*.age") if _ID.match(p.name[:-4])}

    def temp_files(self) -> list[Path]:
        return sorted(self.root.glob(f"{_TEMP_PREFIX}*"))

    def remove_temp_files(self) -> None:
        for path in self.temp_files():
            path.unlink(missing_ok=True)
        fsync_dir(self.root)
