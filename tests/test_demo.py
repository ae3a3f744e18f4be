"""`intake demo`: one command from a fresh clone to a working intake."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest
from helpers import free_port, submit, thanked, wait_for_http

from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.crypto.identity import load_identities
from intake.crypto.passphrase import word_list

pytestmark = pytest.mark.slow


def test_demo_starts_an_intake_whose_reports_open_with_the_demo_identity(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    (tmp_path / "keys").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=90, proc=proc)
        response = submit(
            f"http://127.0.0.1:{port}",
            narrative="demo report",
            files=[("a.txt", b"attached", "text/plain")],
        )
        assert thanked(response)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    demo = tmp_path / "var" / "demo"
    assert "DEMO" in err.decode() and str(demo / "reviewer.key") in err.decode()
    assert list((tmp_path / "keys").iterdir()) == []  # demo keys never go to keys/
    requests_logged = [
        line for line in err.decode().splitlines() if '"GET ' in line or '"POST ' in line
    ]
    assert requests_logged and not any("127.0.0.1" in line for line in requests_logged)
    passphrase = (demo / "passphrase.txt").read_text().splitlines()[0]
    assert passphrase in err.decode()
    words = passphrase.split(" ")  # generated as `intake keys` offers: seven EFF words
    assert len(words) == 7 and set(words) <= set(word_list())
    identities = load_identities(demo / "reviewer.key", lambda: passphrase)
    [blob] = list((tmp_path / "var" / "blobs").glob("*.age"))
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, identities)
    plain.seek(0)
    report = extract_container(plain, tmp_path / "case")
    assert report.document["fields"]["narrative"] == "demo report"
    assert (
        report.directory / report.document["attachments"][0]["path"]
    ).read_bytes() == b"attached"
