"""`intake review import` and `intake review ack`, on the air-gapped machine.

Import first checks the bundle as a whole (`intake.transfer.bundle`: the
manifest, then every member's type and size, before a byte is copied); a
bundle that fails is refused with one sentence and nothing is written. Then
each submission is taken on its own, and sorted by what can be observed
(X25519 stanzas do not name their recipient):

- **not for these identities**: no given identity opens its header. Nothing
  of it is copied; it is counted.
- **quarantined** (opened, then damaged): its sha256 differs from the
  manifest, or its payload is cut short or altered. The ciphertext, exactly
  as it arrived, and a note go to ``<cases>/.quarantine/``.
- **refused** (opened, but breaks the rules): the container is refused by
  `extract_container`, or report.json fails `intake.schema.report_problems`.
  The same: the ciphertext as it arrived and a note naming the reason.
- otherwise the case is built in a staging folder and renamed into place.

Nothing kept is larger than what arrived: plaintext exists only in staging
and spill files of this import, which are removed on every path. A later
import of the same submission, filed intact, removes its quarantine entry.
The identity is "wrong" only when it opens nothing of the bundle: no blob,
no challenge, and nothing was already filed from it.

**In parallel.** Submissions are independent, so their cases are decrypted
and built by a pool of worker processes (one per core; forked, so they
inherit the unlocked identities and none is ever sent through a pipe or
written anywhere), each reading its blobs through its own descriptor of the
bundle, which must still be the file that was checked. Everything that
changes the store stays in this process and in the bundle's order: setting
aside, the one sync, the renames into place, the index. So the outcomes, and
what a crash can leave (staging folders, removed by the next import), are
those of a serial import.

Each challenge of the bundle that the identity opens is kept in
``<cases>/.bundles/<bundle id>.json`` (mode 0600, written atomically), so
that `make_ack` can later prove which reviewer opened the bundle. Importing
the same bundle again adds nothing. Ack lists only what is safely filed.

**One case per source.** When the bundle carries ``threads.age`` (which
submissions came through which source mailbox), it is checked against the
manifest's SHA-256 and opened with the same identities; damaged or altered,
the bundle is refused whole. Each submission of a thread is then filed into
that thread's case, as a follow-up (``<case>/follow-ups/<id>/``): the case
already in the store, or, for a thread new to the store, the first report of
the thread in the bundle (a follow-up message only when the thread has no
report here). A case filed from a thread keeps its ``thread`` and
``reply_to`` in case.json, so that `intake review reply` can answer its
source. A ``threads.age`` these identities cannot open leaves every
submission in a case of its own, and the result says so.

`make_ack` carries, besides the acks, every reply queued in the case store
and not yet sent (`intake.review.store`); the command marks them sent once
the file is written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pyrage import x25519

from intake.crypto.container import extract_container
from intake.crypto.envelope import (
    NoMatchingIdentity,
    UnreadableHeader,
    decrypt_bytes,
    decrypt_stream,
)
from intake.errors import ContainerError, EnvelopeError, IntakeError
from intake.fsutil import atomic_write, atomic_writer, copy_stream, fsync_dir
from intake.review.casestore import FOLLOW_UPS, QUARANTINE, filed_ids, load_case
from intake.review.store import CaseStore
from intake.schema import report_problems
from intake.transfer import proof
from intake.transfer.ackfile import Opening, Reply, build_ack
from intake.transfer.bundle import (
    AGAIN,
    BUNDLE_ID,
    RECIPIENT_ID,
    BundleError,
    BundleReader,
    Entry,
    Manifest,
    SourceThread,
    parse_threads,
)

Progress = Callable[[int, int], None]

#: Where the challenges an identity opened are kept, one file per bundle.
BUNDLES = ".bundles"
RECORD_FORMAT = "intake-bundle-record/v1"
#: Blobs up to this size are decrypted in memory; larger ones spill to a file in the store.
IN_MEMORY = 16 * 1024 * 1024
_STAGING = re.compile(r"\.import-[0-9a-f]{16}(\.tar)?")
_QUARANTINED = re.compile(r"([0-9a-f]{32})\.(age|txt)")
#: Problems of a report.json shown in a refusal note; the rest are counted.
_SHOWN_PROBLEMS = 3
#: Below this many submissions to open, a pool costs more than it saves.
PARALLEL_FROM = 8


class WrongIdentity(IntakeError):
    """No given identity opens anything in the bundle; nothing was imported."""


@dataclass
class ImportResult:
    bundle_id: str | None = None
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    not_for_these_identities: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # opened, then damaged
    refused: list[tuple[str, str]] = field(default_factory=list)  # opened, broke the rules
    challenges_opened: list[str] = field(default_factory=list)  # recipient ids
    #: (submission id, the case it was filed in): added, but inside their source's case.
    follow_ups: list[tuple[str, str]] = field(default_factory=list)
    #: The bundle has threads.age and no given identity opens it.
    threads_unread: bool = False

    @property
    def set_aside(self) -> list[tuple[str, str]]:
        return self.quarantined + self.refused


def read_bundle(bundle: Path) -> BundleReader:
    """The bundle, checked whole (`BundleError` otherwise); close it, or use `with`."""
    return BundleReader(bundle)


class _HashingReader(io.RawIOBase):
    """Reads `source`, hashing every byte that passes (rage pulls from it)."""

    def __init__(self, source: BinaryIO):
        super().__init__()
        self._source = source
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        self.digest.update(data)
        return len(data)

    def finish(self) -> str:
        """Hash whatever rage did not read, and return the hex digest of the whole."""
        while block := self._source.read(1 << 20):
            self.digest.update(block)
        return self.digest.hexdigest()


def _remove_leftovers(cases_dir: Path) -> None:
    """Staging folders and spill files of an import that was interrupted (a crash, a full disk)."""
    for leftover in cases_dir.iterdir():
        if not _STAGING.fullmatch(leftover.name):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _sweep_quarantine(cases_dir: Path, filed: set[str]) -> None:
    """Remove what the quarantine keeps of submissions now filed intact."""
    quarantine = cases_dir / QUARANTINE
    if not quarantine.is_dir():
        return
    removed = False
    for path in quarantine.iterdir():
        match = _QUARANTINED.fullmatch(path.name)
        if match and match.group(1) in filed:
            path.unlink(missing_ok=True)
            removed = True
    if removed:
        fsync_dir(quarantine)


def _set_aside(reader: BundleReader, cases_dir: Path, entry: Entry, reason: str) -> None:
    """Keep the ciphertext exactly as it arrived (never more) and a note of why."""
    quarantine = cases_dir / QUARANTINE
    quarantine.mkdir(mode=0o700, exist_ok=True)
    with reader.open_blob(entry.id) as src, atomic_writer(
        quarantine / f"{entry.id}.age", mode=0o600
    ) as out:
        copy_stream(src, out.write, 1 << 20)
    atomic_write(quarantine / f"{entry.id}.txt", (reason + "\n").encode("utf-8"), mode=0o600)


# -- the record of opened challenges ----------------------------------------------------------


def _record_path(cases_dir: Path, bundle_id: str) -> Path:
    return cases_dir / BUNDLES / f"{bundle_id}.json"


def _read_record(path: Path) -> dict[str, Any]:
    damaged = IntakeError(
        f"The record {path} is damaged; import the bundle again with your identity to renew it."
    )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise damaged from None
    if not (
        isinstance(document, dict)
        and document.get("format") == RECORD_FORMAT
        and document.get("bundle") == path.stem
        and isinstance(document.get("sequence"), int)
        and isinstance(document.get("openings"), list)
    ):
        raise damaged
    for opening in document["openings"]:
        if not (
            isinstance(opening, dict)
            and isinstance(opening.get("recipient_id"), str)
            and RECIPIENT_ID.fullmatch(opening["recipient_id"])
            and isinstance(opening.get("challenge"), str)
        ):
            raise damaged
        try:
            secret = base64.b64decode(opening["challenge"], validate=True)
        except (binascii.Error, ValueError):
            raise damaged from None
        if len(secret) != proof.CHALLENGE_BYTES:
            raise damaged
    return document


def _openings(document: dict[str, Any]) -> list[Opening]:
    return [
        Opening(document["bundle"], o["recipient_id"], base64.b64decode(o["challenge"]))
        for o in document["openings"]
    ]


def _all_records(cases_dir: Path) -> list[dict[str, Any]]:
    """Every readable record; a damaged one is left out (importing its bundle renews it)."""
    folder = cases_dir / BUNDLES
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json" and BUNDLE_ID.fullmatch(path.stem):
            with contextlib.suppress(IntakeError, OSError):
                records.append(_read_record(path))
    return records


def _open_challenges(
    manifest: Manifest, identities: Sequence[x25519.Identity], cases_dir: Path
) -> list[str]:
    """Open the bundle's challenges with `identities`; keep the opened ones; return whose."""
    if manifest.bundle_id is None:
        return []
    opened = {}
    for challenge in manifest.challenges:
        secret = proof.open_challenge(challenge.ciphertext, identities)
        if secret is not None:
            opened[challenge.recipient_id] = base64.b64encode(secret).decode("ascii")
    if not opened:
        return []
    path = _record_path(cases_dir, manifest.bundle_id)
    records = _all_records(cases_dir)
    for record in records:  # openings by other identities of this store are kept
        if record["bundle"] == manifest.bundle_id:
            for opening in record["openings"]:
                opened.setdefault(opening["recipient_id"], opening["challenge"])
    document = {
        "format": RECORD_FORMAT,
        "bundle": manifest.bundle_id,
        # The most recent import comes last: an ack without a bundle proves with it.
        "sequence": max((r["sequence"] for r in records), default=0) + 1,
        "openings": [{"recipient_id": k, "challenge": v} for k, v in sorted(opened.items())],
    }
    path.parent.mkdir(mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(document, indent=1).encode("utf-8"), mode=0o600)
    return sorted(opened)


