"""The desk's pages: a case as the source wrote it, labelled in the reviewer's language,
and hostile content inert on every page.

Against the desk app in this process (`create_desk_app`); the Chromium tests
in test_desk_browser.py look at the same pages in a real browser.
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from desk_support import code_of, desk_client, jpeg_with_gps, write_case
from flask_babel import force_locale

from intake import schema
from intake.web.i18n import LANGUAGES

NARRATIVE_AR = "بعد مكالمة فائتة على واتساب أصبح هاتفي ساخنًا.\nبعد يومين اقتبس ضابط رسائلي."
INDICATORS = "hxxps://sms-verify[.]example/a?b=1\n+973 3000 0000\nd41d8cd98f00b204e9800998ecf8427e"
FIELDS = {
    "reporter_role": "self",
    "consent_use": ["statistics", "quote_anonymously"],
    "contact_method": "none",
    "categories": ["mercenary_spyware", "phishing"],
    "first_noticed": "2026-03",
    "country": "BH",
    "narrative": NARRATIVE_AR,
    "how_discovered": ["suspicious_message"],
    "target_profile": ["journalist"],
    "risk_now": "elevated",
    "indicators": INDICATORS,
    "subject_agreed": False,
}

#: What a hostile client can put in report.json and case.json.
SCRIPT = "<script>alert(document.cookie)</script>"
HOSTILE_TEXT = (f"{SCRIPT}<img src=x onerror=alert(1)>\u202egnp.exe\u2066 \x1b[2J\x1b]0;owned\x07"
                "\u200b\ud800 {{7*7}} {% raw %}")
HOSTILE_FIELDS = {
    **FIELDS,
    "narrative": HOSTILE_TEXT + "N" * 900_000,  # over the schema's bound, under report.json's
    "notification_text": HOSTILE_TEXT,
    "contact_handle": "\u202e@evil" + HOSTILE_TEXT,
    "indicators": "\n".join([HOSTILE_TEXT, "evil\u200b.example", *["x.example"] * 5000]),
    "categories": ["phishing", "<b onmouseover=alert(3)>bold</b>", {"nested": SCRIPT}],
    "country": SCRIPT,
    "risk_now": ["not", "a", "string"],
    "subject_agreed": SCRIPT,
    "no_such_field": SCRIPT,
}


@pytest.fixture
def cases(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    return folder


def labels_in(app, lang: str, *names: str) -> list[str]:
    with app.test_request_context(), force_locale(lang):
        return [str(schema.FIELDS[name].label) for name in names]


def test_the_case_page_is_labelled_in_the_reviewers_language_not_the_sources(cases):
    case_id = write_case(cases, FIELDS, lang="ar")
    desk = desk_client(cases)
    english = labels_in(desk.app, "en", "narrative", "indicators", "country")
    for lang in ("en", "fr", "fa", "ar"):
        page = desk.get(f"/{lang}/cases/{case_id}").get_data(as_text=True)
        direction = LANGUAGES[lang].direction
        assert f'<html lang="{lang}" dir="{direction}">' in page
        for label in labels_in(desk.app, lang, "narrative", "indicators", "country"):
            assert f"<dt>{label}</dt>" in page, (lang, label)
        if lang != "en":
            assert not any(f"<dt>{label}</dt>" in page for label in english), lang
        # The source wrote in Arabic: its text is marked so, whatever the page's language.
        assert f'dir="auto" lang="ar">{NARRATIVE_AR}</dd>' in page  # line break kept
    with desk.app.test_request_context(), force_locale("fr"):
        bahrain = str(dict((c.value, c.label) for c in schema.country_choices())["BH"])
    assert bahrain in desk.get(f"/fr/cases/{case_id}").get_data(as_text=True)


def test_the_case_page_shows_the_code_indicators_and_attachment_facts(cases):
    photo = jpeg_with_gps()
    case_id = write_case(cases, FIELDS, files=[("photo.jpg", photo, "image/jpeg"),
                                               ("scan.pdf", b"PK\x03\x04" + b"\0" * 40,
                                                "application/pdf")])
    page = desk_client(cases).get(f"/en/cases/{case_id}").get_data(as_text=True)
    assert re.search(rf'<h1 class="case-title">Case <bdi dir="ltr" class="ic-code">'
                     rf"{code_of(case_id)}</bdi></h1>", page)
    for line in INDICATORS.splitlines():
        assert f'<li><bdi dir="ltr">{line.replace("&", "&amp;")}</bdi></li>' in page
    assert hashlib.sha256(photo).hexdigest() in page
    assert f"{len(photo):,} bytes" in page
    assert "image/jpeg" in page and "application/pdf" in page
    # The bytes of scan.pdf are a zip archive: the disagreement is flagged for it alone.
    assert page.count("the declared type does not match what the bytes are") == 1


class Tags(HTMLParser):
    """Every element and attribute of a page, and any text that escaped its element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("src", "href", "action"):
                self.srcs.append(value or "")


