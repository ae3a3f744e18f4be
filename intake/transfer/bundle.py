"""The export bundle: its manifest and a reader that trusts nothing in it.

A bundle is an uncompressed tar written by `intake export` (a contract shared
with the reviewers' tools, see the architecture):

- ``manifest.json``, first: ``{"format": "intake-export/v1", "bundle": <32
  hex>, "submissions": [{"id", "received_on", "size", "sha256",
  "keyring_version"}], "challenges": [{"recipient_id", "ciphertext"}]}``.
  ``bundle`` and ``challenges`` (see `intake.transfer.proof`) are absent from
  bundles made before reviewer proofs; such bundles still import. Nothing in
  it links two submissions beyond their being in the same bundle.
- ``submissions/<id>.age``, one per manifest entry, byte for byte the blob.
- ``threads.age``, listed in the manifest as ``"threads": {"size", "sha256"}``
  when the bundle holds submissions sent through a source's mailbox: an age
  file to the keyring's active recipients whose plaintext is
  ``{"format": "intake-threads/v1", "submissions": [{"id", "thread",
  "reply_to"}]}`` followed by spaces up to its Padmé length
  (`threads_plaintext`, `parse_threads`). It is what says which submissions
  come from one source, so it is never in the clear. Bundles without it
  (older servers, or no mailbox) import as before.

`parse_manifest` bounds the manifest in size, in number of entries and in
the shape of each (exact keys, ASCII ids by `re.fullmatch`, sizes within
`MAX_BLOB`). `BundleReader` checks every member *before* anything is read
from it: plain regular files only (no GNU or PAX sparse member, no link,
device, FIFO or directory), exactly the members the manifest lists, each
once, each of the size the manifest gives, each wholly inside the file (a
bundle cut short is refused at once, not half-way through an import). A
refusal is one `BundleError` sentence; nothing is written.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from intake.errors import IntakeError
from intake.limits import MAX_AGE_HEADER, MAX_CONTAINER, MAX_RECIPIENTS

EXPORT_FORMAT = "intake-export/v1"
MANIFEST = "manifest.json"
THREADS = "threads.age"
THREADS_FORMAT = "intake-threads/v1"

#: Submissions one bundle may list; a larger export is split into several bundles.
MAX_BUNDLE_SUBMISSIONS = 100_000
#: Bound on manifest.json: about 190 bytes per entry, with room to spare.
MAX_MANIFEST = 64 * 1024 * 1024
#: Bound on one blob: the largest container with age's framing (16 bytes per
#: 64 KiB chunk, a nonce) and the largest header.
MAX_BLOB = MAX_CONTAINER + MAX_CONTAINER // 4096 + MAX_AGE_HEADER + 64
#: Bound on a challenge's base64 age ciphertext (about 300 characters in practice).
MAX_CHALLENGE_CIPHERTEXT = 2048
#: Bound on a keyring version in a manifest (the keyring's own bound is far lower in practice).
MAX_KEYRING_VERSION = 2**31 - 1
#: Bound on threads.age: about 150 bytes per submission of the largest bundle, padded, with
#: age's framing and a header of MAX_RECIPIENTS stanzas.
MAX_THREADS = 32 * 1024 * 1024

SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")
BUNDLE_ID = re.compile(r"[0-9a-f]{32}")
SHA256 = re.compile(r"[0-9a-f]{64}")
#: A keyring recipient id (the keyring's own rule; checked again here, the manifest is hostile).
RECIPIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A source mailbox's thread, and its reply recipient (an age X25519 key: Bech32, 58 data
#: characters after "age1").
THREAD = re.compile(r"[0-9a-f]{32}")
REPLY_TO = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MEMBER = re.compile(r"submissions/([0-9a-f]{32})\.age")

_MANIFEST_KEYS = {"format", "bundle", "submissions", "challenges", "threads"}
_THREADS_KEYS = {"size", "sha256"}
_THREAD_ENTRY_KEYS = {"id", "thread", "reply_to"}
_ENTRY_KEYS = {"id", "received_on", "size", "sha256", "keyring_version"}
_CHALLENGE_KEYS = {"recipient_id", "ciphertext"}

#: Member types a bundle may hold: plain regular files (GNU sparse and
#: contiguous files are "regular" to `tarfile.TarInfo.isreg`, not here).
_PLAIN_FILE = (tarfile.REGTYPE, tarfile.AREGTYPE)
#: Headers that `tarfile` reads whole into memory before the member they
#: describe (long names, PAX records); bundles from `intake export` have none.
_EXTENSIONS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
MAX_EXTENSION = 64 * 1024
MAX_EXTENSIONS_PER_MEMBER = 4
#: What `tarfile` raises besides TarError on a malformed header or PAX record.
_TAR_FAILURES = (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeError)

AGAIN = "copy it again, or ask the admin to export again (`intake export --all`)"


class BundleError(IntakeError):
    """A bundle that cannot be trusted as a whole; nothing of it is imported."""


@dataclass(frozen=True)
class Entry:
    """One submission as the manifest describes it."""

    id: str
    received_on: str  # ISO day
    size: int
    sha256: str
    keyring_version: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_on": self.received_on,
            "size": self.size,
            "sha256": self.sha256,
            "keyring_version": self.keyring_version,
        }


@dataclass(frozen=True)
class Challenge:
    """A random secret, age-encrypted to one keyring recipient (see `intake.transfer.proof`)."""

    recipient_id: str
    ciphertext: bytes


@dataclass(frozen=True)
class ThreadsMember:
    """What the manifest says of threads.age: its size and SHA-256."""

    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    bundle_id: str | None  # None for a bundle made before reviewer proofs
    entries: list[Entry]
    challenges: list[Challenge]
    threads: ThreadsMember | None = None  # None when the bundle has no threads.age


@dataclass(frozen=True)
class SourceThread:
    """The source mailbox a submission came through (from threads.age)."""

    thread: str
    reply_to: str


def member_name(submission_id: str) -> str:
    return f"submissions/{submission_id}.age"


def manifest_document(
    bundle_id: str, entries: list[Entry], challenges: list[Challenge],
    threads: ThreadsMember | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "bundle": bundle_id,
        "submissions": [e.as_json() for e in entries],
        "challenges": [
            {
                "recipient_id": c.recipient_id,
                "ciphertext": base64.b64encode(c.ciphertext).decode("ascii"),
            }
            for c in challenges
        ],
    }
    if threads is not None:
        document["threads"] = {"size": threads.size, "sha256": threads.sha256}
    return document


def threads_plaintext(threads: dict[str, SourceThread]) -> bytes:
    """threads.age's plaintext: the JSON, then spaces up to its Padmé length."""
    from intake.crypto.container import padme  # the container's padding, one definition

    document = {
        "format": THREADS_FORMAT,
        "submissions": [
            {"id": submission_id, "thread": t.thread, "reply_to": t.reply_to}
            for submission_id, t in sorted(threads.items())
        ],
    }
    data = json.dumps(document, separators=(",", ":")).encode("ascii")
    return data + b" " * (padme(len(data)) - len(data))


