"""The report form in a real browser: Debian's Chromium, driven by Playwright,
against a real gunicorn.

With JavaScript on, the page encrypts the report in a Web Worker and uploads
only ciphertext through /api/v1/uploads; the server must never read a byte of
plaintext. That is checked at the server, not in the browser (Playwright does
not expose Blob or multipart bodies): gunicorn runs under strace, recording
every read(2)/recvfrom(2)/readv(2)/recvmsg(2) with its data, and the canary
marker from the narrative and the files must be absent from the recording. A
control run without JavaScript, same marker, shows it in the recording, so
the check can fail. The other tests: the same report without JavaScript; an
upload interrupted in two ways (a chunk request that dies in the browser, an
answer lost after the server stored the chunk) that resumes instead of
starting over; a lost answer to "finish" that must not file the report twice;
a keyring rotated under the page's feet; the fallback to the server path
when the browser cannot encrypt (said before anything is typed); and, when
the encrypted path fails after "send" (the intake busy, the worker failing),
the choice the page offers instead of sending anything by itself: try again
later, or send through the server knowing that it then sees the report.
Every one checks that exactly one submission (one blob, one row) was filed
and that it decrypts to what was typed and chosen, field for field and byte
for byte.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM_ARGS,
    CHUNK_URL,
    PAGE_RECORDER,
    READ_TRACE,
    STRACE_STRING_LIMIT,
    TEXTS,
    LossyProxy,
    MiB,
    Opened,
    Traffic,
    assert_report,
    assert_still_typed,
    chosen_file_types,
    chunk_offsets,
    expected_fields,
    fill_report,
    full_answers,
    leftover_uploads,
    minimal_answers,
    open_the_one_submission,
    random_file_with_marker,
    recorded_fallback,
    recorded_js_path,
    socket_reads,
    stored_blobs,
    submission_rows,
    text_file_with_marker,
    trace_lines_with,
)
from conftest import require_tool
from followup_support import open_over_http
from helpers import ROOT, Deployment, gunicorn, server_env

from intake import schema
from intake.config import KEYRING_CHECK_SECONDS
from intake.crypto import keyring as kr
from intake.crypto.envelope import decrypt_stream
from intake.crypto.receipt import normalise_receipt
from intake.storage import db
from intake.web.api import CHUNK_SIZE

pytestmark = pytest.mark.slow

TIMEOUT_MS = 180_000
# One marker for the whole module: the encrypted runs and the control carry the same one.
MARKER = f"CANARY-{secrets.token_hex(12)}"
# Several copies, so that one always lies whole inside some read of the server.
BIG_OFFSETS = [100, 70_000, 1_500_000, 4 * MiB - 10, 9 * MiB + 3, 17 * MiB, 20 * MiB - 200]
UPLOADS = r"/api/v1/uploads$"
REPORT_POST = r"/en/report$"
STATUS = r"/api/v1/uploads/[A-Za-z0-9_-]+$"


# -- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser):
    """A page in a fresh context (its own cookies), closed after the test."""
    contexts = []

    def make(*, javascript: bool = True, init_script: str | None = None):
        context = browser.new_context(java_script_enabled=javascript)
        contexts.append(context)
        context.set_default_timeout(60_000)
        context.add_init_script(PAGE_RECORDER)
        if init_script:
            context.add_init_script(init_script)
        return context.new_page()

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def deployment(tmp_path) -> Deployment:
    return Deployment(tmp_path / "keys").setup(recipients=2)


@contextlib.contextmanager
def intake_server(
    tmp_path: Path, deployment: Deployment, *, trace: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """gunicorn with deploy/gunicorn.conf.py; under strace recording reads if `trace`."""
    data, tmpdir, logs = tmp_path / "var", tmp_path / "tmp", tmp_path / "logs"
    tmpdir.mkdir(exist_ok=True)
    prefix = [require_tool("strace"), *READ_TRACE, "-o", str(trace)] if trace else None
    with gunicorn(server_env(data, deployment, tmpdir), logs, prefix=prefix) as base:
        yield base, data


# -- Steps --------------------------------------------------------------------------------------


def diagnostics(page, traffic: Traffic) -> str:
    def text(selector: str) -> str:
        with contextlib.suppress(Exception):
            return page.locator(selector).inner_text(timeout=1000)
        return "?"

    return (
        f"url={page.url} status={text('#progress-status')!r} errors={text('#js-errors')!r} "
        f"page errors={traffic.errors[-5:]} requests={traffic.requests[-12:]}"
    )


def send_and_wait_for_thanks(page, base: str, traffic: Traffic, lang: str = "en",
                             button: str = "#report-form button[type=submit]") -> str:
    page.locator(button).click()
    return wait_for_thanks(page, base, traffic, lang)


def wait_for_thanks(page, base: str, traffic: Traffic, lang: str = "en") -> str:
    """Wait for the thank-you page; the receipt it shows (20 ASCII digits).

    The form's POST is answered with the page itself (its address stays
    .../report); the page's script posts its receipt to .../thanks. Neither
    puts the receipt in an address.
    """
    try:
        page.locator("#receipt").wait_for(state="visible", timeout=TIMEOUT_MS)
    except Exception as exc:  # a timeout: say what the page showed
        raise AssertionError(f"the thanks page never came: {diagnostics(page, traffic)}") from exc
    assert page.url in (f"{base}/{lang}/thanks", f"{base}/{lang}/report"), page.url
    receipt = normalise_receipt(page.locator("#receipt").inner_text())
    assert receipt is not None
    assert not any(receipt in url for _, url in traffic.requests)
    return receipt


def fill_in(page, base: str, answers: dict, files: list, lang: str = "en") -> list[str]:
    """Open the form, answer it, choose the files; the MIME types the browser gave them."""
    page.goto(f"{base}/{lang}/report")
    fill_report(page, answers)
    if files:
        page.locator("#attachments").set_input_files([f.path for f in files])
    return chosen_file_types(page)


def assert_recorded_whole(trace: Path, at_least: int) -> None:
    """The recording shows at least `at_least` bytes read off sockets, none truncated."""
    reads = socket_reads(trace)
    assert reads, "strace recorded no read off a socket"
    assert max(r.size for r in reads) <= STRACE_STRING_LIMIT, "a read was cut in the recording"
    assert sum(r.size for r in reads) >= at_least


def decrypts_alike(blob: Path, identity, plaintext: bytes) -> bool:
    out = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, out, [identity])
    return out.getvalue() == plaintext


def evidence_for(tmp_path: Path, lang: str, big_size: int = 20 * MiB):
    files = tmp_path / "files"
    big = random_file_with_marker(files / TEXTS[lang]["big"], big_size, MARKER, BIG_OFFSETS)
    small = text_file_with_marker(files / TEXTS[lang]["small"], MARKER)
    return [big, small]


# -- The tests ----------------------------------------------------------------------------------


def test_the_full_answers_cover_every_question():
    asked = {name for name, f in schema.FIELDS.items() if f.kind != "files"}
    for lang in TEXTS:
        assert set(full_answers(lang, MARKER)) == asked


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_with_javascript_the_browser_encrypts_and_the_server_never_reads_the_marker(
    new_page, deployment, tmp_path, lang
):
    answers = full_answers(lang, MARKER)
    files = evidence_for(tmp_path, lang)
    trace = tmp_path / "trace.txt"
    with intake_server(tmp_path, deployment, trace=trace) as (base, data):
        page = new_page()
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, files)
        send_and_wait_for_thanks(page, base, traffic)
        assert recorded_js_path(page) == "encrypted"
        assert recorded_fallback(page) is None
    # Only the encrypted path ran: no form post, one upload, each chunk sent once, in order.
    assert traffic.made("POST", REPORT_POST) == []
    assert traffic.answered("POST", UPLOADS) == [201]
    assert traffic.answered("POST", r"/finish$") == [201]
    [blob] = stored_blobs(data)
    offsets = chunk_offsets(traffic.made("PUT", CHUNK_URL.pattern))
    assert offsets == list(range(0, blob.stat().st_size, CHUNK_SIZE))

    opened = open_the_one_submission(data, deployment.identities[:1], tmp_path / "opened")
    assert_report(opened, lang="en", fields=expected_fields(answers), files=files, types=types)
    assert opened.plaintext.count(MARKER.encode()) == 1 + len(BIG_OFFSETS) + 1
    assert decrypts_alike(blob, deployment.identities[1], opened.plaintext)
    assert opened.row.keyring_version == deployment.current().version
    assert leftover_uploads(data) == []

    # At the server: every byte of the ciphertext went through a recorded read off the
    # socket, none cut short in the recording...
    assert_recorded_whole(trace, at_least=blob.stat().st_size)
    header = "age-encryption.org/v1\\n-> X25519 "  # as strace shows it
    assert any(header in r.shows for r in socket_reads(trace, (header,)))
    # ...and not one read the server made, of a socket or a file, carried the marker.
    assert trace_lines_with(trace, MARKER) == []


def test_control_without_javascript_the_same_marker_shows_in_the_servers_reads(
    new_page, deployment, tmp_path
):
    answers = full_answers("en", MARKER)
    offsets = [100, 300_000, 700_000, MiB - 100]
    small = random_file_with_marker(tmp_path / "files" / "evidence.bin", MiB, MARKER, offsets)
    trace = tmp_path / "trace.txt"
    with intake_server(tmp_path, deployment, trace=trace) as (base, data):
        page = new_page(javascript=False)
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, [small])
        send_and_wait_for_thanks(page, base, traffic)
    assert len(traffic.made("POST", REPORT_POST)) == 1
    assert not [u for _, u in traffic.requests if "/api/" in u]
    assert_recorded_whole(trace, at_least=len(small.data))
    hits = trace_lines_with(trace, MARKER)
    assert hits, "the marker the server read in plaintext is missing from the recording"
    assert any(MARKER in r.shows for r in socket_reads(trace, (MARKER,))), hits
    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(
        opened, lang="en", fields=expected_fields(answers), files=[small], types=types
    )


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_without_javascript_the_same_report_arrives_through_the_server_path(
    new_page, deployment, tmp_path, lang
):
    answers = full_answers(lang, MARKER)
    files = evidence_for(tmp_path, lang)
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page(javascript=False)
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, files)
        send_and_wait_for_thanks(page, base, traffic)
    assert len(traffic.made("POST", REPORT_POST)) == 1
    assert not [u for _, u in traffic.requests if "/api/" in u]
    opened = open_the_one_submission(data, deployment.identities[1:], tmp_path / "opened")
    assert_report(
        opened, lang="en", fields=expected_fields(answers), files=files, types=types
    )
    assert decrypts_alike(opened.blob, deployment.identities[0], opened.plaintext)


@pytest.mark.parametrize("how", ["aborted-in-the-browser", "answer-lost-after-it-was-stored"])
def test_an_interrupted_upload_resumes_where_it_stopped_and_files_one_submission(
    new_page, deployment, tmp_path, how
):
    """The third chunk fails once; the upload goes on from there, not from zero.

    Either the browser's request dies before reaching the server (request
    interception aborts it), or the server stores the chunk and its answer is
    lost on the way back (a proxy in front of gunicorn answers 502 instead).
    """
    answers = minimal_answers(f"The video shows the infection {MARKER}.")
    evidence = random_file_with_marker(
        tmp_path / "files" / "screen recording.mp4", 3 * CHUNK_SIZE + MiB, MARKER, [5000]
    )
    third = 2 * CHUNK_SIZE
    aborted: list[str] = []
    with contextlib.ExitStack() as stack:
        base, data = stack.enter_context(intake_server(tmp_path, deployment))
        page = new_page()
        traffic = Traffic().attach(page)
        proxy = None
        if how == "aborted-in-the-browser":

            def chunk(route):
                request = route.request
                offset = int(CHUNK_URL.search(request.url).group(2))
                if request.method == "PUT" and offset == third and not aborted:
                    aborted.append(request.url)
                    route.abort("connectionreset")
                else:
                    route.continue_()

            page.route(CHUNK_URL, chunk)
        else:
            lose = re.compile(rf"^PUT /api/v1/uploads/[A-Za-z0-9_-]+\?offset={third} ")
            proxy = LossyProxy(int(base.rsplit(":", 1)[1]), lose)
            base = stack.enter_context(proxy.running())
        types = fill_in(page, base, answers, [evidence])
        send_and_wait_for_thanks(page, base, traffic)
        assert recorded_js_path(page) == "encrypted"

    puts = Counter(chunk_offsets(traffic.made("PUT", CHUNK_URL.pattern)))
    [blob] = stored_blobs(data)
    every_offset = list(range(0, blob.stat().st_size, CHUNK_SIZE))
    assert len(every_offset) >= 4 and sorted(puts) == every_offset
    # One upload, never restarted: the chunks before the failure went once only.
    assert traffic.answered("POST", UPLOADS) == [201]
    assert puts[0] == 1 and puts[CHUNK_SIZE] == 1
    # The page asked the server how much had arrived before going on.
    assert traffic.made("GET", STATUS)
    if proxy is None:
        assert len(aborted) == 1
        assert puts[third] == 2  # sent again: it never reached the server
    else:
        assert len(proxy.lost) == 1
        assert puts[third] == 1  # not sent again: the server said it had it
        assert [line for line in proxy.request_lines if f"?offset={third} " in line] == proxy.lost
        assert traffic.answered("PUT", rf"\?offset={third}$") == [502]
    assert all(puts[o] == 1 for o in every_offset if o != third)

    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(opened, lang="en", fields=expected_fields(answers), files=[evidence], types=types)
    assert leftover_uploads(data) == []


def test_a_lost_answer_to_finish_still_files_exactly_one_submission(
    new_page, deployment, tmp_path
):
    """The server files the upload, but its answer to "finish" never reaches the browser.

    Asking again is safe (a finished upload answers 200 "stored"); sending the
    report once more, through the form, would file it twice.
    """
    answers = minimal_answers(f"Lost answer {MARKER}")
    evidence = text_file_with_marker(tmp_path / "files" / "note.txt", MARKER)
    lose = re.compile(r"^POST /api/v1/uploads/[A-Za-z0-9_-]+/finish ")
    with intake_server(tmp_path, deployment) as (base, data):
        proxy = LossyProxy(int(base.rsplit(":", 1)[1]), lose)
        with proxy.running() as origin:
            page = new_page()
            traffic = Traffic().attach(page)
            types = fill_in(page, origin, answers, [evidence])
            receipt = send_and_wait_for_thanks(page, origin, traffic)
        # The receipt the page drew went with the create, so the lost answer lost nothing:
        # it opens the mailbox the one submission is in.
        assert open_over_http(base, receipt).statuses == ["received"]
    assert len(proxy.lost) == 1
    assert traffic.answered("POST", r"/finish$")[0] == 502
    blobs = stored_blobs(data)
    resent = traffic.made("POST", REPORT_POST)
    assert len(blobs) == 1, f"{len(blobs)} submissions filed; sent again by the form: {resent}"
    assert resent == []
    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(opened, lang="en", fields=expected_fields(answers), files=[evidence], types=types)


@pytest.mark.parametrize("when", ["between-page-load-and-submit", "during-the-upload"])
def test_a_keyring_rotated_after_the_page_loaded_still_gets_the_report_to_the_new_keyring(
    new_page, deployment, tmp_path, when
):
    answers = minimal_answers(f"Rotated keys {MARKER}")
    evidence = random_file_with_marker(
        tmp_path / "files" / "export.eml", CHUNK_SIZE + MiB, MARKER, [42]
    )
    old_version = deployment.current().version
    rotated: list[int] = []

    def rotate() -> None:
        rotated.append(deployment.rotate().version)
        # Each gunicorn worker looks at the keyring file at most this often.
        time.sleep(KEYRING_CHECK_SECONDS + 0.5)

    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page()
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, [evidence])
        page_version = page.evaluate(
            "JSON.parse(document.getElementById('intake-config').textContent).keyring.version"
        )
        assert page_version == old_version
        # What "who can read this report" lists, kept across the move to the thanks page.
        page.evaluate("""() => {
            const list = document.querySelector('details.readers ul');
            new MutationObserver(() => sessionStorage.setItem('readers', list.textContent))
                .observe(list, {childList: true, subtree: true});
        }""")
        if when == "between-page-load-and-submit":
            rotate()
        else:

            def first_chunk(route):
                if not rotated:
                    rotate()
                route.continue_()

            page.route(CHUNK_URL, first_chunk)
        send_and_wait_for_thanks(page, base, traffic)
        assert recorded_js_path(page) == "encrypted"
        readers = page.evaluate("sessionStorage.getItem('readers')") or ""

    assert len(rotated) == 1 and rotated[0] > old_version
    # The page redrew the list for the keyring it finally encrypted to.
    newest = kr.fingerprint(str(deployment.identities[-1].to_public()))
    assert newest in readers and "Reviewer new" in readers, readers
    assert len(deployment.identities) == 3
    if when == "between-page-load-and-submit":
        assert traffic.answered("POST", UPLOADS) == [409, 201]  # keyring_changed, then anew
        assert traffic.answered("POST", r"/finish$") == [201]
    else:
        assert traffic.answered("POST", UPLOADS) == [201, 201]
        assert traffic.answered("POST", r"/finish$") == [409, 201]
    assert traffic.made("POST", REPORT_POST) == []

    # Exactly one submission, and the newest reviewer alone can open it.
    opened = open_the_one_submission(data, deployment.identities[-1:], tmp_path / "opened")
    assert opened.row.keyring_version == rotated[0]
    assert_report(opened, lang="en", fields=expected_fields(answers), files=[evidence], types=types)
    assert decrypts_alike(opened.blob, deployment.identities[0], opened.plaintext)
    assert leftover_uploads(data) == []


def test_a_browser_that_cannot_encrypt_says_so_before_anything_is_typed_and_uses_the_form(
    new_page, deployment, tmp_path
):
    answers = minimal_answers(f"Sent the standard way {MARKER}\nsecond line")
    evidence = text_file_with_marker(tmp_path / "files" / "screenshot.txt", MARKER)
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page(init_script="delete window.Worker;")
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, [evidence])
        assert page.locator("#js-fallback").is_visible()  # known before anything is typed
        send_and_wait_for_thanks(page, base, traffic)
        fallback = recorded_fallback(page)
    assert fallback, "#js-fallback was never shown"
    assert len(traffic.made("POST", REPORT_POST)) == 1
    assert not [u for _, u in traffic.requests if "/api/" in u]  # nothing went to the API
    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(
        opened, lang="en", fields=expected_fields(answers), files=[evidence],
        types=types,
    )


# -- the encrypted path fails after "send": the source chooses, nothing happens by itself -------


def translated(lang: str, message: str) -> str:
    from babel.support import Translations

    return Translations.load(str(ROOT / "intake" / "translations"), [lang]).gettext(message)


BUSY = "The intake is busy: many reports are being sent at this moment."
NOT_SENT = "Encrypting it on this device or sending it did not work."
SERVER_SEES = ("Or you can send it now through the server. The server will then see your report "
               "in its memory while it encrypts it; it does not store it unencrypted.")
CHOSEN = "You chose to send the report through the server."


def fill_the_upload_budget(data: Path, version: int) -> list[str]:
    """Leave what an attacker's creates would: open 20 MiB uploads that never send a byte,
    enough to reserve the whole budget (one 4 MiB window each), written straight into the
    server's database (4,096 API calls would only make the test slower)."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from intake.storage.models import Upload
    from intake.storage.uploads import Budget

    budget = Budget()
    deadline = int(time.time() // 60) + 16
    today = datetime.now(UTC).date()  # an open upload keeps the day it began
    rows = [{"id": secrets.token_urlsafe(24), "state": "open", "size": 20 * MiB, "received": 0,
             "keyring_version": version, "expires_minute": deadline, "started_on": today}
            for _ in range(budget.bytes // budget.window)]
    engine = db.make_engine(f"sqlite:///{data / 'intake.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(insert(Upload), rows)
    finally:
        engine.dispose()
    return [row["id"] for row in rows]


def let_fifteen_minutes_pass(data: Path, upload_ids: list[str]) -> None:
    """What 15 minutes without progress does to the attacker's uploads: they expire."""
    from sqlalchemy import update

    from intake.storage.models import Upload

    engine = db.make_engine(f"sqlite:///{data / 'intake.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(update(Upload).where(Upload.id.in_(upload_ids))
                               .values(expires_minute=int(time.time() // 60)))
    finally:
        engine.dispose()


def wait_for_the_choice(page, traffic: Traffic, lang: str, reason: str) -> None:
    """The page says what happened, in the source's language, and offers both ways."""
    try:
        page.locator("#js-choice").wait_for(state="visible", timeout=TIMEOUT_MS)
    except Exception as exc:
        raise AssertionError(f"no choice was offered: {diagnostics(page, traffic)}") from exc
    text = page.locator("#js-choice").inner_text()
    for message in (reason, SERVER_SEES, "Everything you typed is still in the form."):
        assert translated(lang, message) in text, (message, text)
    assert page.locator("#js-retry").is_visible()
    assert page.locator("#js-send-server").is_visible()
    if lang != "en":
        assert translated(lang, reason) != reason


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("choice", ["try-again-later", "send-through-the-server"])
def test_when_the_intake_is_busy_the_source_chooses_and_nothing_is_sent_by_itself(
    new_page, deployment, tmp_path, lang, choice
):
    answers = full_answers(lang, MARKER)
    evidence = text_file_with_marker(tmp_path / "files" / TEXTS[lang]["small"], MARKER)
    with intake_server(tmp_path, deployment) as (base, data):
        flood = fill_the_upload_budget(data, deployment.current().version)
        page = new_page()
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, [evidence], lang)
        page.locator("#report-form button[type=submit]").click()
        wait_for_the_choice(page, traffic, lang, BUSY)
        page.wait_for_timeout(2000)  # and nothing more happens by itself
        assert traffic.answered("POST", UPLOADS) == [503]
        assert traffic.made("PUT", CHUNK_URL.pattern) == []
        assert traffic.made("POST", rf"/{lang}/report$") == []
        assert page.url == f"{base}/{lang}/report"
        assert stored_blobs(data) == []
        assert_still_typed(page, answers)
        assert page.evaluate("document.getElementById('attachments').files.length") == 1
        assert not page.locator("#js-fallback").is_visible()

        if choice == "try-again-later":
            let_fifteen_minutes_pass(data, flood)
            send_and_wait_for_thanks(page, base, traffic, lang, button="#js-retry")
            assert recorded_js_path(page) == "encrypted" and recorded_fallback(page) is None
        else:
            send_and_wait_for_thanks(page, base, traffic, lang, button="#js-send-server")
            assert recorded_js_path(page) == "server"
            assert recorded_fallback(page).startswith(translated(lang, CHOSEN))

    if choice == "try-again-later":
        assert traffic.answered("POST", UPLOADS) == [503, 201]
        assert traffic.answered("POST", r"/finish$") == [201]
        assert traffic.made("POST", rf"/{lang}/report$") == []
    else:
        assert traffic.answered("POST", UPLOADS) == [503]  # the API was not asked again
        assert traffic.made("PUT", CHUNK_URL.pattern) == []
        assert len(traffic.made("POST", rf"/{lang}/report$")) == 1
    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(opened, lang=lang, fields=expected_fields(answers), files=[evidence],
                  types=types)


def test_a_worker_that_fails_after_send_offers_the_same_choice(new_page, deployment, tmp_path):
    """Before, the page sent the form through the server by itself when the worker failed."""
    answers = minimal_answers(f"The worker never loads {MARKER}\nsecond line")
    evidence = text_file_with_marker(tmp_path / "files" / "screenshot.txt", MARKER)
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page()
        page.route("**/static/js/encrypt-worker.js", lambda route: route.abort())
        traffic = Traffic().attach(page)
        types = fill_in(page, base, answers, [evidence])
        assert not page.locator("#js-fallback").is_visible()
        page.locator("#report-form button[type=submit]").click()
        wait_for_the_choice(page, traffic, "en", NOT_SENT)
        page.wait_for_timeout(2000)
        assert traffic.made("POST", REPORT_POST) == [] and stored_blobs(data) == []
        assert_still_typed(page, answers)
        send_and_wait_for_thanks(page, base, traffic, button="#js-send-server")
        fallback = recorded_fallback(page)
    assert fallback and fallback.startswith(CHOSEN)
    assert len(traffic.made("POST", REPORT_POST)) == 1
    assert not [u for _, u in traffic.requests if "/api/" in u]  # nothing went to the API
    opened = open_the_one_submission(data, deployment.identities, tmp_path / "opened")
    assert_report(opened, lang="en", fields=expected_fields(answers), files=[evidence],
                  types=types)

def finish_bodies(page) -> list:
    """The JSON bodies of the page's POSTs to .../finish, as the worker sent them."""
    bodies: list = []
    page.on(
        "request",
        lambda r: bodies.append(r.post_data_json)
        if r.method == "POST" and r.url.endswith("/finish")
        else None,
    )
    return bodies


def without_nested_workers(route) -> None:
    """Serve the encryption worker as a browser without nested workers would run it."""
    original = route.fetch()
    route.fulfill(response=original, body="self.Worker = undefined;\n" + original.text())


@pytest.mark.parametrize("hashing", ["in-a-second-worker", "without-nested-workers"])
def test_the_worker_hashes_while_it_encrypts_and_names_the_ciphertext_size_at_finish(
    new_page, deployment, tmp_path, hashing
):
    # One file over the hashing worker's WebCrypto cap (hashed chunk by chunk) and one
    # under it (gathered, hashed natively); where a worker cannot start another, the
    # encryption worker hashes on its own thread. Either way: one pass, exact digests in
    # report.json (the reviewer's tool checks them), and the finish call names the
    # ciphertext's size.
    files = [
        random_file_with_marker(tmp_path / "files" / "recording.bin", 33 * MiB, MARKER, [5]),
        text_file_with_marker(tmp_path / "files" / "note.txt", MARKER),
    ]
    answers = minimal_answers(f"Hashed while encrypted {MARKER}")
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page()
        if hashing == "without-nested-workers":
            page.route("**/static/js/encrypt-worker.js", without_nested_workers)
        traffic = Traffic().attach(page)
        bodies = finish_bodies(page)
        types = fill_in(page, base, answers, files)
        send_and_wait_for_thanks(page, base, traffic)
        assert recorded_js_path(page) == "encrypted"
        assert recorded_fallback(page) is None
    if hashing == "in-a-second-worker":
        assert traffic.made("GET", r"/static/js/hash-worker\.js$")
    assert traffic.made("POST", REPORT_POST) == []
    [blob] = stored_blobs(data)
    assert bodies == [{"size": blob.stat().st_size}]
    # Like rage on the server's path, the page ends its header with one grease stanza.
    from intake.crypto.header import is_grease, parse_header

    stanzas = parse_header(blob.read_bytes()[:16384]).stanzas
    assert [s.type for s in stanzas[:-1]] == ["X25519"] * len(deployment.identities)
    assert is_grease(stanzas[-1])
    opened = open_the_one_submission(data, deployment.identities[:1], tmp_path / "opened")
    assert opened.report.document["schema"] == "intake-report/v2"
    assert_report(opened, lang="en", fields=expected_fields(answers), files=files, types=types)


# -- the follow-up page -------------------------------------------------------------------------


def open_each_submission(data: Path, identities, dest: Path) -> dict[str, Opened]:
    """Every stored submission, decrypted and opened, by id."""
    import shutil

    from intake.crypto.container import extract_container

    opened = {}
    dest.mkdir(parents=True, exist_ok=True)
    rows = {r.id: r for r in submission_rows(data)}
    for blob in stored_blobs(data):
        plain = io.BytesIO()
        with blob.open("rb") as fh:
            decrypt_stream(fh, plain, identities)
        plain.seek(0)
        folder = dest / blob.stem
        shutil.rmtree(folder, ignore_errors=True)
        opened[blob.stem] = Opened(blob, rows[blob.stem],
                                   extract_container(plain, folder, durable=False),
                                   plain.getvalue())
    return opened


def create_bodies(page) -> list:
    """The JSON bodies of the worker's creates, as it sent them."""
    bodies: list = []
    page.on("request", lambda r: bodies.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/api/v1/uploads") else None)
    return bodies


def open_the_mailbox(page, base: str, lang: str, typed: str) -> list[str]:
    """Type the receipt on the follow-up page; the statuses the mailbox shows."""
    page.goto(f"{base}/{lang}/follow-up")
    page.locator("#receipt-input").fill(typed)
    page.locator("#receipt-form button[type=submit]").click()
    page.locator("#statuses").wait_for(timeout=TIMEOUT_MS)
    return [item.get_attribute("data-status")
            for item in page.locator("#statuses li").all()]


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_source_comes_back_with_the_receipt_and_sends_a_message_with_a_file(
    new_page, deployment, tmp_path, lang, javascript
):
    answers = minimal_answers(f"The first report {MARKER}")
    evidence = text_file_with_marker(tmp_path / "files" / TEXTS[lang]["small"], MARKER)
    message = TEXTS[lang]["narrative"].format(marker=MARKER)
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page(javascript=javascript)
        traffic = Traffic().attach(page)
        creates = create_bodies(page)
        fill_in(page, base, answers, [], lang)
        receipt = send_and_wait_for_thanks(page, base, traffic, lang)
        shown = page.locator("#receipt").inner_text()
        if lang == "ar":  # printed in Arabic-Indic digits, Western digits beside them
            assert not re.search(r"[0-9]", shown)
            assert normalise_receipt(page.locator("#receipt-western").inner_text()) == receipt
        # The source types back what the page showed, in the page's own digits.
        assert open_the_mailbox(page, base, lang, shown) == ["received"]
        assert page.locator("#deletion-date").is_visible()
        assert page.locator("#no-replies").is_visible()
        page.locator("#message").fill(message)
        page.locator("#attachments").set_input_files([evidence.path])
        page.locator("#follow-up-form button[type=submit]").click()
        try:
            page.locator("#sent").wait_for(timeout=TIMEOUT_MS)
        except Exception as exc:
            raise AssertionError(f"never sent: {diagnostics(page, traffic)}") from exc
        assert open_the_mailbox(page, base, lang, receipt) == ["received", "received"]

    if javascript:  # both encrypted in the browser: the report with its receipt, then the
        # follow-up with the mailbox page's ticket (and never the receipt again)
        assert traffic.answered("POST", UPLOADS) == [201, 201]
        assert traffic.made("POST", rf"/{lang}/(report|follow-up/send)$") == []
        assert set(creates[0]) == {"size", "keyring_version", "receipt"}
        assert normalise_receipt(creates[0]["receipt"]) == receipt
        assert set(creates[1]) == {"size", "keyring_version", "mailbox"}
    else:
        assert not [u for _, u in traffic.requests if "/api/" in u]
        assert len(traffic.made("POST", rf"/{lang}/follow-up/send$")) == 1
    opened = open_each_submission(data, deployment.identities[:1], tmp_path / "opened")
    [follow_up] = [o for o in opened.values()
                   if o.report.document["fields"] == {"narrative": message}]
    assert follow_up.report.document["lang"] == lang
    [entry] = follow_up.report.document["attachments"]
    assert (follow_up.report.directory / entry["path"]).read_bytes() == evidence.data
    assert len(opened) == 2


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_wrong_receipt_and_a_malformed_one_are_told_apart_only_by_their_shape(
    new_page, deployment, tmp_path, lang
):
    with intake_server(tmp_path, deployment) as (base, _data):
        page = new_page(javascript=False)
        page.goto(f"{base}/{lang}/follow-up")
        page.locator("#receipt-input").fill("1234 5678")
        page.locator("#receipt-form button[type=submit]").click()
        problem = page.locator("#receipt-problem")
        problem.wait_for()
        assert translated(lang, "A receipt is 20 digits, in five groups of four. Check that "
                          "none is missing or extra, and type it again.") in problem.inner_text()
        assert page.locator("#receipt-input").get_attribute("aria-invalid") == "true"
        page.locator("#receipt-input").fill("٠١٢٣ ٤٥٦٧ ٨٩٠١ ٢٣٤٥ ٦٧٨٩")
        page.locator("#receipt-form button[type=submit]").click()
        page.wait_for_load_state()
        assert translated(lang, "Nothing under this receipt") in page.locator("h1").inner_text()


def test_a_source_deletes_the_mailbox_after_confirming(new_page, deployment, tmp_path):
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page()
        traffic = Traffic().attach(page)
        fill_in(page, base, minimal_answers(f"to be deleted {MARKER}"), [])
        receipt = send_and_wait_for_thanks(page, base, traffic)
        open_the_mailbox(page, base, "en", receipt)
        page.locator("#delete-mailbox").click()
        page.locator("#confirm-delete").wait_for()
        assert open_over_http(base, receipt).opened  # nothing deleted before confirming
        page.locator("#confirm-delete").click()
        page.locator("#deleted").wait_for()
        assert not open_over_http(base, receipt).opened
        assert len(stored_blobs(data)) == 1  # the report itself stays for the reviewers


def test_the_page_shows_the_time_left_in_its_language_and_only_once_it_has_a_rate(
    new_page, deployment, tmp_path
):
    """In Arabic: "estimating" until the server acknowledges a first chunk, then one of the
    page's own Arabic time-left sentences; the report is filed all the same."""
    answers = minimal_answers(f"The video shows the infection {MARKER}.")
    evidence = random_file_with_marker(
        tmp_path / "files" / "recording.mp4", 2 * CHUNK_SIZE + MiB, MARKER, [5000]
    )
    held: list = []
    with intake_server(tmp_path, deployment) as (base, data):
        page = new_page()
        traffic = Traffic().attach(page)

        def chunk(route):
            if route.request.method == "PUT":
                held.append(route)  # answered by the test, below
            else:
                route.continue_()

        page.route(CHUNK_URL, chunk)
        fill_in(page, base, answers, [evidence], lang="ar")
        words = page.evaluate(
            "JSON.parse(document.getElementById('intake-config').textContent)"
            ".messages.time_left"
        )
        page.locator("#report-form button[type=submit]").click()
        time_left = page.locator("#progress-time")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert held, diagnostics(page, traffic)
        # Nothing acknowledged yet: no rate of the connection is known, so no figure.
        assert time_left.inner_text() == words["estimating"]
        seen = []
        while held or not page.url.endswith("/ar/thanks"):
            if held:
                held.pop(0).continue_()
                page.wait_for_timeout(300)
                with contextlib.suppress(Exception):  # the last one leads on to the thanks page
                    if text := time_left.inner_text(timeout=1000):
                        seen.append(text)
            elif time.monotonic() > deadline:
                raise AssertionError(diagnostics(page, traffic))
            else:
                page.wait_for_timeout(100)
        wait_for_thanks(page, base, traffic, "ar")

    figures = [w for w in seen if w != words["estimating"]]
    assert figures, seen
    sentences = {words["under_a_minute"], words["over"], *words["minutes"][1:],
                 *words["hours"][1:]}
    assert set(figures) <= sentences
    assert all(re.search(r"[\u0600-\u06ff]", w) and not re.search(r"[A-Za-z]", w)
               for w in figures), figures
    assert len(stored_blobs(data)) == 1
