"""The way back to the source, end to end: a real gunicorn, the `intake` command, the `age` tool.

Two sources report, one without JavaScript (the form, the server draws the
receipt) and one as the browser does (ciphertext made by the `age` tool, the
receipt drawn on the client and sent with the upload). Then, as in real life:
the admin exports; the reviewer imports (the `age` tool opens threads.age and
the submissions from the bundle just as well); the reviewer replies to each
case and writes the return file; the admin purges with it; each source types
the receipt back (one in Arabic-Indic digits) and reads the reply; each sends
a message with a file, on its own path; the admin exports again, and the
reviewer's import files each message inside the case of its source.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests
from conftest import require_tool
from followup_support import csrf_of, in_digits, open_over_http
from helpers import Deployment, gunicorn, receipt_from, server_env, submit, thanked
from reliability_support import ApiClient, client_ciphertext

from intake.crypto.receipt import new_receipt
from intake.review.casestore import case_ids, load_case

pytestmark = pytest.mark.slow


def intake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def age_open(data: bytes, identity: Path) -> bytes:
    return subprocess.run([require_tool("age"), "-d", "-i", str(identity)], input=data,
                          capture_output=True, check=True).stdout


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def export(env: dict[str, str], out: Path) -> Path:
    done = intake(env, "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    [bundle] = sorted(out.glob("intake-export-*.tar"))
    return bundle


def test_a_source_reads_the_reply_and_sends_more_into_the_same_case_on_both_paths(tmp_path):
    require_tool("age")
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    identity = deployment.identity_file(tmp_path / "reviewer.key")
    data, tmpdir = tmp_path / "var", tmp_path / "tmp"
    tmpdir.mkdir()
    env = server_env(data, deployment, tmpdir)
    cases = tmp_path / "cases"
    with gunicorn(env, tmp_path / "logs") as base:
        # 1. Two reports, each gives a receipt.
        form = submit(base, lang="ar", narrative="بلاغ عبر الاستمارة دون جافاسكربت")
        assert thanked(form)
        form_receipt = receipt_from(form.text)
        browser_receipt = new_receipt()  # what the page's script draws
        api = ApiClient(base)
        ciphertext = client_ciphertext(deployment, "a report encrypted in the browser")
        upload_id = api.create(len(ciphertext), receipt=browser_receipt)
        assert api.put(upload_id, 0, ciphertext).status_code == 200
        assert api.finish(upload_id, len(ciphertext)).status_code == 201

        # 2. Export, then import. The age tool opens what the bundle carries.
        first = export(env, tmp_path / "usb1")
        carried = members(first)
        threads = json.loads(age_open(carried["threads.age"], identity))
        assert threads["format"] == "intake-threads/v1" and len(threads["submissions"]) == 2
        for entry in threads["submissions"]:
            assert b"report.json" in age_open(carried[f"submissions/{entry['id']}.age"], identity)
        imported = intake(env, "review", "import", str(first), "--identity", str(identity),
                          "--cases", str(cases))
        assert imported.returncode == 0 and "2 added" in imported.stderr, imported.stderr

        # 3. A reply to each source; the return file; the purge delivers them.
        replies = {}
        for case_id in case_ids(cases):
            case = load_case(cases / case_id)
            assert case.reply_to  # both came with a receipt
            text = f"Reply to {case.code}: can you send the file? شكرًا {secrets.token_hex(4)}"
            (tmp_path / "reply.txt").write_text(text, encoding="utf-8")
            queued = intake(env, "review", "reply", case.code, "--text-file",
                            str(tmp_path / "reply.txt"), "--cases", str(cases))
            assert queued.returncode == 0, queued.stderr
            replies[case.fields["narrative"]] = text
        ack = tmp_path / "ack.json"
        made = intake(env, "review", "ack", str(first), "--cases", str(cases), "--out", str(ack))
        assert made.returncode == 0 and "with 2 reply(ies)" in made.stderr, made.stderr
        purged = intake(env, "purge", "--ack", str(ack))
        assert purged.returncode == 0, purged.stderr
        assert "Replies: 2 delivered" in purged.stderr and "2 deleted" in purged.stderr
        again = intake(env, "purge", "--ack", str(ack))  # fed twice: nothing twice
        assert "Replies: 0 delivered, 2 delivered before" in again.stderr, again.stderr

        # 4. Each source reads its reply with its receipt.
        form_page = open_over_http(base, in_digits(form_receipt, "arabic"), "ar")
        assert form_page.replies == [replies["بلاغ عبر الاستمارة دون جافاسكربت"]]
        assert form_page.statuses == ["imported"]
        browser_page = open_over_http(base, browser_receipt)
        assert browser_page.replies == [replies["a report encrypted in the browser (browser)"]]

        # 5. Each sends a message with a file, on its own path.
        session = requests.Session()
        page = open_over_http(base, form_receipt, "en", session)
        version = re.search(r'name="keyring_version" type="hidden" value="(\d+)"',
                            page.html).group(1)
        evidence = os.urandom(3000)
        sent = session.post(f"{base}/en/follow-up/send", timeout=120, data={
            "csrf_token": csrf_of(page.html), "mailbox": page.ticket,
            "keyring_version": version, "message": "the file you asked for"},
            files=[("attachments", ("diagnostics.zip", evidence, "application/zip"))])
        assert sent.status_code == 200 and 'id="sent"' in sent.text
        page = open_over_http(base, browser_receipt, "en", api.session)
        more = client_ciphertext(deployment, "more from the browser", attachment=evidence)
        upload_id = api.create(len(more), mailbox=page.ticket)
        assert api.put(upload_id, 0, more).status_code == 200
        assert api.finish(upload_id, len(more)).status_code == 201
        assert open_over_http(base, browser_receipt).statuses == ["imported", "received"]

        # 6. Exported and imported: each message lands in its source's case.
        second = export(env, tmp_path / "usb2")
        imported = intake(env, "review", "import", str(second), "--identity", str(identity),
                          "--cases", str(cases))
        assert imported.returncode == 0, imported.stderr
        assert "2 of those added came from a source with a case here" in imported.stderr
        assert len(case_ids(cases)) == 2
        for case_id in case_ids(cases):
            case = load_case(cases / case_id)
            [follow_up] = case.follow_ups
            [attachment] = follow_up.attachments
            assert (follow_up.directory / attachment["path"]).read_bytes() == evidence
            shown = intake(env, "review", "show", case.code, "--cases", str(cases))
            assert follow_up.fields["narrative"][:10] in shown.stdout
            assert "sent in a return file on" in shown.stdout

        # Nothing of either receipt, reply or message was left on the server's disk.
        needles = [form_receipt.encode(), browser_receipt.encode(), b"the file you asked for",
                   *(text.encode() for text in replies.values())]
        for root in (data, tmpdir, tmp_path / "logs"):
            for path in root.rglob("*"):
                if path.is_file():
                    blob = path.read_bytes()
                    assert not any(n in blob for n in needles), path