# -- threads ----------------------------------------------------------------------------------


def _read_threads(
    reader: BundleReader, identities: Sequence[x25519.Identity]
) -> tuple[dict[str, SourceThread], bool]:
    """The bundle's submission -> thread map, and whether a threads.age went unread.

    A threads.age whose hash is not the manifest's, or that one of these
    identities opens and finds damaged or malformed, refuses the bundle.
    """
    member = reader.manifest.threads
    if member is None:
        return {}, False
    sealed = reader.read_threads() or b""
    if hashlib.sha256(sealed).hexdigest() != member.sha256:
        raise BundleError(f"The bundle's threads.age does not match its manifest; {AGAIN}.")
    try:
        plaintext = decrypt_bytes(sealed, identities)
    except (NoMatchingIdentity, UnreadableHeader):
        return {}, True
    except EnvelopeError:
        raise BundleError(f"The bundle's threads.age is damaged; {AGAIN}.") from None
    return parse_threads(plaintext, reader.manifest), False


@dataclass(frozen=True)
class _Staged:
    entry: Entry
    staging: Path
    thread: SourceThread | None
    follow_up_message: bool  # report.json holds only a message (the narrative)


def _placements(staged: list[_Staged], store: CaseStore) -> list[tuple[_Staged, str | None]]:
    """Each staged submission and the case it is filed in as a follow-up (None: its own).

    Cases come first in the list, so that a follow-up's case exists when it is filed.
    """
    roots: dict[str, str] = {}  # thread -> case id
    for item in staged:
        if item.thread is not None and item.thread.thread not in roots:
            existing = store.case_for_thread(item.thread.thread)
            if existing is not None:
                roots[item.thread.thread] = existing
    # A thread new to the store: its first report here becomes the case, else its first item.
    for item in sorted(staged, key=lambda i: i.follow_up_message):
        if item.thread is not None and item.thread.thread not in roots:
            roots[item.thread.thread] = item.entry.id
    own = [(item, None) for item in staged
           if item.thread is None or roots[item.thread.thread] == item.entry.id]
    inside = [(item, roots[item.thread.thread]) for item in staged
              if item.thread is not None and roots[item.thread.thread] != item.entry.id]
    return own + inside


