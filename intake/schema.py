"""The incident report form: the one source of truth for what a source is asked.

Every other part reads this module: the Flask-WTF form (`intake.web.forms`), the
browser code, and the reviewers' listings and exports. It holds plain data
(`SECTIONS`, `FIELDS`, `COUNTRIES`, `SAFETY_ADVICE`) and a few pure helpers
(`conditional_errors`, `normalise_partial_date`, `normalise_digits`).

Promises:
- Field names and choice values are machine values: ASCII, snake_case, never
  translated and never renamed once reports carry them (country codes are the
  ISO 3166-1 alpha-2 codes, upper-case). Everything a person reads is a
  `lazy_gettext` string, so it is translated at render time, not at import.
- Importing this module has no side effects and needs no application context;
  it depends only on the standard library and `flask_babel`.
- Only conditional rules live here; "this field is required" is the form's job,
  driven by `Field.required`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass

from flask import has_request_context
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

KINDS = frozenset({
    "radio",        # one of `choices`
    "checkbox",     # a single boolean
    "checkboxes",   # any of `choices`, shown as boxes
    "select",       # one of `choices`, in a drop-down
    "multiselect",  # any of `choices`
    "text",
    "textarea",
    "partial_date",  # YYYY, YYYY-MM or YYYY-MM-DD, see `normalise_partial_date`
    "country",      # one of `country_choices()`
    "files",
})
MULTI_KINDS = frozenset({"checkboxes", "multiselect"})
CHOICE_KINDS = frozenset({"radio", "select", "country"}) | MULTI_KINDS
DIRECTIONS = frozenset({"ltr", "auto"})

#: The machine value of every "don't know" or "not sure" option.
DONT_KNOW = "dont_know"
#: The machine value of every "prefer not to say" option.
PREFER_NOT_TO_SAY = "prefer_not_to_say"
#: The `contact_method` that means "do not contact me" (and its default).
NO_CONTACT = "none"
#: The `country` value for "I don't know or prefer not to say".
COUNTRY_UNKNOWN = "zz"

_MACHINE_VALUE = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Choice:
    """One option: `value` is posted and stored, `label` is shown."""

    value: str
    label: LazyString


@dataclass(frozen=True)
class Field:
    """One question of the form.

    `name` is both the name the HTML form posts and the key in report.json.
    `required` means required unconditionally; rules that depend on other
    answers are in `conditional_errors`. `direction` is the HTML ``dir`` the
    input gets ("ltr" for addresses and indicators, "auto" for free text).
    """

    name: str
    kind: str
    label: LazyString
    help: LazyString | None = None
    required: bool = False
    choices: tuple[Choice, ...] = ()
    default: str | None = None
    max_length: int | None = None
    direction: str | None = None
    monospace: bool = False

    def __post_init__(self) -> None:
        # A broken schema must fail at import, not when a source submits.
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: unknown kind {self.kind!r}")
        if (self.kind in CHOICE_KINDS) != bool(self.choices):
            raise ValueError(f"field {self.name!r}: choices do not fit kind {self.kind!r}")
        values = [c.value for c in self.choices]
        if len(set(values)) != len(values):
            raise ValueError(f"field {self.name!r}: duplicate choice values")
        if self.default is not None and self.default not in values:
            raise ValueError(f"field {self.name!r}: default {self.default!r} is not a choice")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"field {self.name!r}: unknown direction {self.direction!r}")


@dataclass(frozen=True)
class Section:
    """A group of fields under one heading; `id` is "A" to "H" as in the spec."""

    id: str
    title: LazyString
    intro: LazyString | None
    fields: tuple[Field, ...]


def is_multi(field: Field) -> bool:
    """Whether the field's answer is a list of choice values."""
    return field.kind in MULTI_KINDS


# -- Digits and dates ----------------------------------------------------------------------

_DIGITS = str.maketrans(
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"  # Arabic-Indic ٠-٩
    "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",  # Persian ۰-۹
    "01234567890123456789",
)


def normalise_digits(text: str) -> str:
    """`text` with Arabic-Indic (٠-٩) and Persian (۰-۹) digits turned into ASCII 0-9."""
    return text.translate(_DIGITS)


EARLIEST_YEAR = 1990
LATEST_YEAR = 2100

# Marks a right-to-left keyboard or a copy-paste may slip in around digits.
_BIDI_MARKS = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                     "\u2066\u2067\u2068\u2069"))
# [0-9], not \d: \d would also accept digits of every other script.
_PARTIAL_DATE = re.compile(
    r"(?P<year>[0-9]{4})(?:(?P<sep>[-/])(?P<month>[0-9]{1,2})(?:(?P=sep)(?P<day>[0-9]{1,2}))?)?"
)


