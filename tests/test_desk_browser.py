"""The reviewers' desk in Debian's Chromium (Playwright), against the real command.

`intake review serve` runs on a free loopback port; Chromium opens the
one-time URL it prints, in English and in Arabic, reads a case labelled in
that language (right to left in Arabic), looks at a photo re-encoded without
its EXIF GPS, and runs axe-core on every desk page in every language. A case
full of hostile content runs nothing and reorders nothing.
"""

from __future__ import annotations

import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
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
from intake.web.i18n import LANGUAGES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
AXE = next((ROOT / "tests" / "vendor").glob("axe-core-*.min.js"))
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
    return tmp, cases, {"ar": arabic, "en": english, "hostile": hostile}


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
        assert page.locator("table.cases tbody tr").count() == 3
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
        page.wait_for_function("document.querySelector('figure.reencoded img').complete")
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


def serious_violations(page) -> list[str]:
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
    )
    return [f"{v['id']} ({v['impact']}, {v['nodes']} nodes)" for v in result
            if v["impact"] in ("serious", "critical")]


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
