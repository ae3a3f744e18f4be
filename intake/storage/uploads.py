"""Resumable uploads: ciphertext arriving in chunks, until it is filed or expires.

An upload is a file ``<root>/<id>.part`` and a row. Chunks may come in any
number of tries: each is written at its offset, which must not leave a gap
after what has arrived; a chunk sent again simply rewrites the same bytes.

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

**Finishing.** `claim` gives one finish request at a time the right to file an
upload: an exclusive flock on its part file (which the kernel releases if the
process dies) and the state "finishing". A finish that was interrupted (the
worker killed half-way) therefore never blocks the upload: the next finish
request takes the lock over and, if the part file was already linked into the
blob store, completes that submission instead of filing a second one.

**After.** A filed upload keeps its row, so that a finish retried after its
answer was lost is answered "stored" instead of filing twice. That row keeps
nothing but its id, its state and the day after which it goes (the day after
it was filed: a retry a minute after midnight still finds it); no size, no
keyring version, no hour, no mailbox. `cleanup` deletes expired uploads and stray part
files and runs from the request path, without a cron job.
"""

from __future__ import annotations

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

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.orm import sessionmaker

from intake.limits import MAX_OPEN_UPLOADS, OPEN_UPLOAD_BYTES, UPLOAD_CHUNK
from intake.storage.models import Upload

_ID = re.compile(r"[A-Za-z0-9_-]{32}")

#: An open upload with no progress for this long expires (15 to 16 minutes: whole minutes).
STALL_MINUTES = 15
#: A filed upload's row goes once this many days have passed after the day it was filed.
FINISHED_KEEP_DAYS = 1
_OPEN_STATES = ("open", "finishing")


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


@dataclass(frozen=True)
class OffsetMismatch(Exception):
    received: int


@dataclass(frozen=True)
class Usage:
    """What the open uploads hold now: their number and the bytes they reserve."""

    uploads: int
    reserved: int


class UploadStore:
    def __init__(self, root: Path, session_factory: sessionmaker, *,
                 budget: Budget | None = None, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
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

    def _reservation(self) -> ColumnElement[int]:
        """SQL: what one open upload reserves: what arrived plus a window, at most its size."""
        ahead = Upload.received + self.budget.window
        return case((Upload.size < ahead, Upload.size), else_=ahead)

    # -- uploads ------------------------------------------------------------------------------

    def path(self, upload_id: str) -> Path:
        if not _ID.fullmatch(upload_id):
            raise UploadGone()
        return self.root / f"{upload_id}.part"

    def usage(self) -> Usage:
        with self._sessions() as session:
            count, reserved = session.execute(
                select(func.count(), func.coalesce(func.sum(self._reservation()), 0))
                .where(self._live())
            ).one()
        return Usage(int(count), int(reserved))

    def create(self, size: int, keyring_version: int) -> str:
        """A new open upload of `size` bytes; UploadBudgetFull if the budget has no room."""
        upload_id = secrets.token_urlsafe(24)
        with self._sessions() as session, session.begin():  # the row first: cleanup keys on it
            count, reserved = session.execute(
                select(func.count(), func.coalesce(func.sum(self._reservation()), 0))
                .where(self._live())
            ).one()
            if (count >= self.budget.uploads
                    or reserved + min(size, self.budget.window) > self.budget.bytes):
                raise UploadBudgetFull()
            session.add(Upload(id=upload_id, state="open", size=size, received=0,
                               keyring_version=keyring_version, expires_minute=self._deadline()))
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        os.close(fd)
        return upload_id

    def get(self, upload_id: str) -> Upload:
        """The upload's row; UploadGone if there is none or it expired."""
        self.path(upload_id)
        with self._sessions() as session:
            upload = session.get(Upload, upload_id)
        if upload is None:
            raise UploadGone()
        if upload.state == "finished":
            if upload.expires_on is None or upload.expires_on < self._today():
                raise UploadGone()
        elif upload.expires_minute is None or upload.expires_minute <= self._minute():
            raise UploadGone()
        return upload

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        """Write `data` at `offset`; return how many bytes have arrived since the start.

        New bytes push the deadline 15 minutes ahead; a chunk sent again does not.
        """
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
                update(Upload).where(Upload.id == upload_id)
                .values(state="finished", size=None, received=None, keyring_version=None,
                        expires_minute=None, mailbox=None,
                        expires_on=self._today() + timedelta(days=FINISHED_KEEP_DAYS))
            )
        self.path(upload_id).unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(upload_id).unlink()
        with self._sessions() as session, session.begin():
            session.execute(delete(Upload).where(Upload.id == upload_id))

    def cleanup(self) -> int:
        """Delete expired uploads and stray part files; return how many went."""
        minute, today = self._minute(), self._today()
        # The part files are listed *before* the rows are read: `create` commits the
        # row before it makes the file, so every file listed has its row by then. In
        # the other order, an upload created in between lost its file (a 500 on its
        # next chunk, seen under load).
        parts = list(self.root.glob("*.part"))
        with self._sessions() as session:
            expired = list(session.scalars(select(Upload.id).where(or_(
                and_(Upload.state.in_(_OPEN_STATES), Upload.expires_minute <= minute),
                and_(Upload.state == "finished", Upload.expires_on < today),
            ))))
            known = set(session.scalars(select(Upload.id)))
        for upload_id in expired:
            self.discard(upload_id)
        strays = [p for p in parts if p.name[:-5] not in known]
        for path in strays:
            path.unlink(missing_ok=True)
        return len(expired) + len(strays)
