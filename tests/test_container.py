"""The report container: round trips, Padmé padding, safe names, and hostile tars refused whole."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import subprocess
import tarfile
import tempfile
import unicodedata
from pathlib import Path

import pytest
from conftest import require_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.crypto import envelope
from intake.crypto.container import (
    Attachment,
    ContainerReader,
    clean_original_name,
    extract_container,
    padme,
    safe_name,
)
from intake.errors import ContainerError
from intake.limits import MAX_ATTACHMENTS

KIB = 1024
CHUNK_SIZES = [0, 1, 65535, 65536, 65537, 131072]
SAFE_DISK_NAME = re.compile(r"^\d\d-[A-Za-z0-9._-]+$")
# Written out here rather than imported, so that the test does not trust the module's own lists.
BIDI = [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
INVISIBLE = frozenset(BIDI + ZERO_WIDTH)

FAST = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- helpers


def attachment(name: str, data: bytes, type_: str = "application/octet-stream") -> Attachment:
    return Attachment(
        name=name,
        type=type_,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        open=lambda: io.BytesIO(data),
    )


def build(fields: dict, files: list[tuple[str, bytes]], lang: str = "en") -> ContainerReader:
    return ContainerReader(lang, fields, [attachment(n, d) for n, d in files])


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def check_extracted(result, fields: dict, lang: str, files: list[tuple[str, bytes]]) -> None:
    """Every byte, every field and every name of the input came back, under safe names."""
    document = result.document
    assert document["fields"] == fields
    assert document["lang"] == lang
    assert len(document["attachments"]) == len(files)
    on_disk = json.loads((result.directory / "report.json").read_bytes().decode("utf-8"))
    assert on_disk == document
    expected_files = {"report.json"}
    if files:
        expected_files.add("attachments")
    for (name, data), entry in zip(files, document["attachments"], strict=True):
        path = result.directory / entry["path"]
        assert path.read_bytes() == data
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        expected_files.add(entry["path"])

        disk_name = path.name
        assert entry["path"] == f"attachments/{disk_name}"
        assert SAFE_DISK_NAME.match(disk_name), disk_name
        assert not disk_name.startswith(".")

        kept = entry["name"]
        assert kept == clean_original_name(name)
        assert not INVISIBLE.intersection(kept)
        assert "/" not in kept and "\\" not in kept
        assert all(unicodedata.category(ch)[0] != "C" for ch in kept)
        assert is_subsequence(kept, unicodedata.normalize("NFC", name))
        plain = (
            unicodedata.is_normalized("NFC", name)
            and not re.search(r"[/\\]", name)
            and all(unicodedata.category(ch)[0] != "C" for ch in name)
            and not INVISIBLE.intersection(name)
            and name == name.strip()
            and len(name) <= 255
        )
        if plain:
            assert kept == name
    assert tree(result.directory) == expected_files


# --------------------------------------------------------------------------- strategies

TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
SPICE = ["\u202e", "\u200f", "مرحبا بالعالم", "😀", "👩\u200d💻", "א", "\n", "\""]
field_text = st.one_of(
    st.text(TEXT_CHARS, max_size=30),
    st.lists(st.sampled_from(SPICE) | st.text(TEXT_CHARS, max_size=4), max_size=8).map("".join),
)
fields_strategy = st.dictionaries(
    field_text, st.one_of(field_text, st.lists(field_text, max_size=4)), max_size=5
)

NAME_PIECES = [
    *BIDI, *ZERO_WIDTH, "../", "/", "\\", "..\\", ".", "..", ".hidden", "ملف", "تقرير",
    "😀", "🇺🇦", "photo", "gpj.exe", ".pdf", ".JPG", " ", "\t", "\x00", "C:", "~", "-", "_",
]
name_strategy = st.one_of(
    st.lists(
        st.sampled_from(NAME_PIECES)
        | st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
        max_size=12,
    ).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=200, max_size=400),
    st.builds(lambda n: "a" * n + ".pdf", st.integers(100, 400)),
)
size_strategy = st.sampled_from(CHUNK_SIZES) | st.integers(0, 2000)
files_strategy = st.lists(
    st.tuples(name_strategy, size_strategy, st.integers(0, 2**32)), max_size=4
).map(lambda items: [(name, payload(seed, size)) for name, size, seed in items])


# --------------------------------------------------------------------------- round trips


@FAST
@given(
    lang=st.sampled_from(["en", "ar", "fa", "uk"]),
    fields=fields_strategy,
    files=files_strategy,
)
def test_every_byte_field_and_name_survives_a_round_trip(lang, fields, files):
    reader = build(fields, files, lang)
    with tempfile.TemporaryDirectory() as tmp:
        result = extract_container(reader, Path(tmp) / "out")
        check_extracted(result, fields, lang, files)


@pytest.mark.parametrize("sizes", [[0, 1], [65535, 65536, 65537], [131072, 7]])
def test_a_round_trip_through_the_age_envelope_is_exact(tmp_path, reviewer_keys, sizes):
    names = ["تقرير.pdf", "photo\u202egpj.exe", "😀"][: len(sizes)]
    files = [(name, payload(i, n)) for i, (name, n) in enumerate(zip(names, sizes, strict=True))]
    fields = {"story": "نص \u202e مع emoji 😀", "tags": ["a", "ب"]}
    reader = build(fields, files, "ar")
    ciphertext = io.BytesIO()
    envelope.encrypt_stream(reader, ciphertext, [str(k.to_public()) for k in reviewer_keys])
    assert reader.position == reader.length
    plaintext = io.BytesIO()
    ciphertext.seek(0)
    envelope.decrypt_stream(ciphertext, plaintext, [reviewer_keys[2]])
    assert len(plaintext.getvalue()) == reader.length
    plaintext.seek(0)
    result = extract_container(plaintext, tmp_path / "out")
    check_extracted(result, fields, "ar", files)


# --------------------------------------------------------------------------- Padmé


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**42), st.integers(0, 2**42))
def test_padme_never_shrinks_stays_within_twelve_percent_and_is_monotone(a, b):
    for length in (a, b):
        padded = padme(length)
        assert padded >= length
        if length >= KIB:
            assert (padded - length) / length < 0.12
        assert padme(padded) == padded  # padded lengths are fixed points
    low, high = sorted((a, b))
    assert padme(low) <= padme(high)


def test_padme_is_monotone_and_bounded_over_a_dense_range():
    previous = 0
    for length in range(0, 70_000):
        padded = padme(length)
        assert padded >= previous
        assert padded >= length
        if length >= KIB:
            assert padded - length < 0.12 * length
        previous = padded


def test_padme_leaves_only_a_few_distinct_sizes_per_power_of_two():
    # 2^16 .. 2^17: E = 16, so only the top floor(log2 16) + 1 = 5 bits after the leading one vary.
    sizes = {padme(n) for n in range(1 << 16, 1 << 17)}
    assert len(sizes) <= (1 << 5) + 1


@pytest.mark.parametrize("sizes", [[], [0], [1, 65535], [65536, 65537], [131072, 3, 5000]])
def test_the_container_is_exactly_its_padded_length_and_carries_no_owner_or_time(sizes):
    files = [(f"f{i}.bin", payload(i, n)) for i, n in enumerate(sizes)]
    reader = build({"x": "y"}, files)
    blob = reader.read()
    assert reader.read() == b""
    assert len(blob) == reader.length == reader.position
    assert reader.length == padme(reader.unpadded)
    assert reader.length >= reader.unpadded
    assert reader.length - reader.unpadded < 0.12 * reader.unpadded
    assert blob[reader.unpadded - 1024:] == bytes(reader.length - reader.unpadded + 1024)

    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as archive:
        members = archive.getmembers()
        # Version 2: the files first, report.json last, so a writer can hash while it encrypts.
        assert [m.name for m in members][-1] == "report.json"
        assert len(members) == 1 + len(files)
        for member in members:
            assert member.type == tarfile.REGTYPE
            assert member.pax_headers == {}
            assert member.mtime == 0
            assert member.uid == 0 and member.gid == 0
            assert member.uname == "" and member.gname == ""
            assert member.mode == 0o644
        for member, (_, data) in zip(members[:-1], files, strict=True):
            assert archive.extractfile(member).read() == data
        document = json.loads(archive.extractfile(members[-1]).read())
        assert document["schema"] == "intake-report/v2"
        assert [e["path"] for e in document["attachments"]] == [m.name for m in members[:-1]]
        last = members[-1]
        assert last.offset_data + -(-last.size // 512) * 512 + 1024 == reader.unpadded


# --------------------------------------------------------------------------- safe names


def test_safe_name_removes_the_right_to_left_override_so_the_real_extension_shows():
    name = safe_name("photo\u202egpj.exe", 3)
    assert "\u202e" not in name
    assert name.endswith(".exe")
    assert name == "03-photogpj.exe"
    assert clean_original_name("photo\u202egpj.exe") == "photogpj.exe"


@pytest.mark.parametrize("invisible", [*ZERO_WIDTH, *BIDI])
def test_safe_name_removes_invisible_characters(invisible):
    name = f"in{invisible}voice{invisible}.pdf"
    assert safe_name(name, 1) == "01-invoice.pdf"
    assert clean_original_name(name) == "invoice.pdf"


@pytest.mark.parametrize(
    ("original", "extension"),
    [("تقرير.pdf", ".pdf"), ("😀.exe", ".exe"), ("фото.JPG", ".jpg"), ("写真.png", ".png")],
)
def test_safe_name_keeps_the_extension_of_a_non_ascii_name(original, extension):
    # The docstring promises "the extension kept"; a reviewer must see what a file is.
    name = safe_name(original, 1)
    assert SAFE_DISK_NAME.match(name)
    assert name.endswith(extension), name


@pytest.mark.parametrize(
    "original", ["../../etc/passwd", "..\\..\\boot.ini", "/abs/.ssh/id_rsa", "...", "", ".bashrc"]
)
def test_safe_name_can_neither_climb_nor_hide(original):
    name = safe_name(original, 7)
    assert SAFE_DISK_NAME.match(name), name
    assert name.startswith("07-")
    assert ".." not in name.split("-", 1)[1].split("/")


@pytest.mark.parametrize("stem_length", [100, 250, 251, 300, 1000])
def test_safe_name_is_bounded_and_keeps_the_extension_of_a_very_long_name(stem_length):
    name = safe_name("b" * stem_length + ".pdf", 1)
    assert SAFE_DISK_NAME.match(name)
    assert len(name) <= 3 + 80
    assert name.endswith(".pdf"), name


# --------------------------------------------------------------------------- the system tar


def test_the_system_tar_extracts_the_same_files_byte_for_byte(tmp_path):
    tar = require_tool("tar")
    files = [
        ("تقرير.pdf", payload(1, 65536)),
        ("photo\u202egpj.exe", payload(2, 65537)),
        ("notes.txt", payload(3, 0)),
        ("big.bin", payload(4, 131072)),
    ]
    fields = {"story": "مرحبا 😀"}
    reader = build(fields, files, "ar")
    container = tmp_path / "report.tar"
    container.write_bytes(reader.read())
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    done = subprocess.run(
        [tar, "-xf", str(container), "-C", str(by_tar)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""

    document = json.loads((by_tar / "report.json").read_bytes())
    assert document["fields"] == fields
    expected = {"report.json", "attachments"}
    for entry, (_, data) in zip(document["attachments"], files, strict=True):
        assert re.match(r"^attachments/\d\d-[A-Za-z0-9._-]+$", entry["path"])
        assert (by_tar / entry["path"]).read_bytes() == data
        expected.add(entry["path"])
    assert tree(by_tar) == expected

    ours = extract_container(io.BytesIO(container.read_bytes()), tmp_path / "by-intake")
    assert tree(ours.directory) == expected
    for path in expected - {"attachments"}:
        assert (ours.directory / path).read_bytes() == (by_tar / path).read_bytes()


# --------------------------------------------------------------------------- hostile tars
# The corpus of hostile containers, each with its exact outcome, is tests/hostile/containers.py
# (run by tests/test_hostile_containers.py); what follows are the bounds and the name rules.


def reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def report_json(*listed: tuple[str, bytes], schema: str = "intake-report/v2") -> bytes:
    document = {
        "schema": schema,
        "lang": "en",
        "fields": {"what": "x"},
        "attachments": [
            {
                "path": path,
                "name": path.rsplit("/", 1)[-1],
                "type": "application/octet-stream",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for path, data in listed
        ],
    }
    return json.dumps(document).encode("utf-8")


def make_tar(*entries) -> bytes:
    """Plain ustar members (names in raw UTF-8, as GNU tar writes them; no PAX header)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


