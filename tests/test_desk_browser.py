"""The reviewers' desk in Debian's Chromium (Playwright), against the real command.

`intake review serve` runs on a free loopback port; Chromium opens the
one-time URL it prints, in English and in Arabic, reads a case labelled in
that language (right to left in Arabic), looks at a photo re-encoded without
its EXIF GPS, filters the list and searches it in Arabic with and without
vowel marks, sets a case's status, adds a tag and a note, follows the related
cases of two reports sharing a domain (one inside a URL) and the group view,
and runs axe-core on every desk page in every language. A case full of
hostile content, and hostile tags, notes and searches, run nothing and
reorder nothing.
"""

from __future__ import annotations

import datetime
import io
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser_support import serious_violations
from conftest import require_tool
from desk_support import (
    CAMERA,
    GPS_DECIMAL,
    code_of,
    jpeg_with_gps,
    png_chunk_types,
    running_desk,
    write_case,
)
from flask import Flask
from flask_babel import Babel, force_locale
from PIL import Image

from intake import schema
from intake.review import labels as review_labels
from intake.review.i18n import in_language
from intake.review.store import DATABASE, CaseStore
from intake.web.i18n import LANGUAGES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

NARRATIVE_AR = "بعد مكالمة فائتة على واتساب أصبح هاتفي ساخنًا.\nبعد يومين اقتبس ضابط رسائلي."
NARRATIVE_EN = "A missed WhatsApp call, then the phone grew hot.\nTwo days later they knew."
FIELDS = {
    "reporter_role": "self", "consent_use": ["statistics"], "contact_method": "none",
    "categories": ["mercenary_spyware"], "first_noticed": "2026-03", "country": "BH",
    "how_discovered": ["suspicious_message"], "target_profile": ["journalist"],
    "risk_now": "elevated",
    "indicators": "hxxps://sms-verify[.]example/a?b=1\n+973 3000 0000",
}
HOSTILE = ("<script>alert(1)</script><img src=x onerror=alert(2)><svg onload=alert(3)>"
           "\u202egnp.exe\u2067 \x1b[31m<iframe src=//example.org></iframe>")
#: Two reports sharing a domain: one types it inside a URL, the other as a domain.
CAMPAIGN_URL = "hxxps://login.campaign-x[.]example/track?id=7"
CAMPAIGN_DOMAIN = "campaign-x.example"
NARRATIVE_DIACRITICS = "اتصل بي مُحَمَّد من رقم مجهول وطلب الرمز."


def write_campaign(cases: Path) -> dict[str, str]:
    return {
        "url": write_case(cases, {**FIELDS, "narrative": NARRATIVE_DIACRITICS,
                                  "indicators": CAMPAIGN_URL, "country": "EG"},
                          lang="ar", received_on="2026-11-23"),
        "domain": write_case(cases, {**FIELDS, "narrative": "They asked for the code.",
                                     "indicators": CAMPAIGN_DOMAIN, "country": "EG"},
                             lang="en", received_on="2026-11-24"),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("desk-browser")
    cases = tmp / "cases"
    cases.mkdir()
    arabic = write_case(cases, {**FIELDS, "narrative": NARRATIVE_AR}, lang="ar",
                        files=[("صورة.jpg", jpeg_with_gps(), "image/jpeg"),
                               ("notes.txt", "ملاحظات\nsecond line\n".encode(), "text/plain"),
                               ("invoice.pdf", b"MZ\x90\x00" + b"\0" * 200, "application/pdf")],
                        received_on="2026-11-20")
    english = write_case(cases, {**FIELDS, "narrative": NARRATIVE_EN}, lang="en",
                         received_on="2026-11-21")
    hostile = write_case(cases, {**FIELDS, "narrative": HOSTILE * 50,
                                 "notification_text": HOSTILE, "contact_handle": HOSTILE,
                                 "indicators": HOSTILE + "\n" + "a" * 30000,
                                 "categories": ["<b onmouseover=alert(4)>x</b>"]},
                         lang="fa", files=[(HOSTILE + ".txt", HOSTILE.encode(), "text/plain")],
                         received_on="2026-11-22")
    campaign = write_campaign(cases)
    with CaseStore(cases) as store:  # what a reviewer may type: markup is text
        store.add_tag(hostile, "<script>alert(5)</script>")
        store.add_note(hostile, "<img src=x onerror=alert(6)>\nsecond line", author="<b>Amal</b>")
    with sqlite3.connect(cases / DATABASE) as db:  # what only another program could write
        db.execute("INSERT INTO tags VALUES (?, ?)", (hostile, "tag" + HOSTILE))
        db.execute("INSERT INTO notes (case_id, author, day, text) VALUES (?, ?, ?, ?)",
                   (hostile, "\u202eAmal\x1b[2J", "2026-11-30", HOSTILE))
    return tmp, cases, {"ar": arabic, "en": english, "hostile": hostile, **campaign}


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def labels():
    """Field labels in each language, from the intake's own catalogues."""
    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "intake" / "translations")
    Babel(app)
    found = {}
    with app.test_request_context():
        for lang in LANGUAGES:
            with force_locale(lang):
                found[lang] = {n: str(schema.FIELDS[n].label) for n in ("narrative", "country")}
    return found