def normalise_partial_date(text: str) -> str | None:
    """ISO text for a typed partial date ("2026", "2026-03", "2026-03-14"), or None.

    Accepts YYYY, YYYY-MM and YYYY-MM-DD with "-" or "/" between the parts,
    one- or two-digit months and days, and Arabic-Indic or Persian digits.
    Refuses a year outside EARLIEST_YEAR..LATEST_YEAR, a month outside 1-12
    and a day the month does not have. Only Gregorian dates are understood:
    a Solar Hijri year such as ۱۴۰۲ is refused rather than misread.
    """
    cleaned = normalise_digits(text).translate(_BIDI_MARKS).strip()
    match = _PARTIAL_DATE.fullmatch(cleaned)
    if match is None:
        return None
    year = int(match["year"])
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        return None
    if match["month"] is None:
        return f"{year:04d}"
    month = int(match["month"])
    if not 1 <= month <= 12:
        return None
    if match["day"] is None:
        return f"{year:04d}-{month:02d}"
    day = int(match["day"])
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


# -- Countries -----------------------------------------------------------------------------

#: The Middle East and North Africa, listed first in the country select.
def _territory_name(code: str, english: str) -> str:
    """The country's name in the page's language, from CLDR (Babel's data), else English."""
    locale = get_locale() if has_request_context() else None
    if locale is not None:
        name = locale.territories.get(code)
        if name:
            return name
    return english


def _country(code: str, english: str) -> LazyString:
    """Country names come from CLDR rather than from our catalogues: every
    language already has them, reviewed by native speakers."""
    return LazyString(_territory_name, code, english)


MENA_COUNTRIES: tuple[tuple[str, LazyString], ...] = (
    ("DZ", _country("DZ", "Algeria")),
    ("BH", _country("BH", "Bahrain")),
    ("EG", _country("EG", "Egypt")),
    ("IR", _country("IR", "Iran")),
    ("IQ", _country("IQ", "Iraq")),
    ("IL", _country("IL", "Israel")),
    ("JO", _country("JO", "Jordan")),
    ("KW", _country("KW", "Kuwait")),
    ("LB", _country("LB", "Lebanon")),
    ("LY", _country("LY", "Libya")),
    ("MR", _country("MR", "Mauritania")),
    ("MA", _country("MA", "Morocco")),
    ("OM", _country("OM", "Oman")),
    ("PS", _country("PS", "Palestine")),
    ("QA", _country("QA", "Qatar")),
    ("SA", _country("SA", "Saudi Arabia")),
    ("SD", _country("SD", "Sudan")),
    ("SY", _country("SY", "Syria")),
    ("TN", _country("TN", "Tunisia")),
    ("TR", _country("TR", "Turkey")),
    ("AE", _country("AE", "United Arab Emirates")),
    ("EH", _country("EH", "Western Sahara")),
    ("YE", _country("YE", "Yemen")),
)

MENA_CODES: frozenset[str] = frozenset(code for code, _name in MENA_COUNTRIES)

