"""The intake as it runs in production: a real gunicorn process with the deploy
configuration, reached over HTTP on a free loopback port."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import subprocess
import time

import pytest
import requests
from conftest import require_tool
from helpers import Deployment, gunicorn, server_env, submit, thanked

from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.storage import db
from intake.storage.models import Submission

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


@pytest.fixture
def world(tmp_path):
    deployment = Deployment(tmp_path / "keys").setup(recipients=2)
    data, tmpdir, logs = tmp_path / "var", tmp_path / "tmp", tmp_path / "logs"
    tmpdir.mkdir()
    env = server_env(data, deployment, tmpdir)
    return deployment, data, tmpdir, logs, env


def rows(data_dir) -> list[Submission]:
    factory = db.make_session_factory(db.make_engine(f"sqlite:///{data_dir / 'intake.db'}"))
    with factory() as session:
        return session.query(Submission).all()


def test_a_report_with_a_2_mib_file_arrives_and_opens_with_the_project_and_with_age(
    world, tmp_path
):
    age = require_tool("age")
    tar = require_tool("tar")
    deployment, data, _, logs, env = world
    attachment = os.urandom(2 * MiB)
    narrative = "تم اختراق هاتفي بعد رسالة من رقم مجهول — Pegasus?"
    with gunicorn(env, logs) as base:
        response = submit(
            base,
            files=[("capture.png", attachment, "image/png")],
            narrative=narrative,
            indicators="hxxp://evil[.]example/x",
        )
        assert thanked(response), response.text[:500]
    [blob] = list((data / "blobs").glob("*.age"))
    [row] = rows(data)
    assert row.id == blob.stem and row.size == blob.stat().st_size

    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, [deployment.identities[1]])
    plain.seek(0)
    report = extract_container(plain, tmp_path / "ours")
    fields = report.document["fields"]
    assert fields["narrative"] == narrative
    assert fields["indicators"] == "hxxp://evil[.]example/x"
    [entry] = report.document["attachments"]
    assert entry["name"] == "capture.png" and entry["type"] == "image/png"
    assert entry["sha256"] == hashlib.sha256(attachment).hexdigest()
    assert (report.directory / entry["path"]).read_bytes() == attachment

    out = tmp_path / "theirs"
    out.mkdir()
    identity = deployment.identity_file(tmp_path / "reviewer.key", 1)
    # As a reviewer types it: a shell pipeline.
    pipeline = f"{age} -d -i {identity} {blob} | {tar} -x -C {out}"
    subprocess.run(pipeline, shell=True, check=True)  # noqa: S602 (paths made by the test)
    assert (out / entry["path"]).read_bytes() == attachment
    import json

    assert json.loads((out / "report.json").read_text())["fields"] == fields


def test_log_lines_written_during_requests_carry_no_client_address(world):
    _, _, _, logs, env = world
    with gunicorn(env, logs) as base:
        time.sleep(0.5)
        before = {p: p.stat().st_size for p in logs.iterdir()}
        for _ in range(3):
            assert thanked(submit(base))
        requests.get(
            f"{base}/en/nope",
            headers={"User-Agent": "Canary-UA/1.0", "Referer": "http://referrer.example/"},
            timeout=30,
        )
        time.sleep(0.5)
        written = b"".join(p.read_bytes()[before[p] :] for p in logs.iterdir())
    assert b"POST /en/report" in written  # the access log is on, without addresses
    assert b"127.0.0.1" not in written
    assert b"Canary-UA" not in written and b"referrer.example" not in written
    assert not re.search(rb"\d{2}:\d{2}:\d{2}", written), "a log line carries a time of day"


def test_a_client_that_disconnects_mid_upload_leaves_nothing(world):
    _, data, tmpdir, logs, env = world
    with gunicorn(env, logs) as base:
        page = requests.get(f"{base}/en/report", timeout=30)
        port = int(base.rsplit(":", 1)[1])
        boundary = "cut"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; '
            f'filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                (
                    f"POST /en/report HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Cookie: {page.headers.get('Set-Cookie', '').split(';')[0]}\r\n"
                    f"Content-Length: {20 * MiB}\r\n\r\n"
                ).encode()
                + head
            )
            for _ in range(4):
                sock.sendall(os.urandom(MiB))
        time.sleep(2)
        assert requests.get(f"{base}/en/report", timeout=30).status_code == 200  # still serving
    assert list((data / "blobs").glob("*")) == []
    assert rows(data) == []
    spool = data / "spool"
    assert not spool.exists() or list(spool.iterdir()) == []
    assert list(tmpdir.iterdir()) == []
