"""The follow-up channel on the server: receipts, mailboxes, the follow-up pages.

Pinned down here, in process (the app and the real database; Argon2id at its
cheapest cost except where the cost is the point):

- a receipt is 20 random digits, read back in any digit system with any
  spaces, dashes or direction marks, and nothing else is a receipt;
- its two keys are independent, depend on the pepper, and wrap only for
  themselves; the secrets file is made once, private, and refused damaged;
- every report, on both paths, opens a mailbox its receipt finds again, typed
  in Arabic-Indic or Persian digits; a wrong receipt and a deleted mailbox get
  the same answer; a malformed one gets one sentence about its shape;
- the follow-up page says "busy" when its slots are taken, and a report is
  never refused for them;
- sending more is linked to the mailbox on both paths; a ticket that is
  altered or expired sends nothing; deleting asks first, then deletes;
- a mailbox goes after INTAKE_MAILBOX_DAYS without activity;
- statuses follow export and proven acks; replies are delivered once, only
  from a proven file, never to an unknown thread, newest first, each in its
  own direction;
- a database dump alone finds no mailbox, even with the receipt in hand.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import sqlite3
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from followup_support import (
    MailboxPage,
    csrf_of,
    in_digits,
    manifest_of,
    opening_of,
    receipt_needles,
    receipt_of_answer,
    threads_of,
)
from helpers import Deployment, form_tokens, make_settings, valid_report
from sqlalchemy import select, text

from intake.crypto import receipt as rc
from intake.crypto.reply import encrypt_reply, padded_plaintext, read_reply
from intake.review.importer import import_bundle
from intake.storage import db
from intake.storage.derivation import FOLLOW_UP, REPORT, Pool
from intake.storage.models import Mailbox, MailboxReply, MailboxSubmission, Submission, Upload
from intake.transfer.ackfile import Reply, build_ack
from intake.transfer.server_side import export_bundles, purge
from intake.web.app import build_app

# -- The receipt ----------------------------------------------------------------------------------


def test_a_new_receipt_is_20_ascii_digits_and_they_vary():
    receipts = {rc.new_receipt() for _ in range(2000)}
    assert len(receipts) == 2000
    assert all(re.fullmatch(r"[0-9]{20}", r) for r in receipts)
    # Every digit at every place turns up: nothing is fixed or skewed beyond chance.
    for place in range(20):
        assert {r[place] for r in receipts} == set("0123456789")


RECEIPT = "01234567890123456789"


@pytest.mark.parametrize("typed", [
    RECEIPT,
    "0123 4567 8901 2345 6789",
    "0123-4567-8901-2345-6789",
    " 0123\u20134567\u20148901\u22122345\u00a06789\n",
    "٠١٢٣ ٤٥٦٧ ٨٩٠١ ٢٣٤٥ ٦٧٨٩",  # Arabic-Indic
    "۰۱۲۳ ۴۵۶۷ ۸۹۰۱ ۲۳۴۵ ۶۷۸۹",  # Persian
    "٠١٢٣ 4567 ۸۹۰۱ ٢٣٤٥ 6789",  # mixed, as a keyboard switch makes it
    "\u200f٠١٢٣\u200f \u200f٤٥٦٧\u200f \u2066٨٩٠١\u2069 ٢٣٤٥ ٦٧٨٩",  # direction marks
    "０１２３４５６７８９０１２３４５６７８９",  # full-width, from an East Asian keyboard
], ids=["bare", "spaces", "dashes", "other-dashes-and-spaces", "arabic-indic", "persian",
        "mixed", "direction-marks", "full-width"])
def test_a_receipt_is_read_in_any_digits_with_any_spaces_or_dashes(typed):
    assert rc.normalise_receipt(typed) == RECEIPT


@pytest.mark.parametrize("typed", [
    "", "0123 4567 8901 2345 678", "0123 4567 8901 2345 67890", "0123 4567 8901 2345 678x",
    "0123.4567.8901.2345.6789", "²123 4567 8901 2345 6789", "0123 4567 8901 2345 6789\x00",
    "1" * 20 + " " * 200,
], ids=["empty", "19", "21", "letter", "dots", "superscript", "nul", "too-long"])
def test_anything_else_is_not_a_receipt(typed):
    assert rc.normalise_receipt(typed) is None


def test_a_receipt_is_printed_in_groups_in_the_pages_digits():
    assert rc.format_receipt(RECEIPT) == "0123 4567 8901 2345 6789"
    assert rc.format_receipt(RECEIPT, "arabic") == "٠١٢٣ ٤٥٦٧ ٨٩٠١ ٢٣٤٥ ٦٧٨٩"
    assert rc.format_receipt(RECEIPT, "persian") == "۰۱۲۳ ۴۵۶۷ ۸۹۰۱ ۲۳۴۵ ۶۷۸۹"
    for digits in rc.DIGIT_SYSTEMS:  # and reads back as itself
        assert rc.normalise_receipt(rc.format_receipt(RECEIPT, digits)) == RECEIPT


# -- The keys -------------------------------------------------------------------------------------


CHEAP = {"opslimit": 1, "memlimit": 8 * 1024 * 1024}


def test_the_two_keys_are_independent_and_depend_on_the_pepper_and_the_salt():
    secrets_a = rc.generate_secrets(**CHEAP)
    keys = rc.derive_keys(RECEIPT, secrets_a)
    assert rc.derive_keys(RECEIPT, secrets_a) == keys  # the same receipt finds the same mailbox
    assert len(keys.wrapping_key) == 32 and re.fullmatch(r"[0-9a-f]{64}", keys.lookup_hash)
    assert keys.wrapping_key.hex() not in keys.lookup_hash  # one is not the other, or its hash
    other_pepper = rc.DerivationSecrets(secrets_a.salt, os.urandom(32), **CHEAP)
    other_salt = rc.DerivationSecrets(os.urandom(16), secrets_a.pepper, **CHEAP)
    for changed in (other_pepper, other_salt):
        assert rc.derive_keys(RECEIPT, changed).lookup_hash != keys.lookup_hash
    assert rc.derive_keys("1" + RECEIPT[1:], secrets_a).lookup_hash != keys.lookup_hash
    assert RECEIPT not in repr(keys) and keys.wrapping_key.hex() not in repr(keys)


def test_a_wrapped_identity_opens_only_with_its_own_receipts_key():
    derivation = rc.generate_secrets(**CHEAP)
    keys = rc.derive_keys(RECEIPT, derivation)
    sealed = rc.wrap(b"AGE-SECRET-KEY-1EXAMPLE", keys)
    assert b"AGE-SECRET-KEY" not in sealed
    assert rc.unwrap(sealed, keys) == b"AGE-SECRET-KEY-1EXAMPLE"
    with pytest.raises(rc.WrongWrappingKey):
        rc.unwrap(sealed, rc.derive_keys("9" + RECEIPT[1:], derivation))
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(rc.WrongWrappingKey):
        rc.unwrap(tampered, keys)


def test_the_secrets_file_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "deployment" / rc.SECRETS_FILE
    first = rc.load_or_create_secrets(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (first.opslimit, first.memlimit) == (rc.DEFAULT_OPSLIMIT, rc.DEFAULT_MEMLIMIT)
    assert rc.load_or_create_secrets(path) == first  # read again, never made anew


@pytest.mark.parametrize("damage", [
    b"", b"{}", b"not json", b'{"format": "intake-receipt-secrets/v1"}',
], ids=["empty", "empty-object", "not-json", "no-values"])
def test_a_damaged_secrets_file_is_refused_with_one_sentence(tmp_path, damage):
    path = tmp_path / rc.SECRETS_FILE
    path.write_bytes(damage)
    path.chmod(0o600)
    with pytest.raises(rc.ReceiptSecretsError, match="damaged; restore it"):
        rc.load_or_create_secrets(path)


def test_parameters_outside_their_bounds_are_refused(tmp_path):
    document = rc.generate_secrets(**CHEAP).document()
    document["argon2id"]["opslimit"] = 0
    path = tmp_path / rc.SECRETS_FILE
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(rc.ReceiptSecretsError):
        rc.load_or_create_secrets(path)


def test_a_secrets_file_open_to_every_user_is_refused(tmp_path):
    path = tmp_path / rc.SECRETS_FILE
    rc.write_secrets(path, rc.generate_secrets(**CHEAP))
    path.chmod(0o644)
    with pytest.raises(rc.ReceiptSecretsError, match="chmod 0640"):
        rc.load_or_create_secrets(path)
    path.chmod(0o640)  # the service's group may read it (instances sharing one file)
    assert rc.load_or_create_secrets(path)


def test_beside_a_shared_secret_key_the_secrets_are_read_never_made(tmp_path):
    """Each host making its own would split the mailboxes between hosts without a word."""
    import subprocess
    import sys

    def intake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "intake", *args], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    path = tmp_path / "etc" / rc.SECRETS_FILE
    path.parent.mkdir()
    with pytest.raises(rc.ReceiptSecretsError, match="intake db receipt-secrets"):
        rc.load_or_create_secrets(path, create=False)
    assert not path.exists()
    made = intake("db", "receipt-secrets", str(path))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = rc.load_or_create_secrets(path, create=False)
    again = intake("db", "receipt-secrets", str(path))
    assert again.returncode == 1 and "never replaced" in again.stderr
    assert "Traceback" not in again.stderr
    assert rc.load_or_create_secrets(path, create=False) == first


def test_a_reply_is_padded_to_a_coarse_size_and_read_back_exactly():
    short = padded_plaintext("شكرًا، هل يمكنك إرسال لقطة الشاشة؟", date(2026, 12, 1))
    longer = padded_plaintext("x" * 3000, date(2026, 12, 1))
    assert len(short) == len(longer) == 4096  # every reply up to about 4 KB looks alike
    assert read_reply(short).text == "شكرًا، هل يمكنك إرسال لقطة الشاشة؟"
    assert read_reply(short).written_on == "2026-12-01"
    assert read_reply(b'{"format": "intake-reply/v1", "text": "x"}') is None  # no day
    assert read_reply(json.dumps({"format": "intake-reply/v1", "text": "a\x1b[2Jb",
                                  "written_on": "2026-12-01"}).encode()) is None


# -- The pages ------------------------------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path) -> Deployment:
    return Deployment(tmp_path / "keys").setup(recipients=2)


@pytest.fixture
def settings(tmp_path, deployment):
    return make_settings(tmp_path / "var", deployment)


@pytest.fixture
def app(settings):
    return build_app(settings, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def report(client, lang: str = "en", **fields) -> str:
    """File a report without JavaScript; the receipt its answer shows."""
    tokens = form_tokens(client.get(f"/{lang}/report").get_data(as_text=True))
    answer = client.post(f"/{lang}/report", data={**tokens, **valid_report(**fields)},
                         content_type="multipart/form-data")
    assert answer.status_code == 200, answer.status_code
    return receipt_of_answer(answer.get_data(as_text=True))


def open_mailbox(client, receipt: str, lang: str = "en"):
    token = csrf_of(client.get(f"/{lang}/follow-up").get_data(as_text=True))
    return client.post(f"/{lang}/follow-up", data={"csrf_token": token, "receipt": receipt})


def mailbox(client, receipt: str, lang: str = "en") -> MailboxPage:
    answer = open_mailbox(client, receipt, lang)
    assert answer.status_code == 200
    return MailboxPage(answer.get_data(as_text=True))


def sessions(settings):
    return db.make_session_factory(db.make_engine(settings.database_url))


def table(settings, model) -> list:
    with sessions(settings)() as session:
        return list(session.scalars(select(model)))


@pytest.mark.parametrize("lang", ["en", "ar", "fa", "fr"])
def test_every_report_opens_a_mailbox_that_its_receipt_finds_again(client, settings, lang):
    receipt = report(client, lang)
    [row] = table(settings, Mailbox)
    [link] = table(settings, MailboxSubmission)
    [submission] = table(settings, Submission)
    assert (link.thread, link.submission_id, link.number, link.status) == (
        row.thread, submission.id, 1, "received")
    assert row.last_active_on == datetime.now(UTC).date()
    page = mailbox(client, receipt, lang)
    assert page.opened and page.statuses == ["received"] and page.replies == []


def test_the_thank_you_page_prints_the_receipt_in_its_own_digits_and_in_western_digits(client):
    tokens = form_tokens(client.get("/ar/report").get_data(as_text=True))
    answer = client.post("/ar/report", data={**tokens, **valid_report()},
                         content_type="multipart/form-data").get_data(as_text=True)
    local = re.search(r'id="receipt"><bdi dir="ltr">([^<]+)<', answer).group(1)
    western = re.search(r'id="receipt-western">([^<]+)<', answer).group(1)
    assert re.fullmatch(r"[٠-٩]{4}( [٠-٩]{4}){4}", local)
    assert re.fullmatch(r"[0-9]{4}( [0-9]{4}){4}", western)
    assert rc.normalise_receipt(local) == rc.normalise_receipt(western)
    en = client.post("/en/report", data={**form_tokens(client.get("/en/report").get_data(
        as_text=True)), **valid_report()}, content_type="multipart/form-data").get_data(
        as_text=True)
    assert 'id="receipt-western"' not in en  # Western digits already


@pytest.mark.parametrize("digits", ["arabic", "persian"])
def test_receipts_typed_in_arabic_indic_or_persian_digits_open_the_same_mailbox(client, digits):
    receipt = report(client, "en", narrative="the first report")
    typed = in_digits(receipt, digits).replace(" ", " - ")
    assert not re.search(r"[0-9]", typed)
    western = mailbox(client, receipt)
    local = mailbox(client, typed, "ar" if digits == "arabic" else "fa")
    assert western.opened and local.opened
    assert western.statuses == local.statuses == ["received"]


def test_a_wrong_receipt_gets_the_same_answer_as_a_deleted_mailbox(client, app):
    receipt = report(client)
    deleted_page = mailbox(client, receipt)
    assert app.extensions["intake"].mailboxes.delete(
        table_thread(app, receipt)) is True
    gone = open_mailbox(client, receipt)
    wrong = open_mailbox(client, rc.new_receipt())
    assert gone.status_code == wrong.status_code == 200
    assert deleted_page.html != gone.get_data(as_text=True)
    # Identical but for the form's fresh CSRF token.
    def scrub(answer) -> str:
        return re.sub(r'value="[^"]+"', 'value=""', answer.get_data(as_text=True))

    assert scrub(gone) == scrub(wrong)
    assert "Nothing under this receipt" in scrub(wrong)


def table_thread(app, receipt: str) -> str:
    keys = rc.derive_keys(rc.normalise_receipt(receipt), app.extensions["intake"].derivation)
    with app.extensions["intake"].session_factory() as session:
        return session.scalar(select(Mailbox.thread).where(Mailbox.lookup_hash == keys.lookup_hash))


@pytest.mark.parametrize("typed", ["1234", "1234 5678 9012 3456 789", "abcd efgh ijkl mnop qrst",
                                   "1" * 21, ""])
def test_a_malformed_receipt_gets_one_sentence_about_its_shape(client, typed):
    answer = open_mailbox(client, typed)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "A receipt is 20 digits, in five groups of four." in body
    assert 'aria-invalid="true"' in body


def test_every_follow_up_answer_is_not_stored_and_sends_no_referrer(client):
    receipt = report(client)
    page = mailbox(client, receipt)
    token = csrf_of(page.html)
    answers = [
        client.get("/en/follow-up"),
        open_mailbox(client, receipt),
        open_mailbox(client, rc.new_receipt()),
        open_mailbox(client, "12"),
        client.post("/en/follow-up/send", data={"csrf_token": token, "mailbox": page.ticket,
                                                "message": "more", "keyring_version": "2"},
                    content_type="multipart/form-data"),
        client.get("/en/follow-up/sent"),
        client.post("/en/follow-up/delete", data={"csrf_token": token, "mailbox": page.ticket}),
        client.post("/en/thanks", data={"csrf_token": token, "receipt": receipt}),
    ]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        for value in answer.headers.values():  # the receipt is never in a header or cookie
            assert rc.normalise_receipt(value) is None and receipt not in value


def test_the_page_scripts_thanks_shows_the_receipt_it_was_posted(client):
    receipt = rc.new_receipt()
    token = csrf_of(client.get("/fa/follow-up").get_data(as_text=True))
    answer = client.post("/fa/thanks", data={"csrf_token": token, "receipt": receipt})
    assert answer.status_code == 200
    assert receipt_of_answer(answer.get_data(as_text=True)) == receipt
    refused = client.post("/fa/thanks", data={"csrf_token": token, "receipt": "12"})
    assert refused.status_code == 400
    no_token = client.post("/fa/thanks", data={"receipt": receipt})
    assert no_token.status_code == 400 and receipt not in no_token.get_data(as_text=True)


# -- Busy -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def every_slot_taken(app, pool):
    """Hold every slot of `pool` from outside the request, as other requests would."""
    slots = app.extensions["intake"].slots
    with contextlib.ExitStack() as stack:
        for slot in range(pool.slots):
            assert stack.enter_context(slots._try_slot(pool, slot))
        yield


def test_the_follow_up_page_says_busy_when_its_slots_stay_taken(client, app):
    receipt = report(client)
    slots = app.extensions["intake"].slots
    slots._pools["follow-up"] = Pool("follow-up", FOLLOW_UP.slots, 0.2, True)
    with every_slot_taken(app, FOLLOW_UP):
        busy = open_mailbox(client, receipt)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "60"
        assert "try again in a minute" in busy.get_data(as_text=True)
        # A new report waits for nothing of the follow-up page's.
        assert report(client, "en")
    assert mailbox(client, receipt).opened  # and once a slot is free, it opens


def test_a_report_waits_for_its_own_pool_and_is_never_refused(client, app):
    slots = app.extensions["intake"].slots
    slots._pools["report"] = Pool("report", REPORT.slots, 0.3, False)
    with every_slot_taken(app, REPORT):
        receipt = report(client)  # waited 0.3 s, then derived without a slot
    assert mailbox(client, receipt).opened


# -- Sending more ---------------------------------------------------------------------------------


def send_more(client, page: MailboxPage, message: str, files=(), lang: str = "en"):
    data = {"csrf_token": csrf_of(page.html), "mailbox": page.ticket, "message": message,
            "keyring_version": re.search(r'name="keyring_version" type="hidden" value="(\d+)"',
                                         page.html).group(1),
            "attachments": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(f"/{lang}/follow-up/send", data=data, content_type="multipart/form-data")


def test_more_sent_without_javascript_goes_through_the_report_pipeline_into_the_mailbox(
    client, settings, deployment, tmp_path
):
    receipt = report(client, narrative="the report")
    page = mailbox(client, receipt)
    sent = send_more(client, page, "هذه لقطة الشاشة التي طلبتموها",
                     files=[("screen.png", b"\x89PNG" + os.urandom(3000))])
    assert sent.status_code == 200 and 'id="sent"' in sent.get_data(as_text=True)
    links = sorted(table(settings, MailboxSubmission), key=lambda link: link.number)
    assert [link.number for link in links] == [1, 2]
    assert len({link.thread for link in links}) == 1
    assert mailbox(client, receipt).statuses == ["received", "received"]
    # Stored like a report: age to the keyring, a container whose report.json holds the message.
    from intake.crypto.container import extract_container
    from intake.crypto.envelope import decrypt_stream

    blob = settings.blob_dir / f"{links[1].submission_id}.age"
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, [deployment.identities[1]])
    plain.seek(0)
    document = extract_container(plain, tmp_path / "opened").document
    assert document["fields"] == {"narrative": "هذه لقطة الشاشة التي طلبتموها"}
    assert [a["name"] for a in document["attachments"]] == ["screen.png"]


def test_sending_nothing_is_refused_and_a_bad_ticket_sends_nothing(client, settings):
    receipt = report(client)
    page = mailbox(client, receipt)
    empty = send_more(client, page, "   ")
    assert empty.status_code == 400
    assert "Write a message or choose at least one file." in empty.get_data(as_text=True)
    forged = MailboxPage(page.html.replace(page.ticket, page.ticket[:-4] + "AAAA"))
    assert send_more(client, forged, "hello").status_code == 409
    assert len(table(settings, Submission)) == 1


def test_a_ticket_expires_with_its_hours(client, settings, monkeypatch):
    receipt = report(client)
    page = mailbox(client, receipt)
    import intake.web.receipts as receipts

    later = receipts._minute() + receipts.TICKET_MINUTES + 1
    monkeypatch.setattr(receipts, "_minute", lambda: later)
    answer = send_more(client, page, "too late")
    assert answer.status_code == 409 and "This page has expired" in answer.get_data(as_text=True)
    assert len(table(settings, Submission)) == 1


def test_deleting_asks_first_then_deletes_the_mailbox_and_all_it_held(client, settings):
    receipt = report(client)
    page = mailbox(client, receipt)
    token = csrf_of(page.html)
    asked = client.post("/en/follow-up/delete", data={"csrf_token": token, "mailbox": page.ticket})
    assert asked.status_code == 200 and 'id="confirm-delete"' in asked.get_data(as_text=True)
    assert len(table(settings, Mailbox)) == 1  # nothing deleted before the confirmation
    done = client.post("/en/follow-up/delete", data={"csrf_token": token, "mailbox": page.ticket,
                                                     "confirm": "yes"})
    assert done.status_code == 200 and 'id="deleted"' in done.get_data(as_text=True)
    assert table(settings, Mailbox) == table(settings, MailboxSubmission) == []
    assert not mailbox(client, receipt).opened
    assert len(table(settings, Submission)) == 1  # what was sent stays for the reviewers


def test_a_mailbox_goes_after_its_days_without_activity_and_a_visit_moves_the_date(
    client, app, settings
):
    receipt = report(client)
    store = app.extensions["intake"].mailboxes
    start = datetime.now(UTC)
    days = settings.mailbox_days

    def at(day: int) -> None:
        store.clock = lambda: (start + timedelta(days=day)).timestamp()

    at(days - 1)
    assert mailbox(client, receipt).opened  # a visit: its deletion moves out again
    at(2 * days - 1)
    assert store.delete_inactive() == 0
    page = mailbox(client, receipt)
    expected = (start + timedelta(days=3 * days - 1)).date()
    assert page.opened and expected.strftime("%Y") in page.html
    at(4 * days)
    assert store.delete_inactive() == 1
    assert table(settings, Mailbox) == table(settings, MailboxSubmission) == []
    assert not mailbox(client, receipt).opened


def test_an_empty_mailbox_left_by_an_upload_that_never_finished_goes(client, app, settings):
    store = app.extensions["intake"].mailboxes
    keys = rc.derive_keys(rc.new_receipt(), app.extensions["intake"].derivation)
    upload_id = app.extensions["intake"].uploads.create(5000, 2)
    store.attach_upload(upload_id, keys=keys)
    assert store.delete_inactive() == 0  # its upload may still fill it
    app.extensions["intake"].uploads.discard(upload_id)
    assert store.delete_inactive() == 1
    assert table(settings, Mailbox) == [] and table(settings, Upload) == []


# -- Export, acks, replies -------------------------------------------------------------------------


@pytest.fixture
def world(client, app, settings, deployment, tmp_path):
    """Two sources (one sends more), exported and imported by reviewer r0."""
    first = report(client, narrative="first source")
    second = report(client, narrative="second source")
    send_more(client, mailbox(client, first), "and more from the first")
    [bundle] = [path for path, _ in export_bundles(settings, tmp_path / "usb").bundles]
    cases = tmp_path / "cases"
    import_bundle(bundle, [deployment.identities[0]], cases)
    return {"first": first, "second": second, "bundle": bundle, "cases": cases}


def signed_ack(world, deployment, *, submissions=True, replies=()):
    manifest = manifest_of(world["bundle"])
    opening = opening_of(world["cases"], manifest.bundle_id, "r0")
    acked = [(e.id, e.sha256) for e in manifest.entries] if submissions else []
    return build_ack([opening], acked, list(replies))


def reply_to_source(world, deployment, which: str, text_: str, reply_id=None) -> Reply:
    """A reply as the reviewers write it, to the `which` ("first", "second") source."""
    ours = source_thread(world, deployment, which)
    ciphertext = encrypt_reply(text_, ours.reply_to, date.today())
    return Reply(reply_id or secrets.token_hex(16), ours.thread,
                 base64.b64encode(ciphertext).decode("ascii"))


def source_thread(world, deployment, which: str):
    """The thread of the `which` source: the one holding two submissions is "first"."""
    threads = threads_of(world["bundle"], [deployment.identities[0]])
    by_thread: dict[str, list] = {}
    for submission_id, t in threads.items():
        by_thread.setdefault(t.thread, []).append((submission_id, t))
    [first_items] = [items for items in by_thread.values() if len(items) == 2]
    [second_items] = [items for items in by_thread.values() if len(items) == 1]
    return (first_items if which == "first" else second_items)[0][1]


def write_ack(tmp_path, document) -> Path:
    path = tmp_path / f"ack-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(document))
    return path


def test_the_bundle_links_submissions_only_inside_threads_age(world, deployment):
    manifest = manifest_of(world["bundle"])
    assert len(manifest.entries) == 3 and manifest.threads is not None
    raw = world["bundle"].read_bytes()
    threads = threads_of(world["bundle"], [deployment.identities[1]])  # every reviewer opens it
    for t in threads.values():  # neither a thread nor a reply key is in the clear
        assert t.thread.encode() not in raw and t.reply_to.encode() not in raw
    assert len({t.thread for t in threads.values()}) == 2


def test_statuses_follow_export_and_proven_acks(world, client, settings, deployment, tmp_path):
    assert mailbox(client, world["first"]).statuses == ["exported", "exported"]
    result = purge(settings, write_ack(tmp_path, signed_ack(world, deployment)))
    assert len(result.deleted) == 3 and sorted(result.imported) == sorted(
        e.id for e in manifest_of(world["bundle"]).entries)
    # The submissions are gone from the server; their statuses stay with the mailbox.
    assert table(settings, Submission) == []
    assert mailbox(client, world["first"]).statuses == ["imported", "imported"]
    assert mailbox(client, world["second"]).statuses == ["imported"]


def test_replies_are_delivered_once_and_read_newest_first_with_the_receipt(
    world, client, settings, deployment, tmp_path
):
    older = reply_to_source(world, deployment, "first", "Thank you. Can you send the link?")
    newer = reply_to_source(world, deployment, "first",
                            "شكرًا، وصلت الصورة. هل ما زال الرابط في رسائلك؟\nسطر ثانٍ")
    ack = write_ack(tmp_path, signed_ack(world, deployment, replies=[older, newer]))
    first = purge(settings, ack)
    assert first.replies.delivered == [older.reply_id, newer.reply_id]
    again = purge(settings, ack)  # the same file fed twice
    assert again.replies.delivered == [] and again.replies.already == [older.reply_id,
                                                                       newer.reply_id]
    assert len(table(settings, MailboxReply)) == 2
    page = mailbox(client, world["first"])
    assert page.replies == ["شكرًا، وصلت الصورة. هل ما زال الرابط في رسائلك؟\nسطر ثانٍ",
                            "Thank you. Can you send the link?"]
    assert page.html.count('dir="auto">') >= 2
    assert mailbox(client, world["second"]).replies == []  # no one else's
    # What the server keeps of a reply is age ciphertext, padded: no text, coarse size.
    for row in table(settings, MailboxReply):
        assert row.ciphertext.startswith(b"age-encryption.org/v1\n")
        assert b"Thank you" not in row.ciphertext and "شكرًا".encode() not in row.ciphertext
        assert len(row.ciphertext) > 4096


def test_a_reply_for_a_thread_the_server_does_not_have_is_reported_and_skipped(
    world, settings, deployment, tmp_path
):
    stray = reply_to_source(world, deployment, "second", "hello")
    stray = Reply(stray.reply_id, secrets.token_hex(16), stray.ciphertext)
    result = purge(settings, write_ack(tmp_path, signed_ack(world, deployment, replies=[stray])))
    assert result.replies.unknown_thread == [stray.reply_id] and result.problems
    assert table(settings, MailboxReply) == []


def test_a_reply_to_a_mailbox_the_source_deleted_is_skipped_and_nothing_else_lost(
    world, client, app, settings, deployment, tmp_path
):
    kept = reply_to_source(world, deployment, "first", "kept")
    purge(settings, write_ack(tmp_path, signed_ack(world, deployment, replies=[kept])))
    app.extensions["intake"].mailboxes.delete(source_thread(world, deployment, "second").thread)
    late = reply_to_source(world, deployment, "second", "too late")
    result = purge(settings, write_ack(tmp_path, signed_ack(world, deployment, submissions=False,
                                                            replies=[late])))
    assert result.replies.unknown_thread == [late.reply_id]
    assert mailbox(client, world["first"]).replies == ["kept"]


def test_a_forged_return_file_delivers_no_reply(world, settings, deployment, tmp_path):
    from intake.errors import IntakeError

    reply = reply_to_source(world, deployment, "first", "from someone who copied the bundle")
    document = signed_ack(world, deployment, replies=[reply])
    forged = dict(document, proofs=[dict(document["proofs"][0], signature=base64.b64encode(
        os.urandom(64)).decode())])
    with pytest.raises(IntakeError, match="no valid reviewer proof"):
        purge(settings, write_ack(tmp_path, forged))
    # A genuine proof over other replies, with one swapped in, fails the same way.
    swapped = dict(document, replies=[dict(document["replies"][0], thread=secrets.token_hex(16))])
    with pytest.raises(IntakeError, match="no valid reviewer proof"):
        purge(settings, write_ack(tmp_path, swapped))
    assert table(settings, MailboxReply) == []


def test_a_reply_that_only_pretends_to_be_one_is_shown_as_unreadable(
    world, client, settings, deployment, tmp_path
):
    thread = source_thread(world, deployment, "first")
    from intake.crypto.envelope import encrypt_bytes

    junk = encrypt_bytes(b'{"format": "intake-reply/v1", "text": "<script>x</script>"}',
                         [thread.reply_to])
    reply = Reply(secrets.token_hex(16), thread.thread, base64.b64encode(junk).decode())
    purge(settings, write_ack(tmp_path, signed_ack(world, deployment, replies=[reply])))
    page = mailbox(client, world["first"])
    assert page.replies == []  # no text of its own is shown, only the sentence
    assert "This reply could not be read. Ask the reviewers to send it again." in page.html
    assert "<script>x" not in page.html


# -- What a seized database gives ------------------------------------------------------------------


def dump(settings) -> bytes:
    """Every row of every table, as SQLite's own dump writes it."""
    path = settings.database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return "\n".join(connection.iterdump()).encode("utf-8")