# Every other ISO 3166-1 alpha-2 code, by English name. Kosovo (XK) is not in
# ISO 3166-1 but is the code the EU and CLDR use; without it a source there
# could only answer "I don't know".
_OTHER_COUNTRIES: tuple[tuple[str, LazyString], ...] = (
    ("AF", _country("AF", "Afghanistan")),
    ("AX", _country("AX", "Åland Islands")),
    ("AL", _country("AL", "Albania")),
    ("AS", _country("AS", "American Samoa")),
    ("AD", _country("AD", "Andorra")),
    ("AO", _country("AO", "Angola")),
    ("AI", _country("AI", "Anguilla")),
    ("AQ", _country("AQ", "Antarctica")),
    ("AG", _country("AG", "Antigua and Barbuda")),
    ("AR", _country("AR", "Argentina")),
    ("AM", _country("AM", "Armenia")),
    ("AW", _country("AW", "Aruba")),
    ("AU", _country("AU", "Australia")),
    ("AT", _country("AT", "Austria")),
    ("AZ", _country("AZ", "Azerbaijan")),
    ("BS", _country("BS", "Bahamas")),
    ("BD", _country("BD", "Bangladesh")),
    ("BB", _country("BB", "Barbados")),
    ("BY", _country("BY", "Belarus")),
    ("BE", _country("BE", "Belgium")),
    ("BZ", _country("BZ", "Belize")),
    ("BJ", _country("BJ", "Benin")),
    ("BM", _country("BM", "Bermuda")),
    ("BT", _country("BT", "Bhutan")),
    ("BO", _country("BO", "Bolivia")),
    ("BQ", _country("BQ", "Bonaire, Sint Eustatius and Saba")),
    ("BA", _country("BA", "Bosnia and Herzegovina")),
    ("BW", _country("BW", "Botswana")),
    ("BV", _country("BV", "Bouvet Island")),
    ("BR", _country("BR", "Brazil")),
    ("IO", _country("IO", "British Indian Ocean Territory")),
    ("BN", _country("BN", "Brunei")),
    ("BG", _country("BG", "Bulgaria")),
    ("BF", _country("BF", "Burkina Faso")),
    ("BI", _country("BI", "Burundi")),
    ("CV", _country("CV", "Cabo Verde")),
    ("KH", _country("KH", "Cambodia")),
    ("CM", _country("CM", "Cameroon")),
    ("CA", _country("CA", "Canada")),
    ("KY", _country("KY", "Cayman Islands")),
    ("CF", _country("CF", "Central African Republic")),
    ("TD", _country("TD", "Chad")),
    ("CL", _country("CL", "Chile")),
    ("CN", _country("CN", "China")),
    ("CX", _country("CX", "Christmas Island")),
    ("CC", _country("CC", "Cocos (Keeling) Islands")),
    ("CO", _country("CO", "Colombia")),
    ("KM", _country("KM", "Comoros")),
    ("CG", _country("CG", "Congo")),
    ("CK", _country("CK", "Cook Islands")),
    ("CR", _country("CR", "Costa Rica")),
    ("CI", _country("CI", "Côte d'Ivoire")),
    ("HR", _country("HR", "Croatia")),
    ("CU", _country("CU", "Cuba")),
    ("CW", _country("CW", "Curaçao")),
    ("CY", _country("CY", "Cyprus")),
    ("CZ", _country("CZ", "Czechia")),
    ("CD", _country("CD", "Democratic Republic of the Congo")),
    ("DK", _country("DK", "Denmark")),
    ("DJ", _country("DJ", "Djibouti")),
    ("DM", _country("DM", "Dominica")),
    ("DO", _country("DO", "Dominican Republic")),
    ("EC", _country("EC", "Ecuador")),
    ("SV", _country("SV", "El Salvador")),
    ("GQ", _country("GQ", "Equatorial Guinea")),
    ("ER", _country("ER", "Eritrea")),
    ("EE", _country("EE", "Estonia")),
    ("SZ", _country("SZ", "Eswatini")),
    ("ET", _country("ET", "Ethiopia")),
    ("FK", _country("FK", "Falkland Islands")),
    ("FO", _country("FO", "Faroe Islands")),
    ("FJ", _country("FJ", "Fiji")),
    ("FI", _country("FI", "Finland")),
    ("FR", _country("FR", "France")),
    ("GF", _country("GF", "French Guiana")),
    ("PF", _country("PF", "French Polynesia")),
    ("TF", _country("TF", "French Southern Territories")),
    ("GA", _country("GA", "Gabon")),
    ("GM", _country("GM", "Gambia")),
    ("GE", _country("GE", "Georgia")),
    ("DE", _country("DE", "Germany")),
    ("GH", _country("GH", "Ghana")),
    ("GI", _country("GI", "Gibraltar")),
    ("GR", _country("GR", "Greece")),
    ("GL", _country("GL", "Greenland")),
    ("GD", _country("GD", "Grenada")),
    ("GP", _country("GP", "Guadeloupe")),
    ("GU", _country("GU", "Guam")),
    ("GT", _country("GT", "Guatemala")),
    ("GG", _country("GG", "Guernsey")),
    ("GN", _country("GN", "Guinea")),
    ("GW", _country("GW", "Guinea-Bissau")),
    ("GY", _country("GY", "Guyana")),
    ("HT", _country("HT", "Haiti")),
    ("HM", _country("HM", "Heard Island and McDonald Islands")),
    ("VA", _country("VA", "Holy See (Vatican City)")),
    ("HN", _country("HN", "Honduras")),
    ("HK", _country("HK", "Hong Kong")),
    ("HU", _country("HU", "Hungary")),
    ("IS", _country("IS", "Iceland")),
    ("IN", _country("IN", "India")),
    ("ID", _country("ID", "Indonesia")),
    ("IE", _country("IE", "Ireland")),
    ("IM", _country("IM", "Isle of Man")),
    ("IT", _country("IT", "Italy")),
    ("JM", _country("JM", "Jamaica")),
    ("JP", _country("JP", "Japan")),
    ("JE", _country("JE", "Jersey")),
    ("KZ", _country("KZ", "Kazakhstan")),
    ("KE", _country("KE", "Kenya")),
    ("KI", _country("KI", "Kiribati")),
    ("XK", _country("XK", "Kosovo")),
    ("KG", _country("KG", "Kyrgyzstan")),
    ("LA", _country("LA", "Laos")),
    ("LV", _country("LV", "Latvia")),
    ("LS", _country("LS", "Lesotho")),
    ("LR", _country("LR", "Liberia")),
    ("LI", _country("LI", "Liechtenstein")),
    ("LT", _country("LT", "Lithuania")),
    ("LU", _country("LU", "Luxembourg")),
    ("MO", _country("MO", "Macao")),
    ("MG", _country("MG", "Madagascar")),
    ("MW", _country("MW", "Malawi")),
    ("MY", _country("MY", "Malaysia")),
    ("MV", _country("MV", "Maldives")),
    ("ML", _country("ML", "Mali")),
    ("MT", _country("MT", "Malta")),
    ("MH", _country("MH", "Marshall Islands")),
    ("MQ", _country("MQ", "Martinique")),
    ("MU", _country("MU", "Mauritius")),
    ("YT", _country("YT", "Mayotte")),
    ("MX", _country("MX", "Mexico")),
    ("FM", _country("FM", "Micronesia")),
    ("MD", _country("MD", "Moldova")),
    ("MC", _country("MC", "Monaco")),
    ("MN", _country("MN", "Mongolia")),
    ("ME", _country("ME", "Montenegro")),
    ("MS", _country("MS", "Montserrat")),
    ("MZ", _country("MZ", "Mozambique")),
    ("MM", _country("MM", "Myanmar")),
    ("NA", _country("NA", "Namibia")),
    ("NR", _country("NR", "Nauru")),
    ("NP", _country("NP", "Nepal")),
    ("NL", _country("NL", "Netherlands")),
    ("NC", _country("NC", "New Caledonia")),
    ("NZ", _country("NZ", "New Zealand")),
    ("NI", _country("NI", "Nicaragua")),
    ("NE", _country("NE", "Niger")),
    ("NG", _country("NG", "Nigeria")),
    ("NU", _country("NU", "Niue")),
    ("NF", _country("NF", "Norfolk Island")),
    ("KP", _country("KP", "North Korea")),
    ("MK", _country("MK", "North Macedonia")),
    ("MP", _country("MP", "Northern Mariana Islands")),
    ("NO", _country("NO", "Norway")),
    ("PK", _country("PK", "Pakistan")),
    ("PW", _country("PW", "Palau")),
    ("PA", _country("PA", "Panama")),
    ("PG", _country("PG", "Papua New Guinea")),
    ("PY", _country("PY", "Paraguay")),
    ("PE", _country("PE", "Peru")),
    ("PH", _country("PH", "Philippines")),
    ("PN", _country("PN", "Pitcairn Islands")),
    ("PL", _country("PL", "Poland")),
    ("PT", _country("PT", "Portugal")),
    ("PR", _country("PR", "Puerto Rico")),
    ("RE", _country("RE", "Réunion")),
    ("RO", _country("RO", "Romania")),
    ("RU", _country("RU", "Russia")),
    ("RW", _country("RW", "Rwanda")),
    ("BL", _country("BL", "Saint Barthélemy")),
    ("SH", _country("SH", "Saint Helena, Ascension and Tristan da Cunha")),
    ("KN", _country("KN", "Saint Kitts and Nevis")),
    ("LC", _country("LC", "Saint Lucia")),
    ("MF", _country("MF", "Saint Martin (French part)")),
    ("PM", _country("PM", "Saint Pierre and Miquelon")),
    ("VC", _country("VC", "Saint Vincent and the Grenadines")),
    ("WS", _country("WS", "Samoa")),
    ("SM", _country("SM", "San Marino")),
    ("ST", _country("ST", "São Tomé and Príncipe")),
    ("SN", _country("SN", "Senegal")),
    ("RS", _country("RS", "Serbia")),
    ("SC", _country("SC", "Seychelles")),
    ("SL", _country("SL", "Sierra Leone")),
    ("SG", _country("SG", "Singapore")),
    ("SX", _country("SX", "Sint Maarten (Dutch part)")),
    ("SK", _country("SK", "Slovakia")),
    ("SI", _country("SI", "Slovenia")),
    ("SB", _country("SB", "Solomon Islands")),
    ("SO", _country("SO", "Somalia")),
    ("ZA", _country("ZA", "South Africa")),
    ("GS", _country("GS", "South Georgia and the South Sandwich Islands")),
    ("KR", _country("KR", "South Korea")),
    ("SS", _country("SS", "South Sudan")),
    ("ES", _country("ES", "Spain")),
    ("LK", _country("LK", "Sri Lanka")),
    ("SR", _country("SR", "Suriname")),
    ("SJ", _country("SJ", "Svalbard and Jan Mayen")),
    ("SE", _country("SE", "Sweden")),
    ("CH", _country("CH", "Switzerland")),
    ("TW", _country("TW", "Taiwan")),
    ("TJ", _country("TJ", "Tajikistan")),
    ("TZ", _country("TZ", "Tanzania")),
    ("TH", _country("TH", "Thailand")),
    ("TL", _country("TL", "Timor-Leste")),
    ("TG", _country("TG", "Togo")),
    ("TK", _country("TK", "Tokelau")),
    ("TO", _country("TO", "Tonga")),
    ("TT", _country("TT", "Trinidad and Tobago")),
    ("TM", _country("TM", "Turkmenistan")),
    ("TC", _country("TC", "Turks and Caicos Islands")),
    ("TV", _country("TV", "Tuvalu")),
    ("UG", _country("UG", "Uganda")),
    ("UA", _country("UA", "Ukraine")),
    ("GB", _country("GB", "United Kingdom")),
    ("US", _country("US", "United States")),
    ("UM", _country("UM", "United States Minor Outlying Islands")),
    ("UY", _country("UY", "Uruguay")),
    ("UZ", _country("UZ", "Uzbekistan")),
    ("VU", _country("VU", "Vanuatu")),
    ("VE", _country("VE", "Venezuela")),
    ("VN", _country("VN", "Vietnam")),
    ("VG", _country("VG", "Virgin Islands (British)")),
    ("VI", _country("VI", "Virgin Islands (US)")),
    ("WF", _country("WF", "Wallis and Futuna")),
    ("ZM", _country("ZM", "Zambia")),
    ("ZW", _country("ZW", "Zimbabwe")),
)

