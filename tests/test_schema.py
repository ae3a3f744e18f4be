"""The report form's schema matches the spec (design/incident-schema.md).

The spec's tables are restated here on purpose: a change to the schema that
the spec does not make must fail a test, not slip through.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata

import pytest
from babel import Locale
from flask import Flask
from flask_babel import Babel
from flask_babel.speaklater import LazyString

from intake import schema

# (name, kind, required) in the spec's order; "required" is the unconditional flag.
SPEC_FIELDS = [
    ("reporter_role", "radio", True),
    ("subject_agreed", "checkbox", False),      # only when reporting for someone else
    ("consent_use", "checkboxes", True),        # at least one
    ("consent_forensics", "radio", False),
    ("contact_method", "radio", True),
    ("contact_handle", "text", False),          # only when a method was chosen
    ("verification_phrase", "text", False),
    ("categories", "multiselect", True),
    ("first_noticed", "partial_date", True),
    ("ongoing", "radio", False),
    ("country", "country", True),
    ("narrative", "textarea", True),
    ("how_discovered", "multiselect", True),
    ("notification_text", "textarea", False),
    ("target_profile", "multiselect", True),
    ("device_type", "select", False),
    ("device_status", "select", False),
    ("accounts", "multiselect", False),
    ("suspected_tool", "select", False),
    ("suspected_perpetrator", "multiselect", False),
    ("impacts", "multiselect", False),
    ("risk_now", "radio", True),
    ("indicators", "textarea", False),
    ("attachments", "files", False),
]

SPEC_SECTIONS = {
    "A": ["reporter_role", "subject_agreed", "consent_use", "consent_forensics"],
    "B": ["contact_method", "contact_handle", "verification_phrase"],
    "C": ["categories", "first_noticed", "ongoing", "country", "narrative", "how_discovered",
          "notification_text"],
    "D": ["target_profile"],
    "E": ["device_type", "device_status", "accounts"],
    "F": ["suspected_tool", "suspected_perpetrator", "impacts", "risk_now"],
    "G": ["indicators"],
    "H": ["attachments"],
}

MENA = ["DZ", "BH", "EG", "IR", "IQ", "IL", "JO", "KW", "LB", "LY", "MR", "MA", "OM", "PS", "QA",
        "SA", "SD", "SY", "TN", "TR", "AE", "EH", "YE"]

# CLDR territory codes that are not ISO 3166-1 countries (XK, Kosovo, is kept on purpose).
CLDR_NOT_ISO = {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}

MACHINE_VALUE = re.compile(r"^[a-z0-9_]+$")


def values(name: str) -> list[str]:
    return [c.value for c in schema.FIELDS[name].choices]


@pytest.fixture
def app_context():
    app = Flask(__name__)
    Babel(app)
    with app.app_context():
        yield


# -- Fields and sections -------------------------------------------------------------------

def test_field_names_kinds_and_order_are_the_specs():
    assert [(f.name, f.kind) for f in schema.FIELDS.values()] == [
        (name, kind) for name, kind, _required in SPEC_FIELDS
    ]


def test_required_flags_match_the_spec_table():
    assert {name: f.required for name, f in schema.FIELDS.items()} == {
        name: required for name, _kind, required in SPEC_FIELDS
    }


def test_sections_are_a_to_h_and_hold_the_specs_fields():
    assert {s.id: [f.name for f in s.fields] for s in schema.SECTIONS} == SPEC_SECTIONS
    assert [s.id for s in schema.SECTIONS] == list("ABCDEFGH")


def test_fields_is_keyed_by_each_fields_own_name():
    assert all(key == field.name for key, field in schema.FIELDS.items())


def test_every_field_that_offers_choices_has_them_and_others_have_none():
    for field in schema.FIELDS.values():
        offers_choices = field.kind in {"radio", "select", "country", "checkboxes", "multiselect"}
        assert bool(field.choices) == offers_choices, field.name


def test_choice_values_are_unique_snake_case_machine_values():
    for field in schema.FIELDS.values():
        field_values = [c.value for c in field.choices]
        assert len(field_values) == len(set(field_values)), field.name
        if field.kind == "country":
            continue  # ISO codes, checked below
        for value in field_values:
            assert MACHINE_VALUE.match(value), (field.name, value)


@pytest.mark.parametrize("name, expected", [
    ("reporter_role", ["self", "for_someone", "organisation", "journalist_researcher"]),
    ("consent_use", ["statistics", "quote_anonymously", "share_partners", "litigation",
                     "documentation_only"]),
    ("consent_forensics", ["yes", "no", "later"]),
    ("contact_method", ["none", "signal", "email", "trusted_org", "other"]),
    ("categories", ["mercenary_spyware", "phishing", "fake_domain", "account_takeover",
                    "account_suspension", "device_seizure", "sim_swap", "shutdown",
                    "ddos_defacement", "stalkerware", "doxxing", "extortion", "harassment",
                    "smear_campaign", "other"]),
    ("how_discovered", ["threat_notification_apple", "threat_notification_google",
                        "threat_notification_meta", "threat_notification_other",
                        "odd_behaviour", "forensic_check", "suspicious_message", "data_quoted",
                        "leak", "other"]),
])
def test_choice_values_are_the_agreed_ones(name, expected):
    assert values(name) == expected


def test_every_option_the_spec_lists_is_offered():
    # Counts per the spec table; a few fields add an escape option the spec's
    # general rule asks for ("don't know" or "prefer not to say" where it fits).
    spec_counts = {
        "reporter_role": 4, "consent_use": 5, "consent_forensics": 3, "contact_method": 5,
        "categories": 15, "ongoing": 3, "how_discovered": 10, "target_profile": 9,
        "device_type": 7, "device_status": 5, "accounts": 10, "suspected_tool": 11,
        "suspected_perpetrator": 6, "impacts": 8, "risk_now": 3,
    }
    added = {"target_profile": {"other", schema.PREFER_NOT_TO_SAY},
             "device_status": {schema.DONT_KNOW}}
    for name, count in spec_counts.items():
        assert len(values(name)) == count + len(added.get(name, ())), name
        assert added.get(name, set()) <= set(values(name)), name


@pytest.mark.parametrize("name", ["ongoing", "device_type", "suspected_perpetrator", "risk_now"])
def test_dont_know_is_offered_where_the_spec_lists_it(name):
    assert schema.DONT_KNOW in values(name)


def test_suspected_tool_offers_dont_know_first():
    assert values("suspected_tool")[0] == schema.DONT_KNOW


def test_target_profile_can_be_answered_without_identifying_anyone():
    assert schema.PREFER_NOT_TO_SAY in values("target_profile")


def test_country_offers_dont_know_first():
    assert values("country")[0] == schema.COUNTRY_UNKNOWN


def test_contact_method_defaults_to_do_not_contact_me():
    assert schema.FIELDS["contact_method"].default == "none" == schema.NO_CONTACT
    assert "none" in values("contact_method")


def test_no_multiple_choice_field_has_anything_ticked_by_default():
    for field in schema.FIELDS.values():
        if schema.is_multi(field) or field.kind == "checkbox":
            assert field.default is None, field.name
    assert schema.FIELDS["consent_use"].default is None


def test_only_contact_method_has_a_default():
    assert [f.name for f in schema.FIELDS.values() if f.default is not None] == ["contact_method"]


def test_text_limits_directions_and_monospace():
    expected = {
        "contact_handle": (200, "ltr", False),
        "verification_phrase": (200, None, False),
        "narrative": (20000, "auto", False),
        "notification_text": (10000, "auto", False),
        "indicators": (20000, "ltr", True),
    }
    actual = {
        f.name: (f.max_length, f.direction, f.monospace)
        for f in schema.FIELDS.values()
        if f.kind in {"text", "textarea"}
    }
    assert actual == expected
    others = [f for f in schema.FIELDS.values() if f.name not in expected]
    assert all(f.max_length is None and f.direction is None and not f.monospace for f in others)


def test_is_multi_is_true_exactly_for_list_answers():
    assert frozenset({"checkboxes", "multiselect"}) == schema.MULTI_KINDS
    multi = {name for name, f in schema.FIELDS.items() if schema.is_multi(f)}
    assert multi == {"consent_use", "categories", "how_discovered", "target_profile",
                     "accounts", "suspected_perpetrator", "impacts"}


def test_a_broken_field_is_refused_when_defined():
    with pytest.raises(ValueError, match="unknown kind"):
        schema.Field(name="x", kind="dropdown", label=schema._l("X"))
    with pytest.raises(ValueError, match="choices"):
        schema.Field(name="x", kind="radio", label=schema._l("X"))
    with pytest.raises(ValueError, match="duplicate"):
        schema.Field(name="x", kind="radio", label=schema._l("X"),
                     choices=(schema.Choice("a", schema._l("A")),) * 2)
    with pytest.raises(ValueError, match="default"):
        schema.Field(name="x", kind="radio", label=schema._l("X"), default="b",
                     choices=(schema.Choice("a", schema._l("A")),))


# -- Words people read ---------------------------------------------------------------------

def _every_human_string():
    for section in schema.SECTIONS:
        yield f"section {section.id} title", section.title
        if section.intro is not None:
            yield f"section {section.id} intro", section.intro
    for field in schema.FIELDS.values():
        yield f"{field.name} label", field.label
        if field.help is not None:
            yield f"{field.name} help", field.help
        for choice in field.choices:
            yield f"{field.name}={choice.value}", choice.label
    for index, advice in enumerate(schema.SAFETY_ADVICE):
        yield f"advice {index}", advice
    for code, name in schema.COUNTRIES:
        yield f"country {code}", name


def test_every_human_string_is_lazy_and_renders_in_an_app(app_context):
    for where, text in _every_human_string():
        assert isinstance(text, LazyString), where
        assert str(text).strip(), where


def test_the_help_texts_the_spec_words_are_there(app_context):
    indicators = str(schema.FIELDS["indicators"].help)
    assert "One per line" in indicators
    assert "Paste it, don't open it; hxxp and [.] are fine." in indicators
    attachments = str(schema.FIELDS["attachments"].help)
    assert ".eml" in attachments and "malware samples" in attachments
    forensics = str(schema.FIELDS["consent_forensics"].help)
    assert "MVT" in forensics and "agreement" in forensics and "kept" in forensics


def test_safety_advice_covers_each_point_and_says_what_quick_exit_does_not_do(app_context):
    advice = [str(item) for item in schema.SAFETY_ADVICE]
    joined = " ".join(advice)
    for point in ["Tor Browser", "compromised", "work or government network",
                  "suspicious links", "online scanners"]:
        assert point in joined, point
    quick_exit = next(item for item in advice if "Quick exit" in item)
    assert "does not erase" in quick_exit and "spyware" in quick_exit


# -- Countries -----------------------------------------------------------------------------

def test_country_codes_are_unique_upper_case_pairs():
    codes = [code for code, _name in schema.COUNTRIES]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)


def test_the_mena_countries_come_first():
    codes = [code for code, _name in schema.COUNTRIES]
    assert codes[:len(MENA)] == MENA
    assert frozenset(MENA) == schema.MENA_CODES
    assert not schema.MENA_CODES & set(codes[len(MENA):])


def test_every_iso_country_is_offered():
    codes = {code for code, _name in schema.COUNTRIES}
    cldr = {code for code in Locale("en").territories if re.fullmatch(r"[A-Z]{2}", code)}
    assert codes == cldr - CLDR_NOT_ISO
    assert {"FR", "US", "DE", "GB"} <= codes
    assert len(codes) == 250  # the 249 ISO 3166-1 codes and XK


def test_country_choices_are_dont_know_then_mena_then_the_rest():
    choices = schema.country_choices()
    assert choices[0].value == schema.COUNTRY_UNKNOWN == "zz"
    assert [c.value for c in choices[1:]] == [code for code, _name in schema.COUNTRIES]
    assert [c.value for c in choices[1:len(MENA) + 1]] == MENA
    assert schema.FIELDS["country"].choices == choices


def test_the_rest_of_the_countries_are_in_alphabetical_order(app_context):
    names = [str(name) for code, name in schema.COUNTRIES if code not in schema.MENA_CODES]
    def without_accents(name: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", name) if c.isascii()).casefold()

    assert names == sorted(names, key=without_accents)


# -- Digits and partial dates --------------------------------------------------------------

def test_normalise_digits_maps_arabic_indic_and_persian_digits_to_ascii():
    assert schema.normalise_digits("٠١٢٣٤٥٦٧٨٩") == "0123456789"
    assert schema.normalise_digits("۰۱۲۳۴۵۶۷۸۹") == "0123456789"
    assert schema.normalise_digits("+٩٦٦ 5۵5 abc") == "+966 555 abc"
    assert schema.normalise_digits("") == ""


@pytest.mark.parametrize("typed, iso", [
    ("2026", "2026"),
    ("2026-03", "2026-03"),
    ("2026-3", "2026-03"),
    ("2026/3", "2026-03"),
    ("2026-03-14", "2026-03-14"),
    ("2026/3/4", "2026-03-04"),
    ("٢٠٢٦-٠٣", "2026-03"),
    ("۲۰۲۶/۰۳/۱۴", "2026-03-14"),
    (" 2026-03 ", "2026-03"),
    ("\u200f2026-03\u200f", "2026-03"),
    ("2024-02-29", "2024-02-29"),
    ("1990", "1990"),
    ("2100-12-31", "2100-12-31"),
])
def test_normalise_partial_date_accepts(typed, iso):
    assert schema.normalise_partial_date(typed) == iso


@pytest.mark.parametrize("typed", [
    "",
    "   ",
    "۱۴۰۲",         # a Solar Hijri year, outside 1990..2100: refused, not misread
    "1989",
    "2101",
    "2026-13",
    "2026-0",
    "2026-02-30",
    "2025-02-29",
    "2026-04-31",
    "2026-03-00",
    "2026-03/14",   # mixed separators
    "26-03",
    "2026-",
    "2026-003",
    "03/2026",
    "March 2026",
    "2026-03-14T10:00",
    "२०२६",          # Devanagari digits are not accepted
])
def test_normalise_partial_date_refuses(typed):
    assert schema.normalise_partial_date(typed) is None


# -- Conditional rules ---------------------------------------------------------------------

BASE = {
    "reporter_role": "self",
    "subject_agreed": "",
    "consent_use": ["statistics"],
    "contact_method": "none",
    "contact_handle": "",
}


def errors_for(**changes: object) -> set[str]:
    return set(schema.conditional_errors({**BASE, **changes}))


def test_a_complete_answer_breaks_no_rule():
    assert errors_for() == set()


def test_reporting_for_someone_else_needs_their_agreement():
    assert errors_for(reporter_role="for_someone") == {"subject_agreed"}
    assert errors_for(reporter_role="for_someone", subject_agreed="y") == set()
    assert errors_for(reporter_role="for_someone", subject_agreed=True) == set()
    assert errors_for(reporter_role="for_someone", subject_agreed=False) == {"subject_agreed"}


def test_agreement_is_not_asked_of_other_reporters():
    for role in ["self", "organisation", "journalist_researcher"]:
        assert errors_for(reporter_role=role) == set(), role


def test_a_contact_method_needs_a_handle():
    for method in ["signal", "email", "trusted_org", "other"]:
        assert errors_for(contact_method=method) == {"contact_handle"}, method
        assert errors_for(contact_method=method, contact_handle="   ") == {"contact_handle"}
        assert errors_for(contact_method=method, contact_handle="@name.01") == set(), method


def test_do_not_contact_me_needs_no_handle():
    assert errors_for(contact_method="none") == set()
    assert errors_for(contact_method="none", contact_handle="") == set()


def test_consent_use_needs_at_least_one_box():
    assert errors_for(consent_use=[]) == {"consent_use"}
    assert errors_for(consent_use=[""]) == {"consent_use"}
    assert errors_for(consent_use=["documentation_only"]) == set()


def test_missing_answers_count_as_empty():
    assert set(schema.conditional_errors({})) == {"consent_use"}
    assert set(schema.conditional_errors({"contact_method": "email"})) == {
        "contact_handle", "consent_use"
    }


def test_every_broken_rule_is_reported_at_once_with_a_readable_message(app_context):
    errors = schema.conditional_errors(
        {"reporter_role": "for_someone", "contact_method": "signal", "consent_use": []}
    )
    assert set(errors) == {"subject_agreed", "contact_handle", "consent_use"}
    for message in errors.values():
        assert isinstance(message, LazyString) and str(message).strip()


# -- Import ---------------------------------------------------------------------------------

def test_importing_the_schema_needs_no_app_and_loads_no_web_code():
    code = (
        "import sys; import intake.schema; "
        "bad = [m for m in ('flask_wtf', 'wtforms', 'intake.web', 'sqlalchemy') "
        "if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- report.json from an untrusted producer ------------------------------------------------

def _valid_fields() -> dict:
    return {
        "reporter_role": "self", "subject_agreed": False, "consent_use": ["statistics"],
        "contact_method": "none", "contact_handle": "", "categories": ["phishing"],
        "first_noticed": "2026-03", "country": "LB", "narrative": "a link\nin a message",
        "how_discovered": ["suspicious_message"], "target_profile": ["journalist"],
        "risk_now": "elevated", "indicators": "hxxp://evil[.]example",
    }


def test_report_languages_are_the_pages_languages():
    from intake.web.i18n import LANGUAGES

    assert set(LANGUAGES) == schema.REPORT_LANGUAGES


def test_a_report_the_form_would_make_has_no_problem():
    fields = _valid_fields()
    for name, value in fields.items():  # every value above must be a real choice
        field = schema.FIELDS[name]
        if field.kind in schema.MULTI_KINDS:
            assert set(value) <= {c.value for c in field.choices}, name
    assert schema.report_problems({"lang": "ar", "fields": fields}) == []
    assert schema.report_problems({"lang": "en", "fields": {}}) == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("categories", 5, "'categories' must be a list of choices"),
        ("categories", ["phishing", "phishing"], "'categories' lists a choice twice"),
        ("categories", ["<script>"], "'categories' has a value the form does not offer"),
        ("risk_now", ["immediate"], "'risk_now' must be text"),
        ("risk_now", "very", "'risk_now' has a value the form does not offer"),
        ("country", "XX", "'country' has a value the form does not offer"),
        ("subject_agreed", "yes", "'subject_agreed' must be true or false"),
        ("first_noticed", "2026-13", "'first_noticed' is not a date"),
        ("first_noticed", "٢٠٢٦", "'first_noticed' is not a date"),
        ("narrative", "x" * 20001, "'narrative' is longer than 20000 characters"),
        ("contact_handle", None, "'contact_handle' must be text"),
        ("attachments", [], "a field the form does not have ('attachments')"),
        ("shell", "rm -rf", "a field the form does not have ('shell')"),
    ],
)
def test_each_broken_field_is_named(name, value, expected):
    fields = {**_valid_fields(), name: value}
    problems = schema.report_problems({"lang": "fr", "fields": fields})
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_broken_document_is_refused_whole():
    assert schema.report_problems({"lang": "xx", "fields": {}}) == [
        "the report's language is not one of ar, en, fa, fr"
    ]
    assert "no fields object" in schema.report_problems({"lang": "ar", "fields": []})[-1]