GOOD = ("attachments/01-good.txt", b"fine")


def test_an_entry_over_the_size_limit_is_refused_before_it_is_copied(tmp_path):
    big = ("attachments/02-big.bin", bytes(10_000))
    blob = make_tar(reg(*GOOD), reg(*big), reg("report.json", report_json(GOOD, big)))
    extract_container(io.BytesIO(blob), tmp_path / "control")  # accepted without the limit
    box = tmp_path / "box"
    box.mkdir()
    dest = box / "out"
    src = CountingReader(blob)
    with pytest.raises(ContainerError, match="size limit"):
        extract_container(src, dest, max_total=4096)
    assert src.consumed <= 3 * 512 + 512  # the good file and the big one's header, no more
    assert not dest.exists()
    assert tree(box) == set()


class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes):
        super().__init__()
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)


def test_a_tar_of_ten_thousand_entries_is_refused_after_reading_only_its_start(tmp_path):
    entries = [reg(f"attachments/f{i:05d}", b"") for i in range(10_000)]
    blob = make_tar(*entries, reg("report.json", report_json()))
    src = CountingReader(blob)
    dest = tmp_path / "out"
    with pytest.raises(ContainerError, match=f"more than {1 + MAX_ATTACHMENTS} entries"):
        extract_container(src, dest)
    assert src.consumed < len(blob) // 50
    assert not dest.exists()
    assert tree(tmp_path) == set()


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("attachments/01-photo\u202egpj.exe", "attachments/01-photogpj.exe"),
        ("attachments/01-in\u200bvo\u200dice.pdf", "attachments/01-invoice.pdf"),
        ("attachments/\u206601-notes\u2069.txt", "attachments/01-notes.txt"),
        ("attachments/01-a.pdf\n", "attachments/01-a.pdf"),
        ("attachments/١٢-x.pdf", "attachments/01-x.pdf"),
    ],
)
@pytest.mark.parametrize("schema", ["intake-report/v1", "intake-report/v2"])
def test_an_entry_name_that_is_not_safe_ascii_is_extracted_under_a_safe_one(
    tmp_path, raw, safe, schema
):
    data = b"contents"
    listing = reg("report.json", report_json((raw, data), schema=schema))
    entries = [listing, reg(raw, data)] if schema.endswith("v1") else [reg(raw, data), listing]
    result = extract_container(io.BytesIO(make_tar(*entries)), tmp_path / "out")
    assert (result.directory / safe).read_bytes() == data
    assert result.document["attachments"][0]["path"] == safe
    assert tree(result.directory) == {"report.json", "attachments", safe}
    stored = json.loads((result.directory / "report.json").read_bytes())
    assert stored["attachments"][0]["path"] == safe


def test_a_container_of_the_first_version_still_opens(tmp_path):
    # Version 1 (report.json first) is what every submission filed before v2 holds.
    second = ("attachments/02-b.bin", payload(9, 70_000))
    blob = make_tar(
        reg("report.json", report_json(GOOD, second, schema="intake-report/v1")),
        reg(*GOOD),
        reg(*second),
    )
    result = extract_container(io.BytesIO(blob), tmp_path / "out")
    assert result.document["schema"] == "intake-report/v1"
    assert (result.directory / second[0]).read_bytes() == second[1]
    assert tree(result.directory) == {"report.json", "attachments", GOOD[0], second[0]}


def test_a_refusal_after_files_were_copied_removes_them_all(tmp_path):
    # Version 2 copies files before report.json arrives; a bad listing must undo them.
    blob = make_tar(reg(*GOOD), reg("attachments/02-b.bin", bytes(100_000)),
                    reg("report.json", report_json(GOOD)))
    dest = tmp_path / "out"
    with pytest.raises(ContainerError, match="does not list"):
        extract_container(io.BytesIO(blob), dest)
    assert not dest.exists()
    assert tree(tmp_path) == set()
