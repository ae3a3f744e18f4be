"""The desk speaks the reviewer's language: every one of its strings is in its own
catalogue, translated in ar, en, fr and fa, and no English is left on its pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from desk_support import desk_client, jpeg_with_gps, write_case
from flask_babel import force_locale
from test_i18n import visible_text_outside_gettext

from intake import schema
from intake.web.i18n import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
DESK = ROOT / "intake" / "review" / "desk"
CATALOGUES = DESK / "translations"
PLACEHOLDER = re.compile(r"%\(\w+\)\w")


def desk_messages() -> set[str | tuple[str, str]]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None,
                "ngettext": (1, 2)}
    return {msg for _, _, msg, _, _ in extract_from_dir(str(DESK), method_map,
                                                         keywords=keywords)}


def catalogue(lang: str):
    with open(CATALOGUES / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


def test_the_template_lists_every_desk_string():
    with open(CATALOGUES / "messages.pot", "rb") as fh:
        template = {m.id for m in read_po(fh) if m.id}
    assert desk_messages() == template, "run the pybabel extract line in desk/babel.cfg"


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_desk_string_is_translated_with_nothing_fuzzy(lang):
    messages = {m.id: m for m in catalogue(lang) if m.id}
    missing = desk_messages() - set(messages)
    assert not missing, f"{lang}: not in the desk's catalogue (run pybabel update): {missing}"
    for m in messages.values():
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        assert all(forms), f"{lang}: untranslated {m.id!r}"
        assert not m.fuzzy, f"{lang}: fuzzy {m.id!r}"
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) == wanted, (lang, m.id, form)


@pytest.mark.parametrize("template", sorted((DESK / "templates").glob("*.html")),
                         ids=lambda p: p.name)
def test_desk_templates_have_no_visible_string_outside_gettext(template):
    leftover = visible_text_outside_gettext(template.read_text())
    assert re.findall(r"[^\W\d_]{2,}", leftover) == [], template.name


#: Names that stay as they are in every language.
KEPT = {"Dangerzone", "SHA", "PNG", "PDF", "Ctrl", "intake", "review", "serve", "import"}


@pytest.mark.parametrize("lang", ["ar", "fa"])
def test_no_english_is_left_on_the_desk_pages_in_arabic_and_persian(tmp_path, lang):
    cases = tmp_path / "cases"
    case_id = write_case(cases, {"narrative": "نص", "country": "EG", "risk_now": "elevated"},
                         lang="fa", files=[("p.jpg", jpeg_with_gps(), "image/jpeg"),
                                           ("t.txt", "نص\n".encode(), "text/plain"),
                                           ("x.bin", b"\x00\x01" * 10, "application/pdf")])
    desk = desk_client(cases)
    # The form's answers are labelled by the intake's catalogue (its own tests check it),
    # and some keep their names in every language: "NSO Group Pegasus", "SIM", "DDoS".
    with desk.app.test_request_context(), force_locale(lang):
        answer_words = {word for f in schema.FIELDS.values() for choice in f.choices
                        for word in re.findall(r"[A-Za-z]{2,}", str(choice.label))}
    for path in ("/", "/groups", "/?status=open", f"/cases/{case_id}",
                 *(f"/cases/{case_id}/attachments/{n}" for n in (1, 2, 3)), "/no-such-case/"):
        page = desk.get(f"/{lang}{path}").get_data(as_text=True)
        main = page.split('<main id="main">', 1)[1]
        title = re.search(r"<title>(.*?)</title>", page).group(1)
        # What the source sent and what the file says of itself are shown as they are: in
        # <bdi> (values, names, codes, hashes, types), <pre> (a text file) and the metadata.
        interface = re.sub(r"<bdi\b.*?</bdi>|<pre\b.*?</pre>|<dl class=\"metadata\">.*?</dl>",
                           " ", main + " " + title, flags=re.S)
        text = re.sub(r"<[^>]+>|IC-[0-9A-F]{8}", " ", interface)  # the code, in <title> too
        english = [w for w in re.findall(r"[A-Za-z]{2,}", text)
                   if w not in KEPT and w not in answer_words]
        assert english == [], (lang, path, english)