def open_desk(browser, desk, lang: str, **options):
    """A browser context whose reviewer reads `lang`, signed in through the printed URL."""
    context = browser.new_context(locale=lang, **options)
    page = context.new_page()
    page.goto(desk.login_url)
    desk.root = page.url.rstrip("/").rsplit("/", 1)[0]  # <base>/<the desk's random path>
    return context, page


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_the_printed_url_opens_the_desk_once_in_the_reviewers_language(store, browser, lang):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, lang)
        # The token has left the address bar; the desk lives under a random path.
        assert re.fullmatch(rf"{desk.base}/[A-Za-z0-9_-]{{22}}/{lang}/", page.url), page.url
        assert page.evaluate("document.documentElement.lang") == lang
        direction = page.evaluate("getComputedStyle(document.documentElement).direction")
        assert direction == ("rtl" if lang == "ar" else "ltr")
        assert page.locator("table.cases tbody tr").count() == 5
        cookies = context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            ("intake_desk", True, "Strict")]
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script could read it
        # The same URL in another browser context is refused: it worked once.
        other = browser.new_context(locale=lang)
        refused = other.new_page()
        answer = refused.goto(desk.login_url)
        assert answer.status == 403
        assert refused.goto(f"{desk.root}/{lang}/").status == 403
        other.close()
        context.close()


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_case_reads_in_the_reviewers_language_with_the_sources_text_as_written(
        store, browser, labels, lang):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, lang)
        page.click(f"text={code_of(ids['ar'])}")
        page.wait_for_url(f"**/{lang}/cases/{ids['ar']}")
        assert page.locator("h1 .ic-code").inner_text() == code_of(ids["ar"])
        dts = page.locator("dl.answers dt").all_inner_texts()
        assert labels[lang]["narrative"] in dts and labels[lang]["country"] in dts
        other = "ar" if lang == "en" else "en"
        assert labels[other]["narrative"] not in dts
        page_direction = page.evaluate("getComputedStyle(document.body).direction")
        assert page_direction == ("rtl" if lang == "ar" else "ltr")
        narrative = page.locator("dd.source-text").filter(has_text="واتساب")
        # The source's text keeps its own direction and its line breaks, whatever the page's.
        assert narrative.evaluate("e => getComputedStyle(e).direction") == "rtl"
        assert narrative.inner_text() == NARRATIVE_AR
        indicators = page.locator("ul.indicators li bdi")
        assert indicators.all_inner_texts() == FIELDS["indicators"].splitlines()
        assert indicators.first.evaluate("e => getComputedStyle(e).direction") == "ltr"
        # An English report on the same desk reads left to right inside an Arabic page.
        page.goto(f"{desk.root}/{lang}/cases/{ids['en']}")
        english = page.locator("dd.source-text").filter(has_text="WhatsApp")
        assert english.evaluate("e => getComputedStyle(e).direction") == "ltr"
        context.close()


def test_an_image_attachment_is_shown_re_encoded_without_its_exif_gps(store, browser):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, "en")
        page.goto(f"{desk.root}/en/cases/{ids['ar']}")
        page.click("text=View the image without its metadata")
        image = page.locator("figure.reencoded img")
        image.wait_for()
        # Waited for from outside the page: the page's CSP forbids the eval that
        # wait_for_function's polling needs, once the image is not loaded at the first look.
        image.evaluate("e => e.complete || new Promise(done => e.addEventListener('load', done))")
        assert image.evaluate("e => e.naturalWidth") == 640  # loaded, under the page's CSP
        png = context.request.get(desk.base + image.get_attribute("src")).body()
        assert set(png_chunk_types(png)) <= {b"IHDR", b"IDAT", b"IEND"}
        shown = Image.open(io.BytesIO(png))
        assert dict(shown.getexif()) == {} and shown.info == {}
        assert GPS_DECIMAL in page.locator("main").inner_text()
        assert CAMERA in page.locator("dl.metadata").inner_text()
        # The other attachments: text as text, the disguised program only to be saved.
        page.goto(f"{desk.root}/en/cases/{ids['ar']}/attachments/2")
        assert page.locator("pre.source-text").inner_text() == "ملاحظات\nsecond line\n"
        page.goto(f"{desk.root}/en/cases/{ids['ar']}/attachments/3")
        assert page.locator("img").count() == 0
        assert "Dangerzone" in page.locator("main").inner_text()
        with page.expect_download() as download:
            page.click("text=Save the original file")
        assert download.value.suggested_filename == "03-invoice.pdf"
        assert Path(download.value.path()).read_bytes() == b"MZ\x90\x00" + b"\0" * 200
        context.close()