#: (ISO 3166-1 alpha-2 code, English name): the MENA countries first, then the rest.
COUNTRIES: tuple[tuple[str, LazyString], ...] = MENA_COUNTRIES + _OTHER_COUNTRIES

_COUNTRY_CHOICES: tuple[Choice, ...] = (
    Choice(COUNTRY_UNKNOWN, _l("I don't know or prefer not to say")),
    *(Choice(code, name) for code, name in COUNTRIES),
)


def country_choices() -> tuple[Choice, ...]:
    """The `country` options: "don't know" (COUNTRY_UNKNOWN) first, then MENA, then the rest.

    The blank "Choose…" placeholder is the form's to add. `MENA_CODES` tells
    which options belong to the first group, for a form that labels the groups.
    """
    return _COUNTRY_CHOICES


# -- Before the form -----------------------------------------------------------------------

#: The safety advice shown before the form, one point per item; nothing here is stored.
SAFETY_ADVICE: tuple[LazyString, ...] = (
    _l("If you can, open this site in Tor Browser."),
    _l("Don't send a report from a phone or computer you think may be compromised: "
       "use another device if you can."),
    _l("Don't send it from a work or government network: "
       "whoever runs the network may see which sites you visit."),
    _l("Don't open suspicious links or attachments: copy their text into the form instead."),
    _l("Don't upload suspicious files to online scanners such as VirusTotal: "
       "others can see what is uploaded there, including the attackers."),
    _l("The \u201cQuick exit\u201d button only takes you to another site. "
       "It does not erase your browser history, "
       "and it does not protect you from spyware already on the device."),
)


