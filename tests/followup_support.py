"""What the follow-up tests share: reading the pages a source sees, and the
reviewers' side of a reply as the tests make it (a real export, a real
import, a signed return file)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from helpers import receipt_from

from intake.crypto.envelope import decrypt_bytes
from intake.crypto.receipt import format_receipt
from intake.transfer.ackfile import Opening
from intake.transfer.bundle import MANIFEST, THREADS, Manifest, parse_manifest, parse_threads

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TICKET = re.compile(r'id="mailbox" name="mailbox" type="hidden" value="([^"]+)"')
STATUS = re.compile(r'<li data-status="([a-z]+)">')
REPLY_TEXT = re.compile(r'<p class="reply-text" dir="auto">(.*?)</p>', re.S)


def csrf_of(page: str) -> str:
    return CSRF.search(page).group(1)


def ticket_of(page: str) -> str:
    return html.unescape(TICKET.search(page).group(1))


@dataclass(frozen=True)
class MailboxPage:
    """What a mailbox page shows, read from its HTML."""

    html: str

    @property
    def opened(self) -> bool:
        return 'id="statuses"' in self.html

    @property
    def statuses(self) -> list[str]:
        return STATUS.findall(self.html)

    @property
    def replies(self) -> list[str]:
        """The reply texts, in the order shown (newest first)."""
        return [html.unescape(t) for t in REPLY_TEXT.findall(self.html)]

    @property
    def ticket(self) -> str:
        return ticket_of(self.html)


def open_over_http(base: str, receipt: str, lang: str = "en", session=None) -> MailboxPage:
    """The mailbox page a source gets from a running server for `receipt`."""
    import requests

    session = session or requests.Session()
    token = csrf_of(session.get(f"{base}/{lang}/follow-up", timeout=120).text)
    answer = session.post(f"{base}/{lang}/follow-up", timeout=120,
                          data={"csrf_token": token, "receipt": receipt})
    assert answer.status_code == 200, answer.status_code
    return MailboxPage(answer.text)


def in_digits(receipt: str, digits: str) -> str:
    """A receipt as a person might type it back: grouped, in another digit system."""
    return format_receipt(receipt, digits)


def receipt_of_answer(answer_html: str) -> str:
    receipt = receipt_from(answer_html)
    assert receipt is not None, answer_html[:500]
    return receipt


def manifest_of(bundle: Path) -> Manifest:
    with tarfile.open(bundle) as tar:
        return parse_manifest(tar.extractfile(MANIFEST).read())


def threads_of(bundle: Path, identities) -> dict:
    """Submission id -> SourceThread, from the bundle's threads.age, opened with `identities`."""
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        if THREADS not in names:
            return {}
        sealed = tar.extractfile(THREADS).read()
        manifest = parse_manifest(tar.extractfile(MANIFEST).read())
    return parse_threads(decrypt_bytes(sealed, identities), manifest)


def opening_of(cases: Path, bundle_id: str, recipient_id: str) -> Opening:
    """The challenge the reviewer's import opened and kept, as a proof needs it."""
    record = json.loads((cases / ".bundles" / f"{bundle_id}.json").read_text())
    [entry] = [o for o in record["openings"] if o["recipient_id"] == recipient_id]
    return Opening(bundle_id, recipient_id, base64.b64decode(entry["challenge"]))


def files_holding(roots: list[Path], needles: list[bytes]) -> list[tuple[Path, bytes]]:
    """(file, needle) for every file under `roots` that holds one of `needles`."""
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [(path, n) for n in needles if n in data]
    return hits


def receipt_needles(receipt: str) -> list[bytes]:
    """Every way the receipt could sit in a file: bare, grouped, in each digit system,
    UTF-8 and UTF-16."""
    forms = {receipt}
    for digits in ("western", "arabic", "persian"):
        grouped = format_receipt(receipt, digits)
        forms |= {grouped, grouped.replace(" ", ""), grouped.replace(" ", "-")}
    needles = []
    for form in forms:
        needles += [form.encode("utf-8"), form.encode("utf-16-le")]
    return needles


def blob_bytes(stream: io.BufferedIOBase) -> bytes:
    return stream.read()