def test_a_database_dump_alone_finds_no_mailbox_even_with_the_receipt_in_hand(
    client, app, settings
):
    receipt = report(client)
    mailbox(client, receipt)
    data = dump(settings)
    # The dump holds neither the receipt in any form, nor the salt or the pepper.
    derivation = app.extensions["intake"].derivation
    for needle in receipt_needles(receipt):
        assert needle not in data
    for secret in (derivation.salt, derivation.pepper):
        assert secret not in data and base64.b64encode(secret) not in data
        assert secret.hex().encode() not in data
    hashes = set(re.findall(rb"'([0-9a-f]{64})'", data))
    assert hashes  # the lookup hash is in it...
    # ...but with the receipt and any pepper but the deployment's, no derivation finds it
    # (the salt and the parameters are in the same file as the pepper; give them freely).
    for guess in (bytes(32), os.urandom(32), derivation.salt * 2):
        attempt = rc.DerivationSecrets(derivation.salt, guess, derivation.opslimit,
                                       derivation.memlimit)
        assert rc.derive_keys(receipt, attempt).lookup_hash.encode() not in hashes
    # Control: with the secrets file as well, it does.
    assert rc.derive_keys(receipt, derivation).lookup_hash.encode() in hashes


def test_the_secrets_live_beside_the_secret_key_not_in_the_database(settings):
    assert settings.receipt_secrets_path.parent == settings.secret_key_path.parent
    assert settings.receipt_secrets_path.is_file()
    assert stat.S_IMODE(settings.receipt_secrets_path.stat().st_mode) == 0o600
    engine = db.make_engine(settings.database_url)
    with engine.connect() as connection:
        tables = {r[0] for r in connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))}
    assert not any("secret" in t or "pepper" in t or "salt" in t for t in tables)


