"""The report container: a POSIX tar inside the age file.

Layout, version 2 (a contract shared with the browser worker and the reviewer's tools):

1. ``attachments/NN-<safe name>``: the files, byte for byte, as plain regular
   ustar members (no sparse, link, device or extended-header members, ever).
2. ``report.json``, **last**: ``{"schema": "intake-report/v2", "lang", "fields",
   "attachments": [{"path", "name", "type", "size", "sha256"}]}``. Original
   file names live only here. Coming last, it lets a writer hash each file
   while it encrypts it, in one pass; its length is known before the first
   hash (a SHA-256 hex digest is always 64 characters), so the container's
   length is too.
3. The end-of-archive marker, then zero padding up to the Padmé length of the
   whole, so that the ciphertext leaks only O(log log n) bits of the size.

Version 1 (``intake-report/v1``) had report.json first; it is still read,
never written.

`ContainerReader` produces the container as a pull stream (a file object to
read from) whose total length is known before the first byte: it never holds
an attachment in memory, and the age encryptor can pull from it directly.
Tar headers come from the standard library's `tarfile`; every entry has mtime
0, uid/gid 0 and mode 0644, so the container carries no time or owner.

`extract_container` opens a container from an untrusted producer (the browser
path lets a client build it). It reads the tar one 512-byte header at a time
(parsed by `tarfile.TarInfo.frombuf`, never by tarfile's own member loop, which
would expand sparse maps and read extended headers whole), and accepts only
plain POSIX ustar regular members: no PAX or GNU extension headers of any kind,
no links, devices, FIFOs, or directories but ``attachments/``. Every check of a
member (type, name, size, count, total) runs before a byte of it is copied, so
nothing written can outgrow what arrived. report.json must list exactly the
files present with their sizes and SHA-256, and only zero padding may follow
the archive. Entry names are stripped of bidi controls and zero-width
characters and reduced to a safe ASCII form. On any refusal the output folder
is removed whole.
"""

from __future__ import annotations

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

#: The schema written today: report.json last.
SCHEMA = "intake-report/v2"
#: The schema of version 1 containers (report.json first): read, never written.
SCHEMA_V1 = "intake-report/v1"
REPORT_NAME = "report.json"
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
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
    dot = base.rfind(".")
    ext = base[dot:].lower() if dot >= 0 and _EXTENSION.fullmatch(base[dot:]) else ""
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
    """A file to put in a container. `open` returns its plaintext from the start;
    `sha256` is its lowercase hex digest, which the caller computed on receipt."""

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
    """report.json's bytes (UTF-8, sorted keys), refused over `MAX_REPORT_JSON`."""
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
    """The version 2 container for one report, read as a stream; `length` is known up front.

    Attachments come first, report.json last. The digests are the ones the
    caller declared (the server's spool hashes each file as it arrives).
    """

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
        yield _tar_header(REPORT_NAME, len(self._report))
        yield self._report
        yield bytes(_ceil_block(len(self._report)) - len(self._report))
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


_ATTACHMENTS = "attachments"
_SAFE_ENTRY = re.compile(rf"[0-9]{{2}}-[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_SAFE_NAME - 1}}}")
_NUMBERED = re.compile(r"([0-9]{2})-(.+)", re.DOTALL)
_DRIVE = re.compile(r"[A-Za-z]:.*", re.DOTALL)
_POSIX_MAGIC = b"ustar\x0000"  # magic and version: a POSIX ustar header, not GNU or v7
_ZERO_BLOCK = bytes(BLOCK)
#: Entry types refused, by what they are. Only REGTYPE and AREGTYPE carry a file;
#: the extended headers (PAX, GNU) are refused before their body is read, so no
#: sparse map, long name or size override is ever applied.
_REFUSED_TYPES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.DIRTYPE: "a directory",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.XHDTYPE: "a PAX extended header",
    tarfile.XGLTYPE: "a PAX global header",
    tarfile.SOLARIS_XHDTYPE: "a Solaris extended header",
    tarfile.GNUTYPE_SPARSE: "a GNU sparse file",
    tarfile.GNUTYPE_LONGNAME: "a GNU long name",
    tarfile.GNUTYPE_LONGLINK: "a GNU long link",
}


def _quoted(name: str) -> str:
    return repr(name[:60])


