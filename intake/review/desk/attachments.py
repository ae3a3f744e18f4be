"""A case's attachments as the desk sees them: hostile files, described but never opened.

`attachments_of(case_dir, report)` turns report.json's ``attachments`` list
(written by a client the reviewer cannot trust) into `Attachment` records:
the entry's values checked and bounded, and the file found only at a path of
the shape the container reader writes (``attachments/NN-<safe name>``), as a
regular file inside the case folder, never through a link.

`sniff(path)` reads the start and the end of a file and names its type from
the bytes (puremagic's signatures, pure Python, offline), or ``text/plain``
for valid UTF-8 without binary control characters. `view_kind` decides how
the desk may show a file: ``image`` (re-encoded in a subprocess, see
`images`), ``text`` (escaped and bounded: plain text, and the source of a
textual format such as HTML or SVG, never rendered) or ``save`` (download
only, after a warning). Only the bytes decide: a declared type is the
source's word.

Nothing here writes: files are opened read-only, so the SHA-256 recorded at
import stays the reference; `file_sha256` recomputes it to show that it still
holds.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import puremagic

from intake.limits import MAX_ATTACHMENTS

#: Where the container reader puts a file (see `intake.crypto.container.safe_name`).
STORED_PATH = re.compile(r"attachments/[0-9]{2}-[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
MAX_NAME = 255

#: Sniffed types the desk re-encodes and shows (the formats `image_child.FORMATS` opens).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_TYPE = "text/plain"
#: Formats made of text that are shown as source text when their bytes are UTF-8.
TEXTUAL_TYPES = frozenset({"image/svg+xml", "application/xml", "application/json",
                           "message/rfc822", "application/xhtml+xml"})
#: How much of a file the text check reads, and how much of a text file is shown.
TEXT_SNIFF_BYTES = 64 * 1024
MAX_TEXT_SHOWN = 100_000
#: Control characters a text file may not hold: all but tab, line feed, form feed, carriage
#: return and ESC (which the page shows as a mark, never obeys).
_BINARY_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
#: Declared types that say the same thing as a sniffed one.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-zip-compressed": "application/zip",
    "application/x-pdf": "application/pdf",
}
#: Declared types that claim nothing (a browser that did not know).
_NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class Attachment:
    index: int  # 1-based, the position in report.json's list
    name: str  # the source's original file name (hostile text, bounded)
    stored_path: str  # where report.json says it is, bounded; may be malformed
    declared_type: str
    declared_size: int | None
    sha256: str  # the reference recorded in report.json (64 hex), or "" when malformed
    path: Path | None  # the file on disk, or None when it is not where it may be
    size: int | None  # its size on disk

    @property
    def download_name(self) -> str:
        """A safe ASCII file name for saving: the stored name, already ``NN-[A-Za-z0-9._-]``."""
        return self.path.name if self.path is not None else f"attachment-{self.index}.bin"


@dataclass(frozen=True)
class Sniffed:
    mime: str  # "" when the bytes match no known signature and are not text
    candidates: frozenset[str]  # every type whose signature matches equally well
    text: bool = False  # the start of the file is UTF-8 text without binary controls


def _bounded_text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def attachments_of(case_dir: Path, report: dict[str, Any]) -> list[Attachment]:
    entries = report.get("attachments")
    if not isinstance(entries, list):
        return []
    found = []
    for index, entry in enumerate(entries[:MAX_ATTACHMENTS], start=1):
        entry = entry if isinstance(entry, dict) else {}
        stored = _bounded_text(entry.get("path"), 200)
        declared = _bounded_text(entry.get("type"), 200).strip().lower()
        size = entry.get("size")
        digest = _bounded_text(entry.get("sha256"), 64).lower()
        path = _safe_file(case_dir, stored)
        found.append(
            Attachment(
                index=index,
                name=_bounded_text(entry.get("name"), MAX_NAME),
                stored_path=stored,
                declared_type=declared,
                declared_size=size if isinstance(size, int) and size >= 0 else None,
                sha256=digest if SHA256_HEX.fullmatch(digest) else "",
                path=path,
                size=os.lstat(path).st_size if path is not None else None,
            )
        )
    return found


def _safe_file(case_dir: Path, stored: str) -> Path | None:
    """The regular file at `stored` inside `case_dir`, or None; links are never followed."""
    if not STORED_PATH.fullmatch(stored):
        return None
    folder = case_dir / "attachments"
    path = folder / stored.split("/", 1)[1]
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        return path if stat.S_ISREG(os.lstat(path).st_mode) else None
    except OSError:
        return None


def open_attachment(attachment: Attachment):
    """The file, opened read-only without following a link (raises OSError if it is gone)."""
    if attachment.path is None:
        raise FileNotFoundError(attachment.stored_path)
    fd = os.open(attachment.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    return os.fdopen(fd, "rb")


def file_sha256(attachment: Attachment) -> str:
    digest = hashlib.sha256()
    with open_attachment(attachment) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_bounded(attachment: Attachment, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of the file (so that the caller can tell it was longer)."""
    with open_attachment(attachment) as fh:
        return fh.read(limit + 1)