# -- The browser's path: the receipt comes with the upload -----------------------------------------


@pytest.fixture
def api(client):
    page = client.get("/en/report").get_data(as_text=True)
    client.csrf = csrf_of(page)
    return client


def create_with(client, deployment, ciphertext: bytes, **extra):
    body = {"size": len(ciphertext), "keyring_version": deployment.current().version, **extra}
    return client.post("/api/v1/uploads", json=body, headers={"X-CSRFToken": client.csrf})


def upload_with(client, deployment, ciphertext: bytes, **extra) -> str:
    from test_api import send

    created = create_with(client, deployment, ciphertext, **extra)
    assert created.status_code == 201, created.json
    upload_id = created.json["id"]
    assert send(client, upload_id, ciphertext, 0).status_code == 200
    return upload_id


def test_a_receipt_sent_with_the_upload_opens_the_mailbox_the_report_is_filed_in(
    api, deployment, settings
):
    from test_api import age_encrypt, container_plaintext, finish

    receipt = rc.new_receipt()
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_with(api, deployment, ciphertext, receipt=in_digits(receipt, "arabic"))
    [open_row] = table(settings, Upload)
    [row] = table(settings, Mailbox)
    assert open_row.mailbox == row.thread  # the upload knows its mailbox, not the receipt
    assert finish(api, upload_id, len(ciphertext)).status_code == 201
    # The answer to finish was lost: asking again files nothing more, links nothing more.
    assert finish(api, upload_id, len(ciphertext)).status_code == 200
    [link] = table(settings, MailboxSubmission)
    [submission] = table(settings, Submission)
    assert (link.thread, link.submission_id, link.number) == (row.thread, submission.id, 1)
    [filed_row] = table(settings, Upload)
    assert filed_row.state == "finished" and filed_row.mailbox is None
    assert mailbox(api, receipt).statuses == ["received"]
    for needle in receipt_needles(receipt):  # the receipt reached no file of the server
        assert not any(needle in p.read_bytes() for p in settings.data_dir.rglob("*")
                       if p.is_file())


