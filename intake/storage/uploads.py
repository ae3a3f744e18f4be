"""Resumable uploads: ciphertext arriving in chunks, until it is filed or expires.

An upload is a file ``<root>/<id>.part`` and a row. Chunks may come in any
number of tries: each is written at its offset, which must not leave a gap
after what has arrived; a chunk sent again simply rewrites the same bytes.
`claim` gives one finish request at a time the right to file an upload: an
exclusive flock on its part file (which the kernel releases if the process
dies) and the state "finishing". A finish that was interrupted (the worker
killed half-way) therefore never blocks the upload: the next finish request
takes the lock over and, if the part file was already linked into the blob
store, completes that submission instead of filing a second one. A finished
upload keeps its row (no link to the submission) until it expires, so a
retried finish is answered without filing twice. `cleanup` deletes
expired uploads and runs from the request path, without a cron job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import sessionmaker

from intake.storage.models import Upload

_ID = re.compile(r"[A-Za-z0-9_-]{32}")
DEFAULT_TTL_HOURS = 24


def current_hour() -> int:
    return int(time.time() // 3600)


class UploadGone(Exception):
    """No such upload, or it expired."""


@dataclass(frozen=True)
class OffsetMismatch(Exception):
    received: int


class UploadStore:
    def __init__(self, root: Path, session_factory: sessionmaker, *,
                 ttl_hours: int = DEFAULT_TTL_HOURS):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sessions = session_factory
        self.ttl_hours = ttl_hours

    def path(self, upload_id: str) -> Path:
        if not _ID.fullmatch(upload_id):
            raise UploadGone()
        return self.root / f"{upload_id}.part"

    def create(self, size: int, keyring_version: int) -> str:
        upload_id = secrets.token_urlsafe(24)
        with self._sessions() as session, session.begin():  # the row first: cleanup keys on it
            session.add(Upload(id=upload_id, size=size, received=0, keyring_version=keyring_version,
                               expires_hour=current_hour() + 1 + self.ttl_hours, state="open"))
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        os.close(fd)
        return upload_id

    def get(self, upload_id: str) -> Upload:
        self.path(upload_id)
        with self._sessions() as session:
            upload = session.get(Upload, upload_id)
        if upload is None or upload.expires_hour < current_hour():
            raise UploadGone()
        return upload

    def pending(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(select(Upload.id).where(Upload.state == "open")).all())

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        """Write `data` at `offset`; return how many bytes have arrived since the start."""
        upload = self.get(upload_id)
        if upload.state != "open":
            raise UploadGone()
        if offset > upload.received or offset < 0:
            raise OffsetMismatch(upload.received)
        end = offset + len(data)
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_NOFOLLOW)
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
                .where(Upload.id == upload_id, Upload.received < end, Upload.state == "open")
                .values(received=end)
            )
        return max(upload.received, end)

    @contextlib.contextmanager
    def claim(self, upload_id: str) -> Iterator[os.stat_result | None]:
        """Hold the right to file this upload, or yield None if a live request holds it.

        Yields the part file's status (its link count tells whether an earlier,
        interrupted finish already linked it into the blob store). The lock
        is released when the block ends, or by the kernel if the process dies.
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
                    .where(Upload.id == upload_id, Upload.state.in_(("open", "finishing")))
                    .values(state="finishing")
                ).rowcount
            yield os.fstat(fd) if claimed == 1 else None
        finally:
            os.close(fd)

    def set_state(self, upload_id: str, state: str) -> None:
        with self._sessions() as session, session.begin():
            session.execute(update(Upload).where(Upload.id == upload_id).values(state=state))

    def mark_filed(self, upload_id: str) -> None:
        """The upload is a submission now: keep its row (a retried finish), drop its file."""
        self.set_state(upload_id, "finished")
        self.path(upload_id).unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(upload_id).unlink()
        with self._sessions() as session, session.begin():
            session.execute(delete(Upload).where(Upload.id == upload_id))

    def cleanup(self) -> int:
        """Delete expired uploads and stray part files; return how many went."""
        now = current_hour()
        # The part files are listed *before* the rows are read: `create` commits the
        # row before it makes the file, so every file listed has its row by then. In
        # the other order, an upload created in between lost its file (a 500 on its
        # next chunk, seen under load).
        parts = list(self.root.glob("*.part"))
        with self._sessions() as session:
            expired = list(session.scalars(select(Upload.id).where(Upload.expires_hour < now)))
            known = set(session.scalars(select(Upload.id)))
        for upload_id in expired:
            self.discard(upload_id)
        strays = [p for p in parts if p.name[:-5] not in known]
        for path in strays:
            path.unlink(missing_ok=True)
        return len(expired) + len(strays)
