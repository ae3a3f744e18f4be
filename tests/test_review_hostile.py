"""Hostile case content is inert in every output of the reviewer's tools.

One case carries script tags, bidi controls, ESC sequences, formula strings and
values at their size limits in every field the schema lets free text through,
and in its attachments; another is damaged in every way report.json can be.
Both go through `list`, `show`, `stats`, `related`, `show --html` and every
export, and each output is checked with its own reader: the terminal's text has
no control, HTML parses with nothing active in it, CSV has no cell a
spreadsheet would run, STIX parses and MVT loads it.

A property test then writes generated report.json and case.json documents
(any JSON, any text) into a case store and runs every reader over them: none
may crash, nothing may be written outside the cases folder, and nothing
written may outgrow what arrived.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_review_cli import (
    ATTACHMENT_NAME,
    HOSTILE,
    assert_html_inert,
    assert_terminal_inert,
    run,
)
from test_review_exports import assert_inert_csv, full_fields, write_case

from intake import schema
from intake.limits import MAX_ATTACHMENTS
from intake.review.casestore import load_cases
from intake.review.exports import to_csv, to_html, to_stix2, write_codebook
from intake.review.i18n import in_language
from intake.review.render import render_case
from intake.review.store import CaseFilter, CaseStore

A = "a1" * 16
B = "b2" * 16

SCRIPT = '<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:x">y</a>'
FORMULAS = '=HYPERLINK("http://evil.example","x");=1+1,@SUM(1)\t-2\r+3'


def at_limit(field: str, piece: str) -> str:
    limit = schema.FIELDS[field].max_length or schema.DEFAULT_MAX_TEXT
    return (piece * (limit // len(piece) + 1))[:limit]


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    store = tmp_path / "cases"
    payload = f"{SCRIPT} {HOSTILE} {FORMULAS}\n"
    write_case(store, A, "2026-01-14", full_fields(
        narrative=at_limit("narrative", payload),
        notification_text=at_limit("notification_text", payload),
        contact_handle=at_limit("contact_handle", payload),
        verification_phrase=at_limit("verification_phrase", payload),
        indicators=("hxxps://evil[.]example/login\n"
                    + at_limit("indicators", f"evil[.]example/{SCRIPT}\n{FORMULAS}\n"))[
            : schema.FIELDS["indicators"].max_length],
        country="LB",
    ), attachments=MAX_ATTACHMENTS)
    report = store / A / "report.json"
    document = json.loads(report.read_text())
    for attachment in document["attachments"]:
        attachment["name"] = (ATTACHMENT_NAME + SCRIPT)[:255]
        attachment["type"] = f"{FORMULAS}{SCRIPT}"[:255]
    report.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    # Damaged in every way the schema refuses, with hostile text in the refused values.
    write_case(store, B, "2026-01-15", full_fields(
        categories=5, country=SCRIPT, risk_now=HOSTILE, suspected_tool=[FORMULAS],
        narrative="x" * 50_000, consent_use=[SCRIPT], **{SCRIPT: HOSTILE},
    ), lang=SCRIPT)
    with CaseStore(store) as opened:
        opened.add_tag(A, "campaign")
        opened.add_tag(B, "campaign")
    return store


@pytest.mark.parametrize("command", [
    ["list"], ["list", "--search", "alert"], ["list", "--group-by-indicator"],
    ["show", "IC-A1A1"], ["show", "IC-B2B2"], ["stats"], ["stats", "--lang", "fa"],
    ["related", "IC-A1A1"], ["export", "--format", "stix2", "--out", "/dev/null"],
])
def test_terminal_output_is_inert(capsys, hostile_store: Path, command: list[str]) -> None:
    code, out, err = run(capsys, "review", *command, "--cases", str(hostile_store))
    assert code == 0, err
    assert_terminal_inert(out)
    assert_terminal_inert(err.replace("\r", ""))


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_every_document_is_inert(hostile_store: Path, tmp_path: Path, lang: str) -> None:
    with CaseStore(hostile_store) as store:
        listed = store.cases(CaseFilter())
        cases = store.load(listed)
        triage_of = {s.case_id: store.triage(s.case_id) for s in listed}
        pages = [render_case(case, lang=lang, triage=triage_of[case.case_id],
                             related=store.related(case.case_id), notes=store.notes(case.case_id))
                 for case in cases]
    assert [case.damaged for case in cases] == [False, True]
    # HTML: every case page and the report, parsed, with nothing that runs or loads.
    for page in [*pages, to_html(cases, lang)]:
        assert_html_inert(page)
        assert "<script>alert" not in page and "onerror=alert" not in page.replace(
            "onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "[U+001B]" in pages[0] and "[U+202E]" in pages[0]
    # CSV, labels and codes, and the codebook: no cell a spreadsheet would run.
    for codes in (False, True):
        out = io.StringIO(newline="")
        with in_language(lang):
            to_csv(cases, out, codes=codes, triage_of=triage_of)
        text = out.getvalue()
        assert text.startswith("\ufeff")
        assert_inert_csv(text[1:])
        rows = list(csv.reader(io.StringIO(text[1:], newline="")))
        assert len(rows) == 3
    book = io.StringIO(newline="")
    with in_language(lang):
        write_codebook(book)
    assert_inert_csv(book.getvalue()[1:])
    # STIX: valid STIX 2.1 that MVT loads, with nothing of the prose in it.
    import stix2

    bundle_text = to_stix2(cases)
    stix2.parse(bundle_text, allow_custom=False)
    assert "script" not in bundle_text and "HYPERLINK" not in bundle_text
    mvt = pytest.importorskip("mvt.common.indicators")
    path = tmp_path / "hostile.stix2"
    path.write_text(bundle_text, encoding="utf-8")
    loaded = mvt.Indicators(log=logging.getLogger("mvt-test"))
    loaded.load_indicators_files([str(path)], load_default=False)
    assert loaded.check_domain("https://evil.example/") is not None


# -- Generated hostile case folders --------------------------------------------------------

_text = st.text(max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from([*schema.FIELDS, "categories", "country", "narrative", "x"])
_fields = st.dictionaries(_field_names, _json | _text | st.lists(_text, max_size=3), max_size=8)
_attachment = st.fixed_dictionaries({
    "path": st.sampled_from(["attachments/00-a.png", "../x", "attachments/../../x", "/etc/x"])
    | _text,
    "name": _text, "type": _text, "size": st.integers(-5, 10**12) | _text,
    "sha256": st.sampled_from(["1" * 64, "x"]) | _text,
})
_report = st.one_of(
    _json,
    st.fixed_dictionaries({
        "schema": st.just("intake-report/v1"),
        "lang": st.sampled_from(["en", "ar", "fa", "fr", "xx"]) | _text,
        "fields": _fields,
        "attachments": st.lists(_attachment, max_size=3) | _json,
    }),
)
_meta = st.one_of(_json, st.fixed_dictionaries({
    "case_id": st.just(A) | _text,
    "received_on": st.sampled_from(["2026-01-14", "2026-02-30", "14/01/2026"]) | _text,
    "keyring_version": st.integers() | _text | st.booleans(),
    "sha256": st.just("0" * 64) | _text,
}))


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=_report, meta=_meta, raw=st.booleans())
def test_every_reader_survives_any_case_folder(
    tmp_path_factory, capsys, report: object, meta: object, raw: bool,
) -> None:
    root = tmp_path_factory.mktemp("hostile")
    cases_dir = root / "cases"
    folder = cases_dir / A
    folder.mkdir(parents=True)
    report_bytes = (json.dumps(report, ensure_ascii=False) if not raw else str(report)).encode(
        "utf-8", "surrogatepass")
    (folder / "report.json").write_bytes(report_bytes)
    (folder / "case.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8",
                                      errors="surrogatepass")
    arrived = sum(_tree(root).values())
    before = set(_tree(root.parent))

    [case] = load_cases(cases_dir)
    for command in (["list"], ["show", A], ["stats"], ["list", "--group-by-indicator"],
                    ["related", A]):
        code, out, err = run(capsys, "review", *command, "--cases", str(cases_dir))
        assert code == 0, err
        assert_terminal_inert(out)
    for export in (["--format", "csv"], ["--format", "csv", "--codes"], ["--format", "stix2"],
                   ["--format", "html", "--lang", "ar"]):
        code, _out, err = run(capsys, "review", "export", *export, "--cases", str(cases_dir))
        assert code == 0, err
    assert_html_inert(render_case(case, lang="fa"))
    assert_html_inert(to_html([case]))

    # Nothing written outside the cases folder; inside it, only the case store's database
    # (an index bounded by what arrived, plus SQLite's fixed overhead).
    after = _tree(root.parent)
    new_outside = {p for p in set(after) - before if not p.startswith(f"{root.name}/cases/")}
    assert new_outside == set()
    written = {p: size for p, size in _tree(cases_dir).items() if p.startswith("cases.db")}
    assert set(written) <= {"cases.db", "cases.db-wal", "cases.db-shm"}
    assert sum(written.values()) <= 4 * arrived + 4 * 1024 * 1024
    assert (folder / "report.json").read_bytes() == report_bytes  # the record is untouched


def test_out_to_a_device_writes_through_it_and_never_replaces_it(capsys, hostile_store: Path):
    # atomic_write's rename once put a regular file, mode 0600, in place of /dev/null.
    before = os.stat("/dev/null")
    code, _out, err = run(capsys, "review", "export", "--format", "csv", "--out", "/dev/null",
                          "--cases", str(hostile_store))
    after = os.stat("/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (
        before.st_ino, before.st_rdev)
