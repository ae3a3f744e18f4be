"""The reviewer's exports: CSV for spreadsheets, STIX 2.1 for MVT, an HTML report with charts.

Cases are written by hand into a temporary case store, in the layout
`intake.review.casestore.load_case` reads, and read back with `load_cases`.
Hostile values sit in the free-text fields, where the schema lets them
through; values the schema refuses make a case damaged (tested at the end).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake import schema
from intake.review.casestore import Case, load_cases
from intake.review.exports import (
    COUNTED_FIELDS,
    STIX_PATHS,
    csv_columns,
    defuse,
    stix2_left_out,
    to_csv,
    to_html,
    to_stix2,
    write_codebook,
)
from intake.review.i18n import UnknownLanguage, in_language
from intake.review.indicators import Indicator, classify, indicators_of, normalise_indicator

CASE_A = "a1" * 16
CASE_B = "b2" * 16
CASE_C = "c3" * 16
NARRATIVE = "They quoted my private messages back to me."
HANDLE = "@source.42"
PHRASE = "olive trees in winter"
NOTIFICATION = "Apple believes you are being targeted by state-sponsored attackers."
SHA256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
INDICATORS_A = "\n".join([
    "hxxp://evil[.]example/login",
    "https://track.evil.example/?id=target42",
    "\u0661\u0669\u0662.\u0661\u0666\u0668.\u0661.\u0662\u0663",  # ١٩٢.١٦٨.١.٢٣
    "\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631",  # مثال.إختبار
    "Support[@]Evil-Mail(.)example",
    "com.evil.spy",
    SHA256,
    SHA1,
    MD5,
    "+961 3 123 456",
    "invoice\u202efdp.exe",
    "it's.pdf",
    "report].pdf",
    "",
    "hxxp://evil[.]example/login",
])
HOSTILE = "<script>alert(1)</script>"
BIDI = "evil\u202egpj.exe"


def full_fields(**overrides: object) -> dict[str, object]:
    """An answer for every field of the schema, as the form stores it."""
    fields: dict[str, object] = {}
    for name, field in schema.FIELDS.items():
        if field.kind == "files":
            continue
        if field.kind == "checkbox":
            fields[name] = True
        elif field.kind == "country":
            fields[name] = "EG"
        elif schema.is_multi(field):
            # Given out of schema order: the export must put them back in order.
            fields[name] = [field.choices[1].value, field.choices[0].value]
        elif field.choices:
            fields[name] = field.choices[0].value
        elif field.kind == "partial_date":
            fields[name] = "2026-03"
        else:
            fields[name] = f"{name} text"
    fields.update(
        narrative=NARRATIVE,
        contact_method="signal",
        contact_handle=HANDLE,
        verification_phrase=PHRASE,
        notification_text=NOTIFICATION,
    )
    fields.update(overrides)
    return fields


def write_case(
    cases_dir: Path, case_id: str, received_on: str, fields: dict, *,
    lang: str = "en", attachments: int = 0,
) -> None:
    folder = cases_dir / case_id
    (folder / "attachments").mkdir(parents=True)
    (folder / "case.json").write_text(json.dumps({
        "case_id": case_id, "received_on": received_on, "keyring_version": 3,
        "sha256": "0" * 64,
    }), encoding="utf-8")
    (folder / "report.json").write_text(json.dumps({
        "schema": "intake-report/v1",
        "lang": lang,
        "fields": fields,
        "attachments": [
            {"path": f"attachments/{i:02d}-file.png", "name": f"file {i}.png",
             "type": "image/png", "size": 10, "sha256": "1" * 64}
            for i in range(attachments)
        ],
    }, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def cases(tmp_path: Path) -> list[Case]:
    store = tmp_path / "cases"
    write_case(store, CASE_A, "2026-01-14", full_fields(indicators=INDICATORS_A), attachments=2)
    write_case(store, CASE_B, "2026-03-02", full_fields(
        country="LB",
        categories=["phishing"],
        suspected_tool="pegasus",
        narrative="=HYPERLINK(\"http://evil.example\",\"click\")",
        notification_text=f"{HOSTILE} {BIDI}",
        indicators="EVIL.Example\nhttp://b\u00fccher.example/x\nSupport@evil-mail.example",
    ), lang="ar")
    write_case(store, CASE_C, "2026-03-20", full_fields(
        indicators="", suspected_tool="", ongoing="", target_profile=["journalist"],
    ), lang="fa")
    loaded = load_cases(store)
    assert [c.case_id for c in loaded] == [CASE_A, CASE_B, CASE_C]
    return loaded


# -- Indicators ----------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "kind", "value"), [
    ("hxxp://evil[.]example", "url", "http://evil.example"),
    ("HXXPS://EVIL[.]Example:8443/Path?q=A", "url", "https://evil.example:8443/Path?q=A"),
    ("hxxps[://]evil[.]example/x", "url", "https://evil.example/x"),
    ("fxp://files[.]example", "url", "ftp://files.example"),
    ("evil[.]example", "domain", "evil.example"),
    ("evil(dot)example", "domain", "evil.example"),
    ("evil{.}example.", "domain", "evil.example"),
    ("\u200bEVIL\u202e.example", "domain", "evil.example"),
    ("\uff25\uff36\uff29\uff2c\uff0e\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45", "domain",
     "evil.example"),
    ("\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631", "domain",
     "xn--mgbh0fb.xn--kgbechtv"),
    ("B\u00fccher.Example", "domain", "xn--bcher-kva.example"),
    ("https://\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631/a", "url",
     "https://xn--mgbh0fb.xn--kgbechtv/a"),
    ("\u0661\u0669\u0662.\u0661\u0666\u0668.\u0661.\u0661", "ipv4", "192.168.1.1"),
    ("\u06f1\u06f0.\u06f0.\u06f0.\u06f1", "ipv4", "10.0.0.1"),
    ("10[.]0[.]0[.]1", "ipv4", "10.0.0.1"),
    ("2001[:]DB8[:][:]1", "ipv6", "2001:db8::1"),
    ("Someone[@]Evil[.]Example", "email", "someone@evil.example"),
    ("x[at]b\u00fccher.example", "email", "x@xn--bcher-kva.example"),
    (SHA256, "sha256", SHA256.lower()),
    (SHA1.upper(), "sha1", SHA1),
    (MD5, "md5", MD5),
    ("+961 3 123 456", "phone", "+9613123456"),
    ("00\u0669\u0666\u0661-3-123456", "phone", "+9613123456"),
    ("com.whatsapp", "app_id", "com.whatsapp"),
    ("com.Example.App", "app_id", "com.Example.App"),
    ("org.telegram.messenger", "app_id", "org.telegram.messenger"),
    ("ar.wikipedia.org", "domain", "ar.wikipedia.org"),
    ("example.com", "domain", "example.com"),
    ("photo\u202egpj.exe", "file_name", "photogpj.exe"),
    ("\u0641\u0627\u062a\u0648\u0631\u0629.pdf", "file_name",
     "\u0641\u0627\u062a\u0648\u0631\u0629.pdf"),
    ("com.evil.apk", "file_name", "com.evil.apk"),
    ("2026-03-14", "unknown", "2026-03-14"),
    ("10.0.0.300", "unknown", "10.0.0.300"),
    ("  just some words  ", "unknown", "just some words"),
])
def test_classify_normalises_what_sources_type(typed: str, kind: str, value: str) -> None:
    assert classify(typed) == Indicator(kind, value)
    assert normalise_indicator(typed) == value


@given(st.text(max_size=80))
def test_normalising_never_fails_and_is_idempotent(text: str) -> None:
    once = classify(text)
    assert classify(once.value) == once


def test_indicators_of_reads_one_per_line_without_repeats_or_blanks(cases: list[Case]) -> None:
    found = indicators_of(cases[0])
    assert len(found) == len(set(found)) == 13
    assert found[0] == Indicator("url", "http://evil.example/login")
    assert Indicator("ipv4", "192.168.1.23") in found
    assert Indicator("email", "support@evil-mail.example") in found
    assert indicators_of(cases[2]) == []


# -- CSV -----------------------------------------------------------------------------------

def expected_cell(field: schema.Field, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        known = [c.value for c in field.choices if c.value in value]
        return "; ".join(known + [v for v in value if v not in known])
    return defuse(str(value))


def write_csv(cases: list[Case], **options: object) -> str:
    out = io.StringIO(newline="")
    with in_language(str(options.pop("lang", "en"))):
        to_csv(cases, out, **options)
    return out.getvalue()


def read_csv(cases: list[Case], **options: object) -> tuple[str, list[dict[str, str]]]:
    text = write_csv(cases, **options)
    assert text.startswith("\ufeff")
    return text, list(csv.DictReader(io.StringIO(text[1:], newline="")))


def test_csv_codes_round_trip_keeps_every_field_as_machine_values(cases: list[Case]) -> None:
    _text, rows = read_csv(cases, codes=True)
    assert list(rows[0]) == csv_columns() == [
        "case_id", "received_on", *schema.FIELDS, "code", "status", "tags", "assignee", "damaged",
    ]
    assert [row["case_id"] for row in rows] == [CASE_A, CASE_B, CASE_C]
    for case, row in zip(cases, rows, strict=True):
        assert row["received_on"] == case.received_on
        assert row["attachments"] == str(len(case.attachments))
        assert row["code"] == case.code and row["damaged"] == "no"
        for name, field in schema.FIELDS.items():
            if field.kind != "files":
                assert row[name] == expected_cell(field, case.fields[name]), name
    first = rows[0]
    # Machine values in schema order, whatever order they were ticked in.
    assert first["categories"] == "mercenary_spyware; phishing"
    assert first["country"] == "EG"
    assert first["subject_agreed"] == "yes"
    assert first["attachments"] == "2"
    assert first["indicators"] == defuse(INDICATORS_A)
    assert "\n'+961 3 123 456\n" in first["indicators"]  # defused after a line break


def test_csv_labels_in_the_chosen_language_by_default(cases: list[Case]) -> None:
    _text, rows = read_csv(cases)
    assert list(rows[0])[:3] == ["Case id", "Received on", "Who is reporting?"]
    assert rows[0]["What happened?"] == "Mercenary spyware; Phishing or a malicious link"
    assert rows[0]["In which country did it happen?"] == "Egypt"
    assert rows[0]["Damaged"] == "No"
    text, rows = read_csv(cases, lang="ar")
    assert "\u0628\u0631\u0645\u062c\u064a\u0627\u062a" in text  # برمجيات
    assert "Mercenary spyware" not in text and "Egypt" not in text
    assert rows[0]["\u0645\u0639\u0631\u0651\u0641 \u0627\u0644\u062d\u0627\u0644\u0629"] == CASE_A


def test_the_codebook_explains_every_code_in_the_chosen_language() -> None:
    out = io.StringIO(newline="")
    with in_language("fr"):
        write_codebook(out)
    text = out.getvalue()
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert rows[0] == ["column", "code", "label"]
    book = {(column, code): label for column, code, label in rows[1:]}
    assert {column for column, _code in book} == set(csv_columns())
    assert book[("categories", "mercenary_spyware")] == "Logiciel espion mercenaire"
    assert book[("country", "EG")] == "\u00c9gypte"
    assert book[("status", "needs_follow_up")] == "\u00c0 suivre"
    assert book[("subject_agreed", "yes")] == "Oui"
    for field in schema.FIELDS.values():
        for choice in field.choices:
            assert (field.name, choice.value) in book


#: Strings that a spreadsheet runs as formulas, alone or once it splits the cell.
ATTACKS = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "see below;=HYPERLINK(\"http://evil.example\",\"click\")",
    "see below,=HYPERLINK(\"http://evil.example\")",
    "a;  =cmd|' /C calc'!A0",
    "a\t+1",
    "a\r\n@SUM(1)",
    "a\n-2+3",
    'a;"=1+1"',
    "a; \"=1+1",
    "=;=,=\t=\n=",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_csv_defuses_formulas_wherever_a_spreadsheet_splits_a_cell(
    tmp_path: Path, attack: str
) -> None:
    store = tmp_path / "cases"
    write_case(store, CASE_A, "2026-01-14", full_fields(
        narrative=attack, contact_handle=attack, indicators=attack, verification_phrase=attack,
    ))
    for codes in (True, False):
        text = write_csv(load_cases(store), codes=codes)[1:]
        assert_inert_csv(text)


def assert_inert_csv(text: str) -> None:
    """No cell of `text`, read with ',' or ';' as separator, or split at any line break,
    tab, comma or semicolon, starts a formula."""
    dangerous = ("=", "+", "-", "@", "\t", "\r")
    for delimiter in (",", ";"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            for cell in row:
                assert not cell.lstrip(' "').startswith(dangerous), (delimiter, cell)
    for piece in re.split(r"[,;\t\r\n]", text):
        assert not piece.lstrip(' "').startswith(("=", "+", "-", "@")), piece


@given(st.text(alphabet=st.sampled_from(list("=+-@;,\t\r\n \"'ab1(")), max_size=30))
def test_defuse_leaves_no_place_a_formula_can_start(text: str) -> None:
    defused = defuse(text)
    for piece in re.split(r"[,;\t\r\n]", defused):
        assert not piece.lstrip(' "').startswith(("=", "+", "-", "@")), (text, defused)
    assert defused.replace("'", "") == text.replace("'", "")


def test_csv_quotes_every_field(cases: list[Case]) -> None:
    text = write_csv(cases, codes=True)[1:]
    header = text.split("\r\n", 1)[0]
    assert header == ",".join(f'"{c}"' for c in csv_columns())
    # Case C's row has no line break inside a cell: every one of its fields is quoted.
    [row_c] = [line for line in text.split("\r\n") if line.startswith(f'"{CASE_C}"')]
    assert re.fullmatch(r'"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*', row_c)


def test_redacted_csv_leaves_out_free_text_and_contact_details(cases: list[Case]) -> None:
    text, rows = read_csv(cases, redact=True, codes=True)
    left_out = {"narrative", "notification_text", "contact_handle", "verification_phrase",
                "indicators"}
    assert left_out.isdisjoint(rows[0])
    assert set(rows[0]) == set(csv_columns()) - left_out
    for secret in (NARRATIVE, HANDLE, PHRASE, NOTIFICATION, "evil.example", "HYPERLINK"):
        assert secret not in text
    assert rows[0]["contact_method"] == "signal"
    assert rows[0]["categories"] == "mercenary_spyware; phishing"


# -- STIX 2.1 ------------------------------------------------------------------------------

MVT_PATTERN = re.compile(
    r"\[(?P<path>[a-z0-9:.-]+)='(?P<value>[^'\]=\\]+)'\]"
)


def bundle_of(cases: list[Case]) -> dict:
    return json.loads(to_stix2(cases))


def patterns_by_case(bundle: dict) -> dict[str, set[str]]:
    objects = {o["id"]: o for o in bundle["objects"]}
    found: dict[str, set[str]] = {}
    for rel in (o for o in bundle["objects"] if o["type"] == "relationship"):
        assert rel["relationship_type"] == "indicates"
        malware = objects[rel["target_ref"]]
        found.setdefault(malware["name"], set()).add(objects[rel["source_ref"]]["pattern"])
    return found


def test_stix_follows_the_rules_mvt_parses(cases: list[Case]) -> None:
    bundle = bundle_of(cases)
    assert bundle["type"] == "bundle"
    types = [o["type"] for o in bundle["objects"]]
    assert set(types) == {"malware", "indicator", "relationship", "report"}
    assert types.count("malware") == types.count("report") == 2  # case C has no indicators
    for obj in bundle["objects"]:
        assert obj["spec_version"] == "2.1"
        if obj["type"] in ("malware", "report"):
            assert re.fullmatch(r"IC-[0-9A-F]{8}", obj["name"])
        if obj["type"] == "malware":
            assert obj["is_family"] is False
        if obj["type"] == "indicator":
            assert obj["pattern_type"] == "stix"
            match = MVT_PATTERN.fullmatch(obj["pattern"])
            assert match, obj["pattern"]
            assert match["path"] in STIX_PATHS.values()
    # Nothing the source wrote in prose reaches the bundle.
    text = json.dumps(bundle, ensure_ascii=False)
    for secret in (NARRATIVE, HANDLE, PHRASE, NOTIFICATION, "HYPERLINK", "script"):
        assert secret not in text


def test_stix_values_are_normalised_and_risky_ones_left_out(cases: list[Case]) -> None:
    found = patterns_by_case(bundle_of(cases))
    assert set(found) == {cases[0].code, cases[1].code}  # case C has no indicators
    assert found[cases[0].code] == {
        "[url:value='http://evil.example/login']",
        "[domain-name:value='evil.example']",  # the URL's host
        # A URL with "=" would make MVT abort: its host goes instead.
        "[domain-name:value='track.evil.example']",
        "[ipv4-addr:value='192.168.1.23']",
        "[domain-name:value='xn--mgbh0fb.xn--kgbechtv']",
        "[email-addr:value='support@evil-mail.example']",
        "[app:id='com.evil.spy']",
        f"[file:hashes.sha256='{SHA256.lower()}']",
        f"[file:hashes.sha1='{SHA1}']",
        f"[file:hashes.md5='{MD5}']",
        "[file:name='invoicefdp.exe']",
    }
    assert found[cases[1].code] == {
        "[domain-name:value='evil.example']",
        "[url:value='http://xn--bcher-kva.example/x']",
        "[domain-name:value='xn--bcher-kva.example']",
        "[email-addr:value='support@evil-mail.example']",
    }
    left_out = {(lo.case_code, lo.indicator.kind, lo.indicator.value)
                for lo in stix2_left_out(cases)}
    assert left_out == {
        (cases[0].code, "phone", "+9613123456"),
        (cases[0].code, "file_name", "it's.pdf"),
        (cases[0].code, "file_name", "report].pdf"),
        (cases[0].code, "url", "https://track.evil.example/?id=target42"),
    }


def test_stix_indicators_are_shared_not_repeated_and_each_case_is_a_report(
    cases: list[Case],
) -> None:
    bundle = bundle_of(cases)
    indicators = [o for o in bundle["objects"] if o["type"] == "indicator"]
    patterns = [o["pattern"] for o in indicators]
    assert len(patterns) == len(set(patterns)) == 13
    shared = next(o for o in indicators if o["pattern"] == "[domain-name:value='evil.example']")
    reports = {o["name"]: o for o in bundle["objects"] if o["type"] == "report"}
    assert set(reports) == {cases[0].code, cases[1].code}
    for report in reports.values():
        assert shared["id"] in report["object_refs"]
        malware = next(o for o in bundle["objects"]
                       if o["type"] == "malware" and o["name"] == report["name"])
        assert malware["id"] in report["object_refs"]
    assert reports[cases[1].code]["published"].startswith("2026-03-02T00:00:00")
    relations = [o for o in bundle["objects"]
                 if o["type"] == "relationship" and o["source_ref"] == shared["id"]]
    assert len(relations) == 2


def test_stix_ids_are_stable_across_exports(cases: list[Case]) -> None:
    def ids() -> list[str]:
        return [o["id"] for o in bundle_of(cases)["objects"]]

    assert ids() == ids()


def test_stix_of_cases_without_indicators_is_an_empty_bundle(cases: list[Case]) -> None:
    bundle = bundle_of([cases[2]])
    assert bundle["type"] == "bundle"
    assert bundle.get("objects", []) == []


def test_mvt_loads_the_stix_output(cases: list[Case], tmp_path: Path) -> None:
    mvt_indicators = pytest.importorskip("mvt.common.indicators")
    path = tmp_path / "intake.stix2"
    path.write_text(to_stix2(cases), encoding="utf-8")
    loaded = mvt_indicators.Indicators(log=logging.getLogger("mvt-test"))
    loaded.load_indicators_files([str(path)], load_default=False)
    assert {c["name"] for c in loaded.ioc_collections} == {cases[0].code, cases[1].code}
    assert loaded.total_ioc_count == 13
    # MVT files each indicator under the last report that references it: a shared one
    # under case B's, the others under their own case's.
    a = next(c for c in loaded.ioc_collections if c["name"] == cases[0].code and c["count"])
    b = next(c for c in loaded.ioc_collections if c["name"] == cases[1].code and c["count"])
    assert a["urls"] == ["http://evil.example/login"]
    assert set(a["domains"]) == {"track.evil.example", "192.168.1.23",
                                 "xn--mgbh0fb.xn--kgbechtv"}
    assert set(b["domains"]) == {"evil.example", "xn--bcher-kva.example"}
    assert b["emails"] == ["support@evil-mail.example"]
    assert a["app_ids"] == ["com.evil.spy"]
    assert a["files_sha256"] == [SHA256.lower()]
    assert a["files_sha1"] == [SHA1]
    assert a["files_md5"] == [MD5]
    assert a["file_names"] == ["invoicefdp.exe"]
    # And MVT's own checks find them.
    assert loaded.check_url("https://track.evil.example/other?x=1").ioc.name == cases[0].code
    assert loaded.check_email("SUPPORT@evil-mail.example") is not None
    assert loaded.check_app_id("com.evil.spy") is not None
    assert loaded.check_file_hash(SHA256) is not None
    assert loaded.check_file_name("invoicefdp.exe") is not None
    assert loaded.check_url("https://unrelated.example/") is None


def test_mvt_check_domain_matches_a_domain_seen_only_inside_a_url(
    cases: list[Case], tmp_path: Path,
) -> None:
    mvt_indicators = pytest.importorskip("mvt.common.indicators")
    path = tmp_path / "intake.stix2"
    path.write_text(to_stix2(cases), encoding="utf-8")
    loaded = mvt_indicators.Indicators(log=logging.getLogger("mvt-test"))
    loaded.load_indicators_files([str(path)], load_default=False)
    # Case B typed only http://bücher.example/x: its domain, on any other path, matches.
    match = loaded.check_domain("https://xn--bcher-kva.example/login/other")
    assert match is not None and match.ioc.name == cases[1].code
    assert loaded.check_domain("https://evil.example/elsewhere") is not None
    assert loaded.check_domain("https://benign.example/") is None


# -- HTML report ---------------------------------------------------------------------------

def test_html_report_has_one_svg_chart_per_figure_and_no_script(cases: list[Case]) -> None:
    html = to_html(cases)
    assert html.count("<svg") == len(COUNTED_FIELDS) + 1 == 5
    assert html.count("</svg>") == 5
    assert "<script" not in html.lower()
    assert '<html lang="en" dir="ltr">' in html
    # Self-contained: no loaded asset, no link out.
    assert not re.search(r"""\s(src|href)\s*=\s*["']?(?!#)""", html)
    assert "url(http" not in html and "@import" not in html
    # Labels come from the schema; months between reports are drawn empty.
    assert "Mercenary spyware" in html and "NSO Group Pegasus" in html
    assert re.search(r"<bdi>2026-02</bdi></td>\s*<td class=\"count\"><bdi dir=\"ltr\">0<", html)
    assert re.search(r"<bdi>Egypt</bdi></td>\s*<td class=\"count\"><bdi dir=\"ltr\">2<", html)
    for secret in (NARRATIVE, HANDLE, PHRASE, NOTIFICATION):
        assert secret not in html