# -- The form ------------------------------------------------------------------------------

def _choices(*pairs: tuple[str, LazyString]) -> tuple[Choice, ...]:
    return tuple(Choice(value, label) for value, label in pairs)


_DONT_KNOW = (DONT_KNOW, _l("Don't know"))
_OTHER = ("other", _l("Other"))

SECTIONS: tuple[Section, ...] = (
    Section(
        id="A",
        title=_l("Reporter and consent"),
        intro=_l("Only the questions marked as required must be answered. "
                 "Leave out anything you are not comfortable sharing."),
        fields=(
            Field(
                name="reporter_role",
                kind="radio",
                label=_l("Who is reporting?"),
                required=True,
                choices=_choices(
                    ("self", _l("I am reporting what happened to me")),
                    ("for_someone", _l("I am reporting for someone who agreed to it")),
                    ("organisation", _l("I work for an organisation reporting a case")),
                    ("journalist_researcher", _l("I am a journalist or researcher")),
                ),
            ),
            Field(
                name="subject_agreed",
                kind="checkbox",
                label=_l("The person this happened to agreed that I report it"),
                help=_l("Needed if you report for someone else: "
                        "a report can put them at risk, so only send it with their agreement."),
            ),
            Field(
                name="consent_use",
                kind="checkboxes",
                label=_l("How may we use your report?"),
                help=_l("Tick every use you agree to; nothing is ticked for you."),
                required=True,
                choices=_choices(
                    ("statistics", _l("In statistics only (counted, never described)")),
                    ("quote_anonymously", _l("Quoted anonymously in reports and advocacy")),
                    ("share_partners", _l("Shared with our named coalition partners")),
                    ("litigation", _l("Considered for legal action (we will ask you again "
                                      "before anything is done)")),
                    ("documentation_only", _l("Kept as documentation only")),
                ),
            ),
            Field(
                name="consent_forensics",
                kind="radio",
                label=_l("May a reviewer ask you for a forensic check of your device?"),
                help=_l("A check looks for traces of spyware, for example with the Mobile "
                        "Verification Toolkit (MVT), on a backup of the device or on the "
                        "device itself. A backup can hold your messages and contacts. "
                        "A reviewer can only ask: nothing is checked without your agreement, "
                        "and data from a check is kept only as long as the case needs it."),
                choices=_choices(
                    ("yes", _l("Yes, you may ask me")),
                    ("no", _l("No")),
                    ("later", _l("Ask me later")),
                ),
            ),
        ),
    ),
    Section(
        id="B",
        title=_l("Contact"),
        intro=_l("We contact you only if you ask us to, and only in the way you choose."),
        fields=(
            Field(
                name="contact_method",
                kind="radio",
                label=_l("How may we contact you?"),
                required=True,
                choices=_choices(
                    (NO_CONTACT, _l("Do not contact me")),
                    ("signal", _l("Signal")),
                    ("email", _l("E-mail")),
                    ("trusted_org", _l("Through an organisation I trust")),
                    _OTHER,
                ),
                default=NO_CONTACT,
            ),
            Field(
                name="contact_handle",
                kind="text",
                label=_l("Where can we reach you?"),
                help=_l("Your Signal username or number, your e-mail address, or the "
                        "organisation's name and how to reach it. "
                        "Leave it empty if we should not contact you."),
                max_length=200,
                direction="ltr",
            ),
            Field(
                name="verification_phrase",
                kind="text",
                label=_l("A phrase we will quote back to you"),
                help=_l("If we contact you, we start by quoting it, so you know it is us. "
                        "Don't use a password."),
                max_length=200,
            ),
        ),
    ),
    Section(
        id="C",
        title=_l("The incident"),
        intro=None,
        fields=(
            Field(
                name="categories",
                kind="multiselect",
                label=_l("What happened?"),
                help=_l("Choose all that fit. If none does, choose \u201cOther\u201d and "
                        "describe it below."),
                required=True,
                choices=_choices(
                    ("mercenary_spyware", _l("Mercenary spyware")),
                    ("phishing", _l("Phishing or a malicious link")),
                    ("fake_domain", _l("Fake domain or impersonation")),
                    ("account_takeover", _l("Account takeover")),
                    ("account_suspension", _l("Account suspension or takedown")),
                    ("device_seizure", _l("Device seizure and forensic extraction")),
                    ("sim_swap", _l("SIM swap or telecom interception")),
                    ("shutdown", _l("Internet shutdown, throttling or blocking")),
                    ("ddos_defacement", _l("DDoS attack or website defacement")),
                    ("stalkerware", _l("Stalkerware")),
                    ("doxxing", _l("Doxxing or data leak")),
                    ("extortion", _l("Extortion")),
                    ("harassment", _l("Online harassment (including gender-based)")),
                    ("smear_campaign", _l("Smear campaign")),
                    _OTHER,
                ),
            ),
            Field(
                name="first_noticed",
                kind="partial_date",
                label=_l("When was it first noticed?"),
                help=_l("A year, a year and month, or a full date, like 2026, 2026-03 or "
                        "2026-03-14. An approximate date is fine."),
                required=True,
            ),
            Field(
                name="ongoing",
                kind="radio",
                label=_l("Is it still going on?"),
                choices=_choices(("yes", _l("Yes")), ("no", _l("No")), _DONT_KNOW),
            ),
            Field(
                name="country",
                kind="country",
                label=_l("In which country did it happen?"),
                help=_l("Where the targeted person was at the time."),
                required=True,
                choices=_COUNTRY_CHOICES,
            ),
            Field(
                name="narrative",
                kind="textarea",
                label=_l("What happened, in your own words"),
                help=_l("Write in any language. Say what you noticed, when, and anything you "
                        "think is connected."),
                required=True,
                max_length=20000,
                direction="auto",
            ),
            Field(
                name="how_discovered",
                kind="multiselect",
                label=_l("How was it discovered?"),
                help=_l("Choose all that apply."),
                required=True,
                choices=_choices(
                    ("threat_notification_apple", _l("A threat notification from Apple")),
                    ("threat_notification_google", _l("A threat notification from Google")),
                    ("threat_notification_meta",
                     _l("A threat notification from Meta or WhatsApp")),
                    ("threat_notification_other",
                     _l("A threat notification from another company")),
                    ("odd_behaviour", _l("The device behaved oddly")),
                    ("forensic_check", _l("A forensic check")),
                    ("suspicious_message", _l("A suspicious message or link")),
                    ("data_quoted", _l("Private information was quoted back to me")),
                    ("leak", _l("My name or number appeared in a leak")),
                    _OTHER,
                ),
            ),
            Field(
                name="notification_text",
                kind="textarea",
                label=_l("The text of the threat notification"),
                help=_l("If you received a threat notification, copy its text here. "
                        "Don't open links in it."),
                max_length=10000,
                direction="auto",
            ),
        ),
    ),
    Section(
        id="D",
        title=_l("The targeted person"),
        intro=None,
        fields=(
            Field(
                name="target_profile",
                kind="multiselect",
                label=_l("Who was targeted?"),
                help=_l("Choose all that describe the person."),
                required=True,
                choices=_choices(
                    ("journalist", _l("Journalist or media worker")),
                    ("human_rights_defender", _l("Human-rights defender")),
                    ("lawyer", _l("Lawyer")),
                    ("activist", _l("Activist or dissident")),
                    ("opposition_figure", _l("Opposition figure")),
                    ("academic", _l("Academic")),
                    ("ngo_staff", _l("NGO staff")),
                    ("relative_associate", _l("Relative or associate of one of these")),
                    ("exile_diaspora", _l("In exile or in the diaspora")),
                    _OTHER,
                    (PREFER_NOT_TO_SAY, _l("Prefer not to say")),
                ),
            ),
        ),
    ),
    Section(
        id="E",
        title=_l("Devices and accounts"),
        intro=None,
        fields=(
            Field(
                name="device_type",
                kind="select",
                label=_l("Which device was affected?"),
                choices=_choices(
                    ("iphone", _l("iPhone")),
                    ("android", _l("Android")),
                    ("windows", _l("Windows")),
                    ("macos", _l("macOS")),
                    ("linux", _l("Linux")),
                    _OTHER,
                    _DONT_KNOW,
                ),
            ),
            Field(
                name="device_status",
                kind="select",
                label=_l("Where is the device now?"),
                help=_l("If you can, don't reset the device before a reviewer replies: "
                        "a reset erases traces a check could find."),
                choices=_choices(
                    ("still_with_me", _l("Still with me")),
                    ("reset", _l("Reset")),
                    ("replaced", _l("Replaced")),
                    ("seized", _l("Seized")),
                    ("returned_after_seizure", _l("Returned after being seized")),
                    _DONT_KNOW,
                ),
            ),
            Field(
                name="accounts",
                kind="multiselect",
                label=_l("Which accounts were affected?"),
                help=_l("Choose all that apply."),
                choices=_choices(
                    ("whatsapp", _l("WhatsApp")),
                    ("signal", _l("Signal")),
                    ("telegram", _l("Telegram")),
                    ("facebook_instagram", _l("Facebook or Instagram")),
                    ("x", _l("X (Twitter)")),
                    ("google", _l("Google")),
                    ("apple", _l("Apple")),
                    ("microsoft", _l("Microsoft")),
                    ("proton", _l("Proton")),
                    _OTHER,
                ),
            ),
        ),
    ),
    Section(
        id="F",
        title=_l("Suspected tool and perpetrator"),
        intro=None,
        fields=(
            Field(
                name="suspected_tool",
                kind="select",
                label=_l("Which tool do you suspect?"),
                help=_l("\u201cDon't know\u201d is a good answer: reviewers will look."),
                choices=_choices(
                    _DONT_KNOW,
                    ("pegasus", _l("NSO Group Pegasus")),
                    ("predator", _l("Intellexa/Cytrox Predator")),
                    ("devilstongue", _l("Candiru DevilsTongue")),
                    ("graphite", _l("Paragon Graphite")),
                    ("reign", _l("QuaDream Reign")),
                    ("hermit", _l("RCS Lab Hermit")),
                    ("finspy", _l("FinFisher FinSpy")),
                    ("forensic_extraction", _l("Cellebrite or other forensic extraction")),
                    ("stalkerware", _l("Stalkerware")),
                    _OTHER,
                ),
            ),
            Field(
                name="suspected_perpetrator",
                kind="multiselect",
                label=_l("Who do you think is behind it?"),
                choices=_choices(
                    ("own_government", _l("The government of my own country")),
                    ("foreign_government", _l("A foreign government")),
                    ("non_state_group", _l("A non-state group")),
                    ("employer", _l("An employer")),
                    ("family_partner", _l("A family member or partner")),
                    _DONT_KNOW,
                ),
            ),
            Field(
                name="impacts",
                kind="multiselect",
                label=_l("What has it led to?"),
                help=_l("Choose all that apply."),
                choices=_choices(
                    ("arrest", _l("Arrest")),
                    ("interrogation", _l("Interrogation using intercepted data")),
                    ("travel_ban", _l("Travel ban")),
                    ("self_censorship", _l("Self-censorship")),
                    ("relocation", _l("Relocation")),
                    ("harm_to_contacts", _l("Harm to contacts or sources")),
                    ("leaks_smears", _l("Leaks or smears")),
                    ("none_yet", _l("Nothing yet")),
                ),
            ),
            Field(
                name="risk_now",
                kind="radio",
                label=_l("How much danger is the targeted person in now?"),
                help=_l("Reports are not read as they arrive. If someone is in immediate "
                        "danger, also seek help that can act at once."),
                required=True,
                choices=_choices(
                    ("immediate_danger", _l("In immediate danger")),
                    ("elevated", _l("At elevated risk")),
                    (DONT_KNOW, _l("Not sure")),
                ),
            ),
        ),
    ),
    Section(
        id="G",
        title=_l("Indicators"),
        intro=_l("Technical traces help reviewers link your case to known attacks."),
        fields=(
            Field(
                name="indicators",
                kind="textarea",
                label=_l("Suspicious domains, links, addresses, numbers or files"),
                help=_l("One per line: a domain, URL, IP address, e-mail, sender number, "
                        "file name, hash or app id. Paste it, don't open it; "
                        "hxxp and [.] are fine."),
                max_length=20000,
                direction="ltr",
                monospace=True,
            ),
        ),
    ),
    Section(
        id="H",
        title=_l("Evidence"),
        intro=_l("Files can reveal more than they show: photos and documents may carry "
                 "a location or an author's name, and file names can identify you."),
        fields=(
            Field(
                name="attachments",
                kind="files",
                label=_l("Files"),
                help=_l("Screenshots, saved e-mails (.eml), documents. "
                        "Don't send malware samples unless we ask."),
            ),
        ),
    ),
)

