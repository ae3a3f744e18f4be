"""Encryption and decryption stream: memory does not grow with the size of a report.

Each measurement runs in a fresh child Python process (this very file, run as a
script) so that the peak resident set size (``ru_maxrss``) belongs to the work
alone. The child records its peak after imports and after allocating its own
buffers, does the work on a 512 MiB report without touching the disk for the
measured side, records the peak again and prints one JSON line.

A control run keeps the whole stream in memory on purpose and must show the
growth: it proves the probe can see what it is meant to see.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MiB = 1024 * 1024
SIZE = 512 * MiB  # the one attachment
LIMIT = 64 * MiB  # allowed growth of the peak resident set while streaming
SEED = 20261128
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


# --- the child ------------------------------------------------------------------------------


class GeneratedFile(io.RawIOBase):
    """`size` deterministic bytes: a 1 MiB random block, each copy stamped with its index."""

    def __init__(self, block: bytes, size: int):
        super().__init__()
        self._block = block
        self._chunks = self._generate(size)
        self._pending = memoryview(b"")
        self.produced = 0

    def readable(self) -> bool:
        return True

    def _generate(self, size: int) -> Iterator[bytes]:
        index = 0
        while size > 0:
            chunk = index.to_bytes(8, "big") + self._block[8:]
            index += 1
            yield chunk[:size]
            size -= len(chunk)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.produced += n
        return n


class CountingSink(io.RawIOBase):
    """Counts and hashes what is written; with `retain`, also keeps it (the control)."""

    def __init__(self, retain: bool = False):
        super().__init__()
        self.count = 0
        self.digest = hashlib.sha256()
        self.kept: list[bytes] | None = [] if retain else None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        self.count += len(data)
        if self.kept is not None:
            self.kept.append(bytes(data))
        return len(data)


class HashingReader(io.RawIOBase):
    """Passes a raw stream through, hashing and counting it."""

    def __init__(self, inner: io.RawIOBase):
        super().__init__()
        self._inner = inner
        self.count = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._inner.readinto(buffer)
        self.digest.update(memoryview(buffer).cast("B")[:n])
        self.count += n
        return n


def peak_rss() -> int:
    """This process image's peak resident set size in bytes.

    VmHWM belongs to the memory map made at exec; ``ru_maxrss`` would not do,
    because Linux carries it across fork and exec, so a child of a large
    pytest process would start with its parent's peak and hide any growth.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_encrypt(config: dict) -> dict:
    from intake.crypto import container, envelope

    size = config["size"]
    block = random.Random(SEED).randbytes(MiB)
    first_pass = hashlib.sha256()
    source = GeneratedFile(block, size)
    while chunk := source.read(MiB):
        first_pass.update(chunk)
    sources: list[GeneratedFile] = []

    def open_attachment() -> GeneratedFile:
        sources.append(GeneratedFile(block, size))
        return sources[-1]

    attachment = container.Attachment(
        "capture.pcap", "application/octet-stream", size, first_pass.hexdigest(), open_attachment
    )
    reader = container.ContainerReader("en", {"summary": "streaming"}, [attachment])
    plaintext = HashingReader(reader)
    sink = CountingSink()
    out = open(config["output"], "wb") if config.get("output") else sink  # noqa: SIM115
    before = peak_rss()
    if config["control"]:  # the whole container in memory, then encrypted from there
        whole = io.BytesIO()
        shutil.copyfileobj(plaintext, whole, MiB)
        whole.seek(0)
        envelope.encrypt_stream(whole, out, [config["recipient"]])
    else:
        envelope.encrypt_stream(plaintext, out, [config["recipient"]])
    after = peak_rss()
    if out is not sink:
        out.close()
    return {
        "before": before,
        "after": after,
        "written": sink.count if out is sink else os.path.getsize(config["output"]),
        "container_length": reader.length,
        "container_sha256": plaintext.digest.hexdigest(),
        "container_read": plaintext.count,
        "attachment_read": sum(s.produced for s in sources),
        "attachment_sha256": first_pass.hexdigest(),
    }


def child_decrypt(config: dict) -> dict:
    from intake.crypto import envelope

    identity = envelope.parse_identity(config["identity"])
    sink = CountingSink(retain=config["control"])
    with open(config["input"], "rb") as src:
        before = peak_rss()
        envelope.decrypt_stream(src, sink, [identity])
        after = peak_rss()
    return {
        "before": before,
        "after": after,
        "decrypted": sink.count,
        "decrypted_sha256": sink.digest.hexdigest(),
    }


def child_main() -> None:
    config = json.loads(sys.stdin.read())
    work = {"encrypt": child_encrypt, "decrypt": child_decrypt}[config["mode"]]
    print(json.dumps(work(config)))


# --- the parent -----------------------------------------------------------------------------


def run_child(**config) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["growth"] = result["after"] - result["before"]
    print(f"{config['mode']} control={config['control']}: peak before "
          f"{result['before'] / MiB:.1f} MiB, growth {result['growth'] / 1024:.0f} KiB")
    return result


@pytest.fixture(scope="module")
def reviewer():
    from pyrage import x25519

    return x25519.Identity.generate()


@pytest.fixture(scope="module")
def large_ciphertext(tmp_path_factory, reviewer):
    """A 512 MiB report encrypted to `reviewer` on disk, with what the encryptor read."""
    path = tmp_path_factory.mktemp("large") / "report.age"
    made = run_child(
        mode="encrypt", size=SIZE, control=False, recipient=str(reviewer.to_public()),
        output=str(path),
    )
    yield path, made
    path.unlink(missing_ok=True)


def test_encrypting_a_512_mib_report_keeps_peak_memory_growth_under_64_mib(reviewer):
    result = run_child(mode="encrypt", size=SIZE, control=False,
                       recipient=str(reviewer.to_public()))

    assert result["growth"] < LIMIT
    assert result["attachment_read"] == SIZE  # the whole attachment went through
    assert result["container_read"] == result["container_length"] > SIZE
    # age adds a header, a 16-byte nonce and a 16-byte tag per 64 KiB chunk.
    chunks = -(-result["container_length"] // 65536)
    overhead = result["written"] - result["container_length"] - 16 - 16 * chunks
    assert result["written"] > SIZE
    assert 0 < overhead < 4096


def test_encryption_probe_detects_a_stream_held_in_memory(reviewer):
    result = run_child(mode="encrypt", size=SIZE, control=True,
                       recipient=str(reviewer.to_public()))

    assert result["container_read"] == result["container_length"]
    assert result["growth"] > LIMIT
    assert result["growth"] > 0.9 * result["container_length"]  # the probe sees all of it


def test_decrypting_a_512_mib_report_keeps_peak_memory_growth_under_64_mib(
    large_ciphertext, reviewer
):
    path, made = large_ciphertext
    assert path.stat().st_size == made["written"] > SIZE

    result = run_child(mode="decrypt", control=False, input=str(path), identity=str(reviewer))

    assert result["growth"] < LIMIT
    assert result["decrypted"] == made["container_length"]
    assert result["decrypted_sha256"] == made["container_sha256"]


def test_decryption_probe_detects_plaintext_held_in_memory(large_ciphertext, reviewer):
    path, made = large_ciphertext

    result = run_child(mode="decrypt", control=True, input=str(path), identity=str(reviewer))

    assert result["decrypted"] == made["container_length"]
    assert result["growth"] > LIMIT
    assert result["growth"] > 0.9 * made["container_length"]


if __name__ == "__main__":
    child_main()