def test_a_create_sent_again_with_the_same_receipt_uses_the_same_mailbox(api, deployment,
                                                                        settings):
    from test_api import age_encrypt, container_plaintext, finish

    receipt = rc.new_receipt()
    ciphertext = age_encrypt(deployment, container_plaintext())
    abandoned = create_with(api, deployment, ciphertext, receipt=receipt)  # the page retried
    assert abandoned.status_code == 201
    upload_id = upload_with(api, deployment, ciphertext, receipt=receipt)
    assert finish(api, upload_id, len(ciphertext)).status_code == 201
    assert len(table(settings, Mailbox)) == 1
    assert mailbox(api, receipt).statuses == ["received"]


@pytest.mark.parametrize("extra, status, code", [
    ({"receipt": "1234"}, 400, "bad_receipt"),
    ({"receipt": 12345678901234567890}, 400, "bad_receipt"),
    ({"receipt": "1" * 20, "mailbox": "x" * 60}, 400, "bad_receipt"),
    ({"mailbox": "A" * 60}, 409, "mailbox_expired"),
], ids=["short", "a-number", "both", "forged-ticket"])
def test_a_create_with_a_bad_receipt_or_ticket_makes_nothing(api, deployment, settings, extra,
                                                           status, code):
    from test_api import age_encrypt, container_plaintext

    answer = create_with(api, deployment, age_encrypt(deployment, container_plaintext()),
                         **extra)
    assert answer.status_code == status and answer.json["error"] == code
    assert table(settings, Upload) == [] and table(settings, Mailbox) == []


