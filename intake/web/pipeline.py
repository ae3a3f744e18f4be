"""The no-JavaScript path from a valid form to a stored submission.

The spooled files (ciphertext on disk, plaintext only in memory) and the form
fields become the report container (version 2: the files, then report.json
with the digests the spool computed on receipt), which is age-encrypted,
streaming, to the keyring's active recipients straight into the blob store.
A declared MIME type is kept only if it is a plain ASCII ``type/subtype``. The blob is durable
(fsync, rename, fsync) before its row is committed, so a crash leaves at worst
an orphan blob that start-up reports, never a row without its blob.

A follow-up sent from a mailbox page takes exactly this path too (its
``fields`` hold only the message, as ``narrative``); `also` writes the link
to the source's mailbox in the same transaction as the submission's row.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake.crypto import keyring as kr
from intake.crypto.container import Attachment, ContainerReader
from intake.crypto.envelope import encrypt_stream
from intake.crypto.spool import EncryptedSpool
from intake.storage.blobs import BlobStore
from intake.storage.submissions import new_submission_id, record_submission

_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")
#: rage pulls its input 8 KiB at a time; a buffer in front of the container turns
#: 16,000 Python calls per 128 MiB into 128 (bench/large_upload.py's profile).
ENCRYPT_READ_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    spool: EncryptedSpool


def today() -> date:
    """The day, in UTC: the only time a submission keeps."""
    return datetime.now(UTC).date()


def _attachment(upload: Upload) -> Attachment:
    upload.spool.seal()
    declared = upload.content_type.split(";")[0].strip()
    return Attachment(
        name=upload.filename,
        type=declared if _MIME.fullmatch(declared) else "application/octet-stream",
        size=upload.spool.size,
        sha256=upload.spool.sha256,
        open=upload.spool.open_plaintext,
    )


def store_report(
    *,
    lang: str,
    fields: dict[str, Any],
    uploads: list[Upload],
    keyring: kr.Keyring,
    store: BlobStore,
    session_factory: sessionmaker,
    also: Callable[[Session, str], None] | None = None,
) -> str:
    """Encrypt one report to `keyring` and file it; return its id.

    Raise on any failure, leaving nothing. `also(session, submission_id)`
    writes more rows in the transaction of the submission's row.
    """
    container = ContainerReader(lang, fields, [_attachment(u) for u in uploads])
    submission_id = new_submission_id()
    day = today()
    # A full disk raises OSError(ENOSPC) here and StorageFull from the database
    # below; the writer leaves nothing, and the app answers either with 507.
    with store.writer(submission_id, day) as out:
        encrypt_stream(io.BufferedReader(container, ENCRYPT_READ_BUFFER), out,
                       keyring.active_recipients())
    record_submission(
        session_factory,
        store,
        submission_id=submission_id,
        day=day,
        keyring_version=keyring.version,
        also=None if also is None else lambda session: also(session, submission_id),
    )
    return submission_id
