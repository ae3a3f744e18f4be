"""Every container of the hostile corpus (tests/hostile/containers.py) gets its exact outcome.

For each item, `extract_container` must accept it or refuse it with the
corpus's sentence, and:
- on refusal, leave nothing at all: the output folder is gone and its parent
  holds what it held before;
- at no moment hold more bytes on disk than had arrived from the container:
  the source is watched, and before each read the bytes under the output
  folder are measured against the bytes delivered so far (so a sparse or
  size-override member that would expand is caught while it writes);
- on acceptance, write only safe ASCII names, exactly the files report.json
  lists, byte for byte.
A property test then runs the same checks over generated tars near the valid
ones (every entry type, lying sizes, report.json anywhere or nowhere, cut
short, trailing junk): none may crash, escape the output folder or outgrow
what arrived.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hostile import containers
from hostile.containers import ACCEPTED, CORPUS, SPARSE_EXPANDED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.crypto.container import extract_container
from intake.errors import ContainerError

SAFE_ATTACHMENT = re.compile(r"[0-9]{2}-[A-Za-z0-9_-][A-Za-z0-9._-]*", re.ASCII)
#: A file system allocates whole blocks: a few bytes still take one block on disk.
FS_BLOCK = 4096


def disk_usage(root: Path) -> tuple[int, int]:
    """(bytes written, bytes allocated) by the regular files under `root`."""
    written = allocated = 0
    if root.exists():
        for path in root.rglob("*"):
            info = path.lstat()
            if path.is_file() and not path.is_symlink():
                written += info.st_size
                allocated += info.st_blocks * 512
    return written, allocated


def file_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


class WatchedSource(io.RawIOBase):
    """The container's bytes; before each read, checks what is on disk under `dest`."""

    def __init__(self, data: bytes, dest: Path):
        super().__init__()
        self._data = io.BytesIO(data)
        self._dest = dest
        self.delivered = 0
        self.peak_written = 0

    def readable(self) -> bool:
        return True

    def check(self) -> None:
        written, allocated = disk_usage(self._dest)
        self.peak_written = max(self.peak_written, written)
        assert written <= self.delivered, f"{written} bytes on disk, {self.delivered} arrived"
        assert allocated <= self.delivered + FS_BLOCK * file_count(self._dest), allocated

    def readinto(self, buffer) -> int:
        self.check()
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.delivered += len(chunk)
        return len(chunk)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_corpus_covers_every_attack_the_issue_names():
    required = {
        "gnu-sparse-member", "pax-gnu-sparse-0.1-member", "pax-gnu-sparse-1.0-member",
        "symlink", "hardlink", "character-device", "block-device", "fifo",
        "directory-inside-attachments", "absolute-path", "dotdot", "nul-in-name",
        "too-many-entries", "member-over-the-size-bound", "report-json-missing",
        "v2-file-after-report-json", "v2-report-json-twice", "v1-report-json-twice",
        "duplicate-attachment-names", "size-does-not-match-report-json",
        "hash-does-not-match-report-json", "file-report-json-does-not-list",
        "listed-file-missing", "name-with-a-trailing-newline-is-normalised",
        "name-with-arabic-indic-digits-is-normalised", "valid-v1", "valid-v2",
        "report-json-not-json", "report-json-not-an-object", "report-json-wrong-schema",
    }
    assert required <= set(CORPUS), required - set(CORPUS)


@pytest.mark.parametrize("attack", sorted(CORPUS))
def test_each_hostile_container_gets_its_exact_outcome_and_never_outgrows_what_arrived(
    tmp_path, attack
):
    item = CORPUS[attack]()
    box = tmp_path / "box"
    box.mkdir()
    dest = box / "case"
    src = WatchedSource(item.data, dest)

    if item.outcome == ACCEPTED:
        result = extract_container(src, dest, durable=False)
        src.check()
        assert_accepted_safely(result.document, dest)
    else:
        with pytest.raises(ContainerError) as refused:
            extract_container(src, dest, durable=False)
        message = str(refused.value)
        assert item.outcome in message
        assert message.endswith(".") and message.isprintable(), message  # one plain sentence
        assert not dest.exists()
        assert tree(box) == set()
    assert src.peak_written <= len(item.data)


