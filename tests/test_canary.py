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
import json
import os
import re
import secrets
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import Deployment, gunicorn, receipt_from, server_env, submit

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
        assert response.status_code == 200 and receipt_from(response.text), response.text[:300]
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


# -- The follow-up channel ------------------------------------------------------------------------

# -xx: every byte of every string as \xNN, so that non-ASCII needles (a receipt typed in
# Arabic-Indic digits, a reply in Arabic) are found as reliably as ASCII ones. sendto and
# sendmsg too (gunicorn answers with them), for the control that the trace sees the reply.
HEX_TRACE = ["-f", "-yy", "-xx", "-e",
             "trace=write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg", "-s", "1048576"]


def hexed(needle: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in needle)


def unhexed(text: str) -> str:
    """A -xx string (its file names too) back to text."""
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def write_targets(trace: Path) -> set[str]:
    return {unhexed(m.group(1)) for m in FD_TARGET.finditer(trace.read_text(errors="replace"))}


def file_writes_carrying(trace: Path, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    """(needle name, target) for each traced write of a needle to anything but a socket."""
    hits = []
    wanted = {name: hexed(value) for name, value in needles.items()}
    for line in trace.read_text(errors="replace").splitlines():
        if SOCKET.match(line):
            continue
        for name, pattern in wanted.items():
            if pattern in line:
                target = FD_TARGET.search(line)
                hits.append((name, unhexed(target.group(1)) if target else line[:120]))
    return hits


def socket_writes_carrying(trace: Path, needle: bytes) -> int:
    pattern = hexed(needle)
    return sum(1 for line in trace.read_text(errors="replace").splitlines()
               if SOCKET.match(line) and pattern in line)


def test_no_receipt_reply_or_follow_up_plaintext_is_written_to_any_file(tmp_path):
    """A report and a follow-up on each path, a reply delivered and read, all through a
    real gunicorn under strace: the receipts (in every digit system a source may type),
    the reply's text and the follow-ups' plaintext are in no file and no traced file
    write; the reply's text did cross the socket to the source (the trace sees it)."""
    import base64
    from datetime import date

    import requests
    from followup_support import (
        MailboxPage,
        csrf_of,
        files_holding,
        in_digits,
        manifest_of,
        opening_of,
        receipt_needles,
        receipt_of_answer,
        threads_of,
    )
    from helpers import thanked
    from reliability_support import ApiClient, client_ciphertext

    from intake.config import settings_from_env
    from intake.crypto import receipt as rc
    from intake.crypto.reply import encrypt_reply
    from intake.review.importer import import_bundle
    from intake.transfer.ackfile import Reply, build_ack
    from intake.transfer.server_side import export_bundles, purge

    strace = require_tool("strace")
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    data, tmpdir, logs = tmp_path / "var", tmp_path / "tmp", tmp_path / "logs"
    tmpdir.mkdir()
    follow_marker = f"FOLLOWUP-{secrets.token_hex(12)}"
    reply_marker = f"REPLY-{secrets.token_hex(12)}"
    reply_text = f"شكرًا. هل ما زال الرابط في رسائلك؟ {reply_marker}"
    browser_receipt = rc.new_receipt()
    trace = tmp_path / "trace.txt"
    env = server_env(data, deployment, tmpdir)
    with gunicorn(env, logs, prefix=[strace, *HEX_TRACE, "-o", str(trace)]) as base:
        # No JavaScript: the server draws the receipt.
        answer = submit(base, lang="ar", narrative="the first report")
        assert thanked(answer)
        receipt = receipt_of_answer(answer.text)
        # JavaScript: the page drew its receipt and sends it with the upload.
        api = ApiClient(base)
        ciphertext = client_ciphertext(deployment, "browser report")
        upload_id = api.create(len(ciphertext), receipt=in_digits(browser_receipt, "persian"))
        assert api.put(upload_id, 0, ciphertext).status_code == 200
        assert api.finish(upload_id, len(ciphertext)).status_code == 201
        # The source comes back, typing the receipt in Arabic-Indic digits, and sends more.
        session = requests.Session()
        token = csrf_of(session.get(f"{base}/ar/follow-up", timeout=60).text)
        opened = MailboxPage(session.post(f"{base}/ar/follow-up", timeout=60, data={
            "csrf_token": token, "receipt": in_digits(receipt, "arabic")}).text)
        assert opened.opened
        attachment = bytearray(os.urandom(MiB))
        for offset in (100, 70_000, MiB - 200):
            attachment[offset:offset + len(follow_marker)] = follow_marker.encode()
        version = re.search(r'name="keyring_version" type="hidden" value="(\d+)"',
                            opened.html).group(1)
        sent = session.post(f"{base}/ar/follow-up/send", timeout=120, data={
            "csrf_token": csrf_of(opened.html), "mailbox": opened.ticket,
            "keyring_version": version, "message": f"وهذه الصورة {follow_marker}"},
            files=[("attachments", ("screen.png", bytes(attachment), "image/png"))])
        assert sent.status_code == 200 and 'id="sent"' in sent.text
        # The admin exports; a reviewer imports and replies; the admin purges with the reply.
        settings = settings_from_env(env)
        [bundle] = [path for path, _ in export_bundles(settings, tmp_path / "usb").bundles]
        cases = tmp_path / "cases"
        import_bundle(bundle, deployment.identities, cases)
        manifest = manifest_of(bundle)
        threads = threads_of(bundle, deployment.identities)
        [ours] = {t for t in threads.values()
                  if sum(1 for u in threads.values() if u.thread == t.thread) == 2}
        reply = Reply(secrets.token_hex(16), ours.thread, base64.b64encode(
            encrypt_reply(reply_text, ours.reply_to, date.today())).decode())
        ack = tmp_path / "ack.json"
        ack.write_text(json.dumps(build_ack(
            [opening_of(cases, manifest.bundle_id, "r0")],
            [(e.id, e.sha256) for e in manifest.entries], [reply])))
        assert purge(settings, ack).replies.delivered == [reply.reply_id]
        # The source reads the reply: the server decrypts it in memory for that answer.
        token = csrf_of(session.get(f"{base}/en/follow-up", timeout=60).text)
        page = MailboxPage(session.post(f"{base}/en/follow-up", timeout=60, data={
            "csrf_token": token, "receipt": receipt}).text)
        assert page.replies == [reply_text]

    needles = {
        "follow-up": follow_marker.encode(),
        "reply": reply_marker.encode(),
        "reply (Arabic)": "هل ما زال الرابط".encode(),
    }
    for which, secret in (("receipt", receipt), ("browser receipt", browser_receipt)):
        for index, needle in enumerate(receipt_needles(secret)):
            needles[f"{which} #{index}"] = needle
    assert files_holding([data, tmpdir, logs], list(needles.values())) == []
    assert file_writes_carrying(trace, needles) == []
    # The trace did see the reply go to the source, and the server write files.
    assert socket_writes_carrying(trace, reply_marker.encode()) >= 1
    targets = write_targets(trace)
    assert any("/blobs/.tmp-" in t for t in targets) and any("/spool/" in t for t in targets)
