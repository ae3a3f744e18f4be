"""Source mailboxes: what lets a source come back with a receipt.

A mailbox is found by the hash of the lookup key its receipt derives
(`intake.crypto.receipt`). It holds a random X25519 reply identity, stored
only wrapped under the receipt's wrapping key, and that identity's age
recipient in the clear (`reply_to`, which the reviewers encrypt replies to);
a random `thread` id, by which export, return files and the reviewers name
it; the status of each submission sent through it; the replies, padded age
ciphertext; and the day of the source's last activity (opening it, or sending
through it). Nothing else: see `intake.storage.models`.

What this module promises:

- **A receipt opens its own mailbox and no other.** `open` unwraps the reply
  identity with the wrapping key for that call only and decrypts the replies
  in memory; nothing decrypted is stored or returned beyond the reply texts.
- **Wrong and gone look alike.** `open` returns None for a receipt that never
  had a mailbox and for one whose mailbox was deleted; the derivation is the
  same work either way, so the time up to the lookup is the same.
- **Activity, to the day.** Opening or sending moves `last_active_on` to
  today (one UPDATE a day at most); `delete_inactive` deletes mailboxes whose
  last activity is more than `days` days ago, with their statuses and
  replies (ON DELETE CASCADE), and forgets them in open uploads.
- **A status never outlives its mailbox**, and outlives its submission:
  received when filed, exported when exported, imported when a proven ack for
  it arrives.
- **Replies are delivered once.** `deliver` stores a reply only into an
  existing mailbox, only if its id was never stored, never replaces one, and
  bounds a mailbox to `MAX_MAILBOX_REPLIES`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pyrage import x25519
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.crypto.receipt import ReceiptKeys, WrongWrappingKey, unwrap, wrap
from intake.crypto.reply import ReplyText, decrypt_reply
from intake.limits import MAX_MAILBOX_REPLIES
from intake.storage.models import Mailbox, MailboxReply, MailboxSubmission, Upload

#: SQL statements touch at most this many ids each (SQLite's bound-variable limit).
_BATCH = 500


def new_thread() -> str:
    """A mailbox's thread id: 128 random bits, hex."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class SubmissionStatus:
    number: int  # 1 for the first submission sent through the mailbox
    status: str  # "received", "exported" or "imported"


@dataclass(frozen=True)
class Reply:
    """One reply as the source reads it; `text` is None when it could not be read."""

    number: int
    reply: ReplyText | None


@dataclass(frozen=True)
class OpenedMailbox:
    """What a receipt shows: for one request only, then forgotten."""

    thread: str
    statuses: list[SubmissionStatus]
    replies: list[Reply]  # newest first
    deleted_after: date  # the mailbox goes if it is not used by this day


@dataclass
class Delivery:
    delivered: list[str] = field(default_factory=list)  # reply ids
    already: list[str] = field(default_factory=list)  # delivered before
    unknown_thread: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)  # the mailbox holds its maximum