def _safe_entry_name(raw: str, index: int) -> str:
    """``attachments/NN-<safe name>`` for an entry or listed path, or refuse it."""
    if "\x00" in raw:
        raise ContainerError("The container has an entry name with a NUL byte.")
    name = strip_invisible(raw)
    if name.startswith(("/", "\\")) or _DRIVE.fullmatch(name):
        raise ContainerError(f"The container has an absolute path ({_quoted(name)}).")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise ContainerError(f"The container has a path that climbs out ({_quoted(name)}).")
    if len(parts) != 2 or parts[0] != _ATTACHMENTS or not parts[1]:
        raise ContainerError(f"The container has an unexpected entry ({_quoted(name)}).")
    if _SAFE_ENTRY.fullmatch(parts[1]):
        return f"{_ATTACHMENTS}/{parts[1]}"  # already safe: keep it exactly, as tar -x would
    numbered = _NUMBERED.fullmatch(parts[1])
    if numbered:
        return f"{_ATTACHMENTS}/{safe_name(numbered.group(2), int(numbered.group(1)))}"
    return f"{_ATTACHMENTS}/{safe_name(parts[1], index)}"


def _validate_document(raw: bytes) -> dict[str, Any]:
    """report.json's document, checked for shape (the review tools check the fields)."""
    try:
        document = json.loads(raw.decode("utf-8"))
        # A lone surrogate ("\ud800") parses but can never be written back as UTF-8.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        raise ContainerError("report.json is not valid UTF-8 JSON.") from None
    if not isinstance(document, dict):
        raise ContainerError("report.json is not a JSON object.")
    if document.get("schema") not in (SCHEMA, SCHEMA_V1):
        raise ContainerError(f"report.json is neither an {SCHEMA} nor an {SCHEMA_V1} document.")
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
            and type(entry.get("size")) is int  # not a bool, not a float
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
            and _SHA256_HEX.fullmatch(entry["sha256"])
        ):
            raise ContainerError("report.json has a malformed attachment entry.")
    return document


