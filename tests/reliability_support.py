"""Clients and checks shared by the production tests (multi-instance, reliability).

A source's two ways in, against a real server: `nojs_submit` posts the form
the way a browser without JavaScript does; `api_submit` sends ciphertext
made on the client (a real container, age-encrypted to the keyring's active
recipients) through the resumable upload API. `open_every_blob` decrypts and
safely extracts every stored submission, so "nothing lost" also means
"everything readable".
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tempfile
from pathlib import Path

import requests
from conftest import require_tool
from helpers import Deployment, form_tokens, valid_report

from intake.crypto.container import Attachment, ContainerReader, extract_container
from intake.crypto.envelope import decrypt_stream
from intake.storage import db
from intake.storage.models import Submission

TIMEOUT = 120


def nojs_submit(base: str, marker: str, lang: str = "en") -> requests.Response:
    """The form without JavaScript; answers 200 with the thank-you page and its receipt
    when the report is stored."""
    session = requests.Session()
    page = session.get(f"{base}/{lang}/report", timeout=TIMEOUT)
    page.raise_for_status()
    data = {**form_tokens(page.text), **valid_report(narrative=f"{marker} (no JavaScript)")}
    return session.post(
        f"{base}/{lang}/report",
        data=data,
        files=[("attachments", ("", b"", "application/octet-stream"))],
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def client_ciphertext(deployment: Deployment, marker: str, attachment: bytes = b"") -> bytes:
    """What the browser sends: the container for a report, age-encrypted on the client."""
    files = []
    if attachment:
        files.append(
            Attachment(
                name="evidence.bin",
                type="application/octet-stream",
                size=len(attachment),
                sha256=hashlib.sha256(attachment).hexdigest(),
                open=lambda: io.BytesIO(attachment),
            )
        )
    fields = {"narrative": f"{marker} (browser)", "categories": ["phishing"]}
    container = ContainerReader("en", fields, files).read()
    # The age tool writes X25519 stanzas only (the browser and rage add a grease stanza,
    # which the server's header check also accepts).
    recipients = sum((["-r", r] for r in deployment.current().active_recipients()), [])
    return subprocess.run(
        [require_tool("age"), *recipients], input=container, capture_output=True, check=True
    ).stdout


class ApiClient:
    """The page's upload code, in Python: one session, the CSRF token in a header."""

    def __init__(self, base: str, lang: str = "en"):
        self.base = base
        self.session = requests.Session()
        page = self.session.get(f"{base}/{lang}/report", timeout=TIMEOUT)
        page.raise_for_status()
        self.tokens = form_tokens(page.text)
        self.headers = {"X-CSRFToken": self.tokens["csrf_token"]}

    def create(self, size: int, **extra: str) -> str:
        """A new upload; `extra` adds to the body (a `receipt`, a `mailbox` ticket)."""
        answer = self.session.post(
            f"{self.base}/api/v1/uploads",
            json={"size": size, "keyring_version": int(self.tokens["keyring_version"]), **extra},
            headers=self.headers,
            timeout=TIMEOUT,
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def put(self, upload_id: str, offset: int, data) -> requests.Response:
        return self.session.put(
            f"{self.base}/api/v1/uploads/{upload_id}",
            params={"offset": offset},
            data=data,
            headers={**self.headers, "Content-Type": "application/octet-stream"},
            timeout=TIMEOUT,
        )

    def offset(self, upload_id: str) -> int:
        answer = self.session.get(f"{self.base}/api/v1/uploads/{upload_id}", timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()["offset"]

    def finish(self, upload_id: str, size: int) -> requests.Response:
        return self.session.post(
            f"{self.base}/api/v1/uploads/{upload_id}/finish", json={"size": size},
            headers=self.headers, timeout=TIMEOUT,
        )

    def submit(self, ciphertext: bytes, chunk: int = 64 * 1024) -> requests.Response:
        """Create, send every chunk, finish: 201 when the report is stored."""
        upload_id = self.create(len(ciphertext))
        for offset in range(0, len(ciphertext), chunk):
            sent = self.put(upload_id, offset, ciphertext[offset:offset + chunk])
            assert sent.status_code == 200, sent.text
        return self.finish(upload_id, len(ciphertext))


def submission_states(database_url: str) -> dict[str, str]:
    engine = db.make_engine(database_url)
    try:
        with db.make_session_factory(engine)() as session:
            return {row.id: row.state for row in session.query(Submission).all()}
    finally:
        engine.dispose()


def open_every_blob(blob_dir: Path, deployment: Deployment) -> dict[str, str]:
    """Decrypt and safely extract every blob: {submission id: narrative}."""
    identities = [deployment.identities[0]]
    narratives = {}
    for blob in sorted(blob_dir.glob("*.age")):
        plain = io.BytesIO()
        with open(blob, "rb") as fh:
            decrypt_stream(fh, plain, identities)
        plain.seek(0)
        with tempfile.TemporaryDirectory() as tmp:
            report = extract_container(plain, Path(tmp) / "case", durable=False)
        narratives[blob.stem] = report.document["fields"]["narrative"]
    return narratives


def leftover_files(data_dir: Path) -> list[Path]:
    """What a crash or a full disk could leave half-written: blob temp files, spool files."""
    blob_temps = list((data_dir / "blobs").glob(".tmp-*"))
    spool = [p for p in (data_dir / "spool").glob("*")] if (data_dir / "spool").exists() else []
    return blob_temps + spool


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (through /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def gunicorn_workers(root_pid: int) -> list[int]:
    """The worker processes of the gunicorn started as (or under) `root_pid`."""
    procs = {}
    for pid in [root_pid, *descendants(root_pid)]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid")))
        procs[pid] = (b"gunicorn" in cmdline and b"strace" not in cmdline, ppid)
    return [pid for pid, (is_gunicorn, ppid) in procs.items()
            if is_gunicorn and procs.get(ppid, (False, 0))[0]]


def files_containing(roots: list[Path], marker: bytes) -> list[Path]:
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and marker in path.read_bytes():
                hits.append(path)
    return hits