def test_html_report_counts_a_damaged_case_without_its_hostile_answers(
    cases: list[Case], tmp_path: Path,
) -> None:
    store = tmp_path / "damaged"
    write_case(store, "d4" * 16, "2026-03-21", full_fields(
        country=HOSTILE, categories=["phishing", BIDI], suspected_tool=5,
    ))
    damaged = load_cases(store)
    assert damaged[0].damaged
    html = to_html([*cases, *damaged])
    assert HOSTILE not in html and "&lt;script" not in html
    assert "\u202e" not in html and "gpj.exe" not in html
    assert "Damaged reports, counted with the answers that could be read: 1." in html
    # Its country and tool count as "No answer"; its sound answers still count.
    assert re.search(r"<bdi>No answer</bdi></td>\s*<td class=\"count\"><bdi dir=\"ltr\">1<", html)


@pytest.mark.parametrize(("lang", "label"), [
    ("ar", "\u0628\u0631\u0645\u062c\u064a\u0627\u062a \u0627\u0644\u062a\u062c\u0633\u0633 "
           "\u0627\u0644\u0645\u0623\u062c\u0648\u0631\u0629"),  # برمجيات التجسس المأجورة
    ("fa", None),
])
def test_html_report_is_right_to_left_in_arabic_and_persian(
    cases: list[Case], lang: str, label: str | None,
) -> None:
    html = to_html(cases, lang)
    assert f'<html lang="{lang}" dir="rtl">' in html
    assert html.count("<svg") == 5
    assert "Incident reports" not in html
    assert "Mercenary spyware" not in html
    if label:
        assert label in html


