"""Helpers for the real-browser tests (tests/test_browser.py).

Chromium is Debian's, driven by Playwright for Python with `executable_path`
set (never `playwright install`). This module knows how to fill the report
form from the schema, what report.json must then hold on each path, how to
open the one stored submission, and how to read an strace recording of what
the server read. `LossyProxy` sits in front of gunicorn and loses the
answer to one chosen request after the server has handled it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake import schema
from intake.crypto.container import (
    ExtractedReport,
    clean_original_name,
    extract_container,
    padme,
    safe_name,
    unpadded_length,
)
from intake.crypto.envelope import decrypt_stream
from intake.storage import db
from intake.storage.models import Submission

MiB = 1024 * 1024

#: axe-core, vendored from npm (tests/vendor): the accessibility checker both web apps face.
AXE = next((Path(__file__).resolve().parent / "vendor").glob("axe-core-*.min.js"))

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# -- Accessibility ---------------------------------------------------------------------------


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on `page` (its CSP bypassed to inject axe)."""
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
    )
    return [f"{v['id']} ({v['impact']}, {v['nodes']} nodes)" for v in result
            if v["impact"] in ("serious", "critical")]


# -- What a source types ---------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "phrase": "blue olive tree by the harbour",
        "date": "2026-03-14",
        "narrative": (
            "After a missed WhatsApp call from an unknown number my phone grew hot.\n"
            "Two days later an officer quoted my private messages {marker} back to me.\n"
            "Apple sent a threat notification on the 14th."
        ),
        "notification": "Apple believes you are being targeted by state-sponsored attackers.",
        "big": "call recording.bin",
        "small": "notes from the interrogation.txt",
    },
    "ar": {
        "phrase": "شجرة الزيتون الزرقاء عند الميناء",
        "date": "٢٠٢٦-٠٣-١٤",  # Arabic-Indic digits: both paths normalise them
        "narrative": (
            "بعد مكالمة فائتة على واتساب من رقم مجهول أصبح هاتفي ساخنًا.\n"
            "بعد يومين اقتبس ضابط رسائلي الخاصة {marker} أمامي.\n"
            "أرسلت آبل إشعار تهديد في الرابع عشر من الشهر."
        ),
        "notification": "تعتقد Apple أنك مستهدف من قبل مهاجمين ترعاهم دولة.",
        "big": "تسجيل المكالمة.bin",
        "small": "ملاحظات من التحقيق.txt",
    },
}

INDICATORS = "hxxps://sms-verify[.]example/a?b=1\n+973 3000 0000\nd41d8cd98f00b204e9800998ecf8427e"


def full_answers(lang: str, marker: str) -> dict[str, Any]:
    """An answer to every question of the form, free text in `lang`."""
    t = TEXTS[lang]
    return {
        "reporter_role": "for_someone",
        "subject_agreed": True,
        "consent_use": ["statistics", "quote_anonymously", "litigation"],
        "consent_forensics": "later",
        "contact_method": "signal",
        "contact_handle": "@source.42",
        "verification_phrase": t["phrase"],
        "categories": ["mercenary_spyware", "phishing", "other"],
        "first_noticed": t["date"],
        "ongoing": schema.DONT_KNOW,
        "country": "BH",
        "narrative": t["narrative"].format(marker=marker),
        "how_discovered": ["threat_notification_apple", "suspicious_message"],
        "notification_text": t["notification"],
        "target_profile": ["journalist", "exile_diaspora"],
        "device_type": "iphone",
        "device_status": "still_with_me",
        "accounts": ["whatsapp", "signal"],
        "suspected_tool": "pegasus",
        "suspected_perpetrator": ["own_government", "foreign_government"],
        "impacts": ["self_censorship", "relocation"],
        "risk_now": "elevated",
        "indicators": INDICATORS,
    }


def minimal_answers(narrative: str) -> dict[str, Any]:
    """Only the required questions (and the default contact choice)."""
    return {
        "reporter_role": "self",
        "consent_use": ["statistics"],
        "contact_method": schema.NO_CONTACT,
        "categories": ["phishing"],
        "first_noticed": "2026-03",
        "country": "EG",
        "narrative": narrative,
        "how_discovered": ["suspicious_message"],
        "target_profile": ["journalist"],
        "risk_now": schema.DONT_KNOW,
    }


