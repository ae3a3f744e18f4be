"""The follow-up channel on the reviewers' side: one case per source, replies back.

With the server in process (its real database and blob store) and the
reviewers' commands run as the `intake` command: a source's later messages are
filed inside the case of their first report, whether they travel in the same
bundle or a later one; a reviewer's reply is encrypted to the case's source,
kept in the case, carried once by a return file and read by the source with
the receipt; a case that came without a receipt says it cannot be answered;
nothing the reviewer wrote is ever changed or lost.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from followup_support import MailboxPage, csrf_of, receipt_of_answer
from helpers import Deployment, form_tokens, make_settings, valid_report

from intake.review.casestore import FOLLOW_UPS, case_ids, load_case
from intake.review.importer import import_bundle
from intake.review.store import CaseFilter, CaseStore
from intake.transfer.server_side import export_bundles, purge
from intake.web.app import build_app


@pytest.fixture
def world(tmp_path):
    deployment = Deployment(tmp_path / "keys").setup(recipients=2)
    settings = make_settings(tmp_path / "var", deployment)
    client = build_app(settings, {"TESTING": True}).test_client()
    identity = deployment.identity_file(tmp_path / "reviewer.key", 0)
    return deployment, settings, client, identity, tmp_path


def intake(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True,
                          text=True, timeout=120, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def report(client, lang: str = "en", **fields) -> str:
    tokens = form_tokens(client.get(f"/{lang}/report").get_data(as_text=True))
    answer = client.post(f"/{lang}/report", data={**tokens, **valid_report(**fields)},
                         content_type="multipart/form-data")
    return receipt_of_answer(answer.get_data(as_text=True))


def mailbox(client, receipt: str) -> MailboxPage:
    token = csrf_of(client.get("/en/follow-up").get_data(as_text=True))
    return MailboxPage(client.post("/en/follow-up", data={"csrf_token": token,
                                                         "receipt": receipt}).get_data(
                                                             as_text=True))


def send_more(client, receipt: str, message: str, files=()) -> None:
    page = mailbox(client, receipt)
    version = page.html.split('name="keyring_version" type="hidden" value="')[1].split('"')[0]
    answer = client.post("/en/follow-up/send", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page.html), "mailbox": page.ticket, "keyring_version": version,
        "message": message,
        "attachments": [(io.BytesIO(content), name) for name, content in files]})
    assert answer.status_code == 200, answer.status_code


def export(settings, out: Path) -> Path:
    [(bundle, _count)] = export_bundles(settings, out).bundles
    return bundle


def imported(bundle: Path, identity: Path, cases: Path) -> subprocess.CompletedProcess:
    result = intake("review", "import", str(bundle), "--identity", str(identity), "--cases",
                    str(cases))
    assert result.returncode == 0, result.stderr
    return result


def test_a_source_s_later_messages_are_filed_in_its_case_across_bundles(world):
    deployment, settings, client, identity, tmp = world
    receipt = report(client, narrative="my phone grew hot after a missed call")
    other = report(client, narrative="someone else entirely")
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb1"), identity, cases)
    assert len(case_ids(cases)) == 2

    send_more(client, receipt, "هذه لقطة الشاشة التي طلبتموها، والرابط ما زال هنا",
              files=[("screen.png", b"\x89PNG" + os.urandom(2000))])
    second = export(settings, tmp / "usb2")
    result = imported(second, identity, cases)
    assert "1 of those added came from a source with a case here" in result.stderr
    assert len(case_ids(cases)) == 2  # one case per source
    with CaseStore(cases) as store:
        [ours] = [s for s in store.cases() if store.thread_of(s.case_id)
                  and load_case(cases / s.case_id).fields.get("narrative", "").startswith("my")]
        case = store.case(ours.case_id)
        [follow_up] = case.follow_ups
        # The message is searchable with its case.
        assert [s.case_id for s in store.cases(CaseFilter(search="لقطة"))] == [case.case_id]
    assert follow_up.fields == {"narrative": "هذه لقطة الشاشة التي طلبتموها، والرابط ما زال هنا"}
    assert [a["name"] for a in follow_up.attachments] == ["screen.png"]
    assert follow_up.directory.parent == cases / case.case_id / FOLLOW_UPS
    shown = intake("review", "show", case.case_id, "--cases", str(cases))
    assert shown.returncode == 0, shown.stderr
    assert "هذه لقطة الشاشة" in shown.stdout and "screen.png" in shown.stdout
    assert "intake review reply IC-" in shown.stdout
    # Acked like any submission (it is its own blob on the server), and purged.
    ack = tmp / "ack.json"
    assert intake("review", "ack", str(second), "--cases", str(cases), "--out",
                  str(ack)).returncode == 0
    assert [s["id"] for s in json.loads(ack.read_text())["submissions"]] == [follow_up.case_id]
    assert purge(settings, ack).deleted == [follow_up.case_id]
    assert mailbox(client, receipt).statuses == ["exported", "imported"]
    assert mailbox(client, other).statuses == ["exported"]


def test_a_report_and_its_follow_up_in_one_bundle_make_one_case_whichever_id_is_first(world):
    deployment, settings, client, identity, tmp = world
    receipts = [report(client, narrative=f"report {i}") for i in range(4)]
    for i, receipt in enumerate(receipts):
        send_more(client, receipt, f"more from source {i}")
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb"), identity, cases)
    assert len(case_ids(cases)) == 4
    for case_id in case_ids(cases):
        case = load_case(cases / case_id)
        # The report is the case; the message is filed in it, never the other way round.
        assert case.fields["narrative"].startswith("report ")
        [follow_up] = case.follow_ups
        assert follow_up.fields["narrative"] == "more from source " + case.fields["narrative"][-1]


def test_a_reply_goes_from_the_case_to_the_source_once_and_stays_in_the_case(world):
    deployment, settings, client, identity, tmp = world
    receipt = report(client, narrative="please answer me")
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb"), identity, cases)
    [case_id] = case_ids(cases)
    text = "Thank you. Is the link still in your messages?\nشكرًا، هل ما زال الرابط عندك؟"
    (tmp / "reply.txt").write_text(text, encoding="utf-8")
    queued = intake("review", "reply", case_id[:8], "--text-file", str(tmp / "reply.txt"),
                    "--cases", str(cases))
    assert queued.returncode == 0 and "queued" in queued.stderr, queued.stderr
    shown = intake("review", "show", case_id, "--cases", str(cases)).stdout
    assert "waits for the next return file" in shown and "شكرًا" in shown

    first, second = tmp / "ack1.json", tmp / "ack2.json"
    made = intake("review", "ack", "--cases", str(cases), "--out", str(first))
    assert made.returncode == 0 and "with 1 reply(ies)" in made.stderr, made.stderr
    again = intake("review", "ack", "--cases", str(cases), "--out", str(second))
    assert "with 0 reply(ies)" in again.stderr  # marked sent once written
    document = json.loads(first.read_text())
    [carried] = document["replies"]
    assert text not in first.read_text()  # only ciphertext travels
    assert "sent in a return file on" in intake("review", "show", case_id, "--cases",
                                                str(cases)).stdout

    assert mailbox(client, receipt).replies == []
    delivered = purge(settings, first)
    assert delivered.replies.delivered == [carried["reply_id"]]
    assert purge(settings, first).replies.already == [carried["reply_id"]]  # fed twice
    assert mailbox(client, receipt).replies == [text]


def test_a_case_that_came_without_a_receipt_cannot_be_answered(world):
    deployment, settings, client, identity, tmp = world
    report(client)
    bundle = export(settings, tmp / "usb")
    cases = tmp / "cases"
    # The bundle as an older server wrote it: no threads.age (the import must still work).
    import tarfile

    old = tmp / "old.tar"
    with tarfile.open(bundle) as src, tarfile.open(old, "w", format=tarfile.USTAR_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "threads.age":
                continue
            if member.name == "manifest.json":
                manifest = json.loads(data)
                del manifest["threads"]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    imported(old, identity, cases)
    [case_id] = case_ids(cases)
    (tmp / "reply.txt").write_text("hello")
    refused = intake("review", "reply", case_id, "--text-file", str(tmp / "reply.txt"),
                     "--cases", str(cases))
    assert refused.returncode == 1 and "cannot" not in refused.stdout
    assert "came without a way back to its source" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "The source cannot be answered" in intake("review", "show", case_id, "--cases",
                                                     str(cases)).stdout


@pytest.mark.parametrize("text, says", [
    ("", "The reply is empty"),
    ("hello \x1b[2J world", "control character"),
    ("x" * 16_001, "at most 16000"),
], ids=["empty", "escape", "too-long"])
def test_a_reply_that_cannot_be_sent_is_refused_and_nothing_queued(world, text, says):
    deployment, settings, client, identity, tmp = world
    report(client)
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb"), identity, cases)
    [case_id] = case_ids(cases)
    (tmp / "reply.txt").write_text(text)
    refused = intake("review", "reply", case_id, "--text-file", str(tmp / "reply.txt"),
                     "--cases", str(cases))
    assert refused.returncode == 1 and says in refused.stderr, refused.stderr
    assert "\x1b" not in refused.stderr
    with CaseStore(cases) as store:
        assert store.replies(case_id) == [] and store.unsent_replies() == []


def test_what_a_reviewer_wrote_to_a_source_is_never_changed_or_deleted(world):
    deployment, settings, client, identity, tmp = world
    report(client)
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb"), identity, cases)
    [case_id] = case_ids(cases)
    with CaseStore(cases) as store:
        written = store.add_reply(case_id, "first words")
        store.mark_sent([written.reply_id])
        store.mark_sent([written.reply_id])  # a second mark changes nothing
        [kept] = store.replies(case_id)
    with sqlite3.connect(cases / "cases.db") as db:
        for statement in ("UPDATE replies SET text = 'other words'",
                          "UPDATE replies SET sent_on = '2000-01-01'",
                          "DELETE FROM replies"):
            with pytest.raises(sqlite3.DatabaseError):
                db.execute(statement)
    with CaseStore(cases) as store:
        assert store.replies(case_id) == [kept] and kept.text == "first words"


def test_a_follow_up_filed_but_not_indexed_is_indexed_when_the_store_next_opens(world):
    """An import killed between a follow-up's rename and its case's index write."""
    deployment, settings, client, identity, tmp = world
    receipt = report(client, narrative="first")
    cases = tmp / "cases"
    imported(export(settings, tmp / "usb1"), identity, cases)
    [case_id] = case_ids(cases)
    send_more(client, receipt, "zanzibar is the word to find")
    bundle = export(settings, tmp / "usb2")
    with CaseStore(cases) as store:
        store.index_case = lambda _case_id: None  # the step the crash skipped
        from intake.review import importer

        original = importer.CaseStore
        importer.CaseStore = lambda *a, **k: store  # type: ignore[assignment]
        try:
            result = import_bundle(bundle, deployment.identities[:1], cases)
        finally:
            importer.CaseStore = original
        assert len(result.follow_ups) == 1
    with CaseStore(cases) as store:  # opening reconciles: the follow-up's folder is seen
        assert [s.case_id for s in store.cases(CaseFilter(search="zanzibar"))] == [case_id]
