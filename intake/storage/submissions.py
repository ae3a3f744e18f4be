"""Submissions as the web layer files them: the blob first, then its row.

A submission exists once its blob is durable *and* its row is committed.
`record_submission` is called only after `BlobStore.writer` has closed
cleanly (on disk or in PostgreSQL alike); if the row cannot be committed, the
blob is deleted, so nothing half-exists. What a crash can still leave (a blob
whose row never came, a row whose blob went, a temporary file) is found by
`find_orphans` and never served: `listable_submissions` returns only rows
whose blob is there.

The keyring version floor only ever rises: `raise_keyring_version` is one
conditional UPDATE, safe with any number of processes on either database.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import IntakeError, StorageFull, is_storage_full
from intake.storage.blobs import BlobStore, check_id
from intake.storage.models import KEYRING_STATE_ID, KeyringState, Submission


class SubmissionNotStored(IntakeError):
    """The database refused or lost a submission's row; its blob was deleted.

    It names only the database's error class: the database's own message may
    quote the row (PostgreSQL's DETAIL does), and that must not reach a log.
    """


def new_submission_id() -> str:
    """128 random bits, as 32 lower-case hex digits."""
    return secrets.token_hex(16)


def record_submission(
    session_factory: sessionmaker,
    store: BlobStore,
    *,
    submission_id: str,
    day: date,
    keyring_version: int,
    also: Callable[[Session], None] | None = None,
) -> Submission:
    """Commit the row of a blob already written in full; if that fails, delete the blob.

    The size is the blob's. `also`, if given, writes more rows in the same
    transaction (the link to the source's mailbox), so that both exist or
    neither does. A database failure (a duplicate id, a database
    that is down) raises `SubmissionNotStored`, any other exception propagates
    as it is; either way the blob is gone first. Should the database commit and
    yet report a failure (a connection lost during COMMIT), a row without a
    blob remains: `find_orphans` reports it and it is never listed.
    """
    check_id(submission_id)
    try:
        row = Submission(
            id=submission_id,
            received_on=day,
            size=store.size(submission_id, day),
            keyring_version=keyring_version,
            state="received",
        )
        # The row is handed back: keep it readable after the session closes.
        with session_factory(expire_on_commit=False) as session, session.begin():
            session.add(row)
            if also is not None:
                also(session)
    except DBAPIError as exc:
        _forget(store, submission_id, day)
        if is_storage_full(exc):
            raise StorageFull("The database is out of space.") from None
        reason = type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
    except BaseException:
        _forget(store, submission_id, day)
        raise
    else:
        return row
    # Raised outside the handler, so the database's message is not even its __context__.
    raise SubmissionNotStored(
        f"The report could not be stored ({reason} from the database); nothing was "
        "kept, so it can be sent again."
    )


def _forget(store: BlobStore, submission_id: str, day: date) -> None:
    """Delete the blob whose row failed. In PostgreSQL that needs the database: if it is
    the database that failed, the blob stays, an orphan that is never served."""
    with contextlib.suppress(DBAPIError):
        store.delete(submission_id, day)


@dataclass(frozen=True)
class Orphans:
    """What a crash or a lost disk can leave behind; the admin decides, nothing is served."""

    blobs_without_row: set[str]
    rows_without_blob: set[str]
    temp_files: list[Path]

    def __bool__(self) -> bool:
        return bool(self.blobs_without_row or self.rows_without_blob or self.temp_files)


def find_orphans(session_factory: sessionmaker, store: BlobStore) -> Orphans:
    """Blobs with no row, rows (not purged) with no blob, and leftover temporary files.

    A submission being filed right now has its blob before its row, so it may
    show as a blob without a row; call this when the server is quiet to act on it.
    """
    # Rows first, then blobs: a blob always precedes its row, so a submission
    # completing between the two reads can never look like a row without a blob.
    with session_factory() as session:
        live = set(session.scalars(select(Submission.id).where(Submission.state != "purged")))
    blobs = store.ids()
    return Orphans(blobs - live, live - blobs, store.temp_files())


def listable_submissions(session: Session, store: BlobStore) -> list[Submission]:
    """Submissions (not purged) whose blob exists, by day and id; orphans are never served."""
    rows = session.scalars(
        select(Submission)
        .where(Submission.state != "purged")
        .order_by(Submission.received_on, Submission.id)
    ).all()
    blobs = store.ids()
    return [row for row in rows if row.id in blobs]


def _floor(session: Session) -> int:
    version = session.scalar(
        select(KeyringState.highest_version).where(KeyringState.id == KEYRING_STATE_ID)
    )
    if version is None:  # fail closed: without the floor no keyring can be trusted
        raise IntakeError(
            "The database has lost its keyring version record; restore the database "
            "from a backup before accepting reports."
        )
    return version


def highest_keyring_version(session_factory: sessionmaker) -> int:
    """The highest keyring version this deployment ever accepted (0 before the first)."""
    with session_factory() as session:
        return _floor(session)


def raise_keyring_version(session_factory: sessionmaker, version: int) -> int:
    """Raise the stored floor to `version` if it is higher; never lower it.

    Returns the floor after the call, which is at least `version` (higher if
    another process accepted a newer keyring).
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError("a keyring version is a non-negative integer")
    with session_factory() as session, session.begin():
        # Write first: the UPDATE takes the row (PostgreSQL) or the database
        # (SQLite) lock, and its WHERE is evaluated against the latest value.
        session.execute(
            update(KeyringState)
            .where(KeyringState.id == KEYRING_STATE_ID, KeyringState.highest_version < version)
            .values(highest_version=version)
        )
        return _floor(session)