def _choice_index(f: schema.Field, value: str) -> int:
    values = [c.value for c in f.choices]
    assert value in values, f"{value!r} is not a choice of {f.name}"
    return values.index(value) + 1


def fill_report(page: Any, answers: dict[str, Any]) -> None:
    """Type `answers` into the form the way a person does: click, tick, choose, type."""
    for name, value in answers.items():
        f = schema.FIELDS[name]
        if f.kind == "radio" or f.kind in schema.MULTI_KINDS:
            for one in [value] if f.kind == "radio" else value:
                box = page.locator(f"#{name}-{_choice_index(f, one)}")
                assert box.get_attribute("value") == one, (name, one)
                box.check()
        elif f.kind == "checkbox":
            page.locator(f"#{name}").set_checked(bool(value))
        elif f.kind in ("select", "country"):
            page.locator(f"#{name}").select_option(value=value)
        elif f.kind == "files":
            raise AssertionError("attach files with set_input_files")
        else:
            page.locator(f"#{name}").fill(value)


def assert_still_typed(page: Any, answers: dict[str, Any]) -> None:
    """Every answer in `answers` is still in the form, exactly as it was typed or chosen."""
    for name, value in answers.items():
        f = schema.FIELDS[name]
        if f.kind == "radio" or f.kind in schema.MULTI_KINDS:
            chosen = [value] if f.kind == "radio" else value
            for index, choice in enumerate(f.choices, start=1):
                box = page.locator(f"#{name}-{index}")
                assert box.is_checked() == (choice.value in chosen), (name, choice.value)
        elif f.kind == "checkbox":
            assert page.locator(f"#{name}").is_checked() == bool(value), name
        else:
            assert page.locator(f"#{name}").input_value() == value, name


def expected_fields(answers: dict[str, Any]) -> dict[str, Any]:
    """report.json's `fields` for `answers`, on either path.

    A browser posting a form (the server path) sends a textarea's line breaks
    as CRLF (HTML's multipart/form-data encoding) and the server stores them
    as LF, which is what the encrypting script reads from the textarea.
    """
    fields: dict[str, Any] = {}
    for name, f in schema.FIELDS.items():
        if f.kind == "files":
            continue
        value = answers.get(name, f.default)
        if f.kind in schema.MULTI_KINDS:
            fields[name] = [c.value for c in f.choices if c.value in (value or [])]
        elif f.kind == "checkbox":
            fields[name] = bool(value)
        elif f.kind == "partial_date":
            fields[name] = schema.normalise_partial_date(value) if value else ""
        else:
            fields[name] = value or ""
    return fields


# -- Files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    path: Path
    data: bytes

    @property
    def name(self) -> str:
        return self.path.name


def random_file_with_marker(path: Path, size: int, marker: str, offsets: list[int]) -> Evidence:
    data = bytearray(os.urandom(size))
    for offset in offsets:
        data[offset : offset + len(marker)] = marker.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return Evidence(path, bytes(data))


def text_file_with_marker(path: Path, marker: str) -> Evidence:
    data = f"Written down the same evening.\n{marker}\nالمحقق كان يعرف كلمة المرور.\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Evidence(path, data)


def chosen_file_types(page: Any) -> list[str]:
    """The MIME types the browser gives the chosen files (what both paths send on)."""
    return page.evaluate(
        "Array.from(document.getElementById('attachments').files, f => f.type)"
    )


# -- What the page did ---------------------------------------------------------------------------

# Records in sessionStorage what the page showed, as soon as it shows it, so
# that the test can read it after the navigation to the thanks page:
# data-js-path on <body>, and the text of #js-fallback once it is visible.
PAGE_RECORDER = """
document.addEventListener("DOMContentLoaded", () => {
  const record = () => {
    const path = document.body.getAttribute("data-js-path");
    if (path) sessionStorage.setItem("intake-test-js-path", path);
    const fallback = document.getElementById("js-fallback");
    if (fallback && !fallback.hidden) {
      sessionStorage.setItem("intake-test-fallback", fallback.textContent.trim());
    }
  };
  record();
  new MutationObserver(record).observe(document.body, {
    attributes: true, subtree: true, attributeFilter: ["data-js-path", "hidden"],
  });
});
"""


