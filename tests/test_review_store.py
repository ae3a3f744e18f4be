"""The case store's database: index, triage, search, correlation, migrations, crashes.

Cases are written by hand into a temporary cases folder in the layout the
importer writes (`write_case`), then read through `intake.review.store`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from test_review_exports import full_fields, write_case

from intake.review import store as store_module
from intake.review.indicators import Indicator
from intake.review.searchtext import fold, fts_query
from intake.review.store import (
    DATABASE,
    SCHEMA_VERSION,
    AmbiguousCase,
    CaseFilter,
    CaseNotFound,
    CaseStore,
    CaseStoreBusy,
    CaseStoreError,
    FilterError,
    index_case,
)
from intake.review.triage import TriageError

A = "a1" * 16
B = "b2" * 16
C = "c3" * 16
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    store = tmp_path / "cases"
    write_case(store, A, "2026-01-14", full_fields(
        narrative="قال مُحَمَّد إنّ الرسالة وصلت إلى أَحْمَد",
        country="LB",
        indicators="hxxps://track.evil[.]example/login?id=1\n03 123 456\ncom.evil.spy",
    ))
    write_case(store, B, "2026-02-20", full_fields(
        narrative="Le téléphone de Zoë a été saisi à l'aéroport.",
        country="LB",
        categories=["device_seizure"],
        risk_now="elevated",
        suspected_tool="pegasus",
        indicators="other.evil.example\n+961 3 123 456\nSupport@Evil.Example",
    ))
    write_case(store, C, "2026-03-02", full_fields(
        narrative="پیامی از یک شمارهٔ ناشناس رسید؛ کد ۱۲۳۴ را خواستند.",
        country="IR",
        indicators="support@evil.example\nhttps://unrelated.example/",
    ), lang="fa")
    return store


def ids(summaries) -> list[str]:
    return [s.case_id for s in summaries]


# -- Listing and filters -------------------------------------------------------------------

def test_the_database_lives_in_the_cases_folder_owner_only(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        assert ids(store.cases()) == [A, B, C]
    database = cases_dir / DATABASE
    assert database.is_file() and (database.stat().st_mode & 0o077) == 0
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filters_select_by_every_answer_and_day(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        assert ids(store.cases(CaseFilter(country="lb"))) == [A, B]
        assert ids(store.cases(CaseFilter(country="IR"))) == [C]
        assert ids(store.cases(CaseFilter(category="device_seizure"))) == [B]
        assert ids(store.cases(CaseFilter(risk="elevated"))) == [B]
        assert ids(store.cases(CaseFilter(tool="pegasus"))) == [B]
        assert ids(store.cases(CaseFilter(since="2026-02-01"))) == [B, C]
        assert ids(store.cases(CaseFilter(until="2026-02-20"))) == [A, B]
        assert ids(store.cases(CaseFilter(since="٢٠٢٦-٠٢-٢١"))) == [C]  # Arabic-Indic digits
        store.set_status(B, "confirmed")
        store.add_tag(C, "campaign-x")
        store.set_assignee(A, "Amal")
        assert ids(store.cases(CaseFilter(status="confirmed"))) == [B]
        assert ids(store.cases(CaseFilter(status="new"))) == [A, C]
        assert ids(store.cases(CaseFilter(tag="campaign-x"))) == [C]
        assert ids(store.cases(CaseFilter(assignee="Amal"))) == [A]


@pytest.mark.parametrize(("filters", "listed"), [
    (CaseFilter(risk="immediate"), "immediate_danger, elevated, dont_know"),
    (CaseFilter(since="30/11/2026"), "YYYY-MM-DD"),
    (CaseFilter(until="2026-02-30"), "YYYY-MM-DD"),
    (CaseFilter(status="open"), "new, in_triage, needs_follow_up"),
    (CaseFilter(category="spyware"), "mercenary_spyware, phishing"),
    (CaseFilter(tool="nso"), "pegasus"),
    (CaseFilter(country="XX"), "ISO 3166"),
    (CaseFilter(tag="nothing"), "no case has a tag yet"),
    (CaseFilter(search="  ... "), "type a word"),
])
def test_unknown_filter_values_are_refused_with_the_valid_ones(
    cases_dir: Path, filters: CaseFilter, listed: str
) -> None:
    with CaseStore(cases_dir) as store, pytest.raises(FilterError, match=listed) as refused:
        store.cases(filters)
    assert "\n" not in str(refused.value)


def test_an_unknown_tag_lists_the_tags_in_use(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        store.add_tag(A, "pegasus-2026")
        store.add_tag(B, "follow-up")
        with pytest.raises(FilterError, match="the tags in use are follow-up, pegasus-2026"):
            store.cases(CaseFilter(tag="pegasus"))


# -- Case references -----------------------------------------------------------------------

def test_a_case_is_found_by_id_code_or_unique_prefix(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        refs = (A, A.upper(), "IC-A1A1A1A1", "ic-a1a1a1a1", "a1a1", " IC-A1A1 ", "IC-A1A1A1A1A1")
        for ref in refs:
            assert store.case(ref).case_id == A, ref
        with pytest.raises(CaseNotFound, match="There is no case"):
            store.case("IC-DEADBEEF")
        with pytest.raises(CaseNotFound, match="at least 4"):
            store.case("a1")
        with pytest.raises(CaseNotFound, match="not a case reference"):
            store.case("../etc/passwd")


def test_an_ambiguous_prefix_lists_the_matches(tmp_path: Path) -> None:
    cases_dir = tmp_path / "cases"
    first, second = "abcd0000" + "0" * 24, "abcd0000" + "1" * 24
    for case_id in (first, second):
        write_case(cases_dir, case_id, "2026-01-01", full_fields())
    with CaseStore(cases_dir) as store:
        with pytest.raises(AmbiguousCase) as ambiguous:
            store.case("IC-ABCD")
        assert ambiguous.value.matches == (first, second)
        message = str(ambiguous.value)
        assert first in message and second in message and "give more of the id" in message
        assert message.count("\n") == 0
        # Both share one IC code, so the code alone is ambiguous too; the id is not.
        with pytest.raises(AmbiguousCase):
            store.case("IC-ABCD0000")
        assert store.case(first).case_id == first


# -- Triage --------------------------------------------------------------------------------

def test_triage_is_kept_in_the_database(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        assert store.triage(A).status == "new"
        store.set_status(A, "needs_follow_up")
        assert store.add_tag(A, "  Pegasus 2026 ") == "Pegasus 2026"
        store.add_tag(A, "Pegasus 2026")  # twice changes nothing
        store.add_tag(A, "برمجيات-تجسس")
        store.set_assignee(A, "Amal")
        assert store.remove_tag(A, "Pegasus 2026") is True
        assert store.remove_tag(A, "Pegasus 2026") is False
    with CaseStore(cases_dir) as store:
        assert store.triage(A) == store_module.Triage(
            "needs_follow_up", "Amal", ("برمجيات-تجسس",)
        )
        [summary] = [s for s in store.cases() if s.case_id == A]
        assert summary.status == "needs_follow_up" and summary.assignee == "Amal"
        assert summary.tags == ("برمجيات-تجسس",)
        store.set_assignee(A, "")
        assert store.triage(A).assignee == ""


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.set_status(A, "done"), "choose one of new, in_triage"),
    (lambda s: s.add_tag(A, "   "), "cannot be empty"),
    (lambda s: s.add_tag(A, "x" * 65), "at most 64"),
    (lambda s: s.add_tag(A, "evil\x1b[2K"), "printable"),
    (lambda s: s.add_tag(A, "evil\u202egpj"), "printable"),
    (lambda s: s.set_assignee(A, "Amal\r\nroot"), "printable"),
    (lambda s: s.add_note(A, "x", author=""), "author"),
    (lambda s: s.add_note(A, "   \n ", author="Amal"), "empty"),
    (lambda s: s.add_note(A, "see \x1b]52;c;aGk=\x07", author="Amal"), "control character"),
    (lambda s: s.add_note(A, "x" * 20_001, author="Amal"), "at most 20000"),
    (lambda s: s.set_status("f" * 32, "closed"), "There is no case"),
])
def test_bad_triage_input_is_refused_in_one_sentence(cases_dir: Path, call, message) -> None:
    with CaseStore(cases_dir) as store:
        with pytest.raises((TriageError, CaseNotFound), match=message):
            call(store)
        assert store.triage(A) == store_module.Triage("new", "", ())
        assert store.notes(A) == []


def test_notes_are_an_append_only_log_with_author_and_day(cases_dir: Path) -> None:
    import datetime

    with CaseStore(cases_dir) as store:
        first = store.add_note(A, "Called the organisation.\nThey will ask her.", author="Amal",
                               day=datetime.date(2026, 3, 1))
        second = store.add_note(A, "یادداشت\u200cها به فارسی", author="Reza")
        assert [n.number for n in store.notes(A)] == [first.number, second.number]
        assert store.notes(A)[0].text == "Called the organisation.\nThey will ask her."
        assert store.notes(A)[0].day == "2026-03-01" and store.notes(A)[0].author == "Amal"
        assert store.notes(A)[1].day == datetime.date.today().isoformat()
        assert store.notes(B) == []
        assert not hasattr(store, "delete_note") and not hasattr(store, "edit_note")
    # Not even the database lets a note change or go.
    with sqlite3.connect(cases_dir / DATABASE) as db:
        for statement in ("UPDATE notes SET text = 'rewritten'", "DELETE FROM notes"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
    with CaseStore(cases_dir) as store:
        assert [n.text for n in store.notes(A)][0].startswith("Called")


# -- Full-text search ----------------------------------------------------------------------

@pytest.mark.parametrize(("written", "typed"), [
    ("مُحَمَّد", "محمد"),          # harakat and shadda
    ("محمد", "مُحَمَّد"),
    ("مــحــمــد", "محمد"),        # tatweel
    ("أحمد", "احمد"),             # hamza on alef
    ("إبراهيم", "ابراهيم"),
    ("آمنة", "امنه"),             # madda, teh marbuta
    ("مستشفى", "مستشفي"),         # alef maksura
    ("علي", "علی"),               # Arabic yeh / Persian yeh
    ("كتاب", "کتاب"),             # Arabic kaf / Persian keheh
    ("پیام", "پيام"),
    ("كود ١٢٣٤", "كود 1234"),     # Arabic-Indic digits
    ("کد ۱۲۳۴", "كد ١٢٣٤"),       # Persian and Arabic-Indic digits, keheh
    ("Téléphone", "telephone"),   # Latin accents and case
    ("ZOË", "zoe"),
    ("ﻣﺤﻤﺪ", "محمد"),              # presentation forms
    ("نمی\u200cخواهم", "نمیخواهم"),  # the Persian half-space (ZWNJ)
])
def test_folding_makes_both_spellings_the_same(written: str, typed: str) -> None:
    assert fold(written) == fold(typed)
    assert fold(fold(written)) == fold(written)


def test_search_finds_arabic_persian_french_and_english_as_typed(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        def found(text: str) -> list[str]:
            return ids(store.cases(CaseFilter(search=text)))

        assert found("محمد") == [A]            # written مُحَمَّد
        assert found("مُحَمَّد") == [A]
        assert found("احمد") == [A]            # written أَحْمَد
        assert found("الرساله") == [A]         # written الرسالة
        assert found("telephone aeroport") == [B]
        assert found("TÉLÉPHONE") == [B]
        assert found("پيامي") == [C]           # written پیامی, Persian yeh
        assert found("1234") == [C]            # written ۱۲۳۴
        assert found("evil") == [A, B, C]      # indicators are searched too
        assert found("track.evil.example") == [A]
        assert found("com.evil.spy") == [A]
        assert found("nothing-like-this") == []
        assert found('"unbalanced OR NEAR(') == []  # never an FTS5 syntax error


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('a"b OR c*') == '"a""b"* "or"* "c*"*'
    assert fts_query(" ... ") is None


# -- Correlation ---------------------------------------------------------------------------

def test_related_cases_share_a_normalised_indicator(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        related_to_a = {r.case_id: set(r.shared) for r in store.related(A)}
        # The URL's registered domain and the phone in E.164 (the case's country, LB).
        assert related_to_a == {B: {Indicator("domain", "evil.example"),
                                    Indicator("phone", "+9613123456")}}
        related_to_b = {r.case_id: set(r.shared) for r in store.related(B)}
        assert related_to_b[C] == {Indicator("email", "support@evil.example")}
        assert store.related(B)[0].case_id == A  # two shared indicators before one
        assert Indicator("domain", "track.evil.example") in store.indicators(A)


def test_groups_show_a_campaign(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        groups = {g.case_ids: g.indicators for g in store.groups()}
    assert groups == {
        (A, B): (Indicator("phone", "+9613123456"), Indicator("domain", "evil.example")),
        (B, C): (Indicator("email", "support@evil.example"),),
    }


def test_correlation_works_offline(tmp_path: Path) -> None:
    """The Public Suffix List and the phone metadata ship with their packages."""
    script = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("no network on the air-gapped machine")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from intake.review.indicators import classify, correlation_keys, e164, registered_domain
        assert registered_domain("a.b.evil.co.uk") == "evil.co.uk"
        assert registered_domain("x.blogspot.com") == "x.blogspot.com"
        assert e164("03 123 456", "LB") == "+9613123456"
        print(correlation_keys(classify("https://mail.evil.com.eg/x"), "EG"))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "evil.com.eg" in result.stdout and "mail.evil.com.eg" in result.stdout


# -- The index heals itself ----------------------------------------------------------------

def test_opening_indexes_new_folders_and_drops_gone_ones(cases_dir: Path, tmp_path: Path) -> None:
    with CaseStore(cases_dir) as store:
        store.add_note(C, "keep me", author="Amal")
        store.set_status(C, "confirmed")
    # An import renamed D into place and stopped before its index write.
    d = "d4" * 16
    write_case(cases_dir, d, "2026-04-01", full_fields())
    # C's folder is moved away.
    (cases_dir / C).rename(tmp_path / "away")
    with CaseStore(cases_dir) as store:
        assert ids(store.cases()) == [A, B, d]
        with pytest.raises(CaseNotFound):
            store.case(C)
    # Its triage was kept, hidden, and comes back with the folder.
    (tmp_path / "away").rename(cases_dir / C)
    with CaseStore(cases_dir) as store:
        assert ids(store.cases()) == [A, B, C, d]
        assert [n.text for n in store.notes(C)] == ["keep me"]
        assert store.triage(C).status == "confirmed"


def test_index_case_adds_one_case_without_a_full_reconcile(cases_dir: Path) -> None:
    with CaseStore(cases_dir):
        pass
    d = "d4" * 16
    write_case(cases_dir, d, "2026-04-01", full_fields(narrative="قضية جديدة"))
    index_case(cases_dir, d)
    with sqlite3.connect(cases_dir / DATABASE) as db:
        assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 4
    with CaseStore(cases_dir, reconcile=False) as store:
        assert ids(store.cases(CaseFilter(search="جديده"))) == [d]
        with pytest.raises(CaseStoreError):
            store.index_case("../" + d)


def test_a_report_edited_on_disk_is_indexed_again_and_shown_damaged(cases_dir: Path) -> None:
    with CaseStore(cases_dir) as store:
        assert not any(s.damaged for s in store.cases())
    report = cases_dir / A / "report.json"
    document = json.loads(report.read_text())
    document["fields"]["categories"] = 5
    report.write_text(json.dumps(document))
    with CaseStore(cases_dir) as store:
        [a] = [s for s in store.cases() if s.case_id == A]
        assert a.damaged and "'categories'" in a.problems[0]
        assert a.categories == () and a.country == "LB"  # the sound answers stay
        assert store.stats().damaged == 1
        assert store.case(A).damaged


def test_a_lone_surrogate_in_a_report_never_stops_the_index(cases_dir: Path) -> None:
    """JSON can carry "\\ud800", which Python reads as a lone surrogate and SQLite cannot
    store: such a case is indexed with U+FFFD in its place, and the others stay listed."""
    d = "d4" * 16
    write_case(cases_dir, d, "2026-04-01", full_fields())
    report = cases_dir / d / "report.json"
    document = json.loads(report.read_text())
    document["fields"].update(narrative="bad \ud800 half", notification_text="x\udfffy",
                              indicators="evil\ud800.example\nsupport@evil.example")
    report.write_text(json.dumps(document), encoding="ascii")  # "\\ud800", as a client sent
    with CaseStore(cases_dir) as store:
        assert ids(store.cases()) == [A, B, C, d]
        assert ids(store.cases(CaseFilter(search="half"))) == [d]
        assert {r.case_id for r in store.related(d)} >= {B, C}  # its sound indicator links
        store.add_note(d, "still triaged", author="Amal")
        # A command line's bytes that are not UTF-8 arrive as lone surrogates too.
        assert ids(store.cases(CaseFilter(search="bad \udcff"))) == [d]
        assert ids(store.cases(CaseFilter(indicator="domain:\udcff.example"))) == []


# -- Migrations ----------------------------------------------------------------------------

def test_a_version_1_index_is_upgraded_in_place(cases_dir: Path) -> None:
    path = cases_dir / DATABASE
    with sqlite3.connect(path) as db:
        for statement in store_module.MIGRATIONS[1]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO cases VALUES (?, '2026-01-14', 'en', 'LB', '', '', '[]', '[]', 0, "
            "'[]', 'whatever')",
            (A,),
        )
    with CaseStore(cases_dir) as store:
        assert ids(store.cases()) == [A, B, C]
        assert ids(store.cases(CaseFilter(search="محمد"))) == [A]  # re-indexed with its text
        assert store.related(A)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_a_database_from_a_newer_version_is_refused(cases_dir: Path) -> None:
    with sqlite3.connect(cases_dir / DATABASE) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CaseStoreError, match="newer version of intake"):
        CaseStore(cases_dir)


def test_a_file_that_is_not_a_database_is_one_sentence(cases_dir: Path) -> None:
    (cases_dir / DATABASE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(CaseStoreError, match="not a case store database"):
        CaseStore(cases_dir)


def test_a_missing_cases_folder_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(CaseStoreError, match="import a bundle first"):
        CaseStore(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


# -- Crashes -------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from intake.review import store

    # A small page cache, so that the open transaction spills pages into the WAL file
    # (as a large import does) and the kill interrupts real writes to disk.
    connect = store._connect
    def small_cache(path, *args):
        db = connect(path, *args)
        db.execute("PRAGMA cache_size = 8")
        return db
    store._connect = small_cache

    def progress(done, total):
        if done == 299:
            print("mid-transaction", flush=True)
            time.sleep(120)

    store.CaseStore(Path(sys.argv[1]), progress=progress)
""")