ALLOWED_TAGS = {"html", "head", "meta", "title", "link", "body", "a", "header", "p", "nav", "ul",
                "li", "form", "input", "button", "main", "h1", "h2", "h3", "dl", "div", "dt",
                "dd", "bdi", "span", "section", "ol", "strong", "figure", "img", "pre", "table",
                "caption", "thead", "tbody", "tr", "th", "td", "label", "select", "option",
                "textarea", "datalist"}


def desk_pages(desk, case_id: str, attachments: int) -> dict[str, str]:
    pages = {}
    for lang in LANGUAGES:
        paths = [f"/{lang}/", f"/{lang}/cases/{case_id}"]
        paths += [f"/{lang}/cases/{case_id}/attachments/{n}" for n in range(1, attachments + 1)]
        for path in paths:
            answer = desk.get(path)
            assert answer.status_code == 200, path
            pages[path] = answer.get_data(as_text=True)
    return pages


def test_hostile_case_content_is_inert_in_every_page(cases):
    case_id = write_case(
        cases, HOSTILE_FIELDS, lang="ar", received_on=SCRIPT,
        files=[(HOSTILE_TEXT + ".jpg", jpeg_with_gps(), SCRIPT),
               ("notes.txt", HOSTILE_TEXT.replace("\ud800", "").encode(), "text/plain")],
    )
    report = cases / case_id / "report.json"
    assert report.stat().st_size < 1024 * 1024  # what the container reader lets through
    desk = desk_client(cases)
    pages = desk_pages(desk, case_id, attachments=2)
    for path, page in pages.items():
        parsed = Tags()
        parsed.feed(page)
        assert parsed.tags <= ALLOWED_TAGS, (path, parsed.tags - ALLOWED_TAGS)
        assert not [a for a in parsed.attributes if a.startswith("on")], path
        assert all(s.startswith(("/", "#")) for s in parsed.srcs), (path, parsed.srcs)
        assert "<script" not in page and "<img src=x" not in page and "<b onmouseover" not in page
        # No character that acts: bidi controls, ESC, BEL, lone surrogates.
        acting = re.findall(r"[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]",
                            page)
        assert acting == [], (path, acting[:5])
        assert len(page) < 400_000, (path, len(page))  # huge values are cut
    case_page = pages[f"/en/cases/{case_id}"]
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in case_page
    assert "[U+202E]" in case_page and "[U+001B]" in case_page and "[U+D800]" in case_page
    assert 'evil<span class="control-mark">[U+200B]</span>.example' in case_page  # shown
    assert "Only the first 20,000 of 900," in case_page
    assert "This report does not fit the form" in case_page
    assert "(not one of the form’s choices)" in case_page
    assert "{{7*7}}" in case_page  # not a template


