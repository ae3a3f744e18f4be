"""Benchmark: `intake review import` against the age tool, one process per file.

Builds a bundle of N small reports (default 2,000) encrypted to a fresh
reviewer key, then times:
  1. `intake review import` of the whole bundle (identity unlocked once,
     every container validated, filed as a case and indexed in the case store);
  2. `age -d -i KEY FILE` for each blob, one process per file (decryption
     only, output discarded).
Prints reports per second for both and the ratio. Usage:
    .venv/bin/python bench/review_import.py [N]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pyrage import x25519

from intake.crypto.container import Attachment, ContainerReader
from intake.crypto.envelope import encrypt_bytes


def make_bundle(directory: Path, count: int, recipient: str) -> Path:
    bundle = directory / "bundle.tar"
    blobs = directory / "blobs"
    blobs.mkdir()
    entries = []
    for i in range(count):
        attachment_bytes = os.urandom(2000)
        attachment = Attachment(
            "note.txt",
            "text/plain",
            len(attachment_bytes),
            hashlib.sha256(attachment_bytes).hexdigest(),
            lambda data=attachment_bytes: io.BytesIO(data),
        )
        fields = {
            "narrative": f"report {i}: a suspicious link arrived by SMS",
            "categories": ["phishing"],
            "country": "EG",
            "risk_now": "elevated",
        }
        container = ContainerReader("en", fields, [attachment]).read()
        blob = encrypt_bytes(container, [recipient])
        submission_id = hashlib.sha256(f"{i}".encode()).hexdigest()[:32]
        (blobs / f"{submission_id}.age").write_bytes(blob)
        entries.append(
            {
                "id": submission_id,
                "received_on": "2026-11-28",
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "keyring_version": 1,
            }
        )
    manifest = json.dumps({"format": "intake-export/v1", "submissions": entries}).encode()
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for entry in entries:
            tar.add(blobs / f"{entry['id']}.age", arcname=f"submissions/{entry['id']}.age")
    return bundle


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    age = shutil.which("age")
    if age is None:
        sys.exit("bench: the age tool is needed (apt-get install age)")
    identity = x25519.Identity.generate()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = work / "reviewer.key"
        key.write_text(f"{identity}\n")
        started = time.perf_counter()
        bundle = make_bundle(work, count, str(identity.to_public()))
        print(f"built a bundle of {count} reports in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "intake",
                "review",
                "import",
                str(bundle),
                "--identity",
                str(key),
                "--cases",
                str(work / "cases"),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        ours = time.perf_counter() - started

        blobs = sorted((work / "blobs").glob("*.age"))
        started = time.perf_counter()
        for blob in blobs:
            subprocess.run(
                [age, "-d", "-i", str(key), str(blob)], check=True, stdout=subprocess.DEVNULL
            )
        theirs = time.perf_counter() - started

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"intake review import : {count / ours:8.1f} reports/s ({ours:.1f} s, validated and filed)"
    )
    print(
        f"age -d, one per file : {count / theirs:8.1f} reports/s ({theirs:.1f} s, decryption only)"
    )
    print(f"ratio                : {theirs / ours:8.2f}x (target: at least 2x)")


if __name__ == "__main__":
    main()