def parse_threads(plaintext: bytes, manifest: Manifest) -> dict[str, SourceThread]:
    """Submission id -> its source's thread, from threads.age's plaintext; checked whole.

    Every id must be one of the manifest's, once; every thread and reply_to of
    their exact shape. A `BundleError` otherwise.
    """
    malformed = BundleError(f"The bundle's threads.age is malformed; {AGAIN}.")
    try:
        document = json.loads(plaintext.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise malformed from None
    if not (isinstance(document, dict) and set(document) == {"format", "submissions"}
            and document["format"] == THREADS_FORMAT
            and isinstance(document["submissions"], list)
            and len(document["submissions"]) <= len(manifest.entries)):
        raise malformed
    listed = {e.id for e in manifest.entries}
    found: dict[str, SourceThread] = {}
    for raw in document["submissions"]:
        if not (isinstance(raw, dict) and set(raw) == _THREAD_ENTRY_KEYS
                and all(isinstance(v, str) for v in raw.values())
                and raw["id"] in listed and raw["id"] not in found
                and THREAD.fullmatch(raw["thread"]) and REPLY_TO.fullmatch(raw["reply_to"])):
            raise malformed
        found[raw["id"]] = SourceThread(raw["thread"], raw["reply_to"])
    return found


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise BundleError(f"The bundle's manifest repeats a key in one object; {AGAIN}.")
    return dict(pairs)


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_day(value: Any) -> bool:
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _entry(raw: Any) -> Entry:
    if not (
        isinstance(raw, dict)
        and set(raw) == _ENTRY_KEYS
        and isinstance(raw["id"], str)
        and SUBMISSION_ID.fullmatch(raw["id"])
        and isinstance(raw["sha256"], str)
        and SHA256.fullmatch(raw["sha256"])
        and _is_int(raw["size"], 0, MAX_BLOB)
        and _is_int(raw["keyring_version"], 1, MAX_KEYRING_VERSION)
        and _is_day(raw["received_on"])
    ):
        raise BundleError(f"The bundle's manifest has a malformed submission entry; {AGAIN}.")
    return Entry(**raw)


def _challenge(raw: Any) -> Challenge:
    if not (
        isinstance(raw, dict)
        and set(raw) == _CHALLENGE_KEYS
        and isinstance(raw["recipient_id"], str)
        and RECIPIENT_ID.fullmatch(raw["recipient_id"])
        and isinstance(raw["ciphertext"], str)
        and len(raw["ciphertext"]) <= MAX_CHALLENGE_CIPHERTEXT
        and _BASE64.fullmatch(raw["ciphertext"])
    ):
        raise BundleError(f"The bundle's manifest has a malformed challenge; {AGAIN}.")
    try:
        ciphertext = base64.b64decode(raw["ciphertext"], validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"The bundle's manifest has a malformed challenge; {AGAIN}.") from None
    return Challenge(raw["recipient_id"], ciphertext)


def parse_manifest(data: bytes) -> Manifest:
    """The manifest in `data`, or a `BundleError` saying what is wrong with it."""
    if len(data) > MAX_MANIFEST:
        raise BundleError(f"The bundle's manifest is larger than any export writes; {AGAIN}.")
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError includes JSONDecodeError and over-long integers; RecursionError deep nesting.
        raise BundleError(f"The bundle's manifest is not valid JSON; {AGAIN}.") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise BundleError(f"This is not an intake export bundle ({EXPORT_FORMAT}).")
    if not set(document) <= _MANIFEST_KEYS:
        raise BundleError(
            "The bundle's manifest has fields this version does not know; "
            "update the intake on this machine, or ask the admin to export again."
        )
    raw_entries = document.get("submissions")
    if not isinstance(raw_entries, list):
        raise BundleError(f"The bundle's manifest lists no submissions; {AGAIN}.")
    if len(raw_entries) > MAX_BUNDLE_SUBMISSIONS:
        raise BundleError(
            f"The bundle lists more than {MAX_BUNDLE_SUBMISSIONS} submissions, more than "
            f"any export writes; {AGAIN}."
        )
    entries = [_entry(raw) for raw in raw_entries]
    if len({e.id for e in entries}) != len(entries):
        raise BundleError(f"The bundle's manifest lists a submission twice; {AGAIN}.")
    bundle_id = document.get("bundle")
    if bundle_id is not None and not (
        isinstance(bundle_id, str) and BUNDLE_ID.fullmatch(bundle_id)
    ):
        raise BundleError(f"The bundle's manifest has a malformed bundle id; {AGAIN}.")
    raw_challenges = document.get("challenges", [])
    if not isinstance(raw_challenges, list) or len(raw_challenges) > MAX_RECIPIENTS:
        raise BundleError(f"The bundle's manifest has a malformed challenge list; {AGAIN}.")
    challenges = [_challenge(raw) for raw in raw_challenges]
    if len({c.recipient_id for c in challenges}) != len(challenges):
        raise BundleError(f"The bundle's manifest has two challenges for one reviewer; {AGAIN}.")
    if challenges and bundle_id is None:
        raise BundleError(f"The bundle's manifest has challenges but no bundle id; {AGAIN}.")
    threads = None
    if "threads" in document:
        raw = document["threads"]
        if not (isinstance(raw, dict) and set(raw) == _THREADS_KEYS
                and _is_int(raw["size"], 1, MAX_THREADS)
                and isinstance(raw["sha256"], str) and SHA256.fullmatch(raw["sha256"])):
            raise BundleError(f"The bundle's manifest describes threads.age wrongly; {AGAIN}.")
        threads = ThreadsMember(raw["size"], raw["sha256"])
    return Manifest(bundle_id, entries, challenges, threads)


def _shown(name: str) -> str:
    """A member name for a message: hostile, so cut short, quoted, every non-ASCII escaped."""
    return ascii(name[:60])


class BundleReader:
    """An export bundle whose every member was checked; see the module docstring.

    Use as a context manager. `open_blob` reads one submission's bytes, never
    more than the manifest gives.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            kind = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise BundleError(f"There is no bundle at {self.path}.") from None
        if stat.S_ISDIR(kind):
            raise BundleError(f"{self.path} is a folder; give the bundle's .tar file.")
        if not stat.S_ISREG(kind):  # a FIFO would block, a device never end
            raise BundleError(f"{self.path} is not a regular file; give the bundle's .tar file.")
        self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self._length = os.fstat(self._file.fileno()).st_size
            self._archive = self._open_tar()
            try:
                self.manifest, self._members = self._check()
            except BaseException:
                self._archive.close()
                raise
        except BaseException:
            self._file.close()
            raise

    def _open_tar(self) -> tarfile.TarFile:
        if self._length == 0:
            raise BundleError(f"{self.path} is empty; {AGAIN}.")
        self._check_header_at(0)  # tarfile.open parses the first member at once
        try:
            return tarfile.open(fileobj=self._file, mode="r:")
        except _TAR_FAILURES:
            raise BundleError(
                f"{self.path} is not an intake export bundle (not a tar file), or it is cut "
                f"short; {AGAIN}."
            ) from None

    def _check_header_at(self, offset: int) -> None:
        """Refuse, before `tarfile` parses them, the headers it would expand in memory.

        An old-GNU sparse header makes it read an unbounded chain of sparse
        maps, and long-name and PAX headers are read whole: a sparse member
        is refused at once, an extended header larger than `MAX_EXTENSION`
        too, and a PAX record that declares a sparse file.
        """
        for _ in range(MAX_EXTENSIONS_PER_MEMBER + 1):
            block = os.pread(self._file.fileno(), tarfile.BLOCKSIZE, offset)
            if len(block) < tarfile.BLOCKSIZE:
                return  # the end, or cut short: tarfile says which
            kind = block[156:157]
            if kind == tarfile.GNUTYPE_SPARSE:
                raise BundleError("The bundle holds a special or sparse file; it was refused.")
            if kind not in _EXTENSIONS:
                return
            try:
                size = tarfile.nti(block[124:136])
            except _TAR_FAILURES:
                return  # a malformed header: tarfile refuses it
            if not 0 <= size <= MAX_EXTENSION:
                raise BundleError(
                    "The bundle holds an oversized extended tar header; it was refused."
                )
            record = os.pread(self._file.fileno(), size, offset + tarfile.BLOCKSIZE)
            if b"GNU.sparse." in record:
                raise BundleError("The bundle holds a sparse file; it was refused.")
            offset += tarfile.BLOCKSIZE + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        raise BundleError("The bundle holds a chain of extended tar headers; it was refused.")

    def _next(self) -> tarfile.TarInfo | None:
        if self._archive.firstmember is None:  # tarfile.open took the first one already
            self._check_header_at(self._archive.offset)
        try:
            return self._archive.next()
        except _TAR_FAILURES:
            raise BundleError(
                f"The bundle is damaged or cut short (was the USB stick removed before the "
                f"copy finished?); {AGAIN}."
            ) from None

    def _check_member(self, member: tarfile.TarInfo) -> None:
        name = _shown(member.name)
        if member.type not in _PLAIN_FILE:
            kind = "link" if member.issym() or member.islnk() else "special or sparse file"
            raise BundleError(f"The bundle holds a {kind} ({name}); it was refused.")
        if member.sparse is not None or any(k.startswith("GNU.sparse") for k in member.pax_headers):
            raise BundleError(f"The bundle holds a sparse file ({name}); it was refused.")
        if member.offset_data + member.size > self._length:
            raise BundleError(
                f"The bundle is cut short inside {name} (was the USB stick removed before "
                f"the copy finished?); {AGAIN}."
            )

    def _check(self) -> tuple[Manifest, dict[str, tarfile.TarInfo]]:
        first = self._next()
        if first is None or first.name != MANIFEST:
            raise BundleError(
                "The bundle does not start with manifest.json; it is not an intake export "
                "bundle, or it is damaged."
            )
        self._check_member(first)
        if first.size > MAX_MANIFEST:
            raise BundleError(f"The bundle's manifest is larger than any export writes; {AGAIN}.")
        manifest = parse_manifest(self._read(first, first.size))
        expected: dict[str, Entry | ThreadsMember] = {
            member_name(e.id): e for e in manifest.entries
        }
        if manifest.threads is not None:
            expected[THREADS] = manifest.threads
        members: dict[str, tarfile.TarInfo] = {}
        while (member := self._next()) is not None:
            if member.name == MANIFEST or member.name in members:
                raise BundleError(
                    f"The bundle holds {_shown(member.name)} twice; it was refused."
                )
            entry = expected.get(member.name)
            if entry is None:
                raise BundleError(
                    f"The bundle holds a file its manifest does not list ({_shown(member.name)}); "
                    "it was refused."
                )
            self._check_member(member)
            if member.size != entry.size:
                raise BundleError(
                    f"The bundle's {_shown(member.name)} is not the size its manifest gives; "
                    f"{AGAIN}."
                )
            members[member.name] = member
        missing = [name for name in expected if name not in members]
        if missing:
            raise BundleError(
                f"The bundle lacks {missing[0]} (and {len(missing) - 1} more); export it again "
                "on the server (`intake export --all`)."
            )
        return manifest, members

    def _read(self, member: tarfile.TarInfo, limit: int) -> bytes:
        with self.open_member(member) as fh:
            return fh.read(limit)

    def open_member(self, member: tarfile.TarInfo) -> BinaryIO:
        data = self._archive.extractfile(member)
        assert data is not None  # a checked plain file always has data
        return data  # type: ignore[return-value]

    def open_blob(self, submission_id: str) -> BinaryIO:
        """The blob of `submission_id` as it arrived: exactly its manifest size."""
        return self.open_member(self._members[member_name(submission_id)])

    def read_threads(self) -> bytes | None:
        """threads.age's bytes (at most `MAX_THREADS`), or None if the bundle has none."""
        member = self._members.get(THREADS)
        return None if member is None else self._read(member, MAX_THREADS)

    def blob_extent(self, submission_id: str) -> tuple[int, int]:
        """Where the blob of `submission_id` lies in the bundle file: (offset, length).

        For a reader with a descriptor of its own (the importer's worker processes).
        """
        member = self._members[member_name(submission_id)]
        return member.offset_data, member.size

    def file_status(self) -> os.stat_result:
        """The status of the bundle file this reader checked (to know it again)."""
        return os.fstat(self._file.fileno())

    def close(self) -> None:
        self._archive.close()
        self._file.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
