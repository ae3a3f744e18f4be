"""`intake export` and `intake purge`, on the server.

Export writes bundles of everything received and not yet exported (with
``everything=True``: of every submission still on the server, exported or
not), at most `MAX_BUNDLE_SUBMISSIONS` per bundle. Each bundle carries, for
each active recipient of the verified keyring, a challenge only that
reviewer can open (`intake.transfer.proof`); the server keeps the challenge's
public key, never the challenge. Rows are marked exported only after the
bundle is completely written, fsynced and renamed into place, in batches
that stay far below SQLite's limit on bound variables.

A bundle whose submissions include some sent through a source's mailbox
also carries ``threads.age`` (`intake.transfer.bundle`): which thread and
reply recipient each of those has, encrypted to the same reviewers; the
manifest in the clear says nothing that links two submissions. Their
statuses in the mailbox move to "exported" with the rows.

Two exports (or purges) at once cannot take the same submissions: a lock
file in the data directory serialises them on one host, a PostgreSQL
advisory lock across every host that shares the database (several
application servers, two admins), and the rows move from received to
exported in conditional UPDATEs. With the PostgreSQL blob store only the
database lock is taken and no data directory is needed: export and purge
run from any host that reaches the database.

Blobs are reached only through the blob store's interface
(`intake.storage.blobs.BlobStore`), each on the day its row says it arrived,
and streamed in bounded pieces both ways. After purge deletes blobs it asks
the store to `reclaim` their space: in PostgreSQL that empties or rewrites the
partitions they were on, so the deleted ciphertext leaves the table's files
(`intake.storage.pgblobs`); `PurgeResult.reclaimed` says what was done.

Purge reads a return file (`intake.transfer.ackfile`). A v2 file counts only
through its valid proofs: each is checked against the stored public key of
its bundle and reviewer, and a file with none is refused whole. Each proven
reviewer's ack of a submission whose hash matches the server's copy is
recorded; the blob and its row are deleted once `quorum` distinct proven
reviewers have acked it. Feeding a file twice records nothing new. A v1
file (no proof) counts only when the admin accepts unproven acks, and only
with quorum 1.

Every submission a counted ack names moves to "imported" in its source's
mailbox (whatever the quorum: the source learns that a reviewer has it).
The replies a v2 file carries are delivered into their mailboxes only when
the file has at least one valid proof (the proof signs the replies too): each
reply id once, however often the file is fed; a reply for a thread this
server has no mailbox for (never, or deleted) is reported and skipped;
nothing delivered before is ever replaced or removed. Both commands also
delete the mailboxes past their days without activity.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import secrets
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.config import Settings
from intake.crypto.envelope import encrypt_bytes
from intake.crypto.keyring import Recipient, load_admins, load_keyring, utc_now, verify_keyring
from intake.errors import IntakeError
from intake.fsutil import atomic_writer
from intake.limits import MAX_RECIPIENTS
from intake.storage import db
from intake.storage.blobs import BlobStore, Reclaimed, open_blob_store
from intake.storage.mailboxes import Delivery, MailboxStore
from intake.storage.models import ExportChallenge, Submission, SubmissionAck
from intake.storage.submissions import highest_keyring_version, listable_submissions
from intake.transfer import proof
from intake.transfer.ackfile import ACK_V1, AckFile, read_ack
from intake.transfer.bundle import (
    MAX_BUNDLE_SUBMISSIONS,
    THREADS,
    Challenge,
    Entry,
    SourceThread,
    ThreadsMember,
    manifest_document,
    member_name,
    threads_plaintext,
)

Progress = Callable[[int, int], None]

BUSY = "Another export or purge is running; wait for it to finish, then run this again."

#: Rows marked exported (or read) per statement: SQLite allows 32,766 bound
#: variables per statement (999 before 3.32), PostgreSQL 65,535.
SQL_BATCH = 500

#: A challenge's public key is kept this many days after its export; a return
#: file proven with an older one is refused (export again with --all).
CHALLENGE_DAYS = 90

#: The environment variable that sets the default ack quorum.
QUORUM_ENV = "INTAKE_ACK_QUORUM"


def ack_quorum(value: str | int | None) -> int:
    """The number of distinct proven reviewers that must ack a submission before purge."""
    if value is None or value == "":
        return 1
    try:
        quorum = int(value)
    except ValueError:
        quorum = 0
    if not 1 <= quorum <= MAX_RECIPIENTS:
        raise IntakeError(
            f"The ack quorum must be a whole number from 1 to {MAX_RECIPIENTS} "
            f"(--quorum or {QUORUM_ENV}); it is the number of reviewers who must ack a report."
        )
    return quorum


def quorum_from_env(env: Mapping[str, str]) -> int:
    return ack_quorum(env.get(QUORUM_ENV))


@contextlib.contextmanager
def export_lock(data_dir: Path | None, engine: Engine) -> Iterator[None]:
    """One export or purge at a time: on this host (a file lock) and on the database.

    `data_dir` None (the PostgreSQL blob store): the database's lock alone, which
    every host sees; no file is touched.
    """
    if data_dir is None:
        if engine.dialect.name != "postgresql":
            raise ValueError("without a data directory only PostgreSQL's lock serialises")
        try:
            with db.advisory_lock(engine, db.EXPORT_LOCK):
                yield
        except db.LockBusy:
            raise IntakeError(BUSY) from None
        return
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(data_dir / ".export.lock", "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IntakeError(BUSY) from None
        try:
            with db.advisory_lock(engine, db.EXPORT_LOCK):
                yield
        except db.LockBusy:
            raise IntakeError(BUSY) from None
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _bundle_path(out_dir: Path) -> Path:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    n = 1
    while (out_dir / f"intake-export-{day}-{n}.tar").exists():
        n += 1
    return out_dir / f"intake-export-{day}-{n}.tar"


def lock_dir(settings: Settings) -> Path | None:
    """Where the host's export lock file lives: the data dir, or nowhere (PostgreSQL store)."""
    return None if settings.blob_store == "postgresql" else settings.data_dir