def assert_accepted_safely(document: dict, dest: Path) -> None:
    on_disk = json.loads((dest / "report.json").read_bytes())
    assert on_disk == document
    listed = {entry["path"]: entry for entry in document["attachments"]}
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert files == {"report.json", *listed}
    for path, entry in listed.items():
        folder, name = path.split("/")
        assert folder == "attachments"
        assert SAFE_ATTACHMENT.fullmatch(name), name
        data = (dest / path).read_bytes()
        assert len(data) == entry["size"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize(
    "attack", ["gnu-sparse-member", "pax-gnu-sparse-0.1-member", "pax-gnu-sparse-1.0-member"]
)
def test_a_few_kilobytes_that_declare_a_huge_sparse_file_write_nothing(tmp_path, attack):
    item = CORPUS[attack]()
    assert len(item.data) < 8 * 1024 < SPARSE_EXPANDED  # the attack: KB in, 256 MiB out
    dest = tmp_path / "case"
    src = WatchedSource(item.data, dest)
    with pytest.raises(ContainerError):
        extract_container(src, dest, durable=False)
    assert src.peak_written == 0
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- generated


NAMES = [
    "report.json", "attachments", "attachments/", "attachments/01-a.pdf", "attachments/02-b.bin",
    "attachments/01-a.pdf\n", "attachments/١٢-x", "attachments/../x", "/etc/x", "C:/x", "x",
    "attachments/sub/01-a", "attachments/01-a\u202egpj.exe", "././@PaxHeader", "././@LongLink",
]
TYPES = [b"0", b"\x00", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"g", b"x", b"X", b"L", b"K",
         b"S", b"M", b"N", b"V", b"D", b"Z"]


@st.composite
def generated_containers(draw) -> bytes:
    """Tars near the valid ones: plausible names, every entry type, lying sizes, a
    report.json that lists some of the files (or not), in any place, then damage."""
    files = draw(
        st.lists(
            st.tuples(
                st.sampled_from(NAMES) | st.text(max_size=20),
                st.binary(max_size=700),
                st.sampled_from(TYPES),
                st.none() | st.integers(0, 2**33 - 1),
                st.sampled_from([containers.POSIX_MAGIC, containers.GNU_MAGIC]),
            ),
            max_size=5,
        )
    )
    listed = [
        containers.entry(name, data)
        for name, data, *_ in files
        if draw(st.booleans())
    ]
    schema = draw(st.sampled_from([containers.V1, containers.V2, "intake-report/v3"]))
    members = []
    for name, data, typeflag, size, magic in files:
        declared = len(data) if size is None else size
        members.append(
            containers.header(name.encode("utf-8", "surrogatepass")[:100], declared, typeflag,
                              magic=magic)
            + containers.padded(data)
        )
    at = draw(st.integers(0, len(members)))
    if draw(st.booleans()):
        members.insert(at, containers.member("report.json", containers.report(listed, schema)))
    blob = containers.finish(*members)
    cut = draw(st.none() | st.integers(0, len(blob)))
    tail = draw(st.sampled_from([b"", b"\x00" * 512, b"junk"]))
    return (blob if cut is None else blob[:cut]) + tail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob=generated_containers())
def test_no_generated_container_crashes_escapes_or_outgrows_what_arrived(blob):
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp) / "box"
        box.mkdir()
        dest = box / "case"
        src = WatchedSource(blob, dest)
        try:
            result = extract_container(src, dest, durable=False)
        except ContainerError as refused:
            message = str(refused)
            assert message.endswith(".") and message.isprintable(), message
            assert os.listdir(box) == []
        else:
            assert_accepted_safely(result.document, dest)
            assert os.listdir(box) == ["case"]
        src.check()
        assert src.peak_written <= len(blob)
        assert os.listdir(tmp) == ["box"]
