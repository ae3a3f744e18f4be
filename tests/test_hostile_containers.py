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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from hostile.containers import ACCEPTED, CORPUS, SPARSE_EXPANDED

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
