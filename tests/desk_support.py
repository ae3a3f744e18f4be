"""Helpers for the reviewers' desk tests: case folders, images, and a running desk.

`write_case` lays a case out exactly as `intake review import` does
(`intake.review.casestore`): ``case.json``, ``report.json`` with the
container's attachment entries, and the files under ``attachments/`` with
their container names. `running_desk` starts the real command, ``intake
review serve``, on a free loopback port and reads the one-time URL it prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from helpers import free_port, stop_group

from intake.crypto.container import clean_original_name, safe_name

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"http://127\.0\.0\.1:([0-9]+)/login\?token=[A-Za-z0-9_-]+")

#: A place in Beirut, as a camera would record it.
GPS = {1: "N", 2: (33.0, 53.0, 37.68), 3: "E", 4: (35.0, 30.0, 6.48)}
GPS_DECIMAL = "33.893800, 35.501800"
CAMERA = "Pixel 7 Pro"


def write_case(
    cases_dir: Path,
    fields: dict,
    *,
    lang: str = "en",
    files: list[tuple[str, bytes, str]] = (),
    received_on: str = "2026-11-28",
    case_id: str | None = None,
) -> str:
    case_id = case_id or secrets.token_hex(16)
    directory = cases_dir / case_id
    (directory / "attachments").mkdir(parents=True)
    entries = []
    for index, (name, data, mime) in enumerate(files, start=1):
        path = f"attachments/{safe_name(name, index)}"
        (directory / path).write_bytes(data)
        entries.append({
            "path": path, "name": clean_original_name(name), "type": mime,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        })
    report = {"schema": "intake-report/v2", "lang": lang, "fields": fields, "attachments": entries}
    (directory / "report.json").write_text(json.dumps(report), encoding="utf-8")
    meta = {"case_id": case_id, "received_on": received_on, "keyring_version": 3,
            "sha256": hashlib.sha256(case_id.encode()).hexdigest()}
    (directory / "case.json").write_text(json.dumps(meta), encoding="utf-8")
    return case_id


def code_of(case_id: str) -> str:
    return "IC-" + case_id[:8].upper()


def jpeg_with_gps(size: tuple[int, int] = (640, 480)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, (180, 40, 40))
    for x in range(0, size[0], 8):  # something to see
        for y in range(0, size[1], 40):
            image.putpixel((x, y), (255, 255, 255))
    exif = Image.Exif()
    exif[0x010F] = "Google"  # Make
    exif[0x0110] = CAMERA  # Model
    exif[0x8825] = GPS  # GPSInfo
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"taken at the checkpoint", icc_profile=icc)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 40000) -> bytes:
    """A valid 1-bit PNG of side × side black pixels: about 200 KB that decode to side² bytes."""
    row = b"\0" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_at_once = 1000
    body = [compressor.compress(row * rows_at_once) for _ in range(side // rows_at_once)]
    body.append(compressor.compress(row * (side % rows_at_once)))
    body.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(body))
            + _chunk(b"IEND", b""))


def png_chunk_types(png: bytes) -> list[bytes]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    types, offset = [], 8
    while offset < len(png):
        length = struct.unpack(">I", png[offset : offset + 4])[0]
        types.append(png[offset + 4 : offset + 8])
        offset += 12 + length
    return types


@dataclass
class Desk:
    base: str  # http://127.0.0.1:PORT
    login_url: str
    process: subprocess.Popen
    port: int
    root: str = ""  # base and the desk's random path, known once signed in (`sign_in`)


def sign_in(desk: Desk, session=None):
    """A requests session that opened the one-time URL; sets `desk.root`."""
    import requests

    session = session or requests.Session()
    answer = session.get(desk.login_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    landing = urljoin(desk.login_url, answer.headers["Location"])  # <root>/<lang>/
    desk.root = landing.rstrip("/").rsplit("/", 1)[0]
    return session


def desk_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    return env


@contextlib.contextmanager
def running_desk(cases_dir: Path, tmp: Path, *extra: str) -> Iterator[Desk]:
    """`intake review serve` on a free port, stopped afterwards."""
    port = free_port()
    log = tmp / f"desk-{port}.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "intake", "review", "serve", "--cases", str(cases_dir),
             "--port", str(port), *extra],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
            env=desk_env(tmp), cwd=tmp, start_new_session=True,
        )
        try:
            line = process.stdout.readline().decode()
            match = URL_LINE.search(line)
            assert match, f"no URL printed: {line!r} {log.read_text()}"
            yield Desk(f"http://127.0.0.1:{port}", match.group(0), process, port)
        finally:
            stop_group(process)
            process.stdout.close()


TEST_PORT = 8999  # the port the in-process app believes it serves; nothing listens there


class DeskClient:
    """Flask's test client for the desk, addressed as the desk expects (127.0.0.1:port)."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()
        self.base = f"http://127.0.0.1:{TEST_PORT}{app.extensions['desk'].guard.path_prefix}"

    def get(self, path: str, **kwargs):
        return self.client.get(self.base + path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.client.post(self.base + path, **kwargs)


def desk_client(cases_dir: Path, **options) -> DeskClient:
    """The desk app in this process (`create_desk_app`), signed in through its token."""
    from intake.review.desk import create_desk_app

    desk = DeskClient(create_desk_app(cases_dir, port=TEST_PORT, **options))
    answer = desk.client.get(desk.app.extensions["desk"].guard.login_url)
    assert answer.status_code == 303
    return desk