def test_html_report_refuses_a_language_it_has_no_labels_for(cases: list[Case]) -> None:
    with pytest.raises(UnknownLanguage, match=r"^There is no language 'xx' for the review "
                       r"tools; choose one of ar, en, fa, fr\.$"):
        to_html(cases, "xx")


@pytest.mark.parametrize("lang", ["ar", "fa", "fr"])
def test_html_report_is_entirely_in_the_chosen_language(cases: list[Case], lang: str) -> None:
    html = to_html(cases, lang)
    text = re.sub(r"<svg.*?</svg>|<style>.*?</style>|<[^>]*>", " ", html, flags=re.S)
    for english in ("Incident reports", "Reports received by month", "Answer", "Reports:",
                    "A report can be counted", "Suspected tool", "Egypt"):
        assert english not in text, (lang, english)


# -- Damaged cases -------------------------------------------------------------------------

def test_a_report_json_that_breaks_the_schema_loads_as_damaged(tmp_path: Path) -> None:
    store = tmp_path / "cases"
    write_case(store, CASE_A, "2026-01-14", full_fields(categories=5, narrative=["not text"]))
    [case] = load_cases(store)
    assert case.damaged
    assert "the field 'categories' must be a list of choices" in case.problems
    assert "categories" not in case.fields and "narrative" not in case.fields
    assert case.fields["country"] == "EG"  # what passes the schema is kept
    # Every export still works on it.
    text = write_csv([case], codes=True)
    row = next(csv.DictReader(io.StringIO(text[1:], newline="")))
    assert row["damaged"] == "yes" and row["categories"] == "" and row["country"] == "EG"
    assert json.loads(to_stix2([case]))["type"] == "bundle"
    assert "<svg" in to_html([case])


