"""Submissions: the row follows the durable blob, never the other way round."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.storage.blobs import BlobStore
from intake.storage.models import KeyringState, Submission


def new_submission_id() -> str:
    """128 random bits, as 32 hex digits."""
    return secrets.token_hex(16)


def record_submission(
    session_factory: sessionmaker,
    store: BlobStore,
    *,
    submission_id: str,
    day: date,
    keyring_version: int,
) -> Submission:
    """Commit the row of a blob already written; if that fails, delete the blob."""
    try:
        row = Submission(
            id=submission_id,
            received_on=day,
            size=store.size(submission_id),
            keyring_version=keyring_version,
            state="received",
        )
        with session_factory() as session, session.begin():
            session.add(row)
        return row
    except BaseException:
        store.delete(submission_id)
        raise


@dataclass(frozen=True)
class Orphans:
    blobs_without_row: set[str]
    rows_without_blob: set[str]
    temp_files: list[Path]


def find_orphans(session_factory: sessionmaker, store: BlobStore) -> Orphans:
    """What a crash can leave: a blob whose row never came, or a row whose blob went."""
    with session_factory() as session:
        live = set(session.scalars(select(Submission.id).where(Submission.state != "purged")))
    blobs = store.ids()
    return Orphans(blobs - live, live - blobs, store.temp_files())


def listable_submissions(session: Session, store: BlobStore) -> list[Submission]:
    """Submissions that exist on both sides; orphans are never served."""
    rows = session.scalars(select(Submission).where(Submission.state != "purged")).all()
    blobs = store.ids()
    return [row for row in rows if row.id in blobs]


def highest_keyring_version(session_factory: sessionmaker) -> int:
    with session_factory() as session:
        return session.get(KeyringState, 1).highest_version


def raise_keyring_version(session_factory: sessionmaker, version: int) -> int:
    """Raise the stored floor to `version` if it is higher; never lower it. Returns the floor."""
    with session_factory() as session, session.begin():
        session.execute(
            update(KeyringState)
            .where(KeyringState.id == 1, KeyringState.highest_version < version)
            .values(highest_version=version)
        )
    return highest_keyring_version(session_factory)
