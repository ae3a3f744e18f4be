"""The reviewer's exports: CSV for spreadsheets, STIX 2.1 for MVT, an HTML report with charts.

Cases are written by hand into a temporary case store, in the layout
`intake.review.casestore.load_case` reads, and read back with `load_cases`.
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
    stix2_left_out,
    to_csv,
    to_html,
    to_stix2,
)
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
        country=HOSTILE,
        categories=["phishing", BIDI],
        suspected_tool="pegasus",
        narrative="=HYPERLINK(\"http://evil.example\",\"click\")",
        indicators="EVIL.Example\nhttp://b\u00fccher.example/x",
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
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def read_csv(cases: list[Case], redact: bool) -> tuple[str, list[dict[str, str]]]:
    out = io.StringIO(newline="")
    to_csv(cases, out, redact=redact)
    text = out.getvalue()
    return text, list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_round_trip_keeps_every_field_as_machine_values(cases: list[Case]) -> None:
    _text, rows = read_csv(cases, redact=False)
    assert list(rows[0]) == csv_columns() == [
        "case_id", "received_on", *schema.FIELDS,
    ]
    assert [row["case_id"] for row in rows] == [CASE_A, CASE_B, CASE_C]
    for case, row in zip(cases, rows, strict=True):
        assert row["received_on"] == case.received_on
        assert row["attachments"] == str(len(case.attachments))
        for name, field in schema.FIELDS.items():
            if field.kind != "files":
                assert row[name] == expected_cell(field, case.fields[name]), name
    first = rows[0]
    # Machine values in schema order, whatever order they were ticked in.
    assert first["categories"] == "mercenary_spyware; phishing"
    assert first["country"] == "EG"
    assert first["subject_agreed"] == "yes"
    assert first["attachments"] == "2"
    assert first["indicators"] == INDICATORS_A
    assert rows[1]["country"] == HOSTILE
    assert rows[1]["categories"] == f"phishing; {BIDI}"


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(cases: list[Case]) -> None:
    _text, rows = read_csv(cases, redact=False)
    assert rows[1]["narrative"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert rows[0]["contact_handle"] == "'" + HANDLE


def test_redacted_csv_leaves_out_free_text_and_contact_details(cases: list[Case]) -> None:
    text, rows = read_csv(cases, redact=True)
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
    assert set(types) == {"malware", "indicator", "relationship"}
    assert types.count("indicator") == types.count("relationship")
    for obj in bundle["objects"]:
        assert obj["spec_version"] == "2.1"
        if obj["type"] == "malware":
            assert obj["is_family"] is False
            assert re.fullmatch(r"IC-[0-9A-F]{8}", obj["name"])
        if obj["type"] == "indicator":
            assert obj["pattern_type"] == "stix"
            match = MVT_PATTERN.fullmatch(obj["pattern"])
            assert match, obj["pattern"]
            assert match["path"] in STIX_PATHS.values()
    # Nothing the source wrote in prose reaches the bundle.
    text = json.dumps(bundle, ensure_ascii=False)
    for secret in (NARRATIVE, HANDLE, PHRASE, NOTIFICATION):
        assert secret not in text


def test_stix_values_are_normalised_and_risky_ones_left_out(cases: list[Case]) -> None:
    found = patterns_by_case(bundle_of(cases))
    assert set(found) == {cases[0].code, cases[1].code}  # case C has no indicators
    assert found[cases[0].code] == {
        "[url:value='http://evil.example/login']",
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
    }
    left_out = {(lo.indicator.kind, lo.indicator.value) for lo in stix2_left_out(cases)}
    assert left_out == {
        ("phone", "+9613123456"), ("file_name", "it's.pdf"), ("file_name", "report].pdf"),
    }


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
    collections = {c["name"]: c for c in loaded.ioc_collections}
    assert set(collections) == {cases[0].code, cases[1].code}
    assert loaded.total_ioc_count == 12
    a = collections[cases[0].code]
    assert a["urls"] == ["http://evil.example/login"]
    assert set(a["domains"]) == {"track.evil.example", "192.168.1.23",
                                 "xn--mgbh0fb.xn--kgbechtv"}
    assert a["emails"] == ["support@evil-mail.example"]
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


def test_html_report_escapes_values_and_shows_bidi_controls(cases: list[Case]) -> None:
    html = to_html(cases)
    assert HOSTILE not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # Once in the table and once in the chart.
    assert html.count(escaped) >= 2
    assert "\u202e" not in html
    assert html.count("evil[U+202E]gpj.exe") >= 2


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
    assert "Mercenary spyware" not in html
    if label:
        assert label in html


def test_html_report_refuses_a_language_it_has_no_labels_for(cases: list[Case]) -> None:
    with pytest.raises(ValueError, match="choose one of ar, en, fa, fr"):
        to_html(cases, "xx")