def test_a_writer_killed_mid_transaction_leaves_a_consistent_store(tmp_path: Path) -> None:
    cases_dir = tmp_path / "cases"
    many = [f"{i:032x}" for i in range(1, 601)]
    for case_id in many:
        write_case(cases_dir, case_id, "2026-05-01", full_fields(narrative=f"case {case_id}"))
    with CaseStore(cases_dir, reconcile=False) as store:
        store.index_case(many[0])
        store.add_note(many[0], "written before the crash", author="Amal")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(cases_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert writer.stdout.readline().strip() == "mid-transaction", writer.stderr.read()
        # 300 cases are written inside the open transaction when the writer dies.
        assert (cases_dir / (DATABASE + "-wal")).stat().st_size > 0
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    with sqlite3.connect(cases_dir / DATABASE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # All or nothing: the transaction never committed, so only the first case,
        # indexed before, is there.
        assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM case_text").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 1
    with CaseStore(cases_dir) as store:
        assert len(store.cases()) == 600
        assert ids(store.cases(CaseFilter(search=many[-1]))) == [many[-1]]
        assert [n.text for n in store.notes(many[0])] == ["written before the crash"]


def test_a_folder_gone_while_the_store_is_open_is_not_found(cases_dir: Path, tmp_path) -> None:
    with CaseStore(cases_dir) as store:
        (cases_dir / A).rename(tmp_path / "away")
        with pytest.raises(CaseNotFound, match="no longer in"):
            store.case("IC-A1A1")
        assert A not in ids(store.cases())


# -- Threads and other processes -----------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # the write lock, as a long import holds it
    print("holding", flush=True)
    sys.stdin.readline()
    db.execute("COMMIT")
""")


class Holder:
    """Another process holding the database's write lock until `release`."""

    def __init__(self, database: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(database)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout.readline().strip() == "holding"

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)


def test_readers_go_on_while_a_change_waits_for_another_process(cases_dir: Path) -> None:
    """The desk's threads share one store: one of them waiting to write must not stop
    the others from reading (each thread has its own connection; WAL readers never wait)."""
    with CaseStore(cases_dir) as store:
        holder = Holder(cases_dir / DATABASE)
        try:
            writer = threading.Thread(target=store.set_status, args=(A, "confirmed"))
            writer.start()
            while not store._writer.locked():  # the change is under way, and must wait
                assert writer.is_alive()
            read: dict[str, object] = {}

            def reader() -> None:
                read["cases"] = ids(store.cases())
                read["triage"] = store.triage(A).status
                read["related"] = [r.case_id for r in store.related(A)]
                read["found"] = ids(store.cases(CaseFilter(search="محمد")))

            thread = threading.Thread(target=reader)
            thread.start()
            thread.join(timeout=20)
            assert not thread.is_alive(), "a reader waited for the writer"
            assert writer.is_alive()  # still waiting for the other process
            assert read == {"cases": [A, B, C], "triage": "new", "related": [B], "found": [A]}
        finally:
            holder.release()
        writer.join(timeout=30)
        assert store.triage(A).status == "confirmed"


def test_a_change_that_waits_too_long_is_one_sentence_and_changes_nothing(
    cases_dir: Path,
) -> None:
    with CaseStore(cases_dir, busy_timeout=0.2) as store:
        holder = Holder(cases_dir / DATABASE)
        try:
            for change in (lambda: store.add_note(A, "waits", author="Amal"),
                           lambda: store.set_status(A, "closed"),
                           lambda: store.add_tag(A, "x")):
                with pytest.raises(CaseStoreBusy, match=r"busy: another intake command") as busy:
                    change()
                assert "\n" not in str(busy.value)
            assert ids(store.cases()) == [A, B, C]  # reading never waits
        finally:
            holder.release()
        assert store.notes(A) == [] and store.triage(A) == store_module.Triage("new", "", ())
        store.add_note(A, "now it goes in", author="Amal")
        assert [n.text for n in store.notes(A)] == ["now it goes in"]


def test_threads_and_another_process_write_together_and_lose_nothing(cases_dir: Path) -> None:
    other = textwrap.dedent("""
        import sys
        from pathlib import Path
        from intake.review.store import CaseStore
        with CaseStore(Path(sys.argv[1])) as store:
            for n in range(30):
                store.add_note(sys.argv[2], f"process {n}", author="Reza")
                store.add_tag(sys.argv[2], f"p{n % 3}")
    """)
    with CaseStore(cases_dir) as store:
        process = subprocess.Popen([sys.executable, "-c", other, str(cases_dir), B],
                                   stderr=subprocess.PIPE, text=True)
        errors: list[BaseException] = []

        def work(number: int) -> None:
            try:
                for n in range(15):
                    store.add_note(A, f"thread {number} note {n}", author="Amal")
                    store.set_status(A, "in_triage" if n % 2 else "needs_follow_up")
                    store.cases(CaseFilter(search="evil"))
                    store.related(A)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert process.wait(timeout=120) == 0, process.stderr.read()
        assert errors == []
        notes = store.notes(A) + store.notes(B)
        assert len(notes) == 6 * 15 + 30
        assert len({n.number for n in notes}) == len(notes)
        assert sorted(n.text for n in store.notes(A)) == sorted(
            f"thread {t} note {n}" for t in range(6) for n in range(15))
        assert store.triage(B).tags == ("p0", "p1", "p2")
    with sqlite3.connect(cases_dir / DATABASE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_new_connection_keeps_the_locks_this_process_holds(cases_dir: Path) -> None:
    """Closing any descriptor of a database file drops every POSIX lock the process holds
    on it, SQLite's included. Without its shared lock, the store's open connections look
    gone to another process, which then checkpoints and deletes the WAL under them when
    it closes (the disk I/O errors of a desk whose threads opened connections while the
    command line wrote). A new connection must never open and close the file itself."""
    with CaseStore(cases_dir) as store:
        with store._connection(), store._connection():  # two threads' connections at once
            pass
        CaseStore(cases_dir, reconcile=False).close()  # a second store in this process
        # Another process reads, then closes: it must see this one's connections and leave
        # the WAL alone, and see what this one writes after.
        subprocess.run([sys.executable, "-c", NOTES_COUNTER, str(cases_dir / DATABASE)],
                       timeout=60, check=True, capture_output=True)
        assert (cases_dir / (DATABASE + "-wal")).exists()
        store.add_note(A, "after the other process", author="Amal")
        seen = subprocess.run([sys.executable, "-c", NOTES_COUNTER, str(cases_dir / DATABASE)],
                              timeout=60, check=True, capture_output=True, text=True)
        assert seen.stdout.strip() == "1"


NOTES_COUNTER = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1])
    print(db.execute("SELECT count(*) FROM notes").fetchone()[0])
    db.close()
""")
