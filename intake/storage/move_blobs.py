"""`intake db move-blobs`: a filesystem deployment's blobs into PostgreSQL.

For every submission still on the server whose blob is a file in the data
folder's ``blobs/``, on the day its row says it arrived:

1. if PostgreSQL does not hold it yet, the file is streamed into the
   PostgreSQL blob store (one transaction: all of it or nothing), hashing it
   on the way;
2. the copy is read back from PostgreSQL and its SHA-256 compared with the
   file's; only when they match is the file deleted (``--keep-files``: kept).

So the command can be stopped at any moment (Ctrl-C, a crash, a database that
goes away) and run again: a blob half-copied was never committed, a blob
copied but not yet deleted from disk is verified again and then deleted, and
a run with nothing left to do says so and changes nothing. A copy that does
not match its file stops the command with one sentence, and nothing more is
moved or deleted.

Uploads in progress from the browser move too (the bytes that arrived, as
rows of their part), so a source can finish after the switch; one that was
being filed when the intake stopped is dropped (its page starts it again).
Blob files with no row, and temporary files, are left where they are and
counted: `find_orphans` reports them, and an admin decides.

It holds the export lock (the data folder's file lock and PostgreSQL's
advisory lock) for its whole run, so no export or purge runs beside it. Run
it with every app server stopped; then set INTAKE_BLOB_STORE=postgresql and
start them again (deploy/README.md, "Moving to the PostgreSQL blob store").
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, select, update

from intake.config import Settings
from intake.errors import IntakeError
from intake.storage import db
from intake.storage.blobs import FilesystemBlobStore, Progress
from intake.storage.models import BlobChunk, Submission, Upload, shelf_of
from intake.storage.pgblobs import (
    CHUNK,
    PostgresBlobStore,
    insert_chunks,
    part_blob_id,
    stored_size,
)

#: How many bytes are read from a file at a time.
BLOCK = CHUNK


@dataclass
class MoveResult:
    """What a run did, for the summary."""

    moved: int = 0  # copied in this run, verified
    verified: int = 0  # already in PostgreSQL from an earlier run, verified again
    bytes: int = 0  # bytes of the blobs moved or verified
    deleted_files: int = 0
    uploads_moved: int = 0
    uploads_dropped: int = 0
    missing: list[str] = field(default_factory=list)  # rows whose blob is nowhere
    left_behind: int = 0  # blob files with no row: not moved


def _check_database(settings: Settings, engine) -> None:
    if engine.dialect.name != "postgresql":
        raise IntakeError(
            "intake db move-blobs moves blobs into PostgreSQL, but INTAKE_DATABASE_URL is not a "
            "PostgreSQL database; set it to the deployment's PostgreSQL URL."
        )
    if not db.is_up_to_date(engine):
        raise IntakeError(
            "The database is not up to date for this version of intake; run `intake db upgrade` "
            "first."
        )


def _copy(source: FilesystemBlobStore, target: PostgresBlobStore, submission_id: str,
          day: date) -> str:
    """Stream the file into PostgreSQL (one transaction); the file's SHA-256."""
    digest = hashlib.sha256()
    with source.open(submission_id) as fh, target.writer(submission_id, day) as out:
        while block := fh.read(BLOCK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def move_blobs(settings: Settings, *, keep_files: bool = False,
               progress: Progress | None = None) -> MoveResult:
    """Move every blob (and upload part) from the data folder into PostgreSQL; see above."""
    from intake.transfer.server_side import export_lock  # transfer sits above storage

    engine = db.make_engine(settings.database_url)
    try:
        _check_database(settings, engine)
        if not settings.blob_dir.is_dir():
            raise IntakeError(
                f"There are no filesystem blobs at {settings.blob_dir}: set INTAKE_DATA_DIR to the "
                "data folder of the deployment being moved."
            )
        source = FilesystemBlobStore(settings.blob_dir)
        target = PostgresBlobStore(engine)
        sessions = db.make_session_factory(engine)
        result = MoveResult()
        with export_lock(settings.data_dir, engine):
            with sessions() as session:
                rows: dict[str, date] = dict(session.execute(
                    select(Submission.id, Submission.received_on)
                    .where(Submission.state != "purged")
                ).all())
            on_disk = source.ids()
            todo = sorted(on_disk & rows.keys(), key=lambda i: (rows[i], i))
            result.left_behind = len(on_disk - rows.keys())
            total = sum(source.size(i) for i in todo)
            done = 0
            if progress and total:
                progress(0, total)
            for submission_id in todo:
                day = rows[submission_id]
                size = source.size(submission_id)
                if target.exists(submission_id, day):
                    file_hash = source.sha256(submission_id)
                    result.verified += 1
                else:
                    file_hash = _copy(source, target, submission_id, day)
                    result.moved += 1
                if target.sha256(submission_id, day) != file_hash:
                    raise IntakeError(
                        f"The copy of blob {submission_id} in PostgreSQL does not match the file "
                        f"{source.path(submission_id)}; nothing more was moved or deleted. Check "
                        "the disk and the database, then run `intake db move-blobs` again."
                    )
                if not keep_files:
                    source.delete(submission_id)
                    result.deleted_files += 1
                result.bytes += size
                done += size
                if progress:
                    progress(done, total)
            result.missing = sorted(
                i for i in rows.keys() - on_disk if not target.exists(i, rows[i])
            )
            _move_uploads(settings, sessions, result, keep_files=keep_files)
        return result
    finally:
        engine.dispose()


def _move_uploads(settings: Settings, sessions, result: MoveResult, *, keep_files: bool) -> None:
    """Open uploads' parts into PostgreSQL; uploads caught half-filed are dropped."""
    parts = settings.upload_dir
    with sessions() as session, session.begin():
        dropped = session.execute(
            delete(Upload).where(Upload.state == "finishing").returning(Upload.id)
        ).scalars().all()
    result.uploads_dropped = len(dropped)
    if not keep_files:
        for upload_id in dropped:
            (parts / f"{upload_id}.part").unlink(missing_ok=True)
    with sessions() as session:
        uploads = session.execute(
            select(Upload.id, Upload.received, Upload.started_on).where(Upload.state == "open")
        ).all()
    for upload_id, received, started_on in uploads:
        path = parts / f"{upload_id}.part"
        shelf, blob_id = shelf_of(started_on), part_blob_id(upload_id)
        with sessions() as session, session.begin():
            connection = session.connection()
            if stored_size(connection, shelf, blob_id)[1] == received:
                pass  # moved by an earlier run (or begun in PostgreSQL): nothing to copy
            else:
                connection.execute(delete(BlobChunk).where(
                    BlobChunk.shelf == shelf, BlobChunk.blob_id == blob_id))
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                except FileNotFoundError:
                    # Its part is gone: the upload cannot finish; its page starts it again.
                    session.execute(delete(Upload).where(Upload.id == upload_id))
                    result.uploads_dropped += 1
                    continue
                with os.fdopen(fd, "rb") as fh:
                    position = 0
                    while position < received:
                        block = fh.read(min(BLOCK, received - position))
                        if not block:
                            break
                        insert_chunks(connection, shelf, blob_id, position, block)
                        position += len(block)
                if position != received:  # the file is shorter than its row says
                    session.execute(update(Upload).where(Upload.id == upload_id)
                                    .values(received=position))
                result.uploads_moved += 1
        if not keep_files:
            path.unlink(missing_ok=True)