def test_another_program_on_loopback_never_receives_the_desks_cookie(store, browser):
    """Browsers send a host's cookies to all its ports: another local user's web server on
    127.0.0.1 that the reviewer's browser visits must not get a cookie it could replay."""
    received: list[tuple[str, str | None]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            received.append((self.path, self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!doctype html><title>x</title><p>another program</p>")

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    tmp, cases, ids = store
    try:
        with running_desk(cases, tmp) as desk:
            context, page = open_desk(browser, desk, "en")
            assert page.locator("table.cases").count() == 1  # signed in
            elsewhere = f"http://127.0.0.1:{other.server_address[1]}"
            for path in ("/", "/en/", "/login", "/favicon.ico", "/static/desk.css"):
                page.goto(elsewhere + path)
            assert page.goto(f"{desk.root}/en/").status == 200  # still signed in at the desk
            context.close()
    finally:
        other.shutdown()
        other.server_close()
    assert len(received) >= 5
    assert [cookie for _path, cookie in received if cookie] == []


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_axe_finds_no_serious_violation_on_any_desk_page(store, browser, lang):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        # bypass_csp lets the test inject axe; the pages themselves run under the real CSP.
        context, page = open_desk(browser, desk, lang, bypass_csp=True)
        paths = [f"/{lang}/", f"/{lang}/cases/{ids['ar']}", f"/{lang}/cases/{ids['hostile']}",
                 *(f"/{lang}/cases/{ids['ar']}/attachments/{n}" for n in (1, 2, 3)),
                 f"/{lang}/cases/{ids['hostile']}/attachments/1", f"/{lang}/cases/{'0' * 32}"]
        problems = {}
        for path in paths:
            page.goto(desk.root + path)
            problems[path] = serious_violations(page)
        page.goto(f"{desk.root}/{lang}/")
        page.click("button[type=submit]")  # lock the desk
        page.wait_for_load_state()
        problems["locked"] = serious_violations(page)
        page.goto(f"{desk.root}/{lang}/")  # no longer signed in
        problems["refused"] = serious_violations(page)
        context.close()
    assert {k: v for k, v in problems.items() if v} == {}


def test_hostile_case_content_runs_nothing_and_reorders_nothing(store, browser):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, "en")
        dialogs, errors, requests_made = [], [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests_made.append(r.url))
        for lang in LANGUAGES:
            for path in (f"/{lang}/", f"/{lang}/cases/{ids['hostile']}",
                         f"/{lang}/cases/{ids['hostile']}/attachments/1"):
                page.goto(desk.root + path)
                page.mouse.move(200, 400)
                assert page.evaluate("document.scripts.length") == 0, path
                assert page.locator("iframe, svg, main img, [onerror], [onload], "
                                    "[onmouseover]").count() == 0, path
                text = page.locator("main").inner_text()
                assert "\u202e" not in text and "\x1b" not in text, path
        page.goto(f"{desk.root}/en/cases/{ids['hostile']}")
        narrative = page.locator("dd.source-text").first.inner_text()
        assert narrative.startswith("<script>alert(1)</script><img src=x onerror=alert(2)>")
        assert "[U+202E]gnp.exe[U+2067]" in narrative and "[U+001B][31m" in narrative
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1  # 30,000 characters without a space do not widen the page
        context.close()
    assert dialogs == [] and errors == []
    assert all(url.startswith(desk.base + "/") for url in requests_made), requests_made


# -- The list, triage, related cases and groups ---------------------------------------------

@pytest.fixture
def fresh(tmp_path):
    """A cases folder of its own, for the tests that change triage."""
    cases = tmp_path / "cases"
    cases.mkdir()
    english = write_case(cases, {**FIELDS, "narrative": NARRATIVE_EN}, received_on="2026-11-21")
    return tmp_path, cases, {"en": english, **write_campaign(cases)}


def listed_codes(page) -> list[str]:
    return page.locator("table.cases tbody th a.ic-code").all_inner_texts()


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_the_list_filters_and_searches_arabic_with_and_without_marks(store, browser, lang):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, lang)
        assert len(listed_codes(page)) == 5
        assert listed_codes(page)[0] == code_of(ids["domain"])  # newest first
        # A filter from the form: the country.
        page.select_option("#f-country", "EG")
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state()
        assert sorted(listed_codes(page)) == sorted([code_of(ids["url"]), code_of(ids["domain"])])
        assert page.locator("#f-country").input_value() == "EG"  # kept in the form
        # The search, typed without vowel marks, finds the narrative written with them.
        page.goto(f"{desk.root}/{lang}/")
        for typed in ("محمد", "مُحَمَّد", "محمّد"):
            page.fill("#f-q", typed)
            page.click("form.filters button[type=submit]")
            page.wait_for_load_state()
            assert listed_codes(page) == [code_of(ids["url"])], typed
        page.fill("#f-q", "واتساب")  # in the Arabic report only
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state()
        assert listed_codes(page) == [code_of(ids["ar"])]
        # A value the form never offers, from an edited address: one sentence, no table.
        answer = page.goto(f"{desk.root}/{lang}/?status=open")
        assert answer.status == 400
        alert = page.locator("[role=alert]").inner_text()
        with in_language(lang):
            assert review_labels.status_label("needs_follow_up") in alert
        assert page.locator("table.cases").count() == 0
        context.close()


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_reviewer_sets_a_status_adds_a_tag_and_a_note(fresh, browser, lang):
    tmp, cases, ids = fresh
    case_id = ids["en"]
    with in_language(lang):
        confirmed = review_labels.status_label("confirmed")
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, lang)
        page.click(f"text={code_of(case_id)}")
        page.wait_for_url(f"**/{lang}/cases/{case_id}")
        page.select_option("#status", "confirmed")
        page.click("form[action$='/status'] button[type=submit]")
        page.wait_for_url(f"**/{lang}/cases/{case_id}#triage")
        assert page.locator("#status option:checked").inner_text() == confirmed
        assert page.locator("p.confirmation[role=status]").count() == 1
        page.fill("#tag", "حملة-2026")
        page.click("form[action$='/tags'] button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("#triage .tag-list .tag").all_inner_texts() == ["حملة-2026"]
        page.fill("#author", "أمل")
        page.fill("#note-text", "طلبنا الإشعار.\nSecond line, in English.")
        page.click("form[action$='/notes'] button[type=submit]")
        page.wait_for_load_state()
        entry = page.locator("li.note-entry").last
        assert entry.locator(".author").inner_text() == "أمل"
        assert datetime.date.today().isoformat() in entry.locator(".note-meta").inner_text()
        text = entry.locator(".source-text")
        assert text.inner_text() == "طلبنا الإشعار.\nSecond line, in English."
        assert text.evaluate("e => getComputedStyle(e).direction") == "rtl"  # dir=auto
        assert page.locator("#author").input_value() == "أمل"  # offered for the next note
        # A reload sends nothing again (each change answered with a redirect).
        page.reload()
        assert page.locator("li.note-entry").count() == 1
        # The list finds the case by its new tag and status.
        page.goto(f"{desk.root}/{lang}/")
        page.select_option("#f-tag", "حملة-2026")
        page.select_option("#f-status", "confirmed")
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state()
        assert listed_codes(page) == [code_of(case_id)]
        context.close()
    # The command line's store reads what the desk wrote.
    with CaseStore(cases) as case_store:
        assert case_store.triage(case_id).status == "confirmed"
        assert case_store.triage(case_id).tags == ("حملة-2026",)
        assert [(n.author, n.text) for n in case_store.notes(case_id)] == [
            ("أمل", "طلبنا الإشعار.\nSecond line, in English.")]


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_two_reports_sharing_a_domain_are_related_and_grouped(fresh, browser, lang):
    tmp, cases, ids = fresh
    with in_language(lang):
        domain_kind = review_labels.indicator_kind("domain")
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, lang)
        page.goto(f"{desk.root}/{lang}/cases/{ids['url']}")
        related = page.locator("#related")
        assert related.locator("a.ic-code").all_inner_texts() == [code_of(ids["domain"])]
        shared = related.locator(".shared li").all_inner_texts()
        assert f"{domain_kind} {CAMPAIGN_DOMAIN}" in [" ".join(t.split()) for t in shared]
        related.locator("a.ic-code").click()
        page.wait_for_url(f"**/{lang}/cases/{ids['domain']}")
        assert page.locator("#related a.ic-code").all_inner_texts() == [code_of(ids["url"])]
        # The group view shows the campaign, and leads to its cases.
        page.goto(f"{desk.root}/{lang}/")
        page.locator("nav.views a").nth(1).click()
        page.wait_for_url(f"**/{lang}/groups")
        groups = page.locator("li.group")
        assert groups.count() == 1
        campaign = groups.filter(has_text=CAMPAIGN_DOMAIN)
        assert sorted(campaign.locator("a.ic-code").all_inner_texts()) == sorted(
            [code_of(ids["url"]), code_of(ids["domain"])])
        campaign.locator("a.ic-code").first.click()
        page.wait_for_url(re.compile(rf".*/{lang}/cases/[0-9a-f]{{32}}$"))
        context.close()


