"""`intake export` and `intake purge`, on the server.

Export writes one bundle of everything received and not yet exported; rows
are marked exported only after the bundle is completely written, fsynced and
renamed into place. Two exports (or purges) at once cannot take the same
submissions: a lock file in the data directory serialises them on one host, a
PostgreSQL advisory lock across every host that shares the database (several
application servers, two admins), and the rows move from received to exported
in one conditional UPDATE. Purge deletes only what was exported and
acknowledged with the matching hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import sessionmaker

from intake.config import Settings
from intake.errors import IntakeError
from intake.fsutil import atomic_writer
from intake.storage import db
from intake.storage.blobs import BlobStore
from intake.storage.models import Submission
from intake.storage.submissions import listable_submissions
from intake.transfer.bundle import EXPORT_FORMAT, member_name, parse_ack

Progress = Callable[[int, int], None]


BUSY = "Another export or purge is running; wait for it to finish, then run this again."


@contextlib.contextmanager
def export_lock(data_dir: Path, engine: Engine) -> Iterator[None]:
    """One export or purge at a time: on this host (a file lock) and on the database."""
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


def export_bundle(
    settings: Settings, out_dir: Path, progress: Progress | None = None
) -> tuple[Path, int] | None:
    """Write a bundle of everything not yet exported; None when there is nothing new."""
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.database_url)
    sessions = db.make_session_factory(engine)
    store = BlobStore(settings.blob_dir)
    try:
        with export_lock(settings.data_dir, engine):
            with sessions() as session:
                rows = [r for r in listable_submissions(session, store) if r.state == "received"]
            if not rows:
                return None
            entries = [
                {
                    "id": r.id,
                    "received_on": r.received_on.isoformat(),
                    "size": store.size(r.id),
                    "sha256": store.sha256(r.id),
                    "keyring_version": r.keyring_version,
                }
                for r in rows
            ]
            manifest = json.dumps(
                {"format": EXPORT_FORMAT, "submissions": entries}, indent=1
            ).encode()
            target = _bundle_path(out_dir)
            total = sum(e["size"] for e in entries)
            with (
                atomic_writer(target, mode=0o600, overwrite=False) as raw,
                tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar,
            ):
                tar.addfile(_tar_info("manifest.json", len(manifest)), io.BytesIO(manifest))
                done = 0
                for entry in entries:
                    with store.open(entry["id"]) as blob:
                        tar.addfile(_tar_info(member_name(entry["id"]), entry["size"]), blob)
                    done += entry["size"]
                    if progress:
                        progress(done, total)
            with sessions() as session, session.begin():
                session.execute(
                    update(Submission)
                    .where(
                        Submission.id.in_([e["id"] for e in entries]),
                        Submission.state == "received",
                    )
                    .values(state="exported")
                )
            return target, len(entries)
    finally:
        engine.dispose()


@dataclass
class PurgeResult:
    deleted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


def purge(settings: Settings, ack_path: Path) -> PurgeResult:
    """Delete the blobs and rows the reviewers acknowledged, if the hashes match."""
    try:
        entries = parse_ack(Path(ack_path).read_bytes())
    except FileNotFoundError:
        raise IntakeError(f"There is no ack file at {ack_path}.") from None
    engine = db.make_engine(settings.database_url)
    sessions = db.make_session_factory(engine)
    store = BlobStore(settings.blob_dir)
    result = PurgeResult()
    try:
        with export_lock(settings.data_dir, engine):
            _purge_entries(entries, sessions, store, result)
    finally:
        engine.dispose()
    return result


def _purge_entries(
    entries: list[dict], sessions: sessionmaker, store: BlobStore, result: PurgeResult
) -> None:
    for entry in entries:
        with sessions() as session:
            row = session.get(Submission, entry["id"])
        if row is None:
            result.kept.append((entry["id"], "unknown here: never exported, or already purged"))
        elif row.state != "exported":
            result.kept.append((entry["id"], "not exported yet; it is never deleted"))
        elif not store.exists(row.id):
            result.kept.append((entry["id"], "its blob is missing on the server"))
        elif store.sha256(row.id) != entry["sha256"]:
            result.kept.append((entry["id"], "the hash does not match the server's copy"))
        else:
            store.delete(row.id)
            with sessions() as session, session.begin():
                session.execute(
                    delete(Submission).where(
                        Submission.id == row.id, Submission.state == "exported"
                    )
                )
            result.deleted.append(row.id)
