"""The report container: a POSIX tar inside the age file.

Layout (a contract shared with the browser code and the reviewer's tools):

1. ``report.json``: ``{"schema": "intake-report/v1", "lang", "fields",
   "attachments": [{"path", "name", "type", "size", "sha256"}]}``. Original
   file names live only here.
2. ``attachments/NN-<safe name>``: the files, byte for byte.
3. The end-of-archive marker, then zero padding up to the Padmé length of the
   whole, so that the ciphertext leaks only O(log log n) bits of the size.

`ContainerReader` produces the container as a pull stream (a file object to
read from) whose total length is known before the first byte: it never holds
an attachment in memory, and the age encryptor can pull from it directly.
Tar headers come from the standard library's `tarfile`; every entry has mtime
0, uid/gid 0 and mode 0644, so the container carries no time or owner.

`extract_container` opens a container from an untrusted producer (the browser
path lets a client build it). It refuses absolute paths, ``..``, links,
devices, FIFOs, anything but regular files, more than ``1 + MAX_ATTACHMENTS``
entries, entries or totals over the size bounds, and a report.json that does
not list exactly the files present with their sizes and hashes. Entry names
are stripped of bidi controls and zero-width characters and reduced to a safe
ASCII form; on failure nothing of the output is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from intake.errors import ContainerError
from intake.limits import MAX_ATTACHMENTS, MAX_CONTAINER, MAX_REPORT_JSON

SCHEMA = "intake-report/v1"
BLOCK = 512
CHUNK = 1 << 16
#: Characters that reorder or hide text: they disguise extensions ("photo\u202egpj.exe").
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
ZERO_WIDTH = frozenset(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"])
MAX_SAFE_NAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def strip_invisible(text: str) -> str:
    """Remove bidi controls and zero-width characters from `text`."""
    return "".join(ch for ch in text if ch not in BIDI_CONTROLS and ch not in ZERO_WIDTH)


MAX_ORIGINAL_NAME = 255


def clean_original_name(name: str) -> str:
    """The original file name as report.json keeps it: NFC, no invisible characters,
    no path, no control characters, at most 255 characters with the extension kept."""
    name = strip_invisible(unicodedata.normalize("NFC", name))
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > MAX_ORIGINAL_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = "." + ext if dot and stem and len(ext) <= 16 else ""
        name = name[: MAX_ORIGINAL_NAME - len(keep)] + keep
    return name


def safe_name(name: str, index: int) -> str:
    """``NN-<safe name>``: the name an attachment gets inside the tar and on disk.

    ASCII letters, digits, ``.``, ``_`` and ``-`` only, at most
    `MAX_SAFE_NAME` characters, no leading dot, the extension kept: a name can
    neither escape a folder nor disguise what it is.
    """
    base = _UNSAFE.sub("_", unicodedata.normalize("NFKC", clean_original_name(name)))
    match = _EXTENSION.search(base)
    ext = match.group(0).lower() if match else ""
    stem = base[: len(base) - len(ext)] if ext else base
    stem = stem.strip("._-")[: MAX_SAFE_NAME - len(ext)].strip("._-") or "file"
    return f"{index:02d}-{stem}{ext}"


def padme(length: int) -> int:
    """The Padmé padded length (Nikitin et al., PETS 2019) of `length` bytes."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # floor(log2 L)
    size_bits = exponent.bit_length()  # floor(log2 E) + 1
    mask = (1 << (exponent - size_bits)) - 1
    return (length + mask) & ~mask


