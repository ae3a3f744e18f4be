"""What tests/test_tor.py does through Tor, apart from the browser.

`OnionSession` is a source's script through a client's tor: cookies, the
form's tokens, the form posted without JavaScript, and the upload API, each
request through the client's HTTPTunnelPort (tor's HTTP CONNECT), so that
no Python SOCKS library is needed. `PageLinks` collects every URL a page
points at (links, form actions, assets, the page script's own URLs) for the
crawl. `open_with_age` opens a stored submission with the `age` command-line
tool, not with the project's own code.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

import requests
from browser_support import Opened, stored_blobs, submission_rows
from conftest import require_tool
from helpers import form_tokens
from tor_network import Answer, TorClient, onion_connection, onion_request

from intake.crypto.container import extract_container
from intake.storage import db
from intake.storage.models import Upload

TIMEOUT = 180


def form_tokens_csrf(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@dataclass
class OnionSession:
    """One source's session with the intake, through `client` to `onion`."""

    client: TorClient
    onion: str
    cookies: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Host": self.onion}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def keep_cookies(self, answer: Answer) -> Answer:
        for value in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        return answer

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        answer = onion_request(self.client, self.onion, method, path, body=body,
                               headers=self.headers(headers), timeout=TIMEOUT)
        return self.keep_cookies(answer)

    def open_form(self, lang: str = "en") -> None:
        page = self.request("GET", f"/{lang}/report")
        assert page.status == 200, page.status
        self.tokens = form_tokens(page.body.decode())

    def post_form(self, lang: str, fields: dict[str, object],
                  files: list[tuple[str, bytes, str]]) -> Answer:
        """The form as a browser without JavaScript posts it (multipart, as requests encodes it)."""
        prepared = requests.Request(
            "POST", f"http://{self.onion}/{lang}/report", data={**self.tokens, **fields},
            files=[("attachments", f) for f in files] or [("attachments", ("", b""))],
        ).prepare()
        return self.request("POST", f"/{lang}/report", body=prepared.body,
                            headers={"Content-Type": prepared.headers["Content-Type"]})

    # -- The upload API, as the page's worker uses it --

    def api_headers(self, content_type: str) -> dict[str, str]:
        return {"X-CSRFToken": self.tokens["csrf_token"], "Content-Type": content_type}

    def create_upload(self, size: int, **extra: str) -> str:
        """A new upload; `extra` adds to the body (the page's `receipt`)."""
        body = json.dumps({"size": size, "keyring_version": int(self.tokens["keyring_version"]),
                           **extra})
        answer = self.request("POST", "/api/v1/uploads", body.encode(),
                              self.api_headers("application/json"))
        assert answer.status == 201, answer.body[:300]
        return json.loads(answer.body)["id"]

    def put_chunk(self, upload_id: str, offset: int, data: bytes) -> Answer:
        return self.request("PUT", f"/api/v1/uploads/{upload_id}?offset={offset}", data,
                            self.api_headers("application/octet-stream"))

    def stored_offset(self, upload_id: str) -> int:
        answer = self.request("GET", f"/api/v1/uploads/{upload_id}")
        assert answer.status == 200, answer.body[:300]
        return json.loads(answer.body)["offset"]

    def finish(self, upload_id: str, size: int) -> Answer:
        """Finish an upload; the body names the ciphertext's size, as the page's worker does."""
        return self.request("POST", f"/api/v1/uploads/{upload_id}/finish",
                            json.dumps({"size": size}).encode(),
                            self.api_headers("application/json"))

    def open_mailbox(self, receipt: str, lang: str = "en") -> str:
        """The follow-up page's answer to `receipt`, typed back as a source would."""
        page = self.request("GET", f"/{lang}/follow-up")
        assert page.status == 200, page.status
        token = form_tokens_csrf(page.body.decode())
        prepared = requests.Request("POST", f"http://{self.onion}/{lang}/follow-up",
                                    data={"csrf_token": token, "receipt": receipt}).prepare()
        answer = self.request("POST", f"/{lang}/follow-up", body=prepared.body,
                              headers={"Content-Type": prepared.headers["Content-Type"]})
        assert answer.status == 200, answer.status
        return answer.body.decode()

    def send_without_reading(self, method: str, path: str, body: bytes, *,
                             content_type: str, send: int | None = None):
        """Send the request head and the first `send` bytes of `body` (all by default),
        and read nothing back: the caller breaks the circuit while the rest, or the
        answer, is on its way. Returns the open connection."""
        connection = onion_connection(self.client, self.onion, TIMEOUT)
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers({**self.api_headers(content_type),
                                         "Content-Length": str(len(body))}).items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body[: len(body) if send is None else send])
        return connection


# -- The crawl ------------------------------------------------------------------------------------

# Attributes that hold a URL the browser follows, fetches or posts to.
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "data", "srcset", "cite"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


class PageLinks(HTMLParser):
    """Every URL in a page: attributes, inline styles, and the page script's settings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []  # (where it was found, the URL)
        self._config: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                for url in (value.split(",") if name == "srcset" else [value]):
                    self.urls.append((f"<{tag} {name}>", url.strip().split(" ")[0]))
            elif name == "style":
                self.urls += [(f"<{tag} style>", u) for u in CSS_URL.findall(value)]
        if tag == "script" and ("id", "intake-config") in attrs:
            self._config = []

    def handle_data(self, data: str) -> None:
        if self._config is not None:
            self._config.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._config is not None:
            config = json.loads("".join(self._config))
            # The page script's own URLs: where it uploads, its worker, its library, thanks.
            for key in ("api", "worker", "vendor", "thanks"):
                self.urls.append((f"intake-config {key}", config[key]))
            self._config = None


def css_urls(text: str) -> list[tuple[str, str]]:
    return [("css url()", u) for u in CSS_URL.findall(text)]


# -- What the server stored -----------------------------------------------------------------------


def new_blobs(data_dir: Path, before: set[Path]) -> list[Path]:
    return sorted(set(stored_blobs(data_dir)) - before)


def uploads(data_dir: Path) -> dict[str, Upload]:
    """Every upload row, by id (detached copies)."""
    engine = db.make_engine(f"sqlite:///{data_dir / 'intake.db'}")
    try:
        with db.make_session_factory(engine)() as session:
            rows = session.query(Upload).all()
            session.expunge_all()
            return {row.id: row for row in rows}
    finally:
        engine.dispose()


def open_with_age(data_dir: Path, blob: Path, identity_file: Path, dest: Path) -> Opened:
    """Decrypt `blob` with the age command-line tool and open the container inside."""
    plaintext = subprocess.run(
        [require_tool("age"), "--decrypt", "-i", str(identity_file), str(blob)],
        capture_output=True, check=True, timeout=120,
    ).stdout
    [row] = [r for r in submission_rows(data_dir) if r.id == blob.stem]
    report = extract_container(io.BytesIO(plaintext), dest, durable=False)
    return Opened(blob, row, report, plaintext)


def files_containing(roots: list[Path], needle: bytes) -> list[Path]:
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(path)
    return hits