#: Every field by name, in form order.
FIELDS: dict[str, Field] = {f.name: f for section in SECTIONS for f in section.fields}


# -- Rules that depend on other answers ----------------------------------------------------

def _ticked(value: object) -> bool:
    # A BooleanField gives a bool; a raw POST gives "y", "on", "true" or nothing.
    if isinstance(value, str):
        return value.strip().lower() in {"y", "yes", "on", "true", "1"}
    return bool(value)


def _given(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_given(v) for v in value)
    return value is not None and value is not False


def conditional_errors(values: Mapping[str, object]) -> dict[str, LazyString]:
    """Field name -> message, for each rule that depends on other answers and is broken.

    `values` maps field names to what was posted (missing names count as
    empty). The rules:
    - `subject_agreed` must be ticked when `reporter_role` is "for_someone";
    - `contact_handle` is needed when `contact_method` is anything but "none";
    - `consent_use` needs at least one box ticked.
    A field that is simply required and empty is the form's to report.
    """
    errors: dict[str, LazyString] = {}
    if values.get("reporter_role") == "for_someone" and not _ticked(values.get("subject_agreed")):
        errors["subject_agreed"] = _l(
            "Report for someone else only with their agreement, and tick this box to confirm it."
        )
    method = values.get("contact_method")
    if _given(method) and method != NO_CONTACT and not _given(values.get("contact_handle")):
        errors["contact_handle"] = _l(
            "Write how to reach you, or choose \u201cDo not contact me\u201d."
        )
    if not _given(values.get("consent_use")):
        errors["consent_use"] = _l("Tick at least one way we may use your report.")
    return errors