def recorded_js_path(page: Any) -> str | None:
    return page.evaluate("sessionStorage.getItem('intake-test-js-path')")


def recorded_fallback(page: Any) -> str | None:
    return page.evaluate("sessionStorage.getItem('intake-test-fallback')")


@dataclass
class Traffic:
    """Every request the page and its worker made, and the answers."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Traffic:
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("request", lambda r: self.requests.append((r.method, r.url)))
        page.on(
            "response", lambda r: self.responses.append((r.request.method, r.url, r.status))
        )
        return self

    def made(self, method: str, pattern: str) -> list[str]:
        return [u for m, u in self.requests if m == method and re.search(pattern, u)]

    def answered(self, method: str, pattern: str) -> list[int]:
        return [s for m, u, s in self.responses if m == method and re.search(pattern, u)]


CHUNK_URL = re.compile(r"/api/v1/uploads/([A-Za-z0-9_-]+)\?offset=(\d+)$")


def chunk_offsets(urls: list[str]) -> list[int]:
    return [int(CHUNK_URL.search(u).group(2)) for u in urls if CHUNK_URL.search(u)]


# -- What the server stored ----------------------------------------------------------------------


def stored_blobs(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "blobs").glob("*.age"))


def submission_rows(data_dir: Path) -> list[Submission]:
    engine = db.make_engine(f"sqlite:///{data_dir / 'intake.db'}")
    try:
        with db.make_session_factory(engine)() as session:
            return session.query(Submission).all()
    finally:
        engine.dispose()


def leftover_uploads(data_dir: Path) -> list[Path]:
    root = data_dir / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@dataclass(frozen=True)
class Opened:
    blob: Path
    row: Submission
    report: ExtractedReport
    plaintext: bytes


def open_the_one_submission(data_dir: Path, identities: list, dest: Path) -> Opened:
    """Exactly one blob and one row; decrypt with `identities` and open the container."""
    blobs = stored_blobs(data_dir)
    rows = submission_rows(data_dir)
    assert len(blobs) == 1, blobs
    assert len(rows) == 1 and rows[0].id == blobs[0].stem, [r.id for r in rows]
    assert rows[0].size == blobs[0].stat().st_size
    plain = io.BytesIO()
    with blobs[0].open("rb") as fh:
        decrypt_stream(fh, plain, identities)
    plain.seek(0)
    if dest.exists():
        shutil.rmtree(dest)
    report = extract_container(plain, dest, durable=False)
    return Opened(blobs[0], rows[0], report, plain.getvalue())


def assert_report(
    opened: Opened,
    *,
    lang: str,
    fields: dict[str, Any],
    files: list[Evidence],
    types: list[str],
) -> None:
    """report.json holds exactly `fields`; every file arrived byte for byte; padded with Padmé."""
    document = opened.report.document
    assert document["schema"] == "intake-report/v2"
    assert document["lang"] == lang
    assert document["fields"] == fields
    entries = document["attachments"]
    assert len(entries) == len(files)
    for index, (entry, evidence, browser_type) in enumerate(
        zip(entries, files, types, strict=True), start=1
    ):
        assert entry["name"] == clean_original_name(evidence.name)
        assert entry["path"] == f"attachments/{safe_name(evidence.name, index)}"
        assert entry["type"] == (browser_type or "application/octet-stream")
        assert entry["size"] == len(evidence.data)
        assert entry["sha256"] == hashlib.sha256(evidence.data).hexdigest()
        stored = (opened.report.directory / entry["path"]).read_bytes()
        assert stored == evidence.data, f"{entry['path']} differs from {evidence.name}"
    # Version 2: the files, then report.json last, then zeros up to the Padmé length,
    # which follows from report.json's length and the files'.
    sizes = [len(f.data) for f in files]
    at = sum(512 + -(-size // 512) * 512 for size in sizes)
    header = opened.plaintext[at : at + 512]
    assert header[:12] == b"report.json\0"
    json_size = int(header[124:136].rstrip(b"\0 ").decode(), 8)
    end = at + 512 + -(-json_size // 512) * 512
    assert opened.plaintext[end:] == bytes(len(opened.plaintext) - end)
    assert len(opened.plaintext) == padme(unpadded_length(json_size, sizes))


# -- strace --------------------------------------------------------------------------------------

STRACE_STRING_LIMIT = 1048576
READ_TRACE = [
    "-f", "-yy", "-e", "trace=read,recvfrom,readv,recvmsg", "-s", str(STRACE_STRING_LIMIT),
]
# strace -yy shows a socket as <TCP:[...]>, <TCPv6:[...]> or <UNIX:[...]>; with -f a call
# another thread interrupts is split into "call(fd<...>, <unfinished ...>" and
# "<... call resumed>data..., n) = result".
_CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(read|recvfrom|readv|recvmsg)\(\d+<([A-Za-z0-9]+)")
_RESUMED = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+<\.\.\. (read|recvfrom|readv|recvmsg) resumed>")
_RESULT = re.compile(r"\) = (\d+)$")


def trace_lines_with(trace: Path, needle: str) -> list[str]:
    """Lines of an strace recording that show `needle` (printable ASCII shows verbatim)."""
    hits = []
    with trace.open(errors="replace") as fh:
        for line in fh:
            if needle in line:
                hits.append(line[:160])
    return hits


@dataclass(frozen=True)
class SocketRead:
    size: int  # the bytes the call returned
    head: str  # the start of the line, for messages
    shows: frozenset[str]  # which of the needles asked for the line shows


def socket_reads(trace: Path, needles: tuple[str, ...] = ()) -> list[SocketRead]:
    """Every read off a TCP socket in the recording, and which `needles` it shows."""
    reads = []
    pending: dict[str, bool] = {}  # pid -> whether its unfinished call reads a TCP socket
    with trace.open(errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            call = _CALL.match(line)
            if call:
                is_tcp = call.group(3).startswith("TCP")
                if line.endswith("<unfinished ...>"):
                    pending[call.group(1)] = is_tcp
                    continue
            else:
                resumed = _RESUMED.match(line)
                if not resumed:
                    continue
                is_tcp = pending.pop(resumed.group(1), False)
            result = _RESULT.search(line)
            if is_tcp and result:
                shows = frozenset(n for n in needles if n in line)
                reads.append(SocketRead(int(result.group(1)), line[:200], shows))
    return reads


# -- A proxy that loses one answer ---------------------------------------------------------------

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class LossyProxy:
    """A loopback HTTP/1.1 proxy in front of `upstream` that loses one answer.

    It forwards bytes both ways and parses the request heads going up (the
    bodies have a Content-Length). The first request whose request line
    matches `lose` reaches the server whole; the server's answer to it never
    reaches the browser: the proxy answers 502 Bad Gateway and closes the
    connection instead, as a front proxy or a Tor circuit that breaks at that
    moment would. `request_lines` lists every request line that went up.
    """

    LOST_ANSWER = (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 11\r\nConnection: close\r\n\r\nBad Gateway"
    )

    def __init__(self, upstream_port: int, lose: re.Pattern[str]):
        self.upstream_port = upstream_port
        self.lose = lose
        self.request_lines: list[str] = []
        self.lost: list[str] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            self._listener.close()
            with self._lock:
                for s in self._sockets:
                    with contextlib.suppress(OSError):
                        s.close()
            thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            state = {"lose_next_answer": False}
            for target in (self._up, self._down):
                threading.Thread(target=target, args=(client, upstream, state), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        head = b""
        body_left = 0
        try:
            while data := client.recv(256 * 1024):
                rest = data
                while rest:
                    if body_left:
                        taken = min(body_left, len(rest))
                        body_left -= taken
                        rest = rest[taken:]
                        continue
                    head += rest
                    rest = b""
                    end = head.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    request_head, rest = head[:end], head[end + 4 :]
                    head = b""
                    line = request_head.split(b"\r\n", 1)[0].decode("latin-1")
                    length = CONTENT_LENGTH.search(request_head)
                    body_left = int(length.group(1)) if length else 0
                    with self._lock:
                        self.request_lines.append(line)
                        if not self.lost and self.lose.search(line):
                            self.lost.append(line)
                            state["lose_next_answer"] = True
                # Parsed before forwarding: the server cannot answer before the proxy knows.
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    def _down(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        try:
            while data := upstream.recv(256 * 1024):
                if state["lose_next_answer"]:
                    client.sendall(self.LOST_ANSWER)
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()