class MailboxStore:
    """The mailboxes of one deployment's database."""

    def __init__(self, session_factory: sessionmaker, *, days: int,
                 clock: Callable[[], float] = time.time):
        self._sessions = session_factory
        self.days = days
        #: Seconds since the epoch; tests replace it to let days pass.
        self.clock = clock

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def deleted_after(self, last_active_on: date) -> date:
        """The last day a mailbox last used on `last_active_on` still exists."""
        return last_active_on + timedelta(days=self.days)

    # -- Making and finding ---------------------------------------------------------------------

    def find_thread(self, session: Session, keys: ReceiptKeys) -> str | None:
        """The thread of the mailbox these keys open, in `session`, or None."""
        return session.scalar(select(Mailbox.thread).where(Mailbox.lookup_hash == keys.lookup_hash))

    def ensure(self, session: Session, keys: ReceiptKeys) -> str:
        """The thread of the mailbox these keys open, made now (in `session`) if there is none.

        The caller commits. Two requests with one receipt racing: the unique
        lookup hash makes the second commit fail, and the caller may ask again.
        """
        thread = self.find_thread(session, keys)
        if thread is not None:
            today = self.today()
            session.execute(
                update(Mailbox).where(Mailbox.thread == thread, Mailbox.last_active_on < today)
                .values(last_active_on=today)
            )
            return thread
        identity = x25519.Identity.generate()
        thread = new_thread()
        session.add(Mailbox(
            thread=thread,
            lookup_hash=keys.lookup_hash,
            wrapped_identity=wrap(str(identity).encode("ascii"), keys),
            reply_to=str(identity.to_public()),
            last_active_on=self.today(),
        ))
        session.flush()
        return thread

    def attach_upload(self, upload_id: str, *, keys: ReceiptKeys | None = None,
                      thread: str | None = None) -> None:
        """Note in an open upload's row the mailbox it will be filed into.

        With `keys` (a new report's receipt) the mailbox is made if it does
        not exist, in the same transaction, so that it is never committed
        without an upload or a submission to fill it.
        """
        for _attempt in range(2):
            try:
                with self._sessions() as session, session.begin():
                    target = self.ensure(session, keys) if keys is not None else thread
                    session.execute(
                        update(Upload).where(Upload.id == upload_id, Upload.state == "open")
                        .values(mailbox=target)
                    )
                return
            except IntegrityError:  # the same receipt made its mailbox a moment ago
                continue
        raise RuntimeError("a mailbox could not be made for this receipt")

    def link(self, session: Session, thread: str, submission_id: str) -> None:
        """Record, in `session`, that `submission_id` was sent through the mailbox `thread`.

        Sending counts as activity. The caller commits (with the submission's row).
        A mailbox deleted in the meantime gets no link: the submission is filed
        all the same, as one without a mailbox.
        """
        # The UPDATE comes first: it takes the write lock (SQLite) or the row's
        # lock (PostgreSQL), so two messages sent at once get numbers in turn.
        touched = session.execute(
            update(Mailbox).where(Mailbox.thread == thread).values(last_active_on=self.today())
        ).rowcount
        if touched != 1:
            return
        highest = session.scalar(
            select(func.coalesce(func.max(MailboxSubmission.number), 0))
            .where(MailboxSubmission.thread == thread)
        )
        session.add(MailboxSubmission(submission_id=submission_id, thread=thread,
                                      number=int(highest or 0) + 1, status="received"))

    def exists(self, thread: str) -> bool:
        with self._sessions() as session:
            return session.get(Mailbox, thread) is not None

    # -- Opening --------------------------------------------------------------------------------

    def find(self, keys: ReceiptKeys) -> str | None:
        """The lookup: the thread of the mailbox these keys open, or None. One indexed
        SELECT, the same for a receipt that has a mailbox and one that has none."""
        with self._sessions() as session:
            return self.find_thread(session, keys)

    def open(self, keys: ReceiptKeys) -> OpenedMailbox | None:
        """The mailbox these keys open, with its replies decrypted; None if there is none.

        Opening counts as activity. The reply identity is unwrapped for this
        call only. A mailbox whose identity does not unwrap (an altered row)
        is treated as absent.
        """
        found = self.find(keys)
        if found is None:
            return None
        with self._sessions() as session, session.begin():
            mailbox = session.get(Mailbox, found)
            if mailbox is None:  # deleted a moment ago
                return None
            today = self.today()
            if mailbox.last_active_on < today:
                mailbox.last_active_on = today
            statuses = [
                SubmissionStatus(row.number, row.status)
                for row in session.scalars(
                    select(MailboxSubmission).where(MailboxSubmission.thread == mailbox.thread)
                    .order_by(MailboxSubmission.number)
                )
            ]
            stored = list(session.scalars(
                select(MailboxReply).where(MailboxReply.thread == mailbox.thread)
                .order_by(MailboxReply.number.desc())
            ))
            thread, wrapped, active = mailbox.thread, mailbox.wrapped_identity, today
        try:
            identity = x25519.Identity.from_str(unwrap(wrapped, keys).decode("ascii"))
        except (WrongWrappingKey, UnicodeDecodeError, ValueError):
            return None
        replies = [Reply(row.number, decrypt_reply(row.ciphertext, [identity])) for row in stored]
        del identity
        return OpenedMailbox(thread, statuses, replies, self.deleted_after(active))

    # -- Deleting -------------------------------------------------------------------------------

    def delete(self, thread: str) -> bool:
        """Delete the mailbox `thread` with its statuses and replies; False if it was gone."""
        with self._sessions() as session, session.begin():
            session.execute(update(Upload).where(Upload.mailbox == thread).values(mailbox=None))
            # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys on.
            session.execute(delete(MailboxReply).where(MailboxReply.thread == thread))
            session.execute(delete(MailboxSubmission).where(MailboxSubmission.thread == thread))
            return session.execute(delete(Mailbox).where(Mailbox.thread == thread)).rowcount == 1

    def delete_inactive(self) -> int:
        """Delete every mailbox unused for more than `days` days, and every empty
        mailbox that no open upload will fill (a browser upload that never
        finished); return how many went."""
        cutoff = self.today() - timedelta(days=self.days)
        with self._sessions() as session:
            stale = set(session.scalars(
                select(Mailbox.thread).where(Mailbox.last_active_on < cutoff)))
            empty = set(session.scalars(
                select(Mailbox.thread)
                .where(~select(MailboxSubmission.thread)
                       .where(MailboxSubmission.thread == Mailbox.thread).exists())
                .where(~select(Upload.id).where(Upload.mailbox == Mailbox.thread).exists())
            ))
        gone = 0
        for thread in sorted(stale | empty):
            if thread in empty and thread not in stale and not self._still_empty(thread):
                continue
            gone += self.delete(thread)
        return gone

    def _still_empty(self, thread: str) -> bool:
        with self._sessions() as session:
            has_submission = session.scalar(
                select(func.count()).select_from(MailboxSubmission)
                .where(MailboxSubmission.thread == thread))
            has_upload = session.scalar(
                select(func.count()).select_from(Upload).where(Upload.mailbox == thread))
        return not has_submission and not has_upload

    # -- Statuses -------------------------------------------------------------------------------

    def mark(self, submission_ids: Sequence[str], status: str, *, only_from: Iterable[str]) -> None:
        """Move the statuses of `submission_ids` to `status`, from the states in `only_from`."""
        sources = tuple(only_from)
        with self._sessions() as session, session.begin():
            for start in range(0, len(submission_ids), _BATCH):
                batch = submission_ids[start : start + _BATCH]
                session.execute(
                    update(MailboxSubmission)
                    .where(MailboxSubmission.submission_id.in_(batch),
                           MailboxSubmission.status.in_(sources))
                    .values(status=status)
                )

    def threads_of(self, submission_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Submission id -> (thread, reply_to), for those sent through a mailbox."""
        found: dict[str, tuple[str, str]] = {}
        with self._sessions() as session:
            for start in range(0, len(submission_ids), _BATCH):
                batch = submission_ids[start : start + _BATCH]
                rows = session.execute(
                    select(MailboxSubmission.submission_id, Mailbox.thread, Mailbox.reply_to)
                    .join(Mailbox, Mailbox.thread == MailboxSubmission.thread)
                    .where(MailboxSubmission.submission_id.in_(batch))
                )
                for submission_id, thread, reply_to in rows:
                    found[submission_id] = (thread, reply_to)
        return found

    # -- Replies --------------------------------------------------------------------------------

    def deliver(self, replies: Iterable[tuple[str, str, bytes]]) -> Delivery:
        """Store each (reply_id, thread, ciphertext) once; see the module docstring.

        Each reply is its own transaction: one that cannot be stored never
        takes back one that was.
        """
        result = Delivery()
        for reply_id, thread, ciphertext in replies:
            try:
                with self._sessions() as session, session.begin():
                    if session.get(MailboxReply, reply_id) is not None:
                        result.already.append(reply_id)
                        continue
                    mailbox = session.get(Mailbox, thread, with_for_update=True)
                    if mailbox is None:
                        result.unknown_thread.append(reply_id)
                        continue
                    count, highest = session.execute(
                        select(func.count(), func.coalesce(func.max(MailboxReply.number), 0))
                        .where(MailboxReply.thread == thread)
                    ).one()
                    if count >= MAX_MAILBOX_REPLIES:
                        result.full.append(reply_id)
                        continue
                    session.add(MailboxReply(reply_id=reply_id, thread=thread,
                                             number=int(highest) + 1, ciphertext=ciphertext))
            except IntegrityError:  # the same id delivered by a purge running at the same moment
                result.already.append(reply_id)
                continue
            result.delivered.append(reply_id)
        return result