def test_damaged_case_folders_are_listed_marked_and_open_with_their_problems(cases):
    good = write_case(cases, FIELDS)
    broken = write_case(cases, FIELDS)
    (cases / broken / "case.json").write_text("{not json")
    wrong = write_case(cases, FIELDS)
    meta = json.loads((cases / wrong / "case.json").read_text())
    (cases / wrong / "case.json").write_text(json.dumps({**meta, "case_id": "0" * 32}))
    odd = write_case(cases, FIELDS, files=[("a.txt", b"a\n", "text/plain")])
    report = json.loads((cases / odd / "report.json").read_text())
    report["fields"] = ["not", "an", "object"]
    report["attachments"] = [report["attachments"][0], "not an entry", {"path": 7}]
    (cases / odd / "report.json").write_text(json.dumps(report))
    desk = desk_client(cases)
    page = desk.get("/en/").get_data(as_text=True)
    rows = re.findall(r"<tr( class=\"damaged-row\")?>\s*<th scope=\"row\">.*?(IC-[0-9A-F]{8})",
                      page, flags=re.S)
    assert sorted((code, bool(mark)) for mark, code in rows) == sorted(
        [(code_of(good), False), (code_of(broken), True), (code_of(wrong), True),
         (code_of(odd), True)])
    assert page.count('<strong class="damaged-mark">Damaged</strong>') == 3
    for case_id, problem in ((broken, "case.json is not UTF-8 JSON"),
                             (wrong, "case.json names another case than its folder"),
                             (odd, "the report has no fields object")):
        case_page = desk.get(f"/en/cases/{case_id}")
        assert case_page.status_code == 200
        text = case_page.get_data(as_text=True)
        assert "This report does not fit the form" in text and problem in text
        assert '<strong class="damaged-mark">Damaged</strong>' in text
    odd_page = desk.get(f"/en/cases/{odd}").get_data(as_text=True)
    assert odd_page.count("(not found in the case folder)") == 2
    assert desk.get(f"/en/cases/{odd}/attachments/1").status_code == 200
    assert desk.get(f"/en/cases/{odd}/attachments/3").status_code == 200
    assert desk.get(f"/en/cases/{'0' * 32}").status_code == 404
    assert desk.get("/en/cases/../../etc").status_code == 404
    assert desk.get(f"/en/cases/{good[:8]}").status_code == 404  # links carry the whole id


def test_the_list_shows_every_case_newest_first_with_labels(cases):
    older = write_case(cases, FIELDS, received_on="2026-10-01")
    newer = write_case(cases, {**FIELDS, "country": "EG"}, received_on="2026-11-20")
    page = desk_client(cases).get("/en/").get_data(as_text=True)
    assert page.index(code_of(newer)) < page.index(code_of(older))
    assert "Egypt" in page and "Bahrain" in page and "Mercenary spyware" in page
    assert "2 cases, newest first" in page


def test_the_case_page_shows_what_the_source_sent_later_and_the_replies_escaped(cases):
    """A source's follow-up is as hostile as its report; a reply is the reviewer's own."""
    import secrets as _secrets

    from pyrage import x25519

    from intake.review.casestore import FOLLOW_UPS
    from intake.review.store import CaseStore

    case_id = write_case(cases, FIELDS)
    meta_path = cases / case_id / "case.json"
    meta = json.loads(meta_path.read_text())
    meta.update(thread=_secrets.token_hex(16), reply_to=str(x25519.Identity.generate().to_public()))
    meta_path.write_text(json.dumps(meta))
    (cases / case_id / FOLLOW_UPS).mkdir()
    follow_id = write_case(cases / case_id / FOLLOW_UPS, {"narrative": HOSTILE_TEXT},
                           received_on="2026-12-01")
    with CaseStore(cases) as store:
        store.add_reply(case_id, "Can you send the link?\nهل ما زال الرابط عندك؟")
    desk = desk_client(cases)
    for lang in ("en", "ar"):
        page = desk.get(f"/{lang}/cases/{case_id}").get_data(as_text=True)
        assert f'id="follow-up-{follow_id}"' in page
        assert SCRIPT not in page and "&lt;script&gt;" in page and "\x1b" not in page
        assert "[U+202E]" in page  # the source's invisible marks, shown
        assert "هل ما زال الرابط عندك؟" in page
        assert f"intake review reply {code_of(case_id)} --text-file FILE" in page
