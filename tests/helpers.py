"""Helpers shared by the web and end-to-end tests (imported as `helpers`)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from intake import schema
from intake.crypto import keyring as kr

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: A passphrase as strong as new key files require: seven words from the EFF large list.
STRONG_PASSPHRASE = "crumb unfold skirmish gab concave empty umbilical"


@dataclass
class Deployment:
    """A keyring and admins file signed by an in-memory admin (no scrypt, fast)."""

    keys_dir: Path
    identities: list[x25519.Identity] = field(default_factory=list)
    admin: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def keyring_path(self) -> Path:
        return self.keys_dir / "keyring.json"

    @property
    def admins_path(self) -> Path:
        return self.keys_dir / "admins.json"

    @property
    def admin_id(self) -> str:
        return kr.admin_id_for(self._raw_public())

    def _raw_public(self) -> bytes:
        return self.admin.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def setup(self, recipients: int = 2) -> Deployment:
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        kr.register_admin(
            self.admins_path, self.admin_id, base64.b64encode(self._raw_public()).decode(), "Admin"
        )
        document = kr.empty_keyring_document()
        for i in range(recipients):
            self.identities.append(x25519.Identity.generate())
            document = kr.add_recipient(
                document,
                str(self.identities[-1].to_public()),
                recipient_id=f"r{i}",
                label=f"Reviewer {i}",
            ).document
        self.write(kr.Keyring(document))
        return self

    def write(self, keyring: kr.Keyring, *, sign: bool = True) -> kr.Keyring:
        if sign:
            keyring = kr.sign_keyring(keyring, self.admin_id, self.admin)
        kr.save_keyring(self.keyring_path, keyring)
        return keyring

    def current(self) -> kr.Keyring:
        return kr.load_keyring(self.keyring_path)

    def rotate(self, *, now: datetime | None = None) -> kr.Keyring:
        """A new reviewer joins: a newer, signed version."""
        self.identities.append(x25519.Identity.generate())
        revised = kr.add_recipient(
            self.current().document,
            str(self.identities[-1].to_public()),
            recipient_id=f"r{len(self.identities) - 1}",
            label="Reviewer new",
            now=now,
        )
        return self.write(revised)

    def identity_file(self, path: Path, index: int = 0) -> Path:
        ident = self.identities[index]
        path.write_text(f"# public key: {ident.to_public()}\n{ident}\n")
        path.chmod(0o600)
        return path


def valid_report(**overrides: object) -> dict[str, object]:
    """A minimal valid report, built from the schema itself."""
    data: dict[str, object] = {}
    for name, f in schema.FIELDS.items():
        if f.kind == "files" or not f.required:
            continue
        if f.kind == "country":
            data[name] = "EG"
        elif f.kind in schema.MULTI_KINDS:
            data[name] = [f.choices[0].value]
        elif f.kind in ("radio", "select"):
            data[name] = f.choices[0].value
        elif f.kind == "partial_date":
            data[name] = "2026-03"
        elif f.kind == "checkbox":
            data[name] = "y"
        else:
            data[name] = "text"
    data.update(overrides)
    return data


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KEYRING_VERSION = re.compile(r'name="keyring_version" type="hidden" value="(\d+)"')


def form_tokens(html: str) -> dict[str, str]:
    return {
        "csrf_token": CSRF.search(html).group(1),
        "keyring_version": KEYRING_VERSION.search(html).group(1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            # The first answer can be slow (a worker still importing, or a
            # server running under strace): a read timeout means "not yet".
            requests.get(url, timeout=(2, 10))
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


#: Argon2id at its cheapest, for tests that are not about the receipts' cost: each report
#: derives its receipt's keys, and 0.3 s per report would dominate most tests.
CHEAP_OPSLIMIT = 1
CHEAP_MEMLIMIT = 8 * 1024 * 1024


def cheap_receipt_secrets(data_dir: Path) -> Path:
    """Give the deployment in `data_dir` receipt secrets with the cheapest Argon2id cost
    (before its server first runs, which would otherwise make them at full cost)."""
    from intake.crypto import receipt

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / receipt.SECRETS_FILE
    if not path.exists():
        receipt.write_secrets(
            path, receipt.generate_secrets(opslimit=CHEAP_OPSLIMIT, memlimit=CHEAP_MEMLIMIT))
    return path


def server_env(
    data_dir: Path, deployment: Deployment, tmpdir: Path, *, full_cost_receipts: bool = False,
    **extra: str,
) -> dict[str, str]:
    if not full_cost_receipts:
        # Where the server reads them: beside a shared secret key, else in the data dir.
        key_file = extra.get("INTAKE_SECRET_KEY_FILE")
        cheap_receipt_secrets(Path(key_file).parent if key_file else data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(
        INTAKE_DATA_DIR=str(data_dir),
        INTAKE_KEYRING=str(deployment.keyring_path),
        INTAKE_ADMINS=str(deployment.admins_path),
        TMPDIR=str(tmpdir),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a server started with start_new_session=True, and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class ServerURL(str):
    """A running server's base URL, which also knows the process that was started."""

    pid: int


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str],
    log_dir: Path,
    *,
    prefix: list[str] | None = None,
    app: str | None = None,
    workers: int = 2,
) -> Iterator[ServerURL]:
    """A real gunicorn with deploy/gunicorn.conf.py on a free loopback port."""
    port = free_port()
    cmd = [
        *(prefix or []),
        str(VENV_BIN / "gunicorn"),
        "-c",
        str(ROOT / "deploy/gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    if app:
        cmd.append(app)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=err, cwd=ROOT, start_new_session=True
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", proc=proc, timeout=60)
            url = ServerURL(f"http://127.0.0.1:{port}")
            url.pid = proc.pid  # gunicorn's master, or the prefix (strace) that runs it
            yield url
        finally:
            stop_group(proc)


def submit(
    base: str, lang: str = "en", files: list[tuple[str, bytes, str]] | None = None, **fields: object
) -> requests.Response:
    """Fetch the form, then post a report the way a browser without JavaScript does."""
    session = requests.Session()
    page = session.get(f"{base}/{lang}/report", timeout=30)
    page.raise_for_status()
    data = {**form_tokens(page.text), **valid_report(**fields)}
    multipart = [("attachments", (name, content, ctype)) for name, content, ctype in files or []]
    if not multipart:
        multipart = [("attachments", ("", b"", "application/octet-stream"))]
    return session.post(
        f"{base}/{lang}/report", data=data, files=multipart, allow_redirects=False, timeout=120
    )


def make_settings(data_dir: Path, deployment: Deployment, *, max_upload: int = 8 * 1024 * 1024,
                  database_url: str | None = None, full_cost_receipts: bool = False):
    """Settings for an app under test: SQLite in `data_dir` (migrated), the keyring
    re-read on every request, receipts at the cheapest cost unless asked otherwise."""
    from intake.config import Settings
    from intake.storage import db

    data_dir.mkdir(parents=True, exist_ok=True)
    if not full_cost_receipts:
        cheap_receipt_secrets(data_dir)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{data_dir / 'intake.db'}",
        keyring_path=deployment.keyring_path,
        admins_path=deployment.admins_path,
        max_upload=max_upload,
        keyring_check_seconds=0,
    )
    db.upgrade(settings.database_url)
    return settings


# The receipt on a thank-you page: in the page's digits (id="receipt"), and in Western
# digits beside them on Arabic and Persian pages.
RECEIPT_ON_PAGE = re.compile(r'id="receipt"><bdi dir="ltr">([^<]+)</bdi>')


def receipt_from(html: str) -> str | None:
    """The receipt a thank-you page shows, as 20 ASCII digits; None if it shows none."""
    from intake.crypto.receipt import normalise_receipt

    found = RECEIPT_ON_PAGE.search(html)
    return normalise_receipt(found.group(1)) if found else None


def thanked(response: requests.Response) -> bool:
    """Whether a report's POST was answered with the thank-you page and its receipt."""
    return response.status_code == 200 and receipt_from(response.text) is not None