def _listed_files(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """report.json's attachment entries by safe path; their paths are rewritten to it."""
    listed: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(document["attachments"], start=1):
        path = _safe_entry_name(entry["path"], index)
        if path in listed:
            raise ContainerError(f"report.json lists the file {_quoted(path)} twice.")
        entry["path"] = path
        listed[path] = entry
    return listed


class _Source:
    """The container's bytes, read exactly and counted against the length bound."""

    def __init__(self, src: BinaryIO, max_length: int):
        self._src = src
        self._max_length = max_length
        self.position = 0

    def check_room(self, size: int) -> None:
        """Refuse, before reading it, a member of `size` bytes that cannot fit."""
        if size > self._max_length - self.position:
            raise ContainerError("The container is larger than the size limit.")

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the container."""
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            block = self._src.read(remaining)
            if not block:
                break
            chunks.append(block)
            remaining -= len(block)
        data = b"".join(chunks)
        self.position += len(data)
        if self.position > self._max_length:
            raise ContainerError("The container is larger than the size limit.")
        return data

    def read_exact(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise ContainerError(f"The container is truncated inside {what}.")
        return data

    def skip_padding(self, size: int, what: str) -> None:
        """The zero bytes that round `size` up to a whole block."""
        if self.read_exact(_ceil_block(size) - size, what).strip(b"\x00"):
            raise ContainerError(f"The container hides data in the padding of {what}.")

    def rest_is_zeros(self) -> int:
        """Read to the end; refuse anything but zero bytes. Returns how many were read."""
        count = 0
        while block := self.read(CHUNK):
            if block.strip(b"\x00"):
                raise ContainerError("The container has data after its end-of-archive marker.")
            count += len(block)
        return count


def _next_header(source: _Source) -> tarfile.TarInfo | None:
    """The next member's header, checked before its body is read; None at the end marker."""
    block = source.read(BLOCK)
    if not block:
        raise ContainerError("The container ends without its end-of-archive marker.")
    if len(block) < BLOCK:
        raise ContainerError("The container is truncated inside an entry header.")
    if block == _ZERO_BLOCK:
        return None
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise ContainerError("The container has a damaged entry header.") from None
    refused = _REFUSED_TYPES.get(info.type)
    if refused is None and info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        refused = "an entry of an unknown type"
    if refused and not (info.isdir() and info.name == _ATTACHMENTS):
        raise ContainerError(
            f"The container has {refused} ({_quoted(info.name)}); only plain files are accepted."
        )
    if block[257:265] != _POSIX_MAGIC:
        raise ContainerError(
            f"The container has an entry ({_quoted(info.name)}) that is not in POSIX ustar format."
        )
    for field in (block[0:100], block[345:500]):  # name and prefix: NUL-terminated, NUL-padded
        if field.partition(b"\x00")[2].strip(b"\x00"):
            raise ContainerError("The container has an entry name with a NUL byte.")
    if info.size < 0 or (info.isdir() and info.size):
        raise ContainerError("The container has a damaged entry header.")
    return info


def _copy_member(source: _Source, target: Path, size: int, durable: bool) -> str:
    """Copy `size` bytes to the new file `target`, hashing them; returns the hex digest."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        remaining = size
        while remaining:
            block = source.read(min(CHUNK, remaining))
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
    attachment paths) and ``attachments/``. `max_entries` bounds the tar's
    members, `max_total` the container's length in bytes (and so every member
    and their sum). With ``durable=False`` files are not fsynced one by one:
    the caller syncs the file system once for many.
    """
    dest = Path(dest)
    dest.mkdir(mode=0o700)
    try:
        return _extract(_Source(src, max_total), dest, max_entries, durable)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _extract(source: _Source, dest: Path, max_entries: int, durable: bool) -> ExtractedReport:
    document: dict[str, Any] | None = None
    listed: dict[str, dict[str, Any]] | None = None  # known up front only in version 1
    found: dict[str, tuple[int, str]] = {}
    count = 0
    while (info := _next_header(source)) is not None:
        count += 1
        if count > max_entries:
            raise ContainerError(f"The container has more than {max_entries} entries.")
        if document is not None and document["schema"] == SCHEMA:
            raise ContainerError(f"The container has an entry after {REPORT_NAME}.")
        if info.isdir():  # attachments/ itself: nothing to copy
            continue
        source.check_room(_ceil_block(info.size))
        if info.name == REPORT_NAME:
            if document is not None:
                raise ContainerError(f"The container has {REPORT_NAME} twice.")
            if info.size > MAX_REPORT_JSON:
                raise ContainerError(f"{REPORT_NAME} is larger than the limit.")
            raw = source.read_exact(info.size, REPORT_NAME)
            source.skip_padding(info.size, REPORT_NAME)
            document = _validate_document(raw)
            if found and document["schema"] != SCHEMA:
                raise ContainerError(
                    f"{REPORT_NAME} comes after the files only in an {SCHEMA} container."
                )
            if document["schema"] == SCHEMA_V1:
                listed = _listed_files(document)
            continue
        name = _safe_entry_name(info.name, len(found) + 1)
        if name in found:
            raise ContainerError(f"The container has the file {_quoted(name)} twice.")
        if listed is not None:  # version 1: the list is known, so check before copying
            entry = listed.get(name)
            if entry is None:
                raise ContainerError(
                    f"The container holds a file that {REPORT_NAME} does not list "
                    f"({_quoted(name)})."
                )
            if entry["size"] != info.size:
                raise ContainerError(
                    f"The file {_quoted(name)} does not match what {REPORT_NAME} says of it."
                )
        if not found:
            (dest / _ATTACHMENTS).mkdir(mode=0o700)
        found[name] = (info.size, _copy_member(source, dest / name, info.size, durable))
        source.skip_padding(info.size, "an attachment")
    if document is None:
        raise ContainerError(f"The container has no {REPORT_NAME}.")
    if source.rest_is_zeros() < BLOCK:
        raise ContainerError("The container ends without its end-of-archive marker.")
    if listed is None:
        listed = _listed_files(document)
    for path, entry in listed.items():
        if found.get(path) != (entry["size"], entry["sha256"]):
            raise ContainerError(
                f"The file {_quoted(path)} does not match what {REPORT_NAME} says of it."
            )
    if set(found) - set(listed):
        raise ContainerError(f"The container holds files that {REPORT_NAME} does not list.")
    (dest / REPORT_NAME).write_bytes(
        json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    )
    return ExtractedReport(document=document, directory=dest)
