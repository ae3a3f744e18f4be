"""The case store: the case folders and one SQLite database beside them.

The folders (`intake.review.casestore`: ``report.json``, ``case.json``,
``attachments/``) are the decrypted record. ``<cases>/cases.db`` holds:

- an **index** derived from the folders (the answers lists and filters need,
  the normalised indicators, the folded text for full-text search), so that a
  listing reads one database instead of two JSON files per case;
- the **triage data** (status, tags, assignee, notes), which exists only in
  this database: back it up with the cases. One database serves one cases
  folder; merging triage between machines is not supported;
- the **replies** to sources (`add_reply`): the reviewer's text as written,
  the reply's age ciphertext to the case's ``reply_to`` (its plaintext padded,
  `intake.crypto.reply`), and the day it went into a return file
  (`unsent_replies`, `mark_sent`). Like notes, a reply is never changed or
  deleted, only marked sent.

A case's source thread and its follow-ups (`intake.review.casestore`) are
indexed too: `case_for_thread` finds the case a new submission of a thread
belongs to, and full-text search covers the follow-ups' messages.

Use it like this::

    from intake.review.store import CaseFilter, CaseStore

    with CaseStore(cases_dir) as store:             # opens, upgrades, reconciles
        new = [s.code for s in store.cases(CaseFilter(status="new", search="محمد"))]
        case = store.case("IC-671DDD1C")            # a 32-hex id, an IC code or a prefix
        store.set_status(case.case_id, "in_triage")
        store.add_tag(case.case_id, "pegasus-2026")
        store.set_assignee(case.case_id, "Amal")
        store.add_note(case.case_id, "Asked for the notification.", author="Amal")
        store.triage(case.case_id), store.notes(case.case_id)
        store.related(case.case_id)                 # other cases sharing an indicator
        store.groups()                              # cases grouped by a shared indicator
        store.stats(CaseFilter(since="2026-01-01"))
        total, rows = store.page(CaseFilter(tag="pegasus-2026"), offset=0, limit=50)

What it promises:

- **Atomic and durable.** Every change is one SQLite transaction, written with
  ``synchronous=FULL`` in WAL mode; a writer killed mid-transaction leaves the
  database as it was before that transaction.
- **Self-healing index.** Opening the store reconciles the index with the
  folders: a folder not yet indexed (an import interrupted between its rename
  and its index write) is indexed, a folder changed on disk is indexed again,
  an index row whose folder is gone is dropped. The importer calls
  `CaseStore.index_case` (or `index_case`) right after it renames a case in.
- **Triage is never lost by the index.** Dropping or rebuilding index rows
  never touches status, tags, assignee or notes; a case's triage waits, hidden,
  if its folder is moved away and comes back with it. Notes are an append-only
  log (author and day): the database itself refuses to change or delete one.
- **Damaged cases stay visible.** A case whose files break the schema is
  indexed from the answers that pass it, with its problems, and listed as
  damaged; it never stops a listing (see `intake.review.casestore`).
- **Bad input is one sentence.** Unknown filter values, unparseable days,
  unknown or ambiguous case references raise an `IntakeError` subclass that
  lists what is valid.
- **Threads and processes.** One store may be used from many threads at once
  (the desk's server runs each request in its own), while other processes
  (the command line) open the same database. Each thread works on a
  connection of its own, taken from a small pool, so in WAL mode a reader
  never waits for a writer, in this process or another. Writers take one
  lock per process, then SQLite's write lock, waiting up to `busy_timeout`
  seconds for another process's transaction; past it, `CaseStoreBusy` says so
  in one sentence and nothing is changed.

Full-text search covers the narrative, the notification text and the
indicators (as typed and normalised), folded by `intake.review.searchtext` in
the same way when indexing and when searching. Correlation compares the
indicators' `intake.review.indicators.correlation_keys`.

The schema of the database carries ``PRAGMA user_version``; `MIGRATIONS`
upgrades an older database in place, one transaction per step, and a database
from a newer version of intake is refused rather than guessed at.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from intake import schema
from intake.crypto.reply import encrypt_reply
from intake.errors import IntakeError
from intake.review import searchtext, triage
from intake.review.casestore import (
    CASE_ID,
    FOLLOW_UPS,
    META_FILE,
    REPORT_FILE,
    Case,
    case_code,
    load_case,
)
from intake.review.indicators import Indicator, correlation_keys, indicators_of
from intake.review.triage import Note

DATABASE = "cases.db"
#: Seconds a change waits for another process's write (an import, a reconcile) to end.
BUSY_TIMEOUT = 30.0
#: Connections kept open for the next thread; more are opened when threads need them.
MAX_IDLE_CONNECTIONS = 8
#: The schema version this code writes; see `MIGRATIONS`.
SCHEMA_VERSION = 3
#: A prefix shorter than this is refused: it would match too much to be meant.
MIN_PREFIX = 4
#: Fields whose folded text full-text search covers (the indicators as typed too).
SEARCHED_FIELDS = ("narrative", "notification_text", "indicators")
#: A case reference: an optional "IC-", then the id or a prefix of it.
_REFERENCE = re.compile(rf"(?:IC-?)?([0-9A-Fa-f]{{{MIN_PREFIX},32}})", re.IGNORECASE)
#: How many matches an ambiguous reference lists.
SHOWN_MATCHES = 5

Progress = Callable[[int, int], None]

# Each entry upgrades the database from the version before it, in one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1: the index of the performance issue: what listings and stats read.
    1: (
        """CREATE TABLE cases (
            case_id TEXT PRIMARY KEY NOT NULL,
            received_on TEXT NOT NULL,
            lang TEXT NOT NULL,
            country TEXT NOT NULL,
            risk TEXT NOT NULL,
            suspected_tool TEXT NOT NULL,
            categories TEXT NOT NULL,
            target_profile TEXT NOT NULL,
            attachments INTEGER NOT NULL,
            problems TEXT NOT NULL,
            stamp TEXT NOT NULL
        )""",
        "CREATE INDEX cases_by_day ON cases (received_on, case_id)",
        """CREATE TABLE case_categories (
            case_id TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
            category TEXT NOT NULL,
            PRIMARY KEY (case_id, category)
        )""",
    ),
    # 2: the reviewers' desk: triage, correlation and full-text search.
    2: (
        """CREATE TABLE triage (
            case_id TEXT PRIMARY KEY NOT NULL,
            status TEXT NOT NULL DEFAULT 'new',
            assignee TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE tags (
            case_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY (case_id, tag)
        )""",
        """CREATE TABLE notes (
            number INTEGER PRIMARY KEY AUTOINCREMENT,
            case_id TEXT NOT NULL,
            author TEXT NOT NULL,
            day TEXT NOT NULL,
            text TEXT NOT NULL
        )""",
        "CREATE INDEX notes_by_case ON notes (case_id, number)",
        """CREATE TRIGGER notes_are_never_changed BEFORE UPDATE ON notes
           BEGIN SELECT RAISE(ABORT, 'notes are append-only'); END""",
        """CREATE TRIGGER notes_are_never_deleted BEFORE DELETE ON notes
           BEGIN SELECT RAISE(ABORT, 'notes are append-only'); END""",
        """CREATE TABLE case_indicators (
            case_id TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (case_id, kind, value)
        )""",
        "CREATE INDEX indicators_by_value ON case_indicators (kind, value)",
        # Text is folded in Python before it gets here, so the tokenizer only splits.
        """CREATE VIRTUAL TABLE case_text USING fts5 (
            case_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 0'
        )""",
        # Cases indexed by version 1 have no indicators or text yet: index them again.
        "UPDATE cases SET stamp = ''",
    ),
    # 3: the follow-up channel: a case's source thread, its follow-ups, replies to it.
    3: (
        # Derived from case.json and the follow-ups folder, like the rest of the index.
        """CREATE TABLE case_threads (
            case_id TEXT PRIMARY KEY NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
            thread TEXT NOT NULL,
            reply_to TEXT NOT NULL
        )""",
        "CREATE INDEX case_threads_by_thread ON case_threads (thread)",
        """CREATE TABLE follow_ups (
            submission_id TEXT PRIMARY KEY NOT NULL,
            case_id TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
            received_on TEXT NOT NULL,
            sha256 TEXT NOT NULL
        )""",
        "CREATE INDEX follow_ups_by_case ON follow_ups (case_id)",
        # Triage data: only here, never rebuilt; a reply is never changed but for the day
        # it was sent, nor deleted.
        """CREATE TABLE replies (
            reply_id TEXT PRIMARY KEY NOT NULL,
            case_id TEXT NOT NULL,
            thread TEXT NOT NULL,
            day TEXT NOT NULL,
            text TEXT NOT NULL,
            ciphertext BLOB NOT NULL,
            sent_on TEXT
        )""",
        "CREATE INDEX replies_by_case ON replies (case_id, day)",
        """CREATE TRIGGER replies_keep_what_was_written
           BEFORE UPDATE OF reply_id, case_id, thread, day, text, ciphertext ON replies
           BEGIN SELECT RAISE(ABORT, 'a reply is never changed'); END""",
        """CREATE TRIGGER replies_are_sent_once BEFORE UPDATE OF sent_on ON replies
           WHEN OLD.sent_on IS NOT NULL
           BEGIN SELECT RAISE(ABORT, 'a reply is marked sent once'); END""",
        """CREATE TRIGGER replies_are_never_deleted BEFORE DELETE ON replies
           BEGIN SELECT RAISE(ABORT, 'replies are never deleted'); END""",
        # Cases indexed before have no threads or follow-ups in the index: index them again.
        "UPDATE cases SET stamp = ''",
    ),
}


class CaseStoreError(IntakeError):
    """The case store cannot be opened or used as asked."""


class CaseStoreBusy(CaseStoreError):
    """Another process held the database's write lock for longer than the busy timeout."""


class FilterError(IntakeError):
    """A filter value the case store does not know, with the valid ones listed.

    `option` names the filter (a `CaseFilter` field), so that a caller speaking
    another language (the reviewers' desk) can say it in its own words.
    """

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


class CaseNotFound(IntakeError):
    """No case matches a reference."""


class AmbiguousCase(IntakeError):
    """A prefix that matches several cases; `matches` lists their ids."""

    def __init__(self, message: str, matches: Sequence[str]):
        super().__init__(message)
        self.matches = tuple(matches)


# -- What the store returns ----------------------------------------------------------------

@dataclass(frozen=True)
class CaseFilter:
    """Which cases to list; None means "any". Values are machine values (schema codes).

    `since` and `until` are ISO days (YYYY-MM-DD, inclusive) of arrival;
    `search` is free text, every word of which must occur (as a word prefix);
    `assignee` "" selects the cases given to nobody; `indicator` is
    ``kind:value``, a correlation key (see `Relation.shared`) the case has.
    """

    status: str | None = None
    tag: str | None = None
    category: str | None = None
    country: str | None = None
    risk: str | None = None
    tool: str | None = None
    since: str | None = None
    until: str | None = None
    search: str | None = None
    assignee: str | None = None
    indicator: str | None = None


class CaseSummary(NamedTuple):
    """One row of a listing: what the index knows of a case, and its triage.

    A named tuple rather than a dataclass: a listing makes 10,000 of them.
    """

    case_id: str
    received_on: str
    lang: str
    country: str
    risk: str
    suspected_tool: str
    categories: tuple[str, ...]
    target_profile: tuple[str, ...]
    attachments: int
    problems: tuple[str, ...]
    status: str
    assignee: str
    tags: tuple[str, ...]

    @property
    def code(self) -> str:
        return case_code(self.case_id)

    @property
    def damaged(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class Triage:
    """A case's status, assignee ("" when nobody) and tags (sorted)."""

    status: str
    assignee: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Relation:
    """Another case that shares indicators with the one asked about, and which."""

    case_id: str
    received_on: str
    shared: tuple[Indicator, ...]

    @property
    def code(self) -> str:
        return case_code(self.case_id)


@dataclass(frozen=True)
class IndicatorGroup:
    """Cases that share indicators: a campaign as it shows in the reports.

    `indicators` are every shared key with exactly this set of cases (a URL,
    its host and its registered domain, when no other case has any of them).
    """

    indicators: tuple[Indicator, ...]
    case_ids: tuple[str, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(case_code(case_id) for case_id in self.case_ids)


@dataclass(frozen=True)
class Stats:
    """Counts of the cases a filter selects; each list is (machine value, count).

    Months are oldest first; the other counts largest first, ties by value.
    A case counts once under each category it has. "" is "no answer".
    """

    total: int
    damaged: int
    by_month: list[tuple[str, int]]
    by_status: list[tuple[str, int]]
    by_country: list[tuple[str, int]]
    by_category: list[tuple[str, int]]
    by_tool: list[tuple[str, int]]
    by_risk: list[tuple[str, int]]


@dataclass(frozen=True)
class Reply:
    """A reply to a case's source: as the reviewer wrote it, and when it left (or None)."""

    reply_id: str
    case_id: str
    thread: str
    day: str  # ISO day it was written
    text: str
    sent_on: str | None  # ISO day it went into a return file


@dataclass(frozen=True)
class ReconcileResult:
    indexed: tuple[str, ...]
    dropped: tuple[str, ...]


# -- The store -----------------------------------------------------------------------------

_LISTING = """SELECT c.case_id, c.received_on, c.lang, c.country, c.risk, c.suspected_tool,
                     c.categories, c.target_profile, c.attachments, c.problems,
                     coalesce(t.status, 'new'), coalesce(t.assignee, ''),
                     (SELECT group_concat(tag, char(31)) FROM
                         (SELECT tag FROM tags g WHERE g.case_id = c.case_id ORDER BY tag))
              FROM cases c LEFT JOIN triage t ON t.case_id = c.case_id"""
_COUNTING = "SELECT count(*) FROM cases c LEFT JOIN triage t ON t.case_id = c.case_id"
#: The indicators of the cases a filter selects, each with its cases in id order; the
#: filter's clauses follow ("WHERE …"), then the closing of both subqueries.
_GROUPING = """SELECT kind, value, group_concat(case_id, ',') FROM
                 (SELECT kind, value, case_id FROM case_indicators
                  WHERE case_id IN (SELECT c.case_id FROM cases c
                                    LEFT JOIN triage t ON t.case_id = c.case_id WHERE"""


class CaseStore:
    """The case folders of `cases_dir` and their database; see the module docstring.

    `reconcile=False` skips the reconciliation on open (the importer, which
    indexes each case it adds itself); `progress` is told how far it got.
    `busy_timeout` is how many seconds a change waits for another process's
    write before `CaseStoreBusy`.
    """

    def __init__(
        self, cases_dir: Path, *, reconcile: bool = True, progress: Progress | None = None,
        busy_timeout: float = BUSY_TIMEOUT,
    ):
        self.cases_dir = Path(cases_dir)
        if not self.cases_dir.is_dir():
            raise CaseStoreError(
                f"There is no case store at {self.cases_dir}; import a bundle first."
            )
        self.path = self.cases_dir / DATABASE
        self.busy_timeout = busy_timeout
        # Changes made in this process wait here for each other rather than in SQLite's
        # busy handler; readers never take it (in WAL mode they never wait for a writer).
        self._writer = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        first = _connect(self.path, busy_timeout)
        try:
            with _busy_is_one_sentence(busy_timeout):
                _upgrade(first, self.path)
        except BaseException:
            first.close()
            raise
        self._idle.append(first)
        try:
            if reconcile:
                self.reconcile(progress)
        except BaseException:
            self.close()
            raise

    # -- Lifecycle and connections -----------------------------------------------------

    def close(self) -> None:
        """Close the idle connections; one in use is closed when its thread is done."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for this thread alone while the block runs (one per thread at once).

        A shared connection would make every thread wait for the one in SQLite's busy
        handler; each thread's own lets readers go on while a writer waits.
        """
        with self._pool_lock:
            if self._closed:
                raise CaseStoreError("The case store has been closed; open it again.")
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = _connect(self.path, self.busy_timeout)
        try:
            with _busy_is_one_sentence(self.busy_timeout):
                yield db
        finally:
            with self._pool_lock:
                keep = (not self._closed and not db.in_transaction
                        and len(self._idle) < MAX_IDLE_CONNECTIONS)
                if keep:
                    self._idle.append(db)
            if not keep:
                db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, holding the database's write lock from its start."""
        with self._writer, self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same state."""
        with self._connection() as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._connection() as db:
            return db.execute(sql, params).fetchall()

    # -- The index ---------------------------------------------------------------------

    def reconcile(self, progress: Progress | None = None) -> ReconcileResult:
        """Bring the index in line with the folders (see the module docstring)."""
        on_disk = _stamps(self.cases_dir)
        indexed = dict(self._read("SELECT case_id, stamp FROM cases"))
        stale = sorted(c for c, stamp in on_disk.items() if indexed.get(c) != stamp)
        gone = sorted(set(indexed) - set(on_disk))
        if not stale and not gone:
            return ReconcileResult((), ())
        with self._write() as db:
            for case_id in gone:
                _drop_index(db, case_id)
            for done, case_id in enumerate(stale):
                if progress:
                    progress(done, len(stale))
                _write_index(db, load_case(self.cases_dir / case_id), on_disk[case_id])
        if progress:
            progress(len(stale), len(stale))
        return ReconcileResult(tuple(stale), tuple(gone))

    def index_case(self, case_id: str) -> None:
        """Index the folder `case_id` now (the importer calls this after each rename).

        A folder that is not there has its index rows dropped instead.
        """
        self.index_cases([case_id])

    def index_cases(self, case_ids: Sequence[str]) -> None:
        """Index these folders as `index_case` does each, in one transaction (one sync)."""
        for case_id in case_ids:
            if not CASE_ID.fullmatch(case_id):
                raise CaseStoreError(
                    f"{case_id[:40]!a} is not a case id (32 lower-case hex digits).")
        with self._write() as db:
            for case_id in case_ids:
                directory = self.cases_dir / case_id
                if directory.is_dir() and not directory.is_symlink():
                    _write_index(db, load_case(directory), _stamp(directory))
                else:
                    _drop_index(db, case_id)

    # -- Reading -----------------------------------------------------------------------

    def cases(
        self, filters: CaseFilter | None = None, *, newest_first: bool = False,
        limit: int | None = None, offset: int = 0,
    ) -> list[CaseSummary]:
        """The indexed cases that `filters` selects, oldest first (by day, then id).

        `newest_first` reverses the order; `limit` and `offset` give one page of it.
        """
        with self._connection() as db:
            return self._listed(db, filters, newest_first=newest_first, limit=limit,
                                offset=offset)

    def page(
        self, filters: CaseFilter | None, *, offset: int, limit: int, newest_first: bool = True
    ) -> tuple[int, list[CaseSummary]]:
        """How many cases `filters` selects, and `limit` of them from `offset`, as one state."""
        with self._snapshot() as db:
            total = self._count(db, filters)
            return total, self._listed(db, filters, newest_first=newest_first, limit=limit,
                                       offset=offset)

    def count(self, filters: CaseFilter | None = None) -> int:
        """How many indexed cases `filters` selects."""
        with self._connection() as db:
            return self._count(db, filters)

    def _count(self, db: sqlite3.Connection, filters: CaseFilter | None) -> int:
        where, params = self._where(db, filters or CaseFilter())
        # `where` joins fixed clauses of `_where`; every value is a bound parameter.
        return db.execute(f"{_COUNTING} WHERE {where}", params).fetchone()[0]  # noqa: S608

    def _listed(
        self, db: sqlite3.Connection, filters: CaseFilter | None, *, newest_first: bool,
        limit: int | None, offset: int,
    ) -> list[CaseSummary]:
        where, params = self._where(db, filters or CaseFilter())
        order = "DESC" if newest_first else "ASC"
        # `where` joins fixed clauses of `_where`, `order` is one of two words; every
        # value is a bound parameter.
        sql = (f"{_LISTING} WHERE {where} "  # noqa: S608
               f"ORDER BY c.received_on {order}, c.case_id {order} LIMIT ? OFFSET ?")
        rows = db.execute(sql, [*params, -1 if limit is None else limit, offset]).fetchall()
        return [
            CaseSummary(
                case_id=row[0], received_on=row[1], lang=row[2], country=row[3], risk=row[4],
                suspected_tool=row[5], categories=_split(row[6]),
                target_profile=_split(row[7]), attachments=row[8],
                problems=_split(row[9]), status=row[10], assignee=row[11],
                tags=_split(row[12]),
            )
            for row in rows
        ]

    def _where(self, db: sqlite3.Connection, f: CaseFilter) -> tuple[str, list[object]]:
        clauses: list[str] = ["1"]
        params: list[object] = []
        if f.status is not None:
            clauses.append("coalesce(t.status, 'new') = ?")
            params.append(_checked_status(f.status))
        if f.tag is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM tags g WHERE g.case_id = c.case_id AND g.tag = ?)"
            )
            params.append(_checked_tag(db, f.tag))
        if f.category is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM case_categories k "
                "WHERE k.case_id = c.case_id AND k.category = ?)"
            )
            params.append(_checked_choice("categories", f.category, "category"))
        if f.country is not None:
            clauses.append("c.country = ?")
            params.append(_checked_country(f.country))
        if f.risk is not None:
            clauses.append("c.risk = ?")
            params.append(_checked_choice("risk_now", f.risk, "risk"))
        if f.tool is not None:
            clauses.append("c.suspected_tool = ?")
            params.append(_checked_choice("suspected_tool", f.tool, "tool"))
        if f.since is not None:
            clauses.append("c.received_on >= ?")
            params.append(checked_day(f.since, "--since"))
        if f.until is not None:
            clauses.append("c.received_on <= ?")
            params.append(checked_day(f.until, "--until"))
        if f.assignee is not None:
            clauses.append("coalesce(t.assignee, '') = ?")
            params.append(_checked_assignee(f.assignee))
        if f.indicator is not None:
            kind, value = checked_indicator(f.indicator)
            clauses.append(
                "EXISTS (SELECT 1 FROM case_indicators i "
                "WHERE i.case_id = c.case_id AND i.kind = ? AND i.value = ?)"
            )
            params.extend((kind, value))
        if f.search is not None:
            query = searchtext.fts_query(f.search)
            if query is None:
                raise FilterError(
                    "The search has no word in it; type a word to search for.", "search"
                )
            clauses.append("c.rowid IN (SELECT rowid FROM case_text WHERE case_text MATCH ?)")
            params.append(query)
        # A command line's bytes that are not UTF-8 arrive as lone surrogates.
        return " AND ".join(clauses), [
            _storable(p) if isinstance(p, str) else p for p in params
        ]

    def tags(self) -> list[str]:
        """Every tag in use, sorted."""
        with self._connection() as db:
            return _tags_in_use(db)

    def assignees(self) -> list[str]:
        """Every name a case is given to, sorted."""
        rows = self._read(
            "SELECT DISTINCT assignee FROM triage t JOIN cases c ON c.case_id = t.case_id "
            "WHERE assignee != '' ORDER BY assignee"
        )
        return [row[0] for row in rows]

    def countries(self) -> list[str]:
        """Every country code the indexed cases give, sorted ("" left out)."""
        rows = self._read("SELECT DISTINCT country FROM cases WHERE country != '' ORDER BY 1")
        return [row[0] for row in rows]

    def case(self, ref: str) -> Case:
        """The case `ref` names: its 32-hex id, its IC code, or a unique prefix of either.

        Raises `CaseNotFound` or `AmbiguousCase` (which lists the matches).
        """
        case_id = self.resolve(ref)
        directory = self.cases_dir / case_id
        if not directory.is_dir():
            self.index_case(case_id)  # its folder went away while the store was open
            raise CaseNotFound(f"The case {case_code(case_id)} is no longer in {self.cases_dir}.")
        return load_case(directory)

    def resolve(self, ref: str) -> str:
        """The case id `ref` names (see `case`)."""
        text = ref.strip()
        match = _REFERENCE.fullmatch(text)
        if match is None:
            raise CaseNotFound(
                f"{text[:40]!a} is not a case reference; give the 32-hex id, its IC-XXXXXXXX "
                f"code or at least {MIN_PREFIX} of its first hex digits."
            )
        prefix = match[1].lower()
        rows = self._read(
            "SELECT case_id FROM cases WHERE substr(case_id, 1, ?) = ? ORDER BY case_id LIMIT ?",
            (len(prefix), prefix, SHOWN_MATCHES + 1),
        )
        found = [row[0] for row in rows]
        if not found and CASE_ID.fullmatch(prefix) and (self.cases_dir / prefix).is_dir():
            self.index_case(prefix)  # a folder that arrived while the store was open
            found = [prefix]
        if not found:
            raise CaseNotFound(f"There is no case {text[:40]!a}; `intake review list` shows them.")
        if len(found) > 1:
            shown = ", ".join(f"{case_code(c)} ({c})" for c in found[:SHOWN_MATCHES])
            more = " and more" if len(found) > SHOWN_MATCHES else ""
            raise AmbiguousCase(
                f"{text[:40]!a} matches several cases: {shown}{more}; give more of the id.",
                found[:SHOWN_MATCHES],
            )
        return found[0]

    def load(self, summaries: Iterable[CaseSummary]) -> list[Case]:
        """The full cases (read from their folders) of listed summaries, in the same order."""
        return [load_case(self.cases_dir / s.case_id) for s in summaries]

    def triage(self, case_id: str) -> Triage:
        with self._snapshot() as db:
            row = db.execute(
                "SELECT status, assignee FROM triage WHERE case_id = ?", (case_id,)
            ).fetchone()
            tags = db.execute(
                "SELECT tag FROM tags WHERE case_id = ? ORDER BY tag", (case_id,)
            ).fetchall()
        status, assignee = row if row else (triage.NEW, "")
        return Triage(status, assignee, tuple(t[0] for t in tags))

    def notes(self, case_id: str) -> list[Note]:
        """The case's notes, oldest first."""
        rows = self._read(
            "SELECT number, case_id, author, day, text FROM notes WHERE case_id = ? "
            "ORDER BY number",
            (case_id,),
        )
        return [Note(*row) for row in rows]

    # -- The source's thread, its follow-ups, replies ------------------------------------

    def case_for_thread(self, thread: str) -> str | None:
        """The case a submission of `thread` is filed in: the oldest with that thread."""
        rows = self._read(
            "SELECT t.case_id FROM case_threads t JOIN cases c ON c.case_id = t.case_id "
            "WHERE t.thread = ? ORDER BY c.received_on, t.case_id LIMIT 1",
            (thread,),
        )
        return rows[0][0] if rows else None

    def thread_of(self, case_id: str) -> tuple[str, str] | None:
        """The case's (thread, reply_to), or None for a case sent without a receipt."""
        rows = self._read("SELECT thread, reply_to FROM case_threads WHERE case_id = ?",
                          (case_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def add_reply(self, case_id: str, text: str, *, day: datetime.date | None = None) -> Reply:
        """Encrypt `text` to the case's source and queue it for the next return file.

        The plaintext copy stays here, with the case. `ReplyError` for a text that
        cannot be sent; `CaseStoreError` for a case its source cannot be reached in.
        """
        written_on = day or datetime.date.today()
        found = self.thread_of(case_id)
        if found is None:
            raise CaseStoreError(
                f"{case_code(case_id)} came without a way back to its source (it was not sent "
                "with a receipt, or by an older intake), so no reply can reach it."
            )
        thread, reply_to = found
        ciphertext = encrypt_reply(text, reply_to, written_on)
        reply_id = secrets.token_hex(16)
        with self._write() as db:
            _known(db, case_id)
            db.execute(
                "INSERT INTO replies (reply_id, case_id, thread, day, text, ciphertext) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (reply_id, case_id, thread, written_on.isoformat(), text, ciphertext),
            )
        return Reply(reply_id, case_id, thread, written_on.isoformat(), text, None)

    def replies(self, case_id: str) -> list[Reply]:
        """The replies written to the case's source, oldest first."""
        rows = self._read(
            "SELECT reply_id, case_id, thread, day, text, sent_on FROM replies "
            "WHERE case_id = ? ORDER BY day, rowid",
            (case_id,),
        )
        return [Reply(*row) for row in rows]

    def unsent_replies(self) -> list[tuple[str, str, bytes]]:
        """Every reply not yet in a return file: (reply_id, thread, ciphertext), oldest first."""
        return [(r, t, bytes(c)) for r, t, c in self._read(
            "SELECT reply_id, thread, ciphertext FROM replies WHERE sent_on IS NULL "
            "ORDER BY day, rowid")]

    def mark_sent(self, reply_ids: Iterable[str], day: datetime.date | None = None) -> None:
        """Note that these replies went into a return file, on `day` (once each)."""
        when = (day or datetime.date.today()).isoformat()
        with self._write() as db:
            db.executemany(
                "UPDATE replies SET sent_on = ? WHERE reply_id = ? AND sent_on IS NULL",
                [(when, reply_id) for reply_id in reply_ids],
            )

    # -- Triage ------------------------------------------------------------------------

    def set_status(self, case_id: str, status: str) -> None:
        status = _checked_status(status, error=triage.TriageError)
        with self._write() as db:
            _known(db, case_id)
            db.execute(
                "INSERT INTO triage (case_id, status) VALUES (?, ?) "
                "ON CONFLICT (case_id) DO UPDATE SET status = excluded.status",
                (case_id, status),
            )

    def set_assignee(self, case_id: str, name: str) -> None:
        """Give the case to `name` (a name typed by reviewers); "" leaves it to nobody."""
        name = triage.clean_name(name, what="An assignee")
        with self._write() as db:
            _known(db, case_id)
            db.execute(
                "INSERT INTO triage (case_id, assignee) VALUES (?, ?) "
                "ON CONFLICT (case_id) DO UPDATE SET assignee = excluded.assignee",
                (case_id, name),
            )

    def add_tag(self, case_id: str, tag: str) -> str:
        """Tag the case; returns the tag as stored. Adding a tag it has changes nothing."""
        tag = triage.clean_tag(tag)
        with self._write() as db:
            _known(db, case_id)
            has = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE tag = ?) FROM tags WHERE case_id = ?",
                (tag, case_id),
            ).fetchone()
            if has[0] >= triage.MAX_TAGS_PER_CASE and not has[1]:
                raise triage.TriageError(
                    f"A case has at most {triage.MAX_TAGS_PER_CASE} tags; remove one first.",
                    "tag_limit",
                )
            db.execute("INSERT OR IGNORE INTO tags (case_id, tag) VALUES (?, ?)", (case_id, tag))
        return tag

    def remove_tag(self, case_id: str, tag: str) -> bool:
        """Remove a tag; False if the case did not have it.

        The tag as given goes first, so that one the rules would refuse (written by
        another program) can still be removed; then the tag as `add_tag` stores it.
        """
        with self._write() as db:
            _known(db, case_id)
            for candidate in (_storable(tag), None):
                if candidate is None:
                    candidate = triage.clean_tag(tag)
                cursor = db.execute(
                    "DELETE FROM tags WHERE case_id = ? AND tag = ?", (case_id, candidate)
                )
                if cursor.rowcount:
                    return True
            return False

    def add_note(
        self, case_id: str, text: str, *, author: str, day: datetime.date | None = None
    ) -> Note:
        """Append a note to the case's log; notes are never changed or deleted."""
        body = triage.clean_note(text)
        author = triage.clean_name(author, what="A note's author")
        if not author:
            raise triage.TriageError(
                "A note needs its author's name; give it with --author.", "author_missing"
            )
        when = (day or datetime.date.today()).isoformat()
        with self._write() as db:
            _known(db, case_id)
            cursor = db.execute(
                "INSERT INTO notes (case_id, author, day, text) VALUES (?, ?, ?, ?)",
                (case_id, author, when, body),
            )
            number = cursor.lastrowid
        return Note(int(number or 0), case_id, author, when, body)

    # -- Correlation -------------------------------------------------------------------

    def indicators(self, case_id: str) -> list[Indicator]:
        """The case's correlation keys as indexed, by kind then value."""
        rows = self._read(
            "SELECT kind, value FROM case_indicators WHERE case_id = ? ORDER BY kind, value",
            (case_id,),
        )
        return [Indicator(kind, value) for kind, value in rows]

    def related(self, case_id: str) -> list[Relation]:
        """The other cases that share an indicator with `case_id`, most shared first."""
        rows = self._read(
            """SELECT o.case_id, c.received_on, o.kind, o.value
               FROM case_indicators i
               JOIN case_indicators o
                 ON o.kind = i.kind AND o.value = i.value AND o.case_id != i.case_id
               JOIN cases c ON c.case_id = o.case_id
               WHERE i.case_id = ? ORDER BY o.case_id, o.kind, o.value""",
            (case_id,),
        )
        shared: dict[str, list[Indicator]] = {}
        days: dict[str, str] = {}
        for other, received_on, kind, value in rows:
            shared.setdefault(other, []).append(Indicator(kind, value))
            days[other] = received_on
        relations = [
            Relation(c, days[c], tuple(sorted(found, key=_specific_first)))
            for c, found in shared.items()
        ]
        return sorted(relations, key=lambda r: (-len(r.shared), r.received_on, r.case_id))

    def groups(self, filters: CaseFilter | None = None, min_cases: int = 2) -> list[IndicatorGroup]:
        """Cases grouped by the indicators they share, largest groups first.

        Keys shared by exactly the same cases make one group. With `filters`, only
        the cases they select count: a group is what those cases share.
        """
        with self._snapshot() as db:
            where, params = self._where(db, filters or CaseFilter())
            # `where` joins fixed clauses of `_where`; every value is a bound parameter.
            rows = db.execute(
                f"{_GROUPING} {where}) ORDER BY case_id) "  # noqa: S608
                "GROUP BY kind, value HAVING count(*) >= ?",
                [*params, max(2, min_cases)],
            ).fetchall()
        by_cases: dict[tuple[str, ...], list[Indicator]] = {}
        for kind, value, members in rows:
            by_cases.setdefault(tuple(members.split(",")), []).append(Indicator(kind, value))
        groups = [
            IndicatorGroup(tuple(sorted(found, key=_specific_first)), members)
            for members, found in by_cases.items()
        ]
        return sorted(groups, key=lambda g: (-len(g.case_ids), _specific_first(g.indicators[0])))

    # -- Counting ----------------------------------------------------------------------

    def stats(self, filters: CaseFilter | None = None) -> Stats:
        """Counts of the cases `filters` selects (see `Stats`)."""
        listed = self.cases(filters)

        def ranked(values: Iterable[str]) -> list[tuple[str, int]]:
            return sorted(Counter(values).items(), key=lambda item: (-item[1], item[0]))

        return Stats(
            total=len(listed),
            damaged=sum(1 for s in listed if s.damaged),
            by_month=sorted(Counter(s.received_on[:7] for s in listed).items()),
            by_status=ranked(s.status for s in listed),
            by_country=ranked(s.country for s in listed),
            by_category=ranked(c for s in listed for c in s.categories),
            by_tool=ranked(s.suspected_tool for s in listed),
            by_risk=ranked(s.risk for s in listed),
        )


def _known(db: sqlite3.Connection, case_id: str) -> str:
    if db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone() is None:
        raise CaseNotFound(
            f"There is no case {case_id[:40]!a}; `intake review list` shows them."
        )
    return case_id


def _tags_in_use(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT DISTINCT tag FROM tags ORDER BY tag")]


@contextmanager
def _busy_is_one_sentence(timeout: float) -> Iterator[None]:
    """SQLite's "database is locked" (another process wrote for too long) as `CaseStoreBusy`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        raise CaseStoreBusy(
            f"The case store is busy: another intake command has been writing to it for "
            f"{timeout:g} s; nothing was changed, try again when it has finished."
        ) from None


def index_case(cases_dir: Path, case_id: str) -> None:
    """Index one case folder in `cases_dir`'s database, without reconciling the rest.

    For an importer that adds many cases, opening one `CaseStore(cases_dir,
    reconcile=False)` and calling its `index_case` per case is cheaper.
    """
    with CaseStore(cases_dir, reconcile=False) as store:
        store.index_case(case_id)


# -- Filters -------------------------------------------------------------------------------

def _checked_status(status: str, error: type[IntakeError] = FilterError) -> str:
    if status not in triage.STATUSES:
        raise error(
            f"There is no status {status[:40]!a}; choose one of {', '.join(triage.STATUSES)}.",
            "status",
        )
    return status


def _checked_choice(field_name: str, value: str, option: str) -> str:
    choices = [c.value for c in schema.FIELDS[field_name].choices]
    if value not in choices:
        raise FilterError(
            f"--{option} {value[:40]!a} is not a value; choose one of {', '.join(choices)}.",
            option,
        )
    return value


def _checked_tag(db: sqlite3.Connection, tag: str) -> str:
    in_use = _tags_in_use(db)
    if tag not in in_use:
        shown = ", ".join(in_use[:20]) + (", …" if len(in_use) > 20 else "")
        raise FilterError(
            f"No case has the tag {tag[:40]!a}; "
            + (f"the tags in use are {shown}." if in_use else "no case has a tag yet."),
            "tag",
        )
    return tag


def _checked_assignee(name: str) -> str:
    try:
        return triage.clean_name(name)
    except triage.TriageError as exc:
        raise FilterError(str(exc), "assignee") from None


#: Indicator kinds that link cases (`correlation_keys` never gives the others).
CORRELATED_KINDS = ("url", "domain", "email", "phone", "sha256", "sha1", "md5", "app_id",
                    "ipv4", "ipv6")


def checked_indicator(text: str) -> tuple[str, str]:
    """``kind:value`` as (kind, value), or a `FilterError` listing the kinds."""
    kind, colon, value = text.partition(":")
    if not colon or kind not in CORRELATED_KINDS or not value or len(value) > 2048:
        raise FilterError(
            f"--indicator {text[:60]!a} is not an indicator; write kind:value with a kind "
            f"among {', '.join(CORRELATED_KINDS)}, e.g. domain:evil.example.",
            "indicator",
        )
    return kind, value


def _checked_country(code: str) -> str:
    codes = {c.value for c in schema.country_choices()}
    for candidate in (code.upper(), code.lower()):
        if candidate in codes:
            return candidate
    first = ", ".join(code for code, _name in schema.MENA_COUNTRIES)
    raise FilterError(
        f"--country {code[:40]!a} is not a country code; use an ISO 3166 code "
        f"({first}, or any other) or {schema.COUNTRY_UNKNOWN} for \"don't know\".",
        "country",
    )


def checked_day(text: str, option: str = "the day") -> str:
    """`text` as an ISO day, or a `FilterError` that shows the expected form."""
    cleaned = schema.normalise_digits(text.strip())
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", cleaned):
        try:
            return datetime.date.fromisoformat(cleaned).isoformat()
        except ValueError:
            pass
    raise FilterError(
        f"{option} {text[:40]!a} is not a day; write it as YYYY-MM-DD, e.g. 2026-11-30.",
        option.lstrip("-"),
    )


# -- The database --------------------------------------------------------------------------

#: Held while a connection is opened, so that no thread's connection opens the file while
#: `_create_owner_only` holds a descriptor of it (see there).
_OPENING = threading.Lock()


def _create_owner_only(path: Path) -> None:
    """Create the database file owner-only if it is not there (SQLite gives its WAL the same
    mode); refuse a link in its place.

    Only a file that did not exist is ever opened and closed here: closing any
    descriptor of a database file drops every POSIX lock this process holds on it,
    SQLite's included, after which another process sees no reader, checkpoints and
    deletes the WAL under this one's connections (their changes then go nowhere).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if path.is_symlink():
            raise CaseStoreError(
                f"{path} is a link; a case store's database is a file of its own."
            ) from None
        return
    os.close(fd)  # nobody has it open yet: it did not exist, and _OPENING is held


def _connect(path: Path, busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    with _OPENING:
        _create_owner_only(path)
        return _open(path, busy_timeout)


def _open(path: Path, busy_timeout: float) -> sqlite3.Connection:
    # check_same_thread=False: a connection moves between threads, used by one at a time
    # (`CaseStore._connection`). The timeout is SQLite's busy timeout.
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                             timeout=busy_timeout)
    except sqlite3.DatabaseError as exc:
        raise _not_a_database(path, exc) from None
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise CaseStoreBusy(
                f"The case store is busy: another intake command has held it for "
                f"{busy_timeout:g} s; try again when it has finished."
            ) from None
        raise _not_a_database(path, exc) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise _not_a_database(path, exc) from None
    return db


def _not_a_database(path: Path, exc: Exception) -> CaseStoreError:
    return CaseStoreError(
        f"{path} is not a case store database ({exc}); move it aside and open the "
        "store again to rebuild the index (its triage data would be lost)."
    )


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise CaseStoreError(
            f"{path} was written by a newer version of intake (schema {version}); "
            "use that version or a later one."
        )
    while version < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have upgraded it while this one waited for the lock.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version + 1]:
                    db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version = {version:d}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _stamp(directory: str | Path) -> str:
    """What changes when a case's files change: their sizes and modification times
    (and the follow-ups folder's, which changes when a follow-up is filed in it)."""
    parts = []
    for name in (REPORT_FILE, META_FILE, FOLLOW_UPS):
        try:
            st = os.stat(os.path.join(directory, name), follow_symlinks=False)
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return "/".join(parts)


def _stamps(cases_dir: Path) -> dict[str, str]:
    """Case id -> `_stamp` for every case folder (strings, not Paths: 10,000 of them)."""
    try:
        entries = list(os.scandir(cases_dir))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {
        entry.name: _stamp(entry.path)
        for entry in entries
        if CASE_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
    }


#: Lists in one index column (machine values and our own sentences, never this character).
_SEPARATOR = "\x1f"


def _joined(values: Iterable[str]) -> str:
    return _SEPARATOR.join(values)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(text: str) -> str:
    """`text` as SQLite can store it: a lone surrogate (JSON's "\\ud800") becomes U+FFFD.

    Python reads such escapes from a hostile report.json into strings that cannot be
    encoded as UTF-8; the case folder keeps the original, the index a readable copy.
    """
    return _SURROGATE.sub("\ufffd", text)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(_SEPARATOR)) if text else ()


def _drop_index(db: sqlite3.Connection, case_id: str) -> None:
    # By rowid: the text table's case_id column is not indexed.
    db.execute(
        "DELETE FROM case_text WHERE rowid = (SELECT rowid FROM cases WHERE case_id = ?)",
        (case_id,),
    )
    db.execute("DELETE FROM cases WHERE case_id = ?", (case_id,))  # cascades


def _text_of(case: Case, indicators: Sequence[Indicator]) -> str:
    fields = case.fields
    parts = [str(fields.get(name) or "") for name in SEARCHED_FIELDS]
    parts.extend(indicator.value for indicator in indicators)
    # What the source sent later is searched with the case it belongs to.
    parts.extend(str(f.fields.get("narrative") or "") for f in case.follow_ups)
    return searchtext.fold("\n".join(parts))


def _write_index(db: sqlite3.Connection, case: Case, stamp: str) -> None:
    _drop_index(db, case.case_id)
    fields = case.fields
    country = str(fields.get("country") or "")
    categories = list(fields.get("categories") or [])
    # Every text from the case's files goes through _storable (choice values pass the
    # schema already, but a damaged case's problems may quote what the source sent).
    cursor = db.execute(
        "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            case.case_id, case.received_on, case.lang, country,
            str(fields.get("risk_now") or ""), str(fields.get("suspected_tool") or ""),
            _joined(categories), _joined(fields.get("target_profile") or []),
            len(case.attachments), _storable(_joined(case.problems)), stamp,
        ),
    )
    db.executemany(
        "INSERT OR IGNORE INTO case_categories VALUES (?, ?)",
        [(case.case_id, category) for category in categories],
    )
    found = indicators_of(case)
    keys = {key for indicator in found for key in correlation_keys(indicator, country)}
    db.executemany(
        "INSERT OR IGNORE INTO case_indicators VALUES (?, ?, ?)",
        [(case.case_id, key.kind, _storable(key.value)) for key in keys],
    )
    # The text row shares the case row's rowid, so that a search joins on it.
    db.execute(
        "INSERT INTO case_text (rowid, case_id, body) VALUES (?, ?, ?)",
        (cursor.lastrowid, case.case_id, _storable(_text_of(case, found))),
    )
    if case.thread:
        db.execute("INSERT INTO case_threads VALUES (?, ?, ?)",
                   (case.case_id, case.thread, case.reply_to))
    db.executemany(
        "INSERT OR IGNORE INTO follow_ups VALUES (?, ?, ?, ?)",
        [(f.case_id, case.case_id, f.received_on, f.sha256) for f in case.follow_ups],
    )


_SPECIFICITY = {"url": 0, "email": 1, "phone": 2, "app_id": 3, "sha256": 4, "sha1": 5, "md5": 6,
                "ipv4": 7, "ipv6": 8, "domain": 9}


def _specific_first(indicator: Indicator) -> tuple[int, int, str]:
    # A longer domain is more specific than the registered domain it sits under.
    return (_SPECIFICITY.get(indicator.kind, 99), -len(indicator.value), indicator.value)


__all__ = [
    "CORRELATED_KINDS", "AmbiguousCase", "CaseFilter", "CaseNotFound", "CaseStore",
    "CaseStoreBusy", "CaseStoreError", "CaseSummary", "FilterError", "IndicatorGroup", "Note",
    "Relation", "Reply", "Stats", "Triage", "checked_day", "checked_indicator", "index_case",
]
