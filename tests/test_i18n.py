"""Arabic first: every string translated, every page in every language, no
language cookie, digits as people type them, and no English on Arabic pages."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from helpers import Deployment, form_tokens, make_settings, valid_report

from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.web.app import build_app
from intake.web.i18n import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "intake" / "translations"
PAGES = ["/{lang}/", "/{lang}/report", "/{lang}/thanks", "/{lang}/follow-up"]
#: Names that stay in Latin script in every language.
LATIN_NAMES = {"Tor", "Browser", "Signal", "WhatsApp", "Telegram", "Facebook", "Instagram",
               "Google", "Apple", "Microsoft", "Proton", "Meta", "NSO", "Group", "Pegasus",
               "Intellexa", "Cytrox", "Predator", "Candiru", "DevilsTongue", "Paragon", "Graphite",
               "QuaDream", "Reign", "RCS", "Lab", "Hermit", "FinFisher", "FinSpy", "Cellebrite",
               "MVT", "Dangerzone", "VirusTotal", "Mobile", "Verification", "Toolkit", "iPhone",
               "Android", "Windows", "macOS", "Linux", "English", "Français", "eml", "SMS", "SIM",
               "DDoS", "VPN", "URL", "IP", "hxxp", "www", "wikipedia", "org", "https"}


#: The test keyring's labels ("Reviewer 0"): data an admin chose, not interface text.
KEYRING_LABEL_WORDS = {"Reviewer"}


def catalogue(lang: str):
    with open(CATALOGUES / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


def source_messages() -> set[str]:
    # As babel.cfg: the review side's strings have their own catalogue
    # (tests/test_review_i18n.py checks it).
    method_map = [("intake/review/**", "ignore"), ("intake/**.py", "python"),
                  ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None,
                "ngettext": (1, 2)}
    return {msg if isinstance(msg, str) else msg[0]
            for _, _, msg, _, _ in extract_from_dir(str(ROOT), method_map, keywords=keywords)
            if msg}


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_catalogue_translates_every_string_with_nothing_fuzzy(lang):
    # A plural entry is known by its singular, and translated when every form is (one form
    # per plural category of the language).
    catalog = catalogue(lang)
    messages = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in catalog if m.id}
    missing = source_messages() - set(messages)
    assert not missing, f"{lang}: strings not in the catalogue (run pybabel update): {missing}"
    untranslated = [m.id for m in messages.values()
                    if not (all(m.string) if isinstance(m.string, tuple) else m.string)
                    or (isinstance(m.string, tuple) and len(m.string) != catalog.num_plurals)]
    fuzzy = [m.id for m in messages.values() if m.fuzzy]
    assert not untranslated, f"{lang}: {len(untranslated)} untranslated, e.g. {untranslated[:3]}"
    assert not fuzzy, f"{lang}: fuzzy entries {fuzzy[:3]}"
    for m in messages.values():
        if isinstance(m.id, tuple):  # a plural: a form may spell out its number ("one hour")
            allowed = set(re.findall(r"%\(\w+\)\w", m.id[1]))
            assert all(set(re.findall(r"%\(\w+\)\w", form)) <= allowed for form in m.string)
            continue
        assert set(re.findall(r"%\(\w+\)\w", m.id)) == set(re.findall(r"%\(\w+\)\w", m.string))


def visible_text_outside_gettext(source: str) -> str:
    text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", source, flags=re.S)
    text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", text, flags=re.S)
    attributes = " ".join(re.findall(r'(?:title|alt|placeholder|aria-label)="([^"]*)"', text))
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r'[\w-]+="[^"]*"', " ", text)  # attributes a macro writes outside a tag
    return html.unescape(text + " " + attributes)


@pytest.mark.parametrize("template", sorted((ROOT / "templates").glob("*.html")),
                         ids=lambda p: p.name)
def test_templates_have_no_visible_string_outside_gettext(template):
    leftover = visible_text_outside_gettext(template.read_text())
    words = [w for w in re.findall(r"[^\W\d_]{2,}", leftover)]
    assert words == [], f"{template.name}: visible words outside _(): {words}"


@pytest.fixture
def deployment(tmp_path):
    return Deployment(tmp_path / "keys").setup(recipients=1)


@pytest.fixture
def settings(tmp_path, deployment):
    return make_settings(tmp_path / "var", deployment, max_upload=4 * 1024 * 1024)


@pytest.fixture
def client(settings):
    return build_app(settings, {"TESTING": True}).test_client()


@pytest.mark.parametrize("lang", list(LANGUAGES))
@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_every_language_has_its_lang_and_dir(client, lang, page):
    response = client.get(page.format(lang=lang))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    direction = "rtl" if lang in ("ar", "fa") else "ltr"
    assert f'<html lang="{lang}" dir="{direction}">' in body
    for other in LANGUAGES:  # the switcher links to the same page in every language
        assert f'href="{page.format(lang=other)}"' in body


def test_the_root_picks_from_accept_language_with_arabic_by_default(client):
    def chosen(accept: str | None) -> str:
        headers = {"Accept-Language": accept} if accept else {}
        return client.get("/", headers=headers).headers["Location"]

    assert chosen(None).endswith("/ar/")
    assert chosen("fr-MA,fr;q=0.9").endswith("/fr/")
    assert chosen("fa-IR").endswith("/fa/")
    assert chosen("de-DE").endswith("/ar/")


def test_an_unknown_language_is_404_with_links_to_the_four(client):
    response = client.get("/de/report")
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    for lang in LANGUAGES:
        assert f'href="/{lang}/report"' in body  # the page asked for, in each language


def test_switching_languages_sets_no_cookie(client):
    for lang in LANGUAGES:
        assert "Set-Cookie" not in client.get(f"/{lang}/").headers
        assert "Set-Cookie" not in client.get(f"/{lang}/thanks").headers
    cookies = [c for lang in LANGUAGES
               for c in client.get(f"/{lang}/report").headers.getlist("Set-Cookie")]
    assert all(c.startswith("session=") for c in cookies)  # only the CSRF session, never a language


def test_arabic_and_persian_pages_carry_no_english_words(client):
    for lang in ("ar", "fa"):
        for page in PAGES:
            body = client.get(page.format(lang=lang)).get_data(as_text=True)
            body = re.sub(r'<script type="application/json".*?</script>', " ", body, flags=re.S)
            text = html.unescape(re.sub(r"<[^>]*>", " ", body))
            # Whole words in Latin letters only ("Français" is not "Fran" + "ais").
            words = set(re.findall(r"(?<![^\W\d_])[A-Za-z]{2,}(?![^\W\d_])", text))
            words -= LATIN_NAMES | KEYRING_LABEL_WORDS
            assert not words, f"{lang} {page}: English words {sorted(words)[:10]}"


def submit(client, lang: str, **fields):
    page = client.get(f"/{lang}/report").get_data(as_text=True)
    data = {**form_tokens(page), **valid_report(**fields), "attachments": []}
    return client.post(f"/{lang}/report", data=data, content_type="multipart/form-data")


def stored_report(settings, deployment, tmp_path):
    [blob] = list(settings.blob_dir.glob("*.age"))
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, deployment.identities)
    plain.seek(0)
    return extract_container(plain, tmp_path / "case").document


def test_arabic_indic_digits_are_normalised_and_mixed_text_kept_exactly(
    client, settings, deployment, tmp_path
):
    mixed = "وصلتني رسالة فيها الرابط https://evil.example/login?id=٣ من رقم +٩٦٢٧٩"
    response = submit(client, "ar", first_noticed="٢٠٢٦-٠٣", narrative=mixed)
    assert response.status_code == 200
    document = stored_report(settings, deployment, tmp_path)
    assert document["fields"]["first_noticed"] == "2026-03"
    assert document["fields"]["narrative"] == mixed
    assert document["lang"] == "ar"


def test_persian_digits_in_a_full_date(client, settings, deployment, tmp_path):
    assert submit(client, "fa", first_noticed="۲۰۲۶/۳/۱۴").status_code == 200
    assert stored_report(settings, deployment, tmp_path)["fields"]["first_noticed"] == "2026-03-14"
