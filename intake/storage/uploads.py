"""Resumable uploads: ciphertext arriving in chunks, until it is filed or expires.

An upload is a row (`intake.storage.models.Upload`) and its part: the bytes
arrived so far. `UploadStore` is the interface the upload API uses, whatever
keeps the parts; `open_upload_store` picks the backend INTAKE_BLOB_STORE
names. `FilesystemUploadStore` keeps a part as the file ``<root>/<id>.part``;
`PostgresUploadStore` keeps it as chunk rows beside the blobs
(`intake.storage.pgblobs`), so that an upload begun on one app server is
finished on another, and no app server keeps any of it. Chunks may come in
any number of tries: each is written at its offset, which must not leave a
gap after what has arrived. A chunk sent again is harmless: on disk it
rewrites the same bytes, in PostgreSQL only the bytes past what has arrived
are stored (the rest were stored by the chunk that came first).

**Deadline.** An open upload expires when nothing new arrives for
`STALL_MINUTES` (15) minutes: creating it, each chunk that moves it forward and
the start of its finish push its deadline that far ahead. The deadline is
kept as a whole minute (`expires_minute`): the upload lives 15 to 16 minutes
past its last progress, and no finer time is stored. 15 minutes is one 4 MiB
chunk at 4.7 KB/s, with the whole chunk held by a front proxy until its last
byte (the arithmetic is in SECURITY.md, "Upload budget").

**Budget.** `create` admits an upload only while the open uploads together
reserve less than `Budget.bytes` and number fewer than `Budget.uploads`. An
open upload reserves what has arrived plus `Budget.window` bytes ahead (never
more than its declared size), so an upload that is announced and never sent
holds one chunk's worth, not its size, and for 15 minutes, not a day. An
upload once admitted is never refused a chunk for the budget's sake: a source
half-way through is not stopped. Two creates racing may overshoot the budget
by a window each; the budget is a bound on pressure, not an allocation.

**Finishing.** `file` checks the finished upload (a caller's function gets
its first bytes) and files it as a submission dated to the day the upload
began (`started_on`), exactly once. On disk, `claim` gives one finish
request at a time the right to file an upload: an exclusive flock on its part
file (which the kernel releases if the process dies) and the state
"finishing". A finish that was interrupted (the worker killed half-way)
therefore never blocks the upload: the next finish request takes the lock
over and, if the part file was already linked into the blob store, completes
that submission instead of filing a second one. In PostgreSQL the claim is
the upload row's lock (FOR UPDATE NOWAIT, which PostgreSQL releases with a
dead client's connection) and filing is one transaction: the part's rows are
renamed to the submission (no byte copied), the submission's row is added and
the upload's row cut down, all or nothing.

**After.** A filed upload keeps its row, so that a finish retried after its
answer was lost is answered "stored" instead of filing twice. That row keeps
nothing but its id, its state and the day after which it goes (the day after
it was filed: a retry a minute after midnight still finds it); no size, no
keyring version, no hour, no mailbox. `cleanup` deletes expired uploads and stray part
files and runs from the request path, without a cron job; in PostgreSQL it
runs under a transaction-scoped advisory lock, so that one app server at a
time does it, and deletes each expired upload's row and rows of chunks in one
transaction.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from intake.limits import MAX_OPEN_UPLOADS, OPEN_UPLOAD_BYTES, UPLOAD_CHUNK
from intake.storage.blobs import BlobStore, FilesystemBlobStore
from intake.storage.models import BlobChunk, Submission, Upload, shelf_of
from intake.storage.submissions import new_submission_id, record_submission

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from intake.config import Settings

_ID = re.compile(r"[A-Za-z0-9_-]{32}")

#: An open upload with no progress for this long expires (15 to 16 minutes: whole minutes).
STALL_MINUTES = 15
#: A filed upload's row goes once this many days have passed after the day it was filed.
FINISHED_KEEP_DAYS = 1
_OPEN_STATES = ("open", "finishing")

#: PostgreSQL advisory lock of the upload cleanup (one app server at a time).
CLEANUP_LOCK = 0x696E74616B6502
#: PostgreSQL's SQLSTATE for a lock not had (NOWAIT, or lock_timeout).
LOCK_NOT_AVAILABLE = "55P03"

#: What `file` calls with the upload's first bytes; returns the keyring version to record,
#: or raises `UploadRefused` (the upload is then discarded).
Check = Callable[[bytes], int]
#: More rows written with a filed submission's row, in its transaction: (session, its id).
Also = Callable[[Session, str], None]


def _bound(also: Also | None, submission_id: str) -> Callable[[Session], None] | None:
    return None if also is None else (lambda session: also(session, submission_id))


@dataclass(frozen=True)
class Budget:
    """How much the open uploads together may hold (see the module docstring)."""

    bytes: int = OPEN_UPLOAD_BYTES
    uploads: int = MAX_OPEN_UPLOADS
    window: int = UPLOAD_CHUNK


class UploadGone(Exception):
    """No such upload, or it expired."""


class UploadNotOpen(Exception):
    """The upload is being filed or has been filed: it takes no more chunks."""


class UploadBudgetFull(Exception):
    """The open uploads hold the whole budget: no new upload now."""


class UploadInProgress(Exception):
    """Another live request is filing this upload right now."""


class UploadRefused(Exception):
    """The finished upload cannot be filed; it has been discarded. `reason` says why."""

    def __init__(self, reason: Exception):
        super().__init__(str(reason))
        self.reason = reason


@dataclass(frozen=True)
class OffsetMismatch(Exception):
    received: int


@dataclass(frozen=True)
class Usage:
    """What the open uploads hold now: their number and the bytes they reserve."""

    uploads: int
    reserved: int


def _is_lock_not_available(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


class UploadStore(abc.ABC):
    """The uploads' rows (budget, deadlines, shapes), and the interface to their parts."""

    def __init__(self, session_factory: sessionmaker, *, budget: Budget | None = None,
                 clock: Callable[[], float] = time.time):
        self._sessions = session_factory
        self.budget = budget or Budget()
        #: Seconds since the epoch; tests replace it to let 15 minutes pass at once.
        self.clock = clock

    # -- time, as coarse as each use needs ----------------------------------------------------

    def _minute(self) -> int:
        return int(self.clock() // 60)

    def _deadline(self) -> int:
        # The first whole minute at which the upload counts as expired: 15 full
        # minutes from now at least, 16 at most.
        return self._minute() + STALL_MINUTES + 1

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def _live(self) -> ColumnElement[bool]:
        """SQL: the row is an upload still in progress, not expired."""
        return and_(Upload.state.in_(_OPEN_STATES), Upload.expires_minute > self._minute())

    def _expired(self) -> ColumnElement[bool]:
        """SQL: the row is an expired upload, or a filed one past its day."""
        return or_(
            and_(Upload.state.in_(_OPEN_STATES), Upload.expires_minute <= self._minute()),
            and_(Upload.state == "finished", Upload.expires_on < self._today()),
        )

    def _reservation(self) -> ColumnElement[int]:
        """SQL: what one open upload reserves: what arrived plus a window, at most its size."""
        ahead = Upload.received + self.budget.window
        return case((Upload.size < ahead, Upload.size), else_=ahead)

    def _filed_values(self) -> dict[str, object]:
        """What a filed upload's row keeps: its id, its state and the day after which it goes."""
        return dict(state="finished", size=None, received=None, keyring_version=None,
                    expires_minute=None, started_on=None, mailbox=None,
                    expires_on=self._today() + timedelta(days=FINISHED_KEEP_DAYS))

    @staticmethod
    def check_upload_id(upload_id: str) -> str:
        if not isinstance(upload_id, str) or not _ID.fullmatch(upload_id):
            raise UploadGone()
        return upload_id

    # -- rows -----------------------------------------------------------------------------

    def usage(self) -> Usage:
        with self._sessions() as session:
            count, reserved = session.execute(
                select(func.count(), func.coalesce(func.sum(self._reservation()), 0))
                .where(self._live())
            ).one()
        return Usage(int(count), int(reserved))

    def _admit(self, session: Session, size: int, keyring_version: int) -> str:
        """Add a new open upload's row in `session` if the budget has room (UploadBudgetFull)."""
        count, reserved = session.execute(
            select(func.count(), func.coalesce(func.sum(self._reservation()), 0))
            .where(self._live())
        ).one()
        if (count >= self.budget.uploads
                or reserved + min(size, self.budget.window) > self.budget.bytes):
            raise UploadBudgetFull()
        upload_id = secrets.token_urlsafe(24)
        session.add(Upload(id=upload_id, state="open", size=size, received=0,
                           keyring_version=keyring_version, expires_minute=self._deadline(),
                           started_on=self._today()))
        return upload_id

    def _check_row(self, upload: Upload | None) -> Upload:
        """`upload` if it is still there: in progress and not expired, or filed and kept."""
        if upload is None:
            raise UploadGone()
        if upload.state == "finished":
            if upload.expires_on is None or upload.expires_on < self._today():
                raise UploadGone()
        elif upload.expires_minute is None or upload.expires_minute <= self._minute():
            raise UploadGone()
        return upload

    def get(self, upload_id: str) -> Upload:
        """The upload's row; UploadGone if there is none or it expired."""
        self.check_upload_id(upload_id)
        with self._sessions() as session:
            return self._check_row(session.get(Upload, upload_id))

    # -- the interface to parts -----------------------------------------------------------

    @abc.abstractmethod
    def create(self, size: int, keyring_version: int) -> str:
        """A new open upload of `size` bytes; UploadBudgetFull if the budget has no room."""

    @abc.abstractmethod
    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        """Store `data` at `offset`; return how many bytes have arrived since the start.

        New bytes push the deadline 15 minutes ahead; a chunk sent again does not.
        OffsetMismatch if `offset` would leave a gap; UploadNotOpen, UploadGone.
        """

    @abc.abstractmethod
    def file(self, upload_id: str, blobs: BlobStore, check: Check, *, prefix: int,
             also: Also | None = None) -> bool:
        """File the complete upload as a new submission in `blobs`, exactly once.

        `check` gets the first `prefix` bytes and returns the keyring version
        to record, or raises `UploadRefused` (the upload is discarded, and the
        error raised again). `also(session, submission_id)` writes more rows
        in the transaction of the submission's row (the link to the source's
        mailbox). True if this call filed it, False if it was filed already.
        UploadInProgress while another live request files it; UploadGone.
        """

    @abc.abstractmethod
    def discard(self, upload_id: str) -> None:
        """Delete the upload: its row and its part."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Delete expired uploads (and stray parts); return how many went."""


def open_upload_store(settings: Settings, session_factory: sessionmaker,
                      engine: Engine | None = None, *, budget: Budget | None = None
                      ) -> UploadStore:
    """The upload store INTAKE_BLOB_STORE names."""
    if settings.blob_store == "postgresql":
        return PostgresUploadStore(session_factory, budget=budget)
    return FilesystemUploadStore(settings.upload_dir, session_factory, budget=budget)


class FilesystemUploadStore(UploadStore):
    """Parts as files ``<root>/<id>.part`` (see the module docstring)."""

    def __init__(self, root: Path, session_factory: sessionmaker, *,
                 budget: Budget | None = None, clock: Callable[[], float] = time.time):
        super().__init__(session_factory, budget=budget, clock=clock)
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        return self.root / f"{self.check_upload_id(upload_id)}.part"

    def create(self, size: int, keyring_version: int) -> str:
        with self._sessions() as session, session.begin():  # the row first: cleanup keys on it
            upload_id = self._admit(session, size, keyring_version)
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        os.close(fd)
        return upload_id

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        upload = self.get(upload_id)
        if upload.state != "open":
            raise UploadNotOpen()
        if offset > upload.received or offset < 0:
            raise OffsetMismatch(upload.received)
        end = offset + len(data)
        try:
            fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # expired and cleaned up since `get`
            raise UploadGone() from None
        try:
            view = memoryview(data)
            position = offset
            while view:
                written = os.pwrite(fd, view, position)
                view, position = view[written:], position + written
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._sessions() as session, session.begin():
            session.execute(
                update(Upload)
                .where(Upload.id == upload_id, Upload.received < end, self._live(),
                       Upload.state == "open")
                .values(received=end, expires_minute=self._deadline())
            )
        after = self.get(upload_id)  # UploadGone if it expired while the chunk was arriving
        if after.state != "open":
            raise UploadNotOpen()
        return after.received

    @contextlib.contextmanager
    def claim(self, upload_id: str) -> Iterator[os.stat_result | None]:
        """Hold the right to file this upload, or yield None if a live request holds it.

        Yields the part file's status (its link count tells whether an earlier,
        interrupted finish already linked it into the blob store). The lock
        is released when the block ends, or by the kernel if the process dies.
        Claiming counts as progress: the deadline moves 15 minutes ahead.
        """
        try:
            fd = os.open(self.path(upload_id), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise UploadGone() from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            with self._sessions() as session, session.begin():
                claimed = session.execute(
                    update(Upload)
                    .where(Upload.id == upload_id, self._live())
                    .values(state="finishing", expires_minute=self._deadline())
                ).rowcount
            yield os.fstat(fd) if claimed == 1 else None
        finally:
            os.close(fd)

    def file(self, upload_id: str, blobs: BlobStore, check: Check, *, prefix: int,
             also: Also | None = None) -> bool:
        if not isinstance(blobs, FilesystemBlobStore):
            raise TypeError("uploads on disk are filed into the blob store on disk")
        upload = self.get(upload_id)
        if upload.state == "finished":
            return False
        with self.claim(upload_id) as part:
            if part is None:
                raise UploadInProgress()
            earlier = blobs.linked_to(part)
            if earlier is not None:
                # A finish was interrupted after the part file became a blob: complete
                # that submission rather than file the same ciphertext twice.
                self._complete(upload, earlier, blobs, also)
                return True
            path = self.path(upload_id)
            with path.open("rb") as fh:
                first = fh.read(prefix)
            try:
                version = check(first)
            except UploadRefused:
                self.discard(upload_id)
                raise
            submission_id, day = new_submission_id(), upload.started_on or self._today()
            try:
                blobs.adopt(path, submission_id, day)
                record_submission(self._sessions, blobs, submission_id=submission_id, day=day,
                                  keyring_version=version, also=_bound(also, submission_id))
            except BaseException:
                self.reopen(upload_id)  # the part file is intact: finish again
                raise
            self.mark_filed(upload_id)
            return True

    def _complete(self, upload: Upload, submission_id: str, blobs: FilesystemBlobStore,
                  also: Also | None) -> None:
        """Finish what an interrupted finish began: its blob exists, its row may not."""
        with self._sessions() as session:
            recorded = session.get(Submission, submission_id) is not None
        if not recorded:
            record_submission(self._sessions, blobs, submission_id=submission_id,
                              day=blobs.day_of(submission_id),
                              keyring_version=upload.keyring_version,
                              also=_bound(also, submission_id))
        self.mark_filed(upload.id)

    def reopen(self, upload_id: str) -> None:
        """A finish failed with the part file intact: the upload may be finished again."""
        with self._sessions() as session, session.begin():
            session.execute(
                update(Upload).where(Upload.id == upload_id, Upload.state == "finishing")
                .values(state="open")
            )

    def mark_filed(self, upload_id: str) -> None:
        """The upload is a submission now: keep a row that says only so, drop its file."""
        with self._sessions() as session, session.begin():
            session.execute(
                update(Upload).where(Upload.id == upload_id).values(**self._filed_values())
            )
        self.path(upload_id).unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(upload_id).unlink()
        with self._sessions() as session, session.begin():
            session.execute(delete(Upload).where(Upload.id == upload_id))

    def cleanup(self) -> int:
        # The part files are listed *before* the rows are read: `create` commits the
        # row before it makes the file, so every file listed has its row by then. In
        # the other order, an upload created in between lost its file (a 500 on its
        # next chunk, seen under load).
        parts = list(self.root.glob("*.part"))
        with self._sessions() as session:
            expired = list(session.scalars(select(Upload.id).where(self._expired())))
            known = set(session.scalars(select(Upload.id)))
        for upload_id in expired:
            self.discard(upload_id)
        strays = [p for p in parts if p.name[:-5] not in known]
        for path in strays:
            path.unlink(missing_ok=True)
        return len(expired) + len(strays)


class PostgresUploadStore(UploadStore):
    """Parts as chunk rows ``part:<id>`` on the shelf of the day the upload began."""

    def _locked(self, session: Session, upload_id: str, *, nowait: bool = False) -> Upload:
        """The upload's row, locked until the transaction ends; UploadGone if it is not there."""
        self.check_upload_id(upload_id)
        try:
            upload = session.execute(
                select(Upload).where(Upload.id == upload_id).with_for_update(nowait=nowait)
            ).scalar_one_or_none()
        except DBAPIError as exc:
            if nowait and _is_lock_not_available(exc):
                raise UploadInProgress() from None
            raise
        return self._check_row(upload)

    def create(self, size: int, keyring_version: int) -> str:
        with self._sessions() as session, session.begin():
            return self._admit(session, size, keyring_version)

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        from intake.storage.pgblobs import insert_chunks, part_blob_id

        with self._sessions() as session, session.begin():
            # The row's lock orders chunks of one upload sent at once, and the rows of a
            # chunk are committed with the count that says they arrived, or not at all.
            upload = self._locked(session, upload_id)
            if upload.state != "open":
                raise UploadNotOpen()
            received = upload.received
            if offset > received or offset < 0:
                raise OffsetMismatch(received)
            end = offset + len(data)
            if end > received:
                insert_chunks(session.connection(), shelf_of(upload.started_on),
                              part_blob_id(upload_id), received,
                              memoryview(data)[received - offset:])
                upload.received = end
                upload.expires_minute = self._deadline()
            return upload.received

    def file(self, upload_id: str, blobs: BlobStore, check: Check, *, prefix: int,
             also: Also | None = None) -> bool:
        from intake.storage.pgblobs import (
            PostgresBlobStore,
            part_blob_id,
            read_prefix,
            rename_blob,
            stored_size,
        )

        if not isinstance(blobs, PostgresBlobStore):
            raise TypeError("uploads in PostgreSQL are filed into the blob store in PostgreSQL")
        try:
            with self._sessions() as session, session.begin():
                upload = self._locked(session, upload_id, nowait=True)
                if upload.state == "finished":
                    return False
                connection, part = session.connection(), part_blob_id(upload_id)
                shelf = shelf_of(upload.started_on)
                if stored_size(connection, shelf, part)[1] != upload.size:
                    # Its bytes are not all here (the blob store was switched under it).
                    raise UploadRefused(UploadGone())
                version = check(read_prefix(connection, shelf, part, prefix))
                submission_id = new_submission_id()
                rename_blob(connection, shelf, part, submission_id)
                session.add(Submission(id=submission_id, received_on=upload.started_on,
                                       size=upload.size, keyring_version=version,
                                       state="received"))
                if also is not None:
                    also(session, submission_id)
                for name, value in self._filed_values().items():
                    setattr(upload, name, value)
                return True
        except UploadRefused:
            self.discard(upload_id)
            raise

    def discard(self, upload_id: str) -> None:
        from intake.storage.pgblobs import part_blob_id

        with self._sessions() as session, session.begin():
            started = session.execute(
                delete(Upload).where(Upload.id == self.check_upload_id(upload_id))
                .returning(Upload.started_on)
            ).scalar()
            if started is not None:
                session.execute(delete(BlobChunk).where(
                    BlobChunk.shelf == shelf_of(started),
                    BlobChunk.blob_id == part_blob_id(upload_id),
                ))

    def cleanup(self) -> int:
        """Expired uploads go with their rows of chunks, one app server at a time.

        Skipped (0) while another server cleans up, or while a shelf is being
        reclaimed by purge (its lock is not waited for more than 2 seconds).
        """
        from intake.storage.pgblobs import part_blob_id

        try:
            with self._sessions() as session, session.begin():
                if not session.scalar(select(func.pg_try_advisory_xact_lock(CLEANUP_LOCK))):
                    return 0
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                gone = session.execute(
                    delete(Upload).where(self._expired())
                    .returning(Upload.id, Upload.started_on)
                ).all()
                for upload_id, started in gone:
                    if started is not None:
                        session.execute(delete(BlobChunk).where(
                            BlobChunk.shelf == shelf_of(started),
                            BlobChunk.blob_id == part_blob_id(upload_id),
                        ))
                return len(gone)
        except DBAPIError as exc:
            if _is_lock_not_available(exc):
                return 0
            raise