def _today() -> date:
    return datetime.now(UTC).date()


def _batches(items: Sequence[str], size: int = SQL_BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def active_reviewers(settings: Settings, sessions: sessionmaker) -> list[Recipient]:
    """The active recipients of the keyring, once its signatures and version check out.

    An expired keyring is accepted here (reports that arrived before it
    expired must still leave the server); an unsigned, tampered or rolled-back
    one is not, since a challenge sent to a key the admins did not approve
    would let its holder prove acks.
    """
    keyring = load_keyring(settings.keyring_path)
    admins = load_admins(settings.admins_path)
    moment = min(utc_now(), keyring.expires_at - timedelta(seconds=1))
    verify_keyring(keyring, admins, min_version=highest_keyring_version(sessions), now=moment)
    return [r for r in keyring.recipients if r.status == "active"]


def _forget_old_challenges(session: Session) -> None:
    cutoff = _today() - timedelta(days=CHALLENGE_DAYS)
    session.execute(delete(ExportChallenge).where(ExportChallenge.exported_on < cutoff))


def _new_challenges(
    sessions: sessionmaker, bundle_id: str, reviewers: Sequence[Recipient]
) -> list[Challenge]:
    """One challenge per reviewer; only each one's public key is stored (committed here)."""
    challenges, rows = [], []
    for reviewer in reviewers:
        secret = proof.new_challenge()
        challenges.append(
            Challenge(reviewer.id, proof.encrypt_challenge(secret, reviewer.recipient))
        )
        rows.append(
            ExportChallenge(
                bundle_id=bundle_id,
                recipient_id=reviewer.id,
                public_key=proof.public_key(secret),
                exported_on=_today(),
            )
        )
        del secret
    with sessions() as session, session.begin():
        _forget_old_challenges(session)
        session.add_all(rows)
    return challenges


@dataclass
class Export:
    bundles: list[tuple[Path, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.bundles)


def export_bundles(
    settings: Settings,
    out_dir: Path,
    progress: Progress | None = None,
    *,
    everything: bool = False,
) -> Export:
    """Write the bundles (none when there is nothing to export); see the module docstring."""
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.database_url)
    sessions = db.make_session_factory(engine)
    store = open_blob_store(settings, engine)
    mailboxes = MailboxStore(sessions, days=settings.mailbox_days)
    result = Export()
    try:
        with export_lock(lock_dir(settings), engine):
            mailboxes.delete_inactive()
            states = ("received", "exported") if everything else ("received",)
            with sessions() as session:
                rows = [r for r in listable_submissions(session, store) if r.state in states]
            entries = [
                Entry(
                    id=r.id,
                    received_on=r.received_on.isoformat(),
                    size=store.size(r.id, r.received_on),
                    sha256=store.sha256(r.id, r.received_on),
                    keyring_version=r.keyring_version,
                )
                for r in rows
            ]
            if not entries:
                return result
            reviewers = active_reviewers(settings, sessions)
            total = sum(e.size for e in entries)
            done = 0
            for start in range(0, len(entries), MAX_BUNDLE_SUBMISSIONS):
                chunk = entries[start : start + MAX_BUNDLE_SUBMISSIONS]
                threads = {
                    submission_id: SourceThread(thread, reply_to)
                    for submission_id, (thread, reply_to)
                    in mailboxes.threads_of([e.id for e in chunk]).items()
                }
                path = _write_bundle(sessions, store, out_dir, chunk, reviewers, progress,
                                     done, total, threads)
                done += sum(e.size for e in chunk)
                _mark_exported(sessions, [e.id for e in chunk])
                mailboxes.mark([e.id for e in chunk], "exported", only_from=("received",))
                result.bundles.append((path, len(chunk)))
            return result
    finally:
        engine.dispose()


def _write_bundle(
    sessions: sessionmaker,
    store: BlobStore,
    out_dir: Path,
    entries: list[Entry],
    reviewers: Sequence[Recipient],
    progress: Progress | None,
    done: int,
    total: int,
    threads: dict[str, SourceThread],
) -> Path:
    bundle_id = secrets.token_hex(16)
    challenges = _new_challenges(sessions, bundle_id, reviewers)
    threads_age = (
        encrypt_bytes(threads_plaintext(threads), [r.recipient for r in reviewers])
        if threads else None
    )
    member = (None if threads_age is None
              else ThreadsMember(len(threads_age), hashlib.sha256(threads_age).hexdigest()))
    manifest = json.dumps(
        manifest_document(bundle_id, entries, challenges, member), indent=1
    ).encode()
    target = _bundle_path(out_dir)
    with (
        atomic_writer(target, mode=0o600, overwrite=False) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        tar.addfile(_tar_info("manifest.json", len(manifest)), io.BytesIO(manifest))
        if threads_age is not None:
            tar.addfile(_tar_info(THREADS, len(threads_age)), io.BytesIO(threads_age))
        for entry in entries:
            with store.open(entry.id, date.fromisoformat(entry.received_on)) as blob:
                tar.addfile(_tar_info(member_name(entry.id), entry.size), blob)
            done += entry.size
            if progress:
                progress(done, total)
    return target


def _mark_exported(sessions: sessionmaker, ids: list[str]) -> None:
    with sessions() as session, session.begin():
        for batch in _batches(ids):
            session.execute(
                update(Submission)
                .where(Submission.id.in_(batch), Submission.state == "received")
                .values(state="exported")
            )


@dataclass
class Waiting:
    """What is still on the server, and whose acks it waits for."""

    quorum: int
    received: int = 0
    exported: int = 0
    #: acks still needed -> how many exported submissions need that many
    needing: Counter[int] = field(default_factory=Counter)
    #: active recipient id -> exported submissions it has not acked
    unacked_by: dict[str, int] = field(default_factory=dict)


def waiting_summary(settings: Settings, quorum: int) -> Waiting:
    """Submissions not yet purged: how many, how many acks each needs, and from whom."""
    engine = db.make_engine(settings.database_url)
    sessions = db.make_session_factory(engine)
    waiting = Waiting(quorum=quorum)
    try:
        with sessions() as session:
            states = dict(
                session.execute(
                    select(Submission.state, func.count()).group_by(Submission.state)
                ).all()
            )
            waiting.received = states.get("received", 0)
            waiting.exported = states.get("exported", 0)
            acked = select(SubmissionAck.submission_id, SubmissionAck.recipient_id).join(
                Submission, Submission.id == SubmissionAck.submission_id
            ).where(Submission.state == "exported")
            per_submission: Counter[str] = Counter()
            per_recipient: Counter[str] = Counter()
            for submission_id, recipient_id in session.execute(acked):
                per_submission[submission_id] += 1
                per_recipient[recipient_id] += 1
        for count in per_submission.values():
            waiting.needing[max(0, quorum - count)] += 1
        if waiting.exported - len(per_submission):  # exported, and acked by nobody yet
            waiting.needing[quorum] += waiting.exported - len(per_submission)
        waiting.needing.pop(0, None)
        with contextlib.suppress(IntakeError):  # the export itself already said what is wrong
            for reviewer in active_reviewers(settings, sessions):
                waiting.unacked_by[reviewer.id] = waiting.exported - per_recipient[reviewer.id]
    finally:
        engine.dispose()
    return waiting


@dataclass
class PurgeResult:
    format: str = ""
    deleted: list[str] = field(default_factory=list)
    #: (id, distinct proven reviewers so far, quorum)
    waiting: list[tuple[str, int, int]] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    proven: list[str] = field(default_factory=list)  # recipient ids with a valid proof
    forged: int = 0  # proofs whose signature does not match this file
    unknown_bundle: int = 0  # proofs for a bundle (or reviewer) this server has no challenge of
    imported: list[str] = field(default_factory=list)  # statuses moved to "imported"
    replies: Delivery = field(default_factory=Delivery)
    replies_refused: list[str] = field(default_factory=list)  # not an age file
    #: What the blob store did to make the deleted bytes leave its files.
    reclaimed: Reclaimed = field(default_factory=Reclaimed)

    @property
    def problems(self) -> bool:
        return bool(self.kept or self.forged or self.unknown_bundle or self.reclaimed.busy
                    or self.replies.unknown_thread or self.replies.full or self.replies_refused)


def purge(
    settings: Settings, ack_path: Path, *, quorum: int = 1, accept_unproven: bool = False,
    progress: Progress | None = None,
) -> PurgeResult:
    """Record the proven acks in `ack_path` and delete what has its quorum of reviewers."""
    ack = read_ack(Path(ack_path))
    if ack.format == ACK_V1:
        if not accept_unproven:
            raise IntakeError(
                f"This return file is {ACK_V1}: it names no reviewer and carries no proof, so "
                "anyone holding the bundle could have written it; ask the reviewers for a new "
                "one with `intake review ack`, or pass --accept-unproven (quorum 1 only)."
            )
        if quorum != 1:
            raise IntakeError(
                f"An unproven ({ACK_V1}) return file counts only with quorum 1, and the quorum "
                f"is {quorum}; ask the reviewers for a new one with `intake review ack`."
            )
    engine = db.make_engine(settings.database_url)
    sessions = db.make_session_factory(engine)
    store = open_blob_store(settings, engine)
    mailboxes = MailboxStore(sessions, days=settings.mailbox_days)
    result = PurgeResult(format=ack.format)
    try:
        with export_lock(lock_dir(settings), engine):
            mailboxes.delete_inactive()
            if ack.format != ACK_V1:
                _check_proofs(ack, sessions, result)
                if not result.proven:
                    raise IntakeError(
                        "The return file carries no valid reviewer proof "
                        f"({result.forged} forged or altered, {result.unknown_bundle} for "
                        "bundles this server does not know or no longer keeps); nothing was "
                        "purged and no reply delivered. Ask the reviewers for a new one with "
                        "`intake review ack`."
                    )
                _deliver_replies(ack, mailboxes, result)
            for submission_id, sha256 in ack.submissions:
                _purge_one(submission_id, sha256, ack, sessions, store, quorum, result)
            mailboxes.mark(result.imported, "imported", only_from=("received", "exported"))
            if result.deleted:
                result.reclaimed = store.reclaim(progress=progress)
    finally:
        engine.dispose()
    return result


#: What every age file starts with (the rest only the source's mailbox can check).
_AGE_INTRO = b"age-encryption.org/v1\n"


def _deliver_replies(ack: AckFile, mailboxes: MailboxStore, result: PurgeResult) -> None:
    """Deliver the proven file's replies (see the module docstring)."""
    deliverable = []
    for reply in ack.replies:
        ciphertext = base64.b64decode(reply.ciphertext)  # checked by the ack file's reader
        if not ciphertext.startswith(_AGE_INTRO):
            result.replies_refused.append(reply.reply_id)
            continue
        deliverable.append((reply.reply_id, reply.thread, ciphertext))
    result.replies = mailboxes.deliver(deliverable)


def _check_proofs(ack: AckFile, sessions: sessionmaker, result: PurgeResult) -> None:
    with sessions() as session, session.begin():
        _forget_old_challenges(session)
    proven: set[str] = set()
    with sessions() as session:
        for item in ack.proofs:
            stored = session.get(ExportChallenge, (item.bundle_id, item.recipient_id))
            if stored is None:
                result.unknown_bundle += 1
            elif proof.verify(
                stored.public_key, item.signature, item.bundle_id, item.recipient_id, ack.body
            ):
                proven.add(item.recipient_id)
            else:
                result.forged += 1
    result.proven = sorted(proven)


def _purge_one(
    submission_id: str,
    sha256: str,
    ack: AckFile,
    sessions: sessionmaker,
    store: BlobStore,
    quorum: int,
    result: PurgeResult,
) -> None:
    with sessions() as session:
        row = session.get(Submission, submission_id)
    if row is None:
        result.kept.append((submission_id, "unknown here: never exported, or already purged"))
        return
    if row.state != "exported":
        result.kept.append((submission_id, "not exported yet; it is never deleted"))
        return
    day = row.received_on
    if not store.exists(submission_id, day):
        result.kept.append((submission_id, "its blob is missing on the server"))
        return
    if store.sha256(submission_id, day) != sha256:
        result.kept.append((submission_id, "the hash does not match the server's copy"))
        return
    result.imported.append(submission_id)  # a reviewer holds it: its source may know
    if ack.format == ACK_V1:
        reviewers = 1  # accepted unproven, quorum 1 (checked by the caller)
    else:
        with sessions() as session, session.begin():
            known = set(
                session.scalars(
                    select(SubmissionAck.recipient_id).where(
                        SubmissionAck.submission_id == submission_id
                    )
                )
            )
            session.add_all(
                SubmissionAck(submission_id=submission_id, recipient_id=rid)
                for rid in result.proven
                if rid not in known
            )
            reviewers = len(known | set(result.proven))
    if reviewers < quorum:
        result.waiting.append((submission_id, reviewers, quorum))
        return
    store.delete(submission_id, day)
    with sessions() as session, session.begin():
        session.execute(delete(SubmissionAck).where(SubmissionAck.submission_id == submission_id))
        session.execute(
            delete(Submission).where(Submission.id == submission_id, Submission.state == "exported")
        )
    result.deleted.append(submission_id)


def reclaim_space(settings: Settings, progress: Progress | None = None) -> Reclaimed:
    """`intake db reclaim`: make every deleted blob's bytes leave the store's files.

    What purge does for the blobs it deleted, over the whole store: after a
    purge that was interrupted, or one that found a partition busy. Takes the
    export lock, so it never runs beside an export or a purge.
    """
    engine = db.make_engine(settings.database_url)
    try:
        store = open_blob_store(settings, engine)
        with export_lock(lock_dir(settings), engine):
            return store.reclaim(everything=True, progress=progress)
    finally:
        engine.dispose()