def looks_like_text(head: bytes, *, complete: bool) -> bool:
    """Valid UTF-8 (a character cut at the end of `head` is fine unless `complete`),
    with no control characters but tab, line feeds, form feed and ESC."""
    if _BINARY_CONTROLS.search(head):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def sniff(attachment: Attachment) -> Sniffed:
    """The type the file's bytes say it is."""
    if attachment.path is None:
        return Sniffed("", frozenset())
    with open_attachment(attachment) as fh:
        try:
            matches = puremagic.magic_stream(fh)
        except Exception:  # a library fault on hostile bytes must not take the page down
            matches = []
        fh.seek(0)
        head = fh.read(TEXT_SNIFF_BYTES)
        complete = fh.read(1) == b""
    text = bool(head) and looks_like_text(head, complete=complete)
    if matches:
        best = max(m.confidence for m in matches)
        top = [m for m in matches if m.confidence == best and m.mime_type]
        if top:
            mime = top[0].mime_type.lower()
            return Sniffed(mime, frozenset(m.mime_type.lower() for m in top), text)
    if text:
        return Sniffed(TEXT_TYPE, frozenset({TEXT_TYPE}), True)
    return Sniffed("", frozenset())


def _essence(mime: str) -> str:
    essence = mime.split(";", 1)[0].strip().lower()
    return _ALIASES.get(essence, essence)


def types_disagree(declared: str, sniffed: Sniffed) -> bool:
    """Whether the declared type claims something the bytes contradict.

    A declared type that claims nothing (octet-stream, empty) never disagrees;
    a file whose bytes match no signature disagrees with any specific claim
    except a text type when the bytes are text.
    """
    claim = _essence(declared)
    if claim in _NO_CLAIM:
        return False
    if sniffed.mime == TEXT_TYPE:
        return not (claim.startswith("text/") or claim in ("message/rfc822", "application/json"))
    return claim not in {_essence(c) for c in sniffed.candidates}


def view_kind(sniffed: Sniffed) -> str:
    """``image``, ``text`` or ``save``: how the desk may show a file, by its bytes alone.

    A textual format (HTML, XML, SVG, JSON, an e-mail) whose bytes are UTF-8 text is shown
    as its source text, escaped: never rendered.
    """
    if sniffed.mime in IMAGE_TYPES:
        return "image"
    if sniffed.text and (sniffed.mime.startswith("text/") or sniffed.mime in TEXTUAL_TYPES):
        return "text"
    return "save"


@dataclass(frozen=True)
class TextPreview:
    text: str
    cut: bool
    total_bytes: int


def text_preview(attachment: Attachment, total_bytes: int) -> TextPreview | None:
    """At most `MAX_TEXT_SHOWN` characters of a UTF-8 text file; None if it is not text."""
    # Four bytes a character at most: read enough for MAX_TEXT_SHOWN characters.
    data = read_bounded(attachment, MAX_TEXT_SHOWN * 4)
    longer = len(data) > MAX_TEXT_SHOWN * 4
    data = data[: MAX_TEXT_SHOWN * 4]
    if not looks_like_text(data, complete=not longer):
        return None
    text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not longer)
    cut = longer or len(text) > MAX_TEXT_SHOWN
    return TextPreview(text[:MAX_TEXT_SHOWN], cut, total_bytes)
