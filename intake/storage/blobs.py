"""The blob store: one age file per submission, behind one interface, on disk or in PostgreSQL.

`BlobStore` is the interface, and all that the web layer, export and purge
use: write a blob whole or not at all (`writer`), read it as a stream
(`open`), its size and SHA-256, whether it exists, delete it, list the ids,
find what a crash left (`temp_files`), and, after deletions, make the deleted
bytes leave the store's files (`reclaim`). A submission id is exactly 32
lower-case hex digits (anything else is a ValueError), so no path or key can
be smuggled in. Methods that find a blob take the day it arrived when the
caller knows it: the PostgreSQL store then looks on that day's shelf only.
`open_blob_store` picks the backend that INTAKE_BLOB_STORE names.

`FilesystemBlobStore` (INTAKE_BLOB_STORE=filesystem, the default) keeps a
blob as ``<root>/<id>.age``; the directory is mode 0700 and every blob 0600.
`intake.storage.pgblobs.PostgresBlobStore` keeps it as chunk rows in the
database, so that app servers hold nothing.

**The filesystem store.** `writer` yields a file under a random temporary
name (``.tmp-<hex>``) in the same directory. Only a clean exit makes it the
blob: flush, fsync, its times set to midnight UTC of the day it arrived, a
hard link to ``<id>.age`` (which never replaces an existing blob), unlink of
the temporary name, fsync of the directory. On any exception nothing of it
remains. The times are set before the blob gets its name, so no blob ever
shows the time of day it came.

While it is being written a temporary file is locked (flock); `temp_files`
and `remove_temp_files` see only the unlocked ones, i.e. what a crashed
process left, so one worker's clean-up never pulls a file from under another.

What a process cannot hide: the inode change time (ctime) and, on some file
systems, the birth time record when a blob was written, and inode numbers
follow the order of arrival. Only the disk's encryption and prompt export and
purge limit what a seized disk shows of these. A deleted blob's blocks are
the file system's to reuse: `reclaim` has nothing to do here.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from intake.fsutil import fsync_dir

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from intake.config import Settings

_ID = re.compile(r"[0-9a-f]{32}")
_BLOB_NAME = re.compile(r"([0-9a-f]{32})\.age")
SUFFIX = ".age"
TEMP_PREFIX = ".tmp-"

# Reading a blob must not stamp the moment of an export on it (relatime would).
_O_NOATIME = getattr(os, "O_NOATIME", 0)


def check_id(submission_id: str) -> str:
    """`submission_id` if it is 32 lower-case hex digits; ValueError otherwise."""
    if not isinstance(submission_id, str) or not _ID.fullmatch(submission_id):
        raise ValueError("a submission id is 32 lower-case hex digits")
    return submission_id


def day_timestamp(day: date) -> float:
    """Midnight UTC at the start of `day`, as a POSIX timestamp (a datetime's time is dropped)."""
    if not isinstance(day, date):
        raise TypeError("day must be a datetime.date")
    return datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp()


def _exists_error() -> FileExistsError:
    # No path in the message: it may end up in a log.
    return FileExistsError(errno.EEXIST, "a blob with this id already exists")


def _open_read(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _O_NOATIME)
    except PermissionError:
        if not _O_NOATIME:
            raise
        # O_NOATIME is refused on a file this process does not own.
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


#: Called with (bytes done, bytes in all) as long work goes on.
Progress = Callable[[int, int], None]

#: The blob stores INTAKE_BLOB_STORE may name.
BLOB_STORES = ("filesystem", "postgresql")


@dataclass
class Reclaimed:
    """What `BlobStore.reclaim` did: which shelves it emptied or rewrote, and which were busy."""

    emptied: list[int] = field(default_factory=list)
    rewritten: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    #: Live bytes the rewrites copied.
    copied: int = 0


class BlobStore(abc.ABC):
    """The one interface to blobs (see the module docstring); ids are checked by every method."""

    #: The INTAKE_BLOB_STORE value that chooses this store.
    kind: ClassVar[str]

    @abc.abstractmethod
    def writer(self, submission_id: str, day: date) -> AbstractContextManager[BinaryIO]:
        """Yield a binary file; a clean exit makes its bytes the blob of `submission_id`.

        Durable and complete before the block ends, or absent: an exception
        (or a crash) leaves nothing that `ids` or `exists` would see. Raises
        FileExistsError (before or after writing) if that blob exists.
        """

    @abc.abstractmethod
    def open(self, submission_id: str, day: date | None = None) -> BinaryIO:
        """The blob, open for binary reading in bounded pieces (FileNotFoundError if none)."""

    @abc.abstractmethod
    def size(self, submission_id: str, day: date | None = None) -> int:
        """The blob's size in bytes (FileNotFoundError if there is none)."""

    @abc.abstractmethod
    def exists(self, submission_id: str, day: date | None = None) -> bool:
        """Whether the blob is there, whole."""

    @abc.abstractmethod
    def delete(self, submission_id: str, day: date | None = None) -> None:
        """Remove the blob, durably; no error if it is already gone. See `reclaim`."""

    @abc.abstractmethod
    def ids(self) -> set[str]:
        """The ids of every blob in the store."""

    def sha256(self, submission_id: str, day: date | None = None) -> str:
        """The blob's SHA-256, hex, read in bounded pieces."""
        digest = hashlib.sha256()
        with self.open(submission_id, day) as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def temp_files(self) -> list[Path]:
        """Unfinished writes an interrupted process left behind (none where a crash leaves none)."""
        return []

    def remove_temp_files(self) -> int:
        """Remove `temp_files` (never one being written); return how many went."""
        return 0

    def reclaim(self, *, everything: bool = False, progress: Progress | None = None) -> Reclaimed:
        """After `delete`, make the deleted bytes leave the store's live files, where it can.

        `everything`: go over the whole store, not only what this process deleted.
        """
        return Reclaimed()


def open_blob_store(settings: Settings, engine: Engine | None = None) -> BlobStore:
    """The blob store INTAKE_BLOB_STORE names; the PostgreSQL one runs on `engine`."""
    if settings.blob_store == "postgresql":
        if engine is None:
            raise ValueError("the PostgreSQL blob store needs the database engine")
        from intake.storage.pgblobs import PostgresBlobStore

        return PostgresBlobStore(engine)
    return FilesystemBlobStore(settings.blob_dir)


class FilesystemBlobStore(BlobStore):
    """Ciphertext files named by submission id under `root` (created mode 0700)."""

    kind = "filesystem"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def path(self, submission_id: str) -> Path:
        """Where the blob of `submission_id` lives; ValueError for a malformed id."""
        return self.root / f"{check_id(submission_id)}{SUFFIX}"

    @contextlib.contextmanager
    def writer(self, submission_id: str, day: date) -> Iterator[BinaryIO]:
        """Yield a binary file; a clean exit makes its bytes the blob of `submission_id`.

        Raises FileExistsError (before or after writing) if that blob exists.
        """
        target = self.path(submission_id)
        stamp = day_timestamp(day)
        if os.path.lexists(target):
            raise _exists_error()
        temp, fd = self._new_temp()
        linked = False
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.utime(fh.fileno(), (stamp, stamp))
                os.fsync(fh.fileno())
                try:
                    os.link(temp, target)  # refuses to replace an existing blob
                except FileExistsError:
                    raise _exists_error() from None
                linked = True
                os.unlink(temp)
            fsync_dir(self.root)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            if linked:  # the directory could not be made durable: take the blob back
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
            raise

    def _new_temp(self) -> tuple[Path, int]:
        """A fresh, locked temporary file: its path and an open descriptor."""
        while True:
            temp = self.root / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A clean-up between open and flock may have removed it: then start again.
            try:
                if os.stat(temp, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return temp, fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def adopt(self, source: Path, submission_id: str, day: date) -> None:
        """Link the finished file `source` (same file system) as the blob of `submission_id`.

        `source` keeps its own name too: the caller unlinks it once the row is
        committed. Raises FileExistsError if that blob exists.
        """
        target = self.path(submission_id)
        stamp = day_timestamp(day)
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.utime(fd, (stamp, stamp))
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(source, target)
        except FileExistsError:
            raise _exists_error() from None
        fsync_dir(self.root)

    def linked_to(self, status: os.stat_result) -> str | None:
        """The id of the blob that is a hard link of the file with `status`, if any."""
        if status.st_nlink < 2:
            return None
        with os.scandir(self.root) as entries:
            for entry in entries:
                match = _BLOB_NAME.fullmatch(entry.name)
                if match and entry.is_file(follow_symlinks=False):
                    found = entry.stat(follow_symlinks=False)
                    if (found.st_ino, found.st_dev) == (status.st_ino, status.st_dev):
                        return match.group(1)
        return None

    def exists(self, submission_id: str, day: date | None = None) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self.path(submission_id)).st_mode)
        except FileNotFoundError:
            return False

    def open(self, submission_id: str, day: date | None = None) -> BinaryIO:
        """The blob, open for binary reading (FileNotFoundError if there is none)."""
        return os.fdopen(_open_read(self.path(submission_id)), "rb")

    def size(self, submission_id: str, day: date | None = None) -> int:
        return os.lstat(self.path(submission_id)).st_size

    def day_of(self, submission_id: str) -> date:
        """The day the blob is dated to (its mtime, midnight UTC)."""
        return datetime.fromtimestamp(os.lstat(self.path(submission_id)).st_mtime, UTC).date()

    def delete(self, submission_id: str, day: date | None = None) -> None:
        """Remove the blob, durably; no error if it is already gone."""
        self.path(submission_id).unlink(missing_ok=True)
        fsync_dir(self.root)

    def ids(self) -> set[str]:
        """The ids of every well-formed blob (other names in the directory are ignored)."""
        with os.scandir(self.root) as entries:
            return {
                match.group(1)
                for entry in entries
                if (match := _BLOB_NAME.fullmatch(entry.name))
                and entry.is_file(follow_symlinks=False)
            }

    def temp_files(self) -> list[Path]:
        """Temporary files no writer holds: what an interrupted process left behind."""
        return sorted(path for path in self._temp_candidates() if not self._in_use(path))

    def remove_temp_files(self) -> int:
        """Remove the leftover temporary files (never one being written); return how many."""
        removed = 0
        for path in self._temp_candidates():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:  # holding the lock: no writer can have this file
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        if removed:
            fsync_dir(self.root)
        return removed

    def _temp_candidates(self) -> list[Path]:
        with os.scandir(self.root) as entries:
            return [
                Path(entry.path)
                for entry in entries
                if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False)
            ]

    @staticmethod
    def _in_use(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return True  # gone already: nothing left over
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False