def test_a_follow_up_encrypted_in_the_browser_is_filed_into_the_mailbox_of_its_ticket(
    api, deployment, settings
):
    from test_api import age_encrypt, container_plaintext, finish

    receipt = report(api)
    page = mailbox(api, receipt)
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_with(api, deployment, ciphertext, mailbox=page.ticket)
    assert finish(api, upload_id, len(ciphertext)).status_code == 201
    links = sorted(table(settings, MailboxSubmission), key=lambda link: link.number)
    assert [link.number for link in links] == [1, 2] and len({lk.thread for lk in links}) == 1
    assert len(table(settings, Mailbox)) == 1


def test_both_paths_file_into_the_mailbox_with_the_postgresql_blob_store(deployment, tmp_path):
    """The upload store in PostgreSQL files a browser upload in one transaction: its link to
    the mailbox is written in it too."""
    import dataclasses

    from test_api import age_encrypt, container_plaintext, finish
    from test_storage import clean_postgres, postgres_url_or_skip

    url = clean_postgres(postgres_url_or_skip())
    settings = dataclasses.replace(
        make_settings(tmp_path / "pg-var", deployment, database_url=url), blob_store="postgresql")
    client = build_app(settings, {"TESTING": True}).test_client()
    receipt = report(client)  # without JavaScript
    client.csrf = csrf_of(client.get("/en/report").get_data(as_text=True))
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_with(client, deployment, ciphertext, mailbox=mailbox(client, receipt).ticket)
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
    assert mailbox(client, receipt).statuses == ["received", "received"]
    other = rc.new_receipt()
    upload_id = upload_with(client, deployment, ciphertext, receipt=other)
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
    assert mailbox(client, other).statuses == ["received"]
    with sessions(settings)() as session:
        assert session.scalar(select(Upload.mailbox).where(Upload.id == upload_id)) is None


def test_while_the_intake_is_closed_a_source_still_reads_the_mailbox_but_cannot_send(
    client, deployment, settings
):
    from intake.crypto import keyring as kr

    receipt = report(client)
    deployment.write(kr.renew_keyring(deployment.current().document), sign=False)
    assert client.get("/en/report").status_code == 503  # the intake is closed
    page = mailbox(client, receipt)
    assert page.opened and page.statuses == ["received"]
    assert 'id="sending-closed"' in page.html and 'id="follow-up-form"' not in page.html