# -- A report.json from an untrusted producer ----------------------------------------------

#: The languages a report may be written in (the pages' languages; a test ties the two).
REPORT_LANGUAGES = frozenset({"ar", "en", "fr", "fa"})
#: Bound on a text answer whose field sets no `max_length` of its own.
DEFAULT_MAX_TEXT = 1000
#: Bound on a partial date as typed ("2026-03-14" is 10 characters).
_MAX_DATE_TEXT = 10


def _allowed_values(field: Field) -> frozenset[str]:
    choices = country_choices() if field.kind == "country" else field.choices
    return frozenset(choice.value for choice in choices)


def _field_problem(field: Field, value: object) -> str | None:
    """Why `value` cannot be the answer to `field`, or None if it can."""
    name = field.name
    kind = field.kind
    if kind == "checkbox":
        return None if isinstance(value, bool) else f"the field {name!r} must be true or false"
    if kind in MULTI_KINDS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"the field {name!r} must be a list of choices"
        if len(set(value)) != len(value):
            return f"the field {name!r} lists a choice twice"
        unknown = [v for v in value if v not in _allowed_values(field)]
        if unknown:
            return f"the field {name!r} has a value the form does not offer"
        return None
    if not isinstance(value, str):
        return f"the field {name!r} must be text"
    if kind in ("radio", "select", "country"):
        if value and value not in _allowed_values(field):
            return f"the field {name!r} has a value the form does not offer"
        return None
    if kind == "partial_date":
        if value and (len(value) > _MAX_DATE_TEXT or normalise_partial_date(value) != value):
            return f"the field {name!r} is not a date like 2026, 2026-03 or 2026-03-14"
        return None
    limit = field.max_length or DEFAULT_MAX_TEXT
    if len(value) > limit:
        return f"the field {name!r} is longer than {limit} characters"
    return None


def report_problems(document: Mapping[str, object]) -> list[str]:
    """What in a report.json's ``lang`` and ``fields`` breaks this schema; empty if nothing.

    A report arriving through the browser path was built by a client the
    server cannot check, so the reviewer's tools check it here before any
    field is used: each answer's type, its value against the choices offered,
    its length, and no field the form does not have. A field may be missing
    (a report written before the field existed); the file input never has a
    value in ``fields``. Each problem names the field.
    """
    problems: list[str] = []
    lang = document.get("lang")
    if not isinstance(lang, str) or lang not in REPORT_LANGUAGES:
        known = ", ".join(sorted(REPORT_LANGUAGES))
        problems.append(f"the report's language is not one of {known}")
    fields = document.get("fields")
    if not isinstance(fields, Mapping):
        return [*problems, "the report has no fields object"]
    for name, value in fields.items():
        field = FIELDS.get(name) if isinstance(name, str) else None
        if field is None or field.kind == "files":
            shown = name if isinstance(name, str) else repr(name)
            problems.append(f"the report has a field the form does not have ({shown[:40]!r})")
            continue
        problem = _field_problem(field, value)
        if problem is not None:
            problems.append(problem)
    return problems
