"""No plaintext byte of a report is written to a file: the canary test.

A unique marker goes into the narrative and inside an attachment. After a
no-JavaScript submission through a real gunicorn, the marker must be absent
from every file under the data directory, the server's TMPDIR and its logs,
and present after decryption. Files deleted at once leave nothing to scan, so
the server also runs under strace, and no write(2) family call to a regular
file, deleted or not, may carry the marker. A control run with a deliberately
plaintext spool shows the trace catches what the scan cannot.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import Deployment, gunicorn, server_env, submit

from intake.crypto.envelope import decrypt_stream

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
TRACE = ["-f", "-yy", "-e", "trace=write,pwrite64,writev,pwritev,pwritev2", "-s", "1048576"]
# strace -yy annotates each descriptor: sockets as <TCP:[...]>, <TCPv6:...>, <UNIX:...>.
SOCKET = re.compile(r"^\s*(?:\[pid\s+)?\d*\]?\s*\w+\(\d+<(?:TCP|TCPv6|UDP|UNIX|NETLINK|pipe)")
FD_TARGET = re.compile(r"\w+\(\d+<([^>]*)>")


def files_containing(root: Path, marker: bytes) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and marker in path.read_bytes():
            hits.append(path)
    return hits


def writes_to_files_carrying(trace: Path, marker: str) -> list[str]:
    """Trace lines that write the marker anywhere but a socket or a pipe."""
    hits = []
    for line in trace.read_text(errors="replace").splitlines():
        if marker in line and not SOCKET.match(line):
            target = FD_TARGET.search(line)
            hits.append(target.group(1) if target else line[:120])
    return hits


def run_submission(tmp_path: Path, app: str | None):
    strace = require_tool("strace")
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    data, tmpdir, logs = tmp_path / "var", tmp_path / "tmp", tmp_path / "logs"
    tmpdir.mkdir()
    marker = f"CANARY-{secrets.token_hex(12)}"
    # The marker sits at several offsets, so one never straddles a 64 KiB write boundary.
    attachment = bytearray(os.urandom(3 * MiB))
    for offset in (100, 70_000, 1_500_000, 3 * MiB - 200):
        attachment[offset : offset + len(marker)] = marker.encode()
    trace = tmp_path / "trace.txt"
    env = server_env(data, deployment, tmpdir, PYTHONPATH=str(Path(__file__).parent))
    with gunicorn(env, logs, app=app, prefix=[strace, *TRACE, "-o", str(trace)]) as base:
        response = submit(
            base,
            narrative=f"my phone {marker} was hacked",
            files=[("evidence.bin", bytes(attachment), "application/octet-stream")],
        )
        assert response.status_code == 303, response.text[:300]
    return deployment, data, tmpdir, logs, trace, marker


def test_the_marker_is_nowhere_on_disk_in_logs_or_in_any_file_write(tmp_path):
    deployment, data, tmpdir, logs, trace, marker = run_submission(tmp_path, app=None)
    needle = marker.encode()
    for root in (data, tmpdir, logs):
        assert files_containing(root, needle) == [], root
    assert writes_to_files_carrying(trace, marker) == []
    # The trace did see the server write the submission (ciphertext) and the spool.
    targets = {m.group(1) for m in FD_TARGET.finditer(trace.read_text(errors="replace"))}
    assert any("/blobs/.tmp-" in t for t in targets), sorted(targets)[:20]
    assert any("/spool/" in t for t in targets), sorted(targets)[:20]
    [blob] = list((data / "blobs").glob("*.age"))
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, deployment.identities)
    assert plain.getvalue().count(needle) == 5  # narrative + four in the attachment


def test_control_a_plaintext_spool_is_caught_by_the_write_trace(tmp_path):
    _, data, tmpdir, _, trace, marker = run_submission(
        tmp_path, app="support.plaintext_spool_app:app"
    )
    # The broken spool deletes its file: a scan of the disk afterwards sees nothing...
    assert files_containing(data, marker.encode()) == []
    assert files_containing(tmpdir, marker.encode()) == []
    # ...but the trace shows the plaintext written to a regular file.
    hits = writes_to_files_carrying(trace, marker)
    assert hits and any("spool" in h for h in hits), hits