# -- import -----------------------------------------------------------------------------------


def import_bundle(
    bundle: Path,
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> ImportResult:
    """File every submission of `bundle` that opens as a case; see the module docstring.

    Cases are built in staging folders without a sync per file, by `workers`
    processes (default: one per core); once all are built, the file system is
    synced once and each case is renamed into place, so a case in the store
    is always complete and durable. Raises `WrongIdentity` when the
    identities open nothing of the bundle.
    """
    with read_bundle(bundle) as reader:
        cases_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_leftovers(cases_dir)
        existing = set(filed_ids(cases_dir))
        _sweep_quarantine(cases_dir, existing)
        manifest = reader.manifest
        result = ImportResult(bundle_id=manifest.bundle_id)
        threads, result.threads_unread = _read_threads(reader, identities)
        result.challenges_opened = _open_challenges(manifest, identities, cases_dir)
        staged: list[_Staged] = []
        opened_any = False
        tasks = [
            _Task(entry, cases_dir / f".import-{secrets.token_hex(8)}", threads.get(entry.id))
            for entry in manifest.entries
            if entry.id not in existing
        ]
        try:
            with _opened(reader, tasks, identities, cases_dir, workers) as outcomes:
                for index, entry in enumerate(manifest.entries):
                    if progress:
                        progress(index, len(manifest.entries))
                    if entry.id in existing:
                        result.already.append(entry.id)
                        continue
                    task, outcome = next(outcomes)
                    assert task.entry is entry  # the pool answers in the bundle's order
                    if outcome.opened:
                        opened_any = True
                    if outcome.kind == "added":
                        staged.append(_Staged(entry, task.staging, task.thread,
                                              outcome.follow_up_message))
                    elif outcome.kind == "not-for-us":
                        result.not_for_these_identities.append(entry.id)
                    else:
                        _set_aside(reader, cases_dir, entry, outcome.reason)
                        bucket = (result.quarantined if outcome.kind == "damaged"
                                  else result.refused)
                        bucket.append((entry.id, outcome.reason))
            if (
                result.not_for_these_identities
                and not opened_any
                and not result.already
                and not result.challenges_opened
            ):
                raise WrongIdentity(
                    "The identity cannot open any report in this bundle; check --identity, or "
                    "ask the admins whether the keyring lists your key (nothing was imported)."
                )
            if staged:
                os.sync()  # one sync for every staged case, before any becomes visible
                # The renames, one by one (each case before what is filed inside it), then
                # the index of all of them in one transaction (one sync, not one per case).
                # A crash in between leaves cases the index lacks, which the store's
                # reconcile adds when it is next opened. Threads need the index current
                # first: the case of a thread may be among those.
                with CaseStore(cases_dir, reconcile=bool(threads)) as store:
                    _file_staged(staged, store, cases_dir, result)
                _sweep_quarantine(cases_dir, set(result.added))
        finally:
            # Every staging folder and spill file not renamed into place, including those a
            # worker built ahead of an error here (the pool is stopped by now).
            for task in tasks:
                if task.staging.exists():
                    shutil.rmtree(task.staging, ignore_errors=True)
                task.staging.with_name(task.staging.name + ".tar").unlink(missing_ok=True)
    if progress:
        progress(len(manifest.entries), len(manifest.entries))
    return result


def _file_staged(staged: list[_Staged], store: CaseStore, cases_dir: Path,
                 result: ImportResult) -> None:
    """Rename each staged submission into place: a case, or a follow-up inside its case; then
    index the new cases, and those a follow-up went into, in one transaction."""
    touched: set[str] = set()
    for item, case_id in _placements(staged, store):
        submission_id = item.entry.id
        if case_id is None:
            os.rename(item.staging, cases_dir / submission_id)
            touched.add(submission_id)
        else:
            folder = cases_dir / case_id / FOLLOW_UPS
            folder.mkdir(mode=0o700, exist_ok=True)
            os.rename(item.staging, folder / submission_id)
            fsync_dir(folder)
            result.follow_ups.append((submission_id, case_id))
            touched.add(case_id)
        result.added.append(submission_id)
    fsync_dir(cases_dir)
    store.index_cases(sorted(touched))


@dataclass(frozen=True)
class _Task:
    entry: Entry
    staging: Path
    thread: SourceThread | None = None  # the source mailbox it came through


class _MemberSlice(io.RawIOBase):
    """`length` bytes of a file from `offset`, read with pread (no shared file position)."""

    def __init__(self, fd: int, offset: int, length: int):
        super().__init__()
        self._fd, self._position, self._left = fd, offset, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want == 0:
            return 0
        data = os.pread(self._fd, want, self._position)
        if not data:
            raise IntakeError("The bundle became shorter while it was being imported.")
        view[: len(data)] = data
        self._position += len(data)
        self._left -= len(data)
        return len(data)


class _WorkerBundle:
    """What a worker reads blobs from: its own descriptor of the bundle the parent checked."""

    def __init__(self, path: Path, identity: tuple[int, int, int], slices: dict[str, tuple]):
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        found = os.fstat(self._fd)
        if (found.st_dev, found.st_ino, found.st_size) != identity or not stat.S_ISREG(
            found.st_mode
        ):
            os.close(self._fd)
            raise IntakeError("The bundle was replaced while it was being imported.")
        self._slices = slices

    def open_blob(self, submission_id: str) -> BinaryIO:
        offset, length = self._slices[submission_id]
        return io.BufferedReader(_MemberSlice(self._fd, offset, length), 1 << 20)


#: Set in the parent just before the pool forks; each worker opens its descriptor lazily.
_WORKER_CONTEXT: dict[str, Any] = {}


def _work(task: _Task) -> _Outcome:
    context = _WORKER_CONTEXT
    if "bundle" not in context:
        context["bundle"] = _WorkerBundle(context["path"], context["file"], context["slices"])
    return _import_one(context["bundle"], task.entry, context["identities"],
                       context["cases_dir"], task.staging, task.thread)


@contextlib.contextmanager
def _opened(
    reader: BundleReader,
    tasks: list[_Task],
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    workers: int | None,
) -> Iterator[Iterator[tuple[_Task, _Outcome]]]:
    """(task, outcome) for every task, in order: by a pool of processes, or here for few."""
    workers = workers if workers is not None else os.cpu_count() or 1
    if workers <= 1 or len(tasks) < PARALLEL_FROM or "fork" not in (
        multiprocessing.get_all_start_methods()
    ):
        yield ((task, _import_one(reader, task.entry, identities, cases_dir, task.staging,
                                  task.thread))
               for task in tasks)
        return
    found = reader.file_status()
    _WORKER_CONTEXT.update(
        path=reader.path,
        file=(found.st_dev, found.st_ino, found.st_size),
        slices={t.entry.id: reader.blob_extent(t.entry.id) for t in tasks},
        identities=list(identities),
        cases_dir=cases_dir,
    )
    try:
        # Leaving the pool terminates its workers, before the caller removes their staging.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            chunk = max(1, min(16, len(tasks) // (workers * 8)))
            yield zip(tasks, pool.imap(_work, tasks, chunksize=chunk), strict=True)
    finally:
        _WORKER_CONTEXT.clear()


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "added", "not-for-us", "damaged", "refused"
    opened: bool
    reason: str = ""
    follow_up_message: bool = False


def _refusal(problems: list[str]) -> str:
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return f"report.json is refused: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _import_one(
    reader: BundleReader | _WorkerBundle,
    entry: Entry,
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    staging: Path,
    thread: SourceThread | None = None,
) -> _Outcome:
    """Build one case in the folder `staging`, or say why not (see the module docstring)."""
    plain_spill = staging.with_name(staging.name + ".tar")
    plaintext: BinaryIO
    if entry.size <= IN_MEMORY:
        plaintext = io.BytesIO()
    else:
        fd = os.open(plain_spill, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        plaintext = os.fdopen(fd, "w+b")
    try:
        with plaintext:
            with reader.open_blob(entry.id) as blob:
                source = _HashingReader(blob)
                failure: EnvelopeError | None = None
                try:
                    decrypt_stream(source, plaintext, identities)
                except (NoMatchingIdentity, UnreadableHeader):
                    return _Outcome("not-for-us", opened=False)
                except EnvelopeError as exc:
                    failure = exc  # a file key was unwrapped: made for these keys, then damaged
                sha256 = source.finish()
            if sha256 != entry.sha256:
                return _Outcome(
                    "damaged", True, "its sha256 does not match the manifest: changed on the way"
                )
            if failure is not None:
                return _Outcome("damaged", True, f"it does not decrypt: {failure}")
            plaintext.seek(0)
            try:
                report = extract_container(plaintext, staging, durable=False)
            except ContainerError as exc:
                return _Outcome("refused", True, f"its container is refused: {exc}")
    finally:
        plain_spill.unlink(missing_ok=True)
    problems = report_problems(report.document)
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        return _Outcome("refused", True, _refusal(problems))
    try:
        _write_case_files(staging, entry, thread)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fields = report.document.get("fields")
    return _Outcome("added", True,
                    follow_up_message=isinstance(fields, dict) and set(fields) == {"narrative"})


def _write_case_files(staging: Path, entry: Entry, thread: SourceThread | None) -> None:
    meta: dict[str, Any] = {
        "case_id": entry.id,
        "received_on": entry.received_on,
        "keyring_version": entry.keyring_version,
        "sha256": entry.sha256,
    }
    if thread is not None:
        meta.update(thread=thread.thread, reply_to=thread.reply_to)
    (staging / "case.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


# -- ack --------------------------------------------------------------------------------------


def _filed_sha256(folder: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return load_case(folder).sha256
    return None


def _queued_replies(cases_dir: Path) -> list[Reply]:
    """Every reply written in the case store and not yet sent, as a return file carries it."""
    if not (cases_dir / "cases.db").exists():
        return []
    with CaseStore(cases_dir, reconcile=False) as store:
        queued = store.unsent_replies()
    return [Reply(reply_id, thread, base64.b64encode(ciphertext).decode("ascii"))
            for reply_id, thread, ciphertext in queued]


def mark_replies_sent(cases_dir: Path, document: dict[str, Any]) -> int:
    """Note the replies `document` carries as sent (call once it is written); how many."""
    reply_ids = [r["reply_id"] for r in document.get("replies", [])]
    if reply_ids:
        with CaseStore(cases_dir, reconcile=False) as store:
            store.mark_sent(reply_ids)
    return len(reply_ids)


def make_ack(bundle: Path | None, cases_dir: Path) -> dict[str, Any]:
    """The signed return file (``intake-ack/v2``, see `intake.transfer.ackfile`).

    With `bundle`: it acks the bundle's submissions that are filed in the case
    store (as cases or follow-ups) with the manifest's hash, proven with the
    challenges this store's identities opened in that bundle. Without: it acks
    nothing and proves with the most recently imported bundle. Either way it
    carries every reply queued and not yet sent; `mark_replies_sent` notes
    them sent once the file is written.
    """
    if bundle is None:
        records = _all_records(cases_dir)
        if not records:
            raise IntakeError(
                f"No bundle was imported into {cases_dir} with an identity it was made for, so "
                "a return file could prove nothing; import a bundle first."
            )
        record = max(records, key=lambda r: r["sequence"])
        return build_ack(_openings(record), [], _queued_replies(cases_dir))
    with read_bundle(bundle) as reader:
        manifest = reader.manifest
    if manifest.bundle_id is None:
        raise IntakeError(
            "This bundle carries no challenge (it was made by an older server), so no proof can "
            "be written for it; ask the admin to export again with `intake export --all`."
        )
    path = _record_path(cases_dir, manifest.bundle_id)
    if not path.is_file():
        raise IntakeError(
            f"This bundle was not imported into {cases_dir} with an identity it was made for; "
            "import it first with `intake review import`."
        )
    filed = filed_ids(cases_dir)
    acked = [
        (e.id, e.sha256)
        for e in manifest.entries
        if e.id in filed and _filed_sha256(filed[e.id]) == e.sha256
    ]
    return build_ack(_openings(_read_record(path)), acked, _queued_replies(cases_dir))