@pytest.mark.parametrize("damage", [
    lambda folder: (folder / "report.json").write_text("{not json", encoding="utf-8"),
    lambda folder: (folder / "report.json").write_bytes(b"\xff\xfe"),
    lambda folder: (folder / "report.json").write_text("[1, 2]", encoding="utf-8"),
    lambda folder: (folder / "report.json").write_text("[" * 100_000, encoding="utf-8"),
    lambda folder: (folder / "report.json").write_bytes(b" " * (1024 * 1024 + 1)),
    lambda folder: (folder / "report.json").unlink(),
    lambda folder: (folder / "case.json").write_text('{"case_id": 5}', encoding="utf-8"),
    lambda folder: (folder / "case.json").unlink(),
    lambda folder: (folder / "report.json").write_text(json.dumps({
        "lang": "en", "fields": {}, "attachments": [{"path": "../../etc/passwd", "name": "x",
                                                     "type": "x", "size": 1, "sha256": "1"}],
    }), encoding="utf-8"),
    lambda folder: (folder / "report.json").write_text(json.dumps({
        "lang": "xx", "fields": {"nope": 1}, "attachments": "many",
    }), encoding="utf-8"),
])
def test_any_damage_to_a_case_folder_gives_a_damaged_case_not_an_error(
    tmp_path: Path, damage,
) -> None:
    store = tmp_path / "cases"
    write_case(store, CASE_A, "2026-01-14", full_fields(), attachments=1)
    damage(store / CASE_A)
    [case] = load_cases(store)
    assert case.damaged and case.problems
    assert all(isinstance(p, str) and len(p) < 200 for p in case.problems)
    for attachment in case.attachments:
        assert attachment["path"].startswith("attachments/") and ".." not in attachment["path"]
    write_csv([case])
    to_stix2([case])
    to_html([case], "ar")