def _ceil_block(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def unpadded_length(report_json_size: int, attachment_sizes: Sequence[int]) -> int:
    """Bytes of the tar up to and including its end-of-archive marker."""
    total = BLOCK + _ceil_block(report_json_size)
    for size in attachment_sizes:
        total += BLOCK + _ceil_block(size)
    return total + 2 * BLOCK


@dataclass(frozen=True)
class Attachment:
    """A file to put in a container. `open` returns its plaintext from the start."""

    name: str
    type: str
    size: int
    sha256: str
    open: Callable[[], BinaryIO]


def report_document(
    lang: str, fields: dict[str, Any], attachments: Sequence[Attachment]
) -> dict[str, Any]:
    """The report.json document for `fields` and `attachments` (in that order)."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise ContainerError(f"A report can carry at most {MAX_ATTACHMENTS} files.")
    return {
        "schema": SCHEMA,
        "lang": lang,
        "fields": fields,
        "attachments": [
            {
                "path": f"attachments/{safe_name(a.name, i)}",
                "name": clean_original_name(a.name),
                "type": a.type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for i, a in enumerate(attachments, start=1)
        ],
    }


def encode_report(document: dict[str, Any]) -> bytes:
    data = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    if len(data) > MAX_REPORT_JSON:
        raise ContainerError("The report's text is too long; shorten it and try again.")
    return data


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii", errors="strict")


class ContainerReader(io.RawIOBase):
    """The container for one report, read as a stream; `length` is known up front."""

    def __init__(self, lang: str, fields: dict[str, Any], attachments: Sequence[Attachment]):
        super().__init__()
        self.document = report_document(lang, fields, attachments)
        self._report = encode_report(self.document)
        self._attachments = list(attachments)
        self.unpadded = unpadded_length(len(self._report), [a.size for a in attachments])
        self.length = padme(self.unpadded)
        self._chunks = self._generate()
        self._pending = memoryview(b"")
        self.position = 0

    def readable(self) -> bool:
        return True

    def _generate(self) -> Iterator[bytes]:
        yield _tar_header("report.json", len(self._report))
        yield self._report
        yield bytes(_ceil_block(len(self._report)) - len(self._report))
        for entry, attachment in zip(self.document["attachments"], self._attachments, strict=True):
            yield _tar_header(entry["path"], attachment.size)
            remaining = attachment.size
            with attachment.open() as fh:
                while remaining:
                    block = fh.read(min(CHUNK, remaining))
                    if not block:
                        break
                    remaining -= len(block)
                    yield block
                if remaining or fh.read(1):
                    raise ContainerError(
                        "An attachment changed size while the report was being built."
                    )
            yield bytes(_ceil_block(attachment.size) - attachment.size)
        zeros = self.length - self.unpadded + 2 * BLOCK
        while zeros:
            step = min(CHUNK, zeros)
            yield bytes(step)
            zeros -= step

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.position += n
        return n


@dataclass(frozen=True)
class ExtractedReport:
    """A report opened by `extract_container`: its document and where its files went."""

    document: dict[str, Any]
    directory: Path


_ATTACHMENT_PREFIX = "attachments/"
_SAFE_ENTRY = re.compile(rf"^\d{{2}}-[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_SAFE_NAME - 1}}}$")


def _safe_entry_name(raw: str, index: int) -> str:
    if "\x00" in raw:
        raise ContainerError("The container has an entry name with a NUL byte.")
    name = strip_invisible(raw)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ContainerError(f"The container has an absolute path ({name[:60]!r}); it was refused.")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise ContainerError(
            f"The container has a path that climbs out ({name[:60]!r}); it was refused."
        )
    if len(parts) != 2 or parts[0] != "attachments" or not parts[1]:
        raise ContainerError(f"The container has an unexpected entry ({name[:60]!r}).")
    if _SAFE_ENTRY.match(parts[1]):
        return _ATTACHMENT_PREFIX + parts[1]  # already safe: keep it exactly, as tar -x would
    match = re.match(r"^(\d{2})-(.+)$", parts[1])
    if match:
        return _ATTACHMENT_PREFIX + safe_name(match.group(2), int(match.group(1)))
    return _ATTACHMENT_PREFIX + safe_name(parts[1], index)


def _validate_document(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ContainerError("report.json is not valid UTF-8 JSON.") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ContainerError(f"report.json is not an {SCHEMA} document.")
    if not isinstance(document.get("lang"), str) or not isinstance(document.get("fields"), dict):
        raise ContainerError("report.json lacks its language or its fields.")
    attachments = document.get("attachments")
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ContainerError("report.json has a malformed or too long attachment list.")
    for entry in attachments:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("type"), str)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
        ):
            raise ContainerError("report.json has a malformed attachment entry.")
    return document


def _copy_member(src: BinaryIO, target: Path, size: int, durable: bool) -> str:
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        remaining = size
        while remaining:
            block = src.read(min(CHUNK, remaining))
            if not block:
                raise ContainerError("The container is truncated inside an attachment.")
            digest.update(block)
            out.write(block)
            remaining -= len(block)
        out.flush()
        if durable:
            os.fsync(out.fileno())
    return digest.hexdigest()


def extract_container(
    src: BinaryIO,
    dest: Path,
    *,
    max_entries: int = 1 + MAX_ATTACHMENTS,
    max_total: int = MAX_CONTAINER,
    durable: bool = True,
) -> ExtractedReport:
    """Open the container in `src` into the new folder `dest`, or refuse it whole.

    `dest` must not exist; it is created, and removed again if anything is
    wrong. On success it holds ``report.json`` (re-encoded, with the safe
    attachment paths) and ``attachments/``. With ``durable=False`` files are
    not fsynced one by one: the caller syncs the file system once for many.
    """
    dest = Path(dest)
    dest.mkdir(mode=0o700)
    try:
        return _extract(src, dest, max_entries, max_total, durable)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _extract(
    src: BinaryIO, dest: Path, max_entries: int, max_total: int, durable: bool
) -> ExtractedReport:
    document: dict[str, Any] | None = None
    found: dict[str, tuple[int, str]] = {}
    total = 0
    count = 0
    try:
        archive = tarfile.open(  # noqa: SIM115 (closed below, after the member loop)
            fileobj=src, mode="r|", encoding="utf-8", errors="surrogateescape"
        )
    except tarfile.TarError:
        raise ContainerError("The decrypted data is not a tar container.") from None
    with contextlib.closing(archive):
        try:
            for member in archive:
                count += 1
                if count > max_entries:
                    raise ContainerError(
                        f"The container has more than {max_entries} entries; it was refused."
                    )
                if member.isdir() and member.name.rstrip("/") == "attachments":
                    continue
                if member.issym() or member.islnk():
                    raise ContainerError(
                        f"The container has a link ({member.name[:60]!r}); links are refused."
                    )
                if not member.isreg():
                    raise ContainerError(
                        f"The container has a special entry ({member.name[:60]!r}); "
                        "only files are accepted."
                    )
                total += member.size
                if member.size > max_total or total > max_total:
                    raise ContainerError(
                        "The container is larger than the size limit; it was refused."
                    )
                data = archive.extractfile(member)
                assert data is not None
                if document is None:
                    if member.name != "report.json":
                        raise ContainerError("The container does not start with report.json.")
                    if member.size > MAX_REPORT_JSON:
                        raise ContainerError("report.json is larger than the limit.")
                    document = _validate_document(data.read())
                    continue
                name = _safe_entry_name(member.name, len(found) + 1)
                if name in found:
                    raise ContainerError(f"The container has the file {name!r} twice.")
                if not found:
                    (dest / "attachments").mkdir(mode=0o700)
                found[name] = (member.size, _copy_member(data, dest / name, member.size, durable))
        except tarfile.TarError as exc:
            raise ContainerError(f"The container is damaged ({exc}).") from None
    if document is None:
        raise ContainerError("The container is empty.")
    listed: set[str] = set()
    for i, entry in enumerate(document["attachments"], start=1):
        path = _safe_entry_name(entry["path"], i)
        if path in listed:
            raise ContainerError(f"report.json lists the file {path!r} twice.")
        if path not in found or found[path] != (entry["size"], entry["sha256"].lower()):
            raise ContainerError(f"The file {path!r} does not match what report.json says of it.")
        entry["path"] = path
        listed.add(path)
    if listed != set(found):
        raise ContainerError("The container holds files that report.json does not list.")
    (dest / "report.json").write_bytes(
        json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    )
    return ExtractedReport(document=document, directory=dest)
