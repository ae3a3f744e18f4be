"""The review side's own catalogue: every string translated in ar, en, fr and fa,
kept apart from the intake's, and merged with it wherever reviewers read labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask_babel import gettext

from intake import schema
from intake.review import labels
from intake.review.i18n import (
    INTAKE_TRANSLATIONS,
    LANGUAGES,
    REVIEW_TRANSLATIONS,
    TRANSLATION_DIRECTORIES,
    UnknownLanguage,
    check_language,
    in_language,
)

ROOT = Path(__file__).resolve().parent.parent
REVIEW = ROOT / "intake" / "review"
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}


def review_messages() -> set[str]:
    """What intake/review/babel.cfg extracts: every Python file and template but the desk's."""
    method_map = [("desk/**", "ignore"), ("**.py", "python"), ("**/templates/**.html", "jinja2")]
    return {msg for _, _, msg, _, _ in extract_from_dir(str(REVIEW), method_map,
                                                       keywords=KEYWORDS)
            if isinstance(msg, str)}


def catalogue(lang: str):
    with open(REVIEW_TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


def test_the_review_side_has_strings_to_translate() -> None:
    assert {"Needs follow-up", "Related cases", "Incident reports"} <= review_messages()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_review_catalogue_translates_every_string_with_nothing_fuzzy(lang: str) -> None:
    messages = {m.id: m for m in catalogue(lang) if m.id}
    missing = review_messages() - set(messages)
    assert not missing, (
        f"{lang}: strings not in intake/review/translations (run pybabel extract -F "
        f"intake/review/babel.cfg, then update): {missing}"
    )
    untranslated = [m.id for m in messages.values() if not m.string]
    fuzzy = [m.id for m in messages.values() if m.fuzzy]
    assert not untranslated, f"{lang}: {len(untranslated)} untranslated, e.g. {untranslated[:3]}"
    assert not fuzzy, f"{lang}: fuzzy entries {fuzzy[:3]}"
    for m in messages.values():
        assert set(re.findall(r"%\(\w+\)\w", m.id)) == set(re.findall(r"%\(\w+\)\w", m.string))
        if lang in ("ar", "fa"):
            assert m.string != m.id or not re.search(r"[a-z]{4,}", m.id), (lang, m.id)


def test_the_intake_catalogue_does_not_carry_the_review_strings() -> None:
    with open(INTAKE_TRANSLATIONS / "messages.pot", "rb") as fh:
        intake_ids = {m.id for m in read_po(fh) if m.id}
    assert "Needs follow-up" not in intake_ids and "Related cases" not in intake_ids


def test_both_catalogues_are_merged_for_the_reviewer() -> None:
    assert TRANSLATION_DIRECTORIES.split(";") == [str(INTAKE_TRANSLATIONS),
                                                 str(REVIEW_TRANSLATIONS)]
    with in_language("ar"):
        assert gettext("Needs follow-up") == "تحتاج إلى متابعة"  # the review catalogue
        assert labels.status_label("needs_follow_up") == "تحتاج إلى متابعة"
        assert str(schema.FIELDS["risk_now"].label) != "How much danger is the targeted " \
            "person in now?"  # the intake's catalogue
        assert labels.choice_label("country", "EG") == "مصر"  # CLDR
    with in_language("fr"):
        assert labels.choice_label("categories", "phishing").startswith("Hameçonnage")


def test_an_unknown_language_is_one_sentence_listing_the_valid_ones() -> None:
    with pytest.raises(UnknownLanguage, match=r"^There is no language 'de' for the review "
                       r"tools; choose one of ar, en, fa, fr\.$"):
        check_language("de")
    with pytest.raises(UnknownLanguage, match=r"'\\x1b\[2J'"):
        check_language("\x1b[2J")