def test_axe_finds_no_serious_violation_on_the_new_pages(store, browser):
    tmp, cases, ids = store
    problems = {}
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, "en", bypass_csp=True)
        for lang in LANGUAGES:
            paths = [f"/{lang}/?status=new&country=EG", f"/{lang}/?q=محمد",
                     f"/{lang}/?q=nothing-at-all", f"/{lang}/?status=open",
                     f"/{lang}/groups", f"/{lang}/groups?tag=nothing",
                     f"/{lang}/cases/{ids['url']}", f"/{lang}/cases/{ids['hostile']}"]
            for path in paths:
                page.goto(desk.root + path)
                problems[path] = serious_violations(page)
            # A refused note: the case page again, with the sentence by its field.
            page.goto(f"{desk.root}/{lang}/cases/{ids['url']}")
            page.fill("#author", "Amal")
            page.click("form[action$='/notes'] button[type=submit]")
            page.wait_for_load_state()
            assert page.locator("#note-error").count() == 1
            problems[f"{lang} refused note"] = serious_violations(page)
        context.close()
    assert {k: v for k, v in problems.items() if v} == {}


def test_hostile_tags_notes_and_searches_run_nothing_and_reorder_nothing(store, browser):
    tmp, cases, ids = store
    with running_desk(cases, tmp) as desk:
        context, page = open_desk(browser, desk, "en")
        dialogs, errors, requests_made = [], [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests_made.append(r.url))
        for lang in LANGUAGES:
            for path in (f"/{lang}/?q={HOSTILE}", f"/{lang}/?q=alert",
                         f"/{lang}/?tag=<script>alert(5)</script>", f"/{lang}/?tag={HOSTILE}",
                         f"/{lang}/?country={HOSTILE}", f"/{lang}/groups?q={HOSTILE}",
                         f"/{lang}/groups", f"/{lang}/cases/{ids['hostile']}"):
                page.goto(desk.root + path)
                page.mouse.move(200, 400)
                assert page.evaluate("document.scripts.length") == 0, path
                assert page.locator("iframe, svg, main img, [onerror], [onload], "
                                    "[onmouseover]").count() == 0, path
                text = page.locator("main").inner_text()
                assert "\u202e" not in text and "\x1b" not in text, path
        page.goto(f"{desk.root}/en/?tag=<script>alert(5)</script>")
        assert listed_codes(page) == [code_of(ids["hostile"])]
        page.goto(f"{desk.root}/en/cases/{ids['hostile']}")
        tags = page.locator("#triage .tag-list .tag").all_inner_texts()
        assert "<script>alert(5)</script>" in tags
        assert any(t.startswith("tag<script>alert(1)</script>") and "[U+202E]" in t for t in tags)
        notes = page.locator("li.note-entry")
        assert notes.nth(0).locator(".source-text").inner_text() == (
            "<img src=x onerror=alert(6)>\nsecond line")
        assert notes.nth(0).locator(".author").inner_text() == "<b>Amal</b>"
        assert notes.nth(1).locator(".author").inner_text() == "[U+202E]Amal[U+001B][2J"
        context.close()
    # A refused filter is answered 400 on purpose; Chromium logs each such answer.
    refused = "Failed to load resource: the server responded with a status of 400"
    assert dialogs == [] and [e for e in errors if not e.startswith(refused)] == []
    assert all(url.startswith(desk.base + "/") for url in requests_made), requests_made
