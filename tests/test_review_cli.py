"""`intake review list/show/stats/export/tag/status/assign/note/related` on a case store.

The commands run in-process through `intake.cli.main` (the same entry point as
the installed command: exit codes and error handling included), on cases
written by hand in the layout the importer writes. Hostile values sit in every
field the schema lets free text through, and in attachment names and types.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_review_exports import full_fields, write_case

from intake.cli import main

A = "a1" * 16
B = "b2" * 16
C = "c3" * 16
D = "d4" * 16

#: Everything a terminal obeys: ESC/CSI, CR, C1 CSI, OSC 52 (clipboard), OSC 0 (title),
#: BEL, bidi controls, zero-width characters, line separators.
ESCAPES = {
    "csi": "\x1b[2K",
    "cr": "\rOVERWRITTEN",
    "c1": "\x9b2J",
    "osc52": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "title": "\x1b]0;innocent\x07",
    "rlo": "\u202egpj.exe",
    "isolate": "\u2066x\u2069",
    "zero_width": "a\u200bb\ufeffc",
    "line_separator": "a\u2028b",
}
HOSTILE = "".join(ESCAPES.values())
ATTACHMENT_NAME = "\r\x1b[2Kinvoice\u202efdp.exe"


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def hostile_fields(**overrides: object) -> dict[str, object]:
    return full_fields(
        narrative=f"first line {HOSTILE}\nsecond line\n\x1b[1Athird",
        notification_text=HOSTILE,
        contact_handle=HOSTILE[:200],
        verification_phrase=HOSTILE[:200],
        indicators=f"evil[.]example\n{HOSTILE}\nhttps://evil.example/\x1b[2K",
        **overrides,
    )


def write_hostile_case(cases_dir: Path, case_id: str, day: str, **overrides: object) -> None:
    write_case(cases_dir, case_id, day, hostile_fields(**overrides), attachments=2)
    report = cases_dir / case_id / "report.json"
    document = json.loads(report.read_text())
    for attachment in document["attachments"]:
        attachment["name"] = ATTACHMENT_NAME
        attachment["type"] = "image/png\x1b]0;title\x07"
    report.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    store = tmp_path / "cases"
    write_hostile_case(store, A, "2026-01-14", country="LB")
    write_case(store, B, "2026-02-20", full_fields(
        country="LB", risk_now="elevated", categories=["phishing"], suspected_tool="pegasus",
        indicators="https://evil.example/login\n+961 3 123 456",
    ))
    # Damaged: a crafted report.json with "categories": 5 (issue 10, item 8) and controls
    # in a field name.
    write_case(store, C, "2026-03-02", full_fields(categories=5, **{"x\x1b[2K": HOSTILE}))
    return store


def assert_terminal_inert(text: str) -> None:
    """Nothing a terminal would act on: only printable characters, spaces and line feeds."""
    for ch in text:
        assert ch in "\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Co", "Cs", "Cn",
                                                              "Zl", "Zp"}, repr(ch)


# -- Terminal escapes (issue 10, item 4) ---------------------------------------------------

@pytest.mark.parametrize("command", [
    ["list"], ["list", "--group-by-indicator"], ["show", A], ["show", C], ["stats"],
    ["stats", "--lang", "ar"], ["related", A], ["show", A, "--lang", "fa"],
])
def test_every_value_from_a_report_reaches_the_terminal_as_visible_escapes(
    capsys, cases_dir: Path, command: list[str],
) -> None:
    code, out, err = run(capsys, "review", *command, "--cases", str(cases_dir))
    assert code == 0, err
    assert_terminal_inert(out)
    assert_terminal_inert(err.replace("\r", ""))  # the progress bar's own \r only
    assert "OVERWRITTEN" not in err


def test_show_makes_each_escape_visible_and_keeps_the_narratives_lines(
    capsys, cases_dir: Path,
) -> None:
    _code, out, _err = run(capsys, "review", "show", A, "--cases", str(cases_dir))
    for visible in ("\\x1b[2K", "\\x0dOVERWRITTEN", "\\x9b2J", "\\x1b]52;c;ZWNobyBwd25lZA==\\x07",
                    "\\x1b]0;innocent\\x07", "\\u202egpj.exe", "\\u2066x\\u2069",
                    "a\\u200bb\\ufeffc", "a\\u2028b"):
        assert visible in out, visible
    # The narrative keeps its line breaks, indented under its label.
    assert re.search(r"\n    first line .*\n    second line\n    \\x1b\[1Athird\n", out)
    # The attachments warning stands whole on its own line, before the attachments.
    lines = out.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("WARNING: attachments"))
    assert lines[warning].endswith("such as Dangerzone.")
    assert "\\x0d\\x1b[2Kinvoice\\u202efdp.exe" in lines[warning + 1]
    assert "image/png\\x1b]0;title\\x07" in lines[warning + 1]


def test_a_damaged_case_is_listed_marked_and_shown_with_its_problems(
    capsys, cases_dir: Path,
) -> None:
    code, out, _err = run(capsys, "review", "list", "--cases", str(cases_dir))
    assert code == 0
    [row_c] = [line for line in out.splitlines() if line.startswith("IC-C3C3C3C3")]
    assert "DAMAGED" in row_c
    assert not any("DAMAGED" in line for line in out.splitlines() if "IC-A1" in line)
    code, out, _err = run(capsys, "review", "show", "IC-C3C3C3C3", "--cases", str(cases_dir))
    assert code == 0
    assert "DAMAGED" in out and "the field 'categories' must be a list of choices" in out
    assert "categories: 5" in out  # the refused answer, as stored
    code, out, _err = run(capsys, "review", "stats", "--cases", str(cases_dir))
    assert code == 0 and "Damaged cases (counted with the answers that could be read): 1" in out


# -- Listing, filters, references ----------------------------------------------------------

def test_list_shows_ic_codes_and_filters(capsys, cases_dir: Path) -> None:
    _code, out, err = run(capsys, "review", "list", "--cases", str(cases_dir))
    codes = [line.split()[0] for line in out.splitlines()[1:]]
    assert codes == ["IC-A1A1A1A1", "IC-B2B2B2B2", "IC-C3C3C3C3"]
    assert "3 case(s)." in err
    _code, out, _err = run(capsys, "review", "list", "--cases", str(cases_dir),
                           "--risk", "elevated", "--country", "lb", "--since", "2026-02-01")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["IC-B2B2B2B2"]
    _code, out, _err = run(capsys, "review", "list", "--cases", str(cases_dir),
                           "--search", "SECOND LINE")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["IC-A1A1A1A1"]


@pytest.mark.parametrize(("args", "message"), [
    (["--risk", "immediate"], "--risk 'immediate' is not a value; choose one of "
                              "immediate_danger, elevated, dont_know."),
    (["--since", "30/11/2026"], "--since '30/11/2026' is not a day; write it as YYYY-MM-DD"),
    (["--until", "yesterday"], "--until 'yesterday' is not a day"),
    (["--status", "open"], "choose one of new, in_triage, needs_follow_up, confirmed, "
                           "not_confirmed, closed."),
    (["--tool", "nso"], "choose one of dont_know, pegasus"),
    (["--category", "malware"], "choose one of mercenary_spyware"),
    (["--country", "Lebanon"], "is not a country code"),
    (["--tag", "x"], "no case has a tag yet"),
])
def test_unknown_filter_values_are_refused_not_silently_empty(
    capsys, cases_dir: Path, args: list[str], message: str,
) -> None:
    for command in ("list", "stats"):
        code, out, err = run(capsys, "review", command, "--cases", str(cases_dir), *args)
        assert code == 1 and out == ""
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_show_takes_the_id_the_ic_code_or_a_unique_prefix(capsys, cases_dir: Path) -> None:
    for ref in (A, "IC-A1A1A1A1", "ic-a1a1a1a1", "a1a1a1", "IC-A1A1"):
        code, out, err = run(capsys, "review", "show", ref, "--cases", str(cases_dir))
        assert code == 0, err
        assert out.startswith(f"Case IC-A1A1A1A1 ({A})")


def test_an_ambiguous_prefix_is_one_sentence_listing_the_matches(
    capsys, tmp_path: Path,
) -> None:
    cases_dir = tmp_path / "cases"
    first, second = "abcd0000" + "0" * 24, "abcd1111" + "1" * 24
    for case_id in (first, second):
        write_case(cases_dir, case_id, "2026-01-01", full_fields())
    code, out, err = run(capsys, "review", "show", "abcd", "--cases", str(cases_dir))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "IC-ABCD0000" in err and "IC-ABCD1111" in err and "give more of the id" in err
    code, _out, err = run(capsys, "review", "show", "IC-FFFF", "--cases", str(cases_dir))
    assert code == 1 and "There is no case" in err


def test_a_missing_case_store_is_one_sentence(capsys, tmp_path: Path) -> None:
    code, _out, err = run(capsys, "review", "list", "--cases", str(tmp_path / "none"))
    assert code == 1 and "There is no case store" in err
    assert not (tmp_path / "none").exists()


# -- Stats ---------------------------------------------------------------------------------

def test_stats_prints_labels_not_codes(capsys, cases_dir: Path) -> None:
    _code, out, _err = run(capsys, "review", "stats", "--cases", str(cases_dir))
    assert "Cases: 3" in out
    assert "Lebanon" in out and "NSO Group Pegasus" in out and "At elevated risk" in out
    for code in ("immediate_danger", "pegasus ", "mercenary_spyware", " LB ", "dont_know"):
        assert code not in out
    _code, out, _err = run(capsys, "review", "stats", "--cases", str(cases_dir), "--lang", "ar")
    assert "لبنان" in out and "عدد الحالات: 3" in out and "Lebanon" not in out
    _code, out, _err = run(capsys, "review", "stats", "--cases", str(cases_dir),
                           "--country", "LB")
    assert "Cases: 2" in out


def test_an_unknown_language_is_one_sentence(capsys, cases_dir: Path) -> None:
    code, _out, err = run(capsys, "review", "export", "--format", "html", "--lang", "xx",
                          "--cases", str(cases_dir))
    assert code == 2 and "'xx' is not one of 'en', 'ar', 'fr', 'fa'" in err
    assert "Traceback" not in err and "ValueError" not in err


# -- Triage --------------------------------------------------------------------------------

def test_triage_commands_change_what_list_and_show_say(
    capsys, cases_dir: Path, tmp_path: Path,
) -> None:
    def review(*args: str) -> tuple[int, str, str]:
        return run(capsys, "review", *args, "--cases", str(cases_dir))

    assert review("status", "IC-B2B2", "confirmed")[0] == 0
    assert review("tag", "IC-B2B2", "campaign-x")[0] == 0
    assert review("tag", "IC-A1A1", "campaign-x")[0] == 0
    assert review("tag", "IC-A1A1", "campaign-x", "--remove")[0] == 0
    assert review("assign", "IC-B2B2", "Amal")[0] == 0
    note = tmp_path / "note.txt"
    note.write_text("Called the organisation.\nShe will send the SMS.", encoding="utf-8")
    code, _out, err = review("note", "IC-B2B2", "--text-file", str(note), "--author", "Amal")
    assert code == 0 and "Note #1 added to IC-B2B2B2B2 by Amal" in err

    _code, out, _err = review("list", "--status", "confirmed")
    [row] = out.splitlines()[1:]
    assert row.startswith("IC-B2B2B2B2") and "campaign-x" in row and "Amal" in row
    assert review("list", "--tag", "campaign-x")[1].count("IC-") == 1
    _code, out, _err = review("show", "IC-B2B2")
    assert "Status: Confirmed · Assignee: Amal · Tags: campaign-x" in out
    assert re.search(r"#1 [0-9]{4}-[0-9]{2}-[0-9]{2} Amal:\n    Called the organisation.\n"
                     r"    She will send the SMS.", out)


@pytest.mark.parametrize(("args", "message"), [
    (["status", "IC-A1A1", "done"], "There is no status 'done'; choose one of new,"),
    (["tag", "IC-A1A1", "\x1b[2Kevil"], "printable text"),
    (["assign", "IC-A1A1", "x" * 101], "at most 100 characters"),
    (["status", "IC-FFFF", "closed"], "There is no case"),
])
def test_bad_triage_input_is_one_sentence_and_changes_nothing(
    capsys, cases_dir: Path, args: list[str], message: str,
) -> None:
    code, _out, err = run(capsys, "review", *args, "--cases", str(cases_dir))
    assert code == 1 and message in err and err.count("\n") == 1
    _code, out, _err = run(capsys, "review", "show", "IC-A1A1", "--cases", str(cases_dir))
    assert "Status: New · Assignee: - · Tags: -" in out


def test_a_note_file_with_a_control_character_is_refused(
    capsys, cases_dir: Path, tmp_path: Path,
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("see \x1b]52;c;aGk=\x07", encoding="utf-8")
    code, _out, err = run(capsys, "review", "note", "IC-A1A1", "--text-file", str(note),
                          "--author", "Amal", "--cases", str(cases_dir))
    assert code == 1 and "control character" in err
    note.write_bytes(b"\xff\xfe")
    code, _out, err = run(capsys, "review", "note", "IC-A1A1", "--text-file", str(note),
                          "--author", "Amal", "--cases", str(cases_dir))
    assert code == 1 and "not UTF-8" in err


# -- Correlation ---------------------------------------------------------------------------

def test_show_and_related_list_the_cases_sharing_an_indicator(capsys, cases_dir: Path) -> None:
    _code, out, _err = run(capsys, "review", "show", "IC-B2B2", "--cases", str(cases_dir))
    related = out.split("== Related cases\n", 1)[1].split("\n\n", 1)[0]
    assert related == "IC-A1A1A1A1 (2026-01-14): domain evil.example"
    _code, out, _err = run(capsys, "review", "related", "IC-A1A1", "--cases", str(cases_dir))
    assert out.startswith("IC-B2B2B2B2  2026-02-20  ")
    _code, out, _err = run(capsys, "review", "list", "--group-by-indicator",
                           "--cases", str(cases_dir))
    assert out == "2 cases share domain evil.example:\n    IC-A1A1A1A1, IC-B2B2B2B2\n"


# -- Documents -----------------------------------------------------------------------------

class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


def assert_html_inert(page: str) -> None:
    parsed = parse_html(page)
    tags = {tag for tag, _attrs in parsed.tags}
    assert tags.isdisjoint({"script", "img", "iframe", "object", "embed", "link", "a", "form",
                            "input", "base", "meta http-equiv=refresh"})
    for _tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
        assert "src" not in attrs and "href" not in attrs or attrs.get("href", "").startswith("#")
    for ch in "".join(parsed.text):
        # Line feeds, tabs and the joiners Persian words need (ZWNJ, ZWJ) only.
        assert unicodedata.category(ch) not in {"Cc", "Cf"} or ch in "\n\t\u200c\u200d", repr(ch)


def test_show_html_writes_the_case_page_on_demand(
    capsys, cases_dir: Path, tmp_path: Path,
) -> None:
    assert not (cases_dir / A / "report.html").exists()  # never written at import
    out_file = tmp_path / "case.html"
    code, _out, err = run(capsys, "review", "show", "IC-A1A1", "--html", "--lang", "ar",
                          "--out", str(out_file), "--cases", str(cases_dir))
    assert code == 0, err
    page = out_file.read_text(encoding="utf-8")
    assert page.startswith('<!doctype html>\n<html lang="ar" dir="rtl">')
    assert "default-src 'none'" in page.replace("&#39;", "'")
    # The page's own style is allowed by its hash, so a browser applies it and nothing else.
    import base64
    import hashlib

    style = re.search(r"<style>(.*?)</style>", page, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src &#39;sha256-{digest}&#39;" in page
    assert "<h1>الحالة <bdi dir=\"ltr\">IC-A1A1A1A1</bdi></h1>" in page
    assert_html_inert(page)
    assert "[U+202E]gpj.exe" in page
    # Each value keeps its own direction and its line breaks (white-space: pre-wrap).
    assert re.search(r'<dd dir="auto">first line [^<]*\nsecond line\n', page)
    assert "white-space: pre-wrap" in page
    parsed = parse_html(page)
    assert [a for t, a in parsed.tags if t == "ul" and a.get("class") == "indicators"]
    assert "SHA-256" in page and "1" * 64 in page and "Dangerzone" in page
    code, out, _err = run(capsys, "review", "show", "IC-B2B2", "--html",
                          "--cases", str(cases_dir))
    assert code == 0 and out.startswith("<!doctype html>") and "Related cases" in out


def test_exports_from_the_command_line(capsys, cases_dir: Path, tmp_path: Path) -> None:
    def export(*args: str) -> tuple[int, str, str]:
        return run(capsys, "review", "export", "--cases", str(cases_dir), *args)

    code, _out, err = export("--format", "csv", "--out", str(tmp_path / "c.csv"),
                             "--codebook", str(tmp_path / "book.csv"), "--lang", "fr")
    assert code == 0, err
    assert "IC-C3C3C3C3 is damaged" in err
    text = (tmp_path / "c.csv").read_text(encoding="utf-8")
    assert text.startswith("\ufeff") and "Liban" in text
    book = list(csv.reader(io.StringIO((tmp_path / "book.csv").read_text()[1:], newline="")))
    assert ["risk_now", "elevated", "Élevé"] in book or any(
        row[:2] == ["risk_now", "elevated"] for row in book)
    code, out, _err = export("--format", "csv", "--codes", "--status", "new", "--country", "LB")
    rows = list(csv.DictReader(io.StringIO(out[1:], newline="")))
    assert [r["code"] for r in rows] == ["IC-A1A1A1A1", "IC-B2B2B2B2"]
    assert rows[1]["risk_now"] == "elevated"
    code, out, err = export("--format", "stix2")
    assert code == 0 and json.loads(out)["type"] == "bundle"
    assert "IC-B2B2B2B2: phone +9613123456 left out: phone numbers have no MVT type" in err
    assert_terminal_inert(err)
    code, _out, err = export("--format", "stix2", "--codes")
    assert code == 1 and "go with --format csv" in err


@given(st.text(max_size=60), st.booleans())
def test_the_listing_fast_path_agrees_with_terminal_safe(text: str, keep_newlines: bool) -> None:
    from intake.cli.review import _safe
    from intake.cli.terminal import terminal_safe

    assert _safe(text, keep_newlines=keep_newlines) == terminal_safe(
        text, keep_newlines=keep_newlines)
