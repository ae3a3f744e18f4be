"""The metadata tables. Every column the server keeps is listed here; there is nothing else.

Per submission: a random id, the day it arrived (a DATE, never a time), the
padded ciphertext size, the keyring version used and a state. Per deployment:
the highest keyring version ever accepted. No address, user agent, language,
referrer or timestamp has a column, and tests/test_storage.py pins the exact
set of columns in the database. `Upload` is the transient bookkeeping of a
resumable upload (see `intake.storage.uploads`): while it is open, its
declared and arrived sizes, its keyring version and the minute it expires if
nothing more arrives; once filed, only its id, its state and the day its row
goes, and a check constraint holds every row to one of these two shapes.

`BlobChunk` holds ciphertext, and only ciphertext: with INTAKE_BLOB_STORE=
postgresql, each submission's age file (and each browser upload in progress)
is cut into rows of at most 1 MiB, keyed by the submission's random id (or
``part:`` and the upload's id), the byte offset the row starts at, and a
shelf (the day it arrived, modulo `SHELVES`) that picks the partition it is
stored in, so that purge can rewrite or empty one partition at a time
(`intake.storage.pgblobs`). The bytes are what the browser or the server
encrypted with age: nothing in the row is plaintext, and no column says
anything the submission's own row does not.

**Source mailboxes** (the follow-up channel, `intake.storage.mailboxes`) add,
per mailbox and nothing else: the SHA-256 of its lookup key (how a receipt
finds it: the receipt itself and the keys derived from it are never stored),
its reply identity wrapped under the receipt's wrapping key and that
identity's age recipient in the clear (the reviewers encrypt replies to it), a
random thread id (what reviewers and return files name it by), the day of the
source's last visit or message (its deletion date follows from it); per
submission sent through it, its status (received, exported, imported), kept
after the submission itself is purged, for as long as the mailbox lives; per
reply, a random id, its place in the mailbox's order and its padded age
ciphertext. An open upload keeps the thread of the mailbox it will be filed
into, and forgets it once filed. Deleting a mailbox deletes all of these
(ON DELETE CASCADE).

The migrations in `migrations/versions/` are the schema's source of truth in a
database; these models must agree with them (a test compares the two).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

#: A submission's life: received, then exported in a bundle, then purged after the ack.
STATES = ("received", "exported", "purged")

#: The one row of `keyring_state`.
KEYRING_STATE_ID = 1


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class Submission(Base):
    """One submission's metadata; its ciphertext is the blob `<id>.age`."""

    __tablename__ = "submissions"
    __table_args__ = (CheckConstraint(_in("state", STATES), name="submission_state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 128 random bits, hex
    received_on: Mapped[date] = mapped_column(Date)  # the day only, never a time
    size: Mapped[int] = mapped_column(BigInteger)  # padded ciphertext bytes
    keyring_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="received",
                                       server_default="received")

    @validates("received_on")
    def _only_a_day(self, _key: str, value: date) -> date:
        # A datetime is a date too; refuse it so that no caller believes a time is kept.
        if isinstance(value, datetime) or not isinstance(value, date):
            raise TypeError("received_on is a day (datetime.date), never a time")
        return value

    @validates("state")
    def _known_state(self, _key: str, value: str) -> str:
        if value not in STATES:
            raise ValueError(f"a submission's state is one of {', '.join(STATES)}")
        return value


class KeyringState(Base):
    """One row (id 1): the highest keyring version this deployment ever accepted.

    The server refuses a keyring with a lower version (rollback protection);
    `intake.storage.submissions.raise_keyring_version` only ever raises it.
    """

    __tablename__ = "keyring_state"
    __table_args__ = (CheckConstraint(f"id = {KEYRING_STATE_ID}", name="keyring_state_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    highest_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


UPLOAD_STATES = ("open", "finishing", "finished")

#: What a row keeps in each state: an upload in progress needs its sizes, its keyring
#: version and its deadline; a filed one (kept only to answer a retried finish) needs
#: nothing but the day its row goes. Shared with migration 0003_upload_budget.
UPLOAD_ROW_SHAPE = (
    "(state IN ('open', 'finishing') AND size IS NOT NULL AND received IS NOT NULL"
    " AND keyring_version IS NOT NULL AND expires_minute IS NOT NULL AND started_on IS NOT NULL"
    " AND expires_on IS NULL)"
    " OR (state = 'finished' AND size IS NULL AND received IS NULL"
    " AND keyring_version IS NULL AND expires_minute IS NULL AND started_on IS NULL"
    " AND expires_on IS NOT NULL)"
)
#: A filed upload no longer knows which mailbox it went to (migration 0007_mailboxes).
UPLOAD_MAILBOX_SHAPE = "state IN ('open', 'finishing') OR mailbox IS NULL"


class Upload(Base):
    """A resumable upload of browser-made ciphertext, until it is filed or expires.

    Its id is a capability (192 random bits) and is never a submission id.
    An open upload expires when nothing arrives for 15 minutes: its deadline is
    kept to the minute (`expires_minute`), which is what a 15-minute deadline
    needs. While open it also keeps the day it began (`started_on`): its
    submission is dated to that day, and with the PostgreSQL blob store its
    chunks lie on that day's shelf, so that filing it moves no byte. A filed
    upload keeps no size, no keyring version, no start and no time finer than a
    day (`expires_on`).
    """

    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint(_in("state", UPLOAD_STATES), name="upload_state"),
        CheckConstraint(UPLOAD_ROW_SHAPE, name="upload_row_shape"),
        CheckConstraint(UPLOAD_MAILBOX_SHAPE, name="upload_mailbox_shape"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    size: Mapped[int | None] = mapped_column(BigInteger)  # declared ciphertext bytes, while open
    received: Mapped[int | None] = mapped_column(BigInteger)  # arrived from the start, while open
    keyring_version: Mapped[int | None] = mapped_column(Integer)
    expires_minute: Mapped[int | None] = mapped_column(Integer)  # minutes since the epoch, UTC
    expires_on: Mapped[date | None] = mapped_column(Date)  # a filed row goes after this day
    started_on: Mapped[date | None] = mapped_column(Date)  # the day it began, while open
    # The thread of the source mailbox the upload is filed into, while open. Not a
    # foreign key: deleting a mailbox clears it in the same transaction.
    mailbox: Mapped[str | None] = mapped_column(String(32))

    @validates("expires_on", "started_on")
    def _only_a_day(self, key: str, value: date | None) -> date | None:
        if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
            raise TypeError(f"{key} is a day (datetime.date), never a time")
        return value


#: Partitions of `blob_chunks` (PostgreSQL): a blob lies on shelf (day's ordinal % SHELVES).
SHELVES = 32


def shelf_of(day: date) -> int:
    """The shelf (partition) of the blobs that arrived on `day`."""
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError("a shelf is chosen by a day (datetime.date), never a time")
    return day.toordinal() % SHELVES


def shelf_table(shelf: int) -> str:
    """The name of the partition that holds shelf `shelf`."""
    if isinstance(shelf, bool) or not isinstance(shelf, int) or not 0 <= shelf < SHELVES:
        raise ValueError(f"a shelf is a whole number from 0 to {SHELVES - 1}")
    return f"blob_chunks_{shelf:02d}"


class BlobChunk(Base):
    """A piece of ciphertext (at most `intake.storage.pgblobs.CHUNK` bytes) of one blob.

    Only with INTAKE_BLOB_STORE=postgresql; on SQLite the table exists and
    stays empty. `blob_id` is a submission id, or ``part:`` and an upload id
    while the upload is in progress; `start` is the offset of `data` in the
    blob; `shelf` is `shelf_of` the day the blob arrived and picks the
    partition (`blob_chunks_NN`, LIST-partitioned on PostgreSQL). `data` is
    age ciphertext (see the module docstring), stored out of line and
    uncompressed (STORAGE EXTERNAL: ciphertext does not compress).
    """

    __tablename__ = "blob_chunks"
    __table_args__ = (
        PrimaryKeyConstraint("blob_id", "start", "shelf", name="blob_chunks_pkey"),
        CheckConstraint("start >= 0", name="blob_chunk_start"),
        {"postgresql_partition_by": "LIST (shelf)"},
    )

    shelf: Mapped[int] = mapped_column(SmallInteger)
    blob_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ExportChallenge(Base):
    """What the server keeps of one reviewer's challenge in one bundle, to check a proof.

    The Ed25519 public key that the challenge seeds (a one-way image of it:
    the challenge itself is never stored), the bundle and recipient it was
    made for, and the day of the export. Nothing here names a submission.
    Rows older than `intake.transfer.server_side.CHALLENGE_DAYS` are deleted.
    """

    __tablename__ = "export_challenges"

    bundle_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of 32 bytes
    exported_on: Mapped[date] = mapped_column(Date)  # the day only, never a time

    @validates("exported_on")
    def _only_a_day(self, _key: str, value: date) -> date:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise TypeError("exported_on is a day (datetime.date), never a time")
        return value


class SubmissionAck(Base):
    """A proven ack of one submission by one reviewer (a keyring recipient id).

    Purge counts distinct reviewers per submission against the quorum; the
    rows go with the submission (ON DELETE CASCADE, and purge deletes them in
    the same transaction).
    """

    __tablename__ = "submission_acks"

    submission_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[str] = mapped_column(String(64), primary_key=True)


#: A submission's status as its source sees it (`intake.storage.mailboxes`).
MAILBOX_STATUSES = ("received", "exported", "imported")


class Mailbox(Base):
    """A source's mailbox: found by a receipt, holding statuses and replies.

    `thread` is a random 128-bit id (hex); `lookup_hash` the hex SHA-256 of the
    lookup key derived from the receipt (unique); `wrapped_identity` the
    mailbox's X25519 identity sealed under the receipt's wrapping key;
    `reply_to` that identity's age recipient; `last_active_on` the day the
    source last opened the mailbox or sent through it.
    """

    __tablename__ = "mailboxes"

    thread: Mapped[str] = mapped_column(String(32), primary_key=True)
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    wrapped_identity: Mapped[bytes] = mapped_column(LargeBinary)
    reply_to: Mapped[str] = mapped_column(String(100))
    last_active_on: Mapped[date] = mapped_column(Date)

    @validates("last_active_on")
    def _only_a_day(self, _key: str, value: date) -> date:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise TypeError("last_active_on is a day (datetime.date), never a time")
        return value


class MailboxSubmission(Base):
    """A submission sent through a mailbox, its place in the mailbox's order, and its
    status for the source.

    Not a foreign key to `submissions`: the status outlives the purged
    submission, never the mailbox.
    """

    __tablename__ = "mailbox_submissions"
    __table_args__ = (
        CheckConstraint(_in("status", MAILBOX_STATUSES), name="mailbox_submission_status"),
        UniqueConstraint("thread", "number", name="mailbox_submission_order"),
    )

    submission_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread: Mapped[str] = mapped_column(
        String(32), ForeignKey("mailboxes.thread", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first sent through it, then 2...
    status: Mapped[str] = mapped_column(String(16), default="received",
                                        server_default="received")


class MailboxReply(Base):
    """A reviewer's reply in a mailbox: padded age ciphertext to the mailbox's `reply_to`.

    `number` orders a mailbox's replies (1, 2, ...), nothing finer; `reply_id`
    is the reviewer's random id, so that a reply fed twice is delivered once.
    """

    __tablename__ = "mailbox_replies"
    __table_args__ = (UniqueConstraint("thread", "number", name="mailbox_reply_order"),)

    reply_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread: Mapped[str] = mapped_column(
        String(32), ForeignKey("mailboxes.thread", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
