"""Storage properties, on SQLite always and on PostgreSQL when INTAKE_TEST_DATABASE_URL is set.

What is pinned down: the database holds exactly the allowed metadata and a day
is never a time; migrations are idempotent, agree with the models and print no
SQL; a blob appears whole and private, dated to midnight UTC, or not at all,
and never replaces another; ids cannot name a path; a submission whose row
cannot be committed leaves no blob and no database message; orphans are found
both ways and never listed; the keyring version floor never goes down, even
under concurrent writers on two engines.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
import subprocess
import sys
import tempfile
import threading
import time as time_module
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Date, delete, event, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from intake.errors import IntakeError, StorageFull
from intake.storage import db
from intake.storage.blobs import FilesystemBlobStore, check_id
from intake.storage.models import Base, KeyringState, Submission, Upload
from intake.storage.submissions import (
    SubmissionNotStored,
    find_orphans,
    highest_keyring_version,
    listable_submissions,
    new_submission_id,
    raise_keyring_version,
    record_submission,
)

DAY = date(2026, 11, 28)

#: Every table and column the server may keep: a privacy property, not a schema detail.
ALLOWED = {
    "submissions": {"id", "received_on", "size", "keyring_version", "state"},
    "keyring_state": {"id", "highest_version"},
    # While open: sizes, keyring version, a deadline in minutes, the day it began, and the
    # thread of the mailbox it is filed into. Once filed: id, state, a day.
    "uploads": {"id", "state", "size", "received", "keyring_version", "expires_minute",
                "expires_on", "started_on", "mailbox"},
    "export_challenges": {"bundle_id", "recipient_id", "public_key", "exported_on"},
    "submission_acks": {"submission_id", "recipient_id"},
    # Ciphertext only, in rows of at most 1 MiB (INTAKE_BLOB_STORE=postgresql): the blob's
    # id, the row's offset in it, the shelf (day of arrival mod 32) that picks its partition.
    "blob_chunks": {"shelf", "blob_id", "start", "data"},
    # The follow-up channel: a mailbox per receipt (never the receipt or a key derived
    # from it but the lookup key's hash), its submissions' statuses, its padded replies.
    "mailboxes": {"thread", "lookup_hash", "wrapped_identity", "reply_to", "last_active_on"},
    "mailbox_submissions": {"submission_id", "thread", "number", "status"},
    "mailbox_replies": {"reply_id", "thread", "number", "ciphertext"},
}
#: On PostgreSQL, blob_chunks is partitioned by shelf: these, with its columns, and no others.
PARTITIONS = {f"blob_chunks_{shelf:02d}" for shelf in range(32)}


def table_names(engine) -> set[str]:
    """Every table, partitions included (SQLAlchemy lists them as tables on PostgreSQL)."""
    return set(inspect(engine).get_table_names())


def partitions(engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as connection:
        return set(connection.execute(text(
            "SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'")).scalars())

# The database and the file system are slower than Hypothesis' default deadline;
# fixtures made once per test are reset by each example that needs it.
db_property = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
fs_property = settings(max_examples=50, deadline=None)

ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
days = st.dates(min_value=date(1971, 1, 1), max_value=date(2200, 12, 31))


# -- fixtures ---------------------------------------------------------------------------------


def postgres_url_or_skip() -> str:
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set")
    return url


def clean_postgres(url: str) -> str:
    """Drop every table, alembic_version included, so that each test starts from nothing."""
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'intake.db'}"
    return clean_postgres(postgres_url_or_skip())


@pytest.fixture
def postgres_url() -> str:
    """An empty PostgreSQL database, for what only PostgreSQL can show."""
    return clean_postgres(postgres_url_or_skip())


@pytest.fixture
def engine(database_url):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine) -> sessionmaker:
    return db.make_session_factory(engine)


@pytest.fixture
def store(tmp_path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def write_blob(store: FilesystemBlobStore, content: bytes = b"age-encryption.org/v1\n...",
               day: date = DAY) -> str:
    submission_id = new_submission_id()
    with store.writer(submission_id, day) as fh:
        fh.write(content)
    return submission_id


def add_row(factory: sessionmaker, submission_id: str, state: str = "received") -> None:
    with factory() as session, session.begin():
        session.add(Submission(id=submission_id, received_on=DAY, size=10, keyring_version=1,
                               state=state))


def midnight(day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


# -- schema and migrations --------------------------------------------------------------------


def test_upgrade_creates_the_tables_and_a_second_upgrade_changes_nothing(database_url):
    engine = db.make_engine(database_url)
    try:
        assert db.current_revision(engine) is None and not db.is_up_to_date(engine)
        db.upgrade(database_url)
        assert table_names(engine) - partitions(engine) == set(ALLOWED) | {"alembic_version"}
        assert db.current_revision(engine) == db.head_revision() and db.is_up_to_date(engine)
        factory = db.make_session_factory(engine)
        with factory() as session:
            assert [(r.id, r.highest_version) for r in session.scalars(select(KeyringState))] == [
                (1, 0)]
        add_row(factory, "ab" * 16)
        raise_keyring_version(factory, 4)
        db.upgrade(database_url)
        assert db.current_revision(engine) == db.head_revision()
        with factory() as session:
            assert session.scalars(select(Submission.id)).all() == ["ab" * 16]
            assert session.scalars(select(KeyringState.highest_version)).all() == [4]
    finally:
        engine.dispose()


def test_the_database_holds_exactly_the_allowed_columns(engine):
    inspector = inspect(engine)
    tables = table_names(engine) - {"alembic_version"}
    assert tables == set(ALLOWED) | (PARTITIONS if engine.dialect.name == "postgresql" else set())
    for table, columns in ALLOWED.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns, table
    for table in partitions(engine):
        assert {c["name"] for c in inspector.get_columns(table)} == ALLOWED["blob_chunks"], table
    received_on = next(c for c in inspector.get_columns("submissions")
                       if c["name"] == "received_on")
    assert isinstance(received_on["type"], Date) and str(received_on["type"]).upper() == "DATE"
    exported_on = next(c for c in inspector.get_columns("export_challenges")
                       if c["name"] == "exported_on")
    assert isinstance(exported_on["type"], Date) and str(exported_on["type"]).upper() == "DATE"


def test_the_models_declare_exactly_the_allowed_columns():
    assert {t.name: {c.name for c in t.columns} for t in Base.metadata.sorted_tables} == ALLOWED


def test_the_models_agree_with_the_migrations(engine):
    parts = partitions(engine)  # made by the migration from the models' SHELVES, checked below
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, _parent: not (kind == "table" and name in parts),
        })
        assert compare_metadata(context, Base.metadata) == []


def test_blob_chunks_are_partitioned_by_shelf_and_stored_out_of_line_uncompressed(
    postgres_url,
):
    """One partition per shelf, each shelf in its own: purge can rewrite or empty one alone."""
    from intake.storage.models import SHELVES, shelf_table

    db.upgrade(postgres_url)
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            bounds = dict(connection.execute(text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_class c "
                "WHERE c.relispartition AND c.relkind = 'r'")).all())
            storage = set(connection.execute(text(
                "SELECT a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname LIKE 'blob_chunks%' AND a.attname = 'data'")).scalars())
            strategy = connection.execute(text(
                "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = "
                "'blob_chunks'::regclass")).scalar()
    finally:
        engine.dispose()
    assert SHELVES == 32 and strategy == "l"
    assert bounds == {shelf_table(s): f"FOR VALUES IN ('{s}')" for s in range(SHELVES)}
    assert storage == {"e"}  # EXTERNAL: out of line, never compressed


def _logging_setup() -> dict[str, tuple[int, list[logging.Handler]]]:
    loggers = {"": logging.getLogger()} | {
        name: logger for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {name: (logger.level, list(logger.handlers)) for name, logger in loggers.items()
            if logger.handlers or logger.level != logging.NOTSET}


def test_upgrade_configures_no_logging_and_shows_no_sql(database_url, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # whatever reaches the root logger is captured here
    before = _logging_setup()
    db.upgrade(database_url)
    assert _logging_setup() == before
    logged = " ".join(r.getMessage() for r in caplog.records)
    out, err = capfd.readouterr()
    for shown in (logged, out, err):
        assert "CREATE TABLE" not in shown.upper() and "INSERT INTO" not in shown.upper()


def test_the_alembic_command_works_with_an_ini_of_ones_own(database_url, tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        "[alembic]\n"
        f"script_location = {db.MIGRATIONS}\n"
        f"sqlalchemy.url = {database_url.replace('%', '%%')}\n"
    )
    alembic = Path(sys.executable).with_name("alembic")
    run = subprocess.run([str(alembic), "-c", str(ini), "upgrade", "head"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "CREATE TABLE" not in (run.stdout + run.stderr).upper()
    engine = db.make_engine(database_url)
    assert db.is_up_to_date(engine)
    engine.dispose()


def test_concurrent_upgrades_take_turns_on_postgresql(postgres_url):
    # Processes, as in production (hosts, `intake db upgrade`, gunicorn): Alembic's
    # context is one per process, so upgrades are never run from threads.
    # Each waits, imports done, for the same moment, so that the upgrades overlap.
    command = (
        "import sys, time; from intake.storage import db; "
        "time.sleep(max(0, float(sys.argv[2]) - time.time())); db.upgrade(sys.argv[1])"
    )
    start = str(time_module.time() + 3)
    runs = [subprocess.Popen([sys.executable, "-c", command, postgres_url, start],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    engine = db.make_engine(postgres_url)
    assert db.is_up_to_date(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM keyring_state")).scalar() == 1
    engine.dispose()


def test_received_on_is_a_day_and_a_time_is_refused(factory, store):
    with pytest.raises(TypeError):
        Submission(id="ab" * 16, received_on=datetime(2026, 11, 28, 14, 31), size=1,
                   keyring_version=1)
    submission_id = write_blob(store)
    record_submission(factory, store, submission_id=submission_id, day=DAY, keyring_version=1)
    with factory() as session:
        stored = session.execute(
            text("SELECT received_on FROM submissions WHERE id = :id"), {"id": submission_id}
        ).scalar()
        assert str(stored) == "2026-11-28"  # a DATE on PostgreSQL, ISO text on SQLite
        value = session.get(Submission, submission_id).received_on
        assert type(value) is date and value == DAY


def test_the_database_refuses_unknown_states_and_a_second_keyring_row(engine):
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO submissions (id, received_on, size, keyring_version, state) "
            "VALUES ('ab', '2026-11-28', 1, 1, 'reviewed')"))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO keyring_state (id, highest_version) VALUES (2, 9)"))
    with pytest.raises(ValueError):
        Submission(id="ab" * 16, received_on=DAY, size=1, keyring_version=1, state="reviewed")


# -- engines ----------------------------------------------------------------------------------


def test_sqlite_engines_wait_use_wal_and_overwrite_what_they_delete(tmp_path):
    path = tmp_path / "new" / "dir" / "intake.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("busy_timeout", "journal_mode", "foreign_keys", "secure_delete")}
    engine.dispose()
    assert pragma == {"busy_timeout": 30000, "journal_mode": "wal", "foreign_keys": 1,
                      "secure_delete": 1}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_postgresql_engines_ping_before_use():
    engine = db.make_engine("postgresql+psycopg://intake:intake@127.0.0.1:5432/none")
    assert engine.pool._pre_ping  # no public accessor
    engine.dispose()


# -- the blob store ---------------------------------------------------------------------------


@fs_property
@given(content=st.binary(max_size=200_000), day=days)
def test_a_blob_is_written_whole_private_and_dated_to_midnight_utc(content, day):
    with tempfile.TemporaryDirectory() as tmp:
        store = FilesystemBlobStore(Path(tmp) / "blobs")
        submission_id = write_blob(store, content, day)
        path = store.path(submission_id)
        assert os.listdir(store.root) == [f"{submission_id}.age"]
        assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with store.open(submission_id) as fh:
            assert fh.read() == content
        assert store.size(submission_id) == len(content)
        assert store.sha256(submission_id) == hashlib.sha256(content).hexdigest()
        # Reading through the store leaves the times alone: midnight UTC, nothing else.
        assert path.stat().st_mtime == path.stat().st_atime == midnight(day)


@fs_property
@given(written=st.binary(max_size=100_000),
       error=st.sampled_from([RuntimeError, OSError, ValueError]))
def test_an_exception_inside_the_writer_leaves_no_file_at_all(written, error):
    with tempfile.TemporaryDirectory() as tmp:
        store = FilesystemBlobStore(Path(tmp) / "blobs")
        submission_id = new_submission_id()
        with pytest.raises(error), store.writer(submission_id, DAY) as fh:
            fh.write(written)
            raise error("the client went away")
        assert os.listdir(store.root) == []
        assert not store.exists(submission_id)


def test_a_second_writer_for_the_same_id_refuses_to_replace(store):
    submission_id = write_blob(store, b"first")
    with pytest.raises(FileExistsError), store.writer(submission_id, DAY) as fh:
        fh.write(b"second")
    assert store.path(submission_id).read_bytes() == b"first"
    assert os.listdir(store.root) == [f"{submission_id}.age"]


def test_the_loser_of_a_race_raises_and_leaves_nothing(store):
    submission_id = new_submission_id()
    with pytest.raises(FileExistsError):  # noqa: SIM117 - the nesting is the race
        with store.writer(submission_id, DAY) as late:
            late.write(b"late")
            with store.writer(submission_id, DAY) as early:
                early.write(b"early")
    assert store.path(submission_id).read_bytes() == b"early"
    assert os.listdir(store.root) == [f"{submission_id}.age"]


BAD_IDS = ["../x", "ABC", "ABCDEF0123456789ABCDEF0123456789", "a" * 31, "a" * 33, "",
           "g" * 32, "a" * 31 + "/", "a" * 32 + "\n", "../" + "a" * 29, "a" * 32 + ".age",
           None, 12345]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_that_are_not_32_lower_case_hex_digits_are_refused_everywhere(store, bad):
    calls = [store.path, store.exists, store.open, store.size, store.sha256, store.delete,
             lambda i: store.writer(i, DAY).__enter__()]
    for call in calls:
        with pytest.raises(ValueError):
            call(bad)
    assert os.listdir(store.root) == []


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path_factory.mktemp("ids") / "blobs")


@fs_property
@given(candidate=st.text(max_size=40))
def test_only_32_hex_digits_make_an_id_and_they_stay_in_the_store(shared_store, candidate):
    store = shared_store
    well_formed = len(candidate) == 32 and set(candidate) <= set("0123456789abcdef")
    if well_formed:
        assert store.path(candidate) == store.root / f"{candidate}.age"
        assert check_id(candidate) == candidate
    else:
        with pytest.raises(ValueError):
            store.path(candidate)


def test_ids_lists_only_well_formed_blob_files(store):
    kept = write_blob(store)
    other = new_submission_id()
    for name in ("notes.age", "AB" * 16 + ".age", kept + ".age.bak", "ab" * 16,
                 ".tmp-0123456789abcdef"):
        (store.root / name).write_bytes(b"stray")
    (store.root / f"{'cd' * 16}.age").mkdir()
    (store.root / f"{other}.age").symlink_to(store.path(kept))
    assert store.ids() == {kept}


def test_delete_removes_the_blob_and_is_quiet_when_it_is_gone(store):
    submission_id = write_blob(store, b"abc")
    store.delete(submission_id)
    store.delete(submission_id)
    assert not store.exists(submission_id) and store.ids() == set()
    with pytest.raises(FileNotFoundError):
        store.open(submission_id)


def test_leftover_temp_files_are_found_and_removed_but_never_a_live_writers(store):
    leftover = store.root / ".tmp-0123456789abcdef"
    leftover.write_bytes(b"half of a crashed write")
    submission_id = new_submission_id()
    with store.writer(submission_id, DAY) as fh:
        fh.write(b"still arriving")
        live = [p for p in store.root.iterdir() if p.name.startswith(".tmp-") and p != leftover]
        assert len(live) == 1
        assert store.temp_files() == [leftover]
        assert store.remove_temp_files() == 1
        assert not leftover.exists() and live[0].exists()
        fh.write(b", and done")
    assert store.path(submission_id).read_bytes() == b"still arriving, and done"
    assert store.temp_files() == [] and os.listdir(store.root) == [f"{submission_id}.age"]


def test_adopt_links_a_finished_file_private_dated_and_never_replaces(store):
    source = store.root.parent / "finished.part"
    source.write_bytes(b"ciphertext")
    source.chmod(0o644)
    submission_id = new_submission_id()
    store.adopt(source, submission_id, DAY)
    path = store.path(submission_id)
    assert path.read_bytes() == b"ciphertext" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_mtime == midnight(DAY)
    other = store.root.parent / "other.part"
    other.write_bytes(b"other")
    with pytest.raises(FileExistsError):
        store.adopt(other, submission_id, DAY)
    assert path.read_bytes() == b"ciphertext"


def test_an_existing_store_directory_is_made_private(tmp_path):
    root = tmp_path / "blobs"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    FilesystemBlobStore(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


# -- submissions ------------------------------------------------------------------------------


def test_new_submission_ids_are_128_random_bits_in_hex():
    made = {new_submission_id() for _ in range(2000)}
    assert len(made) == 2000
    assert all(check_id(i) == i for i in made)


@db_property
@given(content=st.binary(max_size=5000), day=days, version=st.integers(0, 2**31 - 1))
def test_a_recorded_submission_keeps_exactly_its_day_size_version_and_state(
    factory, store, content, day, version
):
    submission_id = write_blob(store, content, day)
    # A factory that expires on commit must still hand back a readable row.
    row = record_submission(sessionmaker(factory.kw["bind"]), store,
                            submission_id=submission_id, day=day, keyring_version=version)
    assert (row.id, row.received_on, row.size, row.keyring_version, row.state) == (
        submission_id, day, len(content), version, "received")
    with factory() as session:
        stored = session.get(Submission, submission_id)
        assert (stored.received_on, stored.size, stored.keyring_version, stored.state) == (
            day, len(content), version, "received")


def test_a_duplicate_id_deletes_the_new_blob_and_quotes_nothing(factory, store):
    duplicate = new_submission_id()
    add_row(factory, duplicate)  # a row whose blob was lost
    with store.writer(duplicate, DAY) as fh:
        fh.write(b"dup")
    with pytest.raises(SubmissionNotStored) as raised:
        record_submission(factory, store, submission_id=duplicate, day=DAY, keyring_version=1)
    assert not store.exists(duplicate) and os.listdir(store.root) == []
    assert duplicate not in str(raised.value) and "2026" not in str(raised.value)
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert isinstance(raised.value, IntakeError)


def test_a_database_out_of_space_is_storage_full_and_keeps_no_blob(tmp_path, store):
    """SQLite's real SQLITE_FULL (a page limit stands in for a full disk) reads as "full"."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)

    @event.listens_for(engine, "connect")
    def _cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    factory = db.make_session_factory(engine)
    full = 0
    for _ in range(200):
        submission_id = write_blob(store, os.urandom(64), DAY)
        try:
            record_submission(factory, store, submission_id=submission_id, day=DAY,
                              keyring_version=1)
        except StorageFull as exc:
            assert isinstance(exc, IntakeError) and "out of space" in str(exc)
            assert not store.exists(submission_id)
            full += 1
            break
    engine.dispose()
    assert full == 1, "the page limit never filled the database"


def _drop_the_table(factory: sessionmaker) -> sessionmaker:
    engine = factory.kw["bind"]
    # submission_acks refers to it; PostgreSQL drops that constraint only when told to.
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE submissions{cascade}"))
    return factory


def _unreachable(factory: sessionmaker) -> sessionmaker:
    # Nothing listens on the discard port of this machine: the connection is refused.
    engine = db.make_engine("postgresql+psycopg://intake:intake@127.0.0.1:9/none")
    return db.make_session_factory(engine)


def _commit_fails(factory: sessionmaker) -> sessionmaker:
    broken = sessionmaker(factory.kw["bind"])

    @event.listens_for(broken, "before_commit")
    def _fail(session) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # the worker is stopped half-way through

    return broken


@pytest.mark.parametrize("breakage", [_drop_the_table, _unreachable, _commit_fails])
def test_a_database_that_fails_leaves_no_blob(factory, store, breakage):
    submission_id = write_blob(store, b"ciphertext")
    broken = breakage(factory)
    with pytest.raises((SubmissionNotStored, KeyboardInterrupt)):
        record_submission(broken, store, submission_id=submission_id, day=DAY, keyring_version=1)
    assert not store.exists(submission_id) and os.listdir(store.root) == []
    if breakage is not _drop_the_table:
        with factory() as session:
            assert session.get(Submission, submission_id) is None


def test_a_submission_without_a_blob_gets_no_row(factory, store):
    submission_id = new_submission_id()
    with pytest.raises(FileNotFoundError):
        record_submission(factory, store, submission_id=submission_id, day=DAY, keyring_version=1)
    with factory() as session:
        assert session.get(Submission, submission_id) is None


def test_orphans_are_found_both_ways_and_never_listed(factory, store):
    kept = write_blob(store)
    record_submission(factory, store, submission_id=kept, day=DAY, keyring_version=1)
    blob_only = write_blob(store)  # a crash between the blob and its row
    row_only = new_submission_id()  # a blob lost after its row
    add_row(factory, row_only)
    add_row(factory, new_submission_id(), state="purged")  # gone on purpose: no orphan
    (store.root / ".tmp-0123456789abcdef").write_bytes(b"half")
    with store.writer(new_submission_id(), DAY) as fh:  # in progress: not a leftover
        fh.write(b"arriving")
        orphans = find_orphans(factory, store)
    assert orphans.blobs_without_row == {blob_only}
    assert orphans.rows_without_blob == {row_only}
    assert [p.name for p in orphans.temp_files] == [".tmp-0123456789abcdef"]
    assert orphans
    with factory() as session:
        assert [r.id for r in listable_submissions(session, store)] == [kept]


@db_property
@given(layout=st.dictionaries(
    ids, st.tuples(st.booleans(), st.booleans(), st.sampled_from(["received", "exported",
                                                                   "purged"])),
    max_size=8))
def test_listable_submissions_are_exactly_the_rows_with_a_blob(factory, layout):
    with factory() as session, session.begin():
        session.execute(delete(Submission))
    with tempfile.TemporaryDirectory() as tmp:
        store = FilesystemBlobStore(Path(tmp))
        for submission_id, (has_row, has_blob, state) in layout.items():
            if has_blob:
                with store.writer(submission_id, DAY) as fh:
                    fh.write(b"x")
            if has_row:
                add_row(factory, submission_id, state)
        with factory() as session:
            listed = [r.id for r in listable_submissions(session, store)]
        orphans = find_orphans(factory, store)
    expected = {i for i, (row, blob, state) in layout.items() if row and blob
                and state != "purged"}
    assert listed == sorted(expected)
    assert orphans.blobs_without_row == {
        i for i, (row, blob, state) in layout.items() if blob and (not row or state == "purged")}
    assert orphans.rows_without_blob == {
        i for i, (row, blob, state) in layout.items() if row and not blob and state != "purged"}
    assert not orphans.temp_files


# -- the keyring version floor ----------------------------------------------------------------


@db_property
@given(versions=st.lists(st.integers(0, 2**31 - 1), max_size=12))
def test_the_keyring_floor_is_the_running_maximum_and_never_goes_down(factory, versions):
    with factory() as session, session.begin():
        session.execute(update(KeyringState).values(highest_version=0))
    floor = 0
    for version in versions:
        floor = max(floor, version)
        assert raise_keyring_version(factory, version) == floor
        assert highest_keyring_version(factory) == floor


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", None])
def test_a_keyring_version_that_is_not_a_natural_number_is_refused(factory, bad):
    with pytest.raises(ValueError):
        raise_keyring_version(factory, bad)
    assert highest_keyring_version(factory) == 0


def test_a_lost_keyring_row_closes_the_intake_rather_than_guess(factory):
    with factory() as session, session.begin():
        session.execute(delete(KeyringState))
    with pytest.raises(IntakeError):
        highest_keyring_version(factory)
    with pytest.raises(IntakeError):
        raise_keyring_version(factory, 3)


def test_the_keyring_floor_is_monotone_under_concurrent_writers_on_two_engines(
    factory, database_url
):
    other_engine = db.make_engine(database_url)
    factories = [factory, db.make_session_factory(other_engine)]
    top = 40
    errors: list[BaseException] = []
    returned: list[list[tuple[int, int]]] = []
    observed: list[int] = []
    done = threading.Event()

    def writer(index: int) -> None:
        versions = list(range(1, top + 1))
        random.Random(index).shuffle(versions)
        mine: list[tuple[int, int]] = []
        returned.append(mine)
        try:
            for version in versions:
                mine.append((version, raise_keyring_version(factories[index % 2], version)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                observed.append(highest_keyring_version(factories[1]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    watcher.join()
    other_engine.dispose()

    assert errors == []
    assert highest_keyring_version(factory) == top
    for calls in returned:
        assert len(calls) == top
        assert all(stored >= version for version, stored in calls)
        floors = [stored for _, stored in calls]
        assert floors == sorted(floors)  # each writer saw the floor only rise
    assert observed == sorted(observed)


# -- uploads: what a row keeps in each state --------------------------------------------------


def test_a_filed_upload_row_keeps_no_size_no_keyring_version_and_no_time_finer_than_a_day(
    factory, tmp_path
):
    from intake.storage.uploads import FilesystemUploadStore

    now = [datetime(2026, 11, 28, 23, 59, 30, tzinfo=UTC).timestamp()]
    uploads = FilesystemUploadStore(tmp_path / "uploads", factory, clock=lambda: now[0])
    upload_id = uploads.create(123_456, 7)
    uploads.mark_filed(upload_id)
    with factory() as session:
        row = session.get(Upload, upload_id)
    assert (row.state, row.size, row.received, row.keyring_version, row.expires_minute,
            row.started_on) == ("finished", None, None, None, None, None)
    assert type(row.expires_on) is date and row.expires_on == date(2026, 11, 29)
    # A retried finish a minute after midnight still finds it; two days later it is gone.
    now[0] += 60
    assert uploads.get(upload_id).state == "finished"
    now[0] += 2 * 86400
    uploads.cleanup()
    with factory() as session:
        assert session.get(Upload, upload_id) is None


@pytest.mark.parametrize("row", [
    {"state": "finished", "expires_on": DAY, "size": 10},
    {"state": "finished", "expires_on": DAY, "received": 10},
    {"state": "finished", "expires_on": DAY, "keyring_version": 3},
    {"state": "finished", "expires_on": DAY, "expires_minute": 100},
    {"state": "finished"},
    {"state": "finished", "expires_on": DAY, "started_on": DAY},
    {"state": "open", "size": 10, "received": 0, "keyring_version": 1, "started_on": DAY},
    {"state": "open", "size": 10, "received": 0, "keyring_version": 1, "expires_minute": 5,
     "started_on": DAY, "expires_on": DAY},
    {"state": "open", "size": 10, "received": 0, "keyring_version": 1, "expires_minute": 5},
], ids=["finished-size", "finished-received", "finished-version", "finished-minute",
        "finished-no-day", "finished-started", "open-no-deadline", "open-with-day",
        "open-no-start"])
def test_the_database_refuses_an_upload_row_of_any_other_shape(factory, row):
    with pytest.raises(IntegrityError), factory() as session, session.begin():
        session.add(Upload(id="A" * 32, **row))


def test_migration_0003_keeps_uploads_in_progress_and_cuts_filed_ones_down(database_url):
    from alembic import command

    config = db.alembic_config(database_url)
    command.upgrade(config, "0002")
    engine = db.make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO uploads (id, size, received, keyring_version, expires_hour, state)"
                " VALUES ('o' || :pad, 5000, 1200, 4, 500000, 'open'),"
                " ('f' || :pad, 777777, 777777, 4, 500000, 'finished')"), {"pad": "x" * 31})
        started = int(time_module.time() // 60)
        command.upgrade(config, "0003_upload_budget")
        assert db.current_revision(engine) == "0003_upload_budget"
        with engine.connect() as connection:  # the models are the newest shape: plain SQL here
            opened, filed = (connection.execute(text(
                "SELECT state, size, received, keyring_version, expires_minute, expires_on "
                "FROM uploads WHERE id = :id"), {"id": c + "x" * 31}).one() for c in "of")
        assert (opened.state, opened.size, opened.received, opened.keyring_version) == (
            "open", 5000, 1200, 4)
        assert started + 15 < opened.expires_minute <= int(time_module.time() // 60) + 16
        assert opened.expires_on is None
        assert (filed.state, filed.size, filed.received, filed.keyring_version,
                filed.expires_minute) == ("finished", None, None, None, None)
        assert date.fromisoformat(str(filed.expires_on))  # a day, never a time
        # And back: 0002's shape, with the filed upload's sizes unknown (zero).
        command.downgrade(config, "0002")
        with engine.connect() as connection:
            back = dict(connection.execute(text("SELECT id, size FROM uploads")).all())
        assert back == {"o" + "x" * 31: 5000, "f" + "x" * 31: 0}
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_migration_0006_dates_uploads_in_progress_and_refuses_to_drop_blobs(database_url):
    """Open uploads begin today, filed ones keep no start; going back never drops a blob."""
    from alembic import command

    config = db.alembic_config(database_url)
    command.upgrade(config, "0004_ack_proofs")
    engine = db.make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute)"
                " VALUES ('o' || :pad, 'open', 5000, 1200, 4, 500000)"), {"pad": "x" * 31})
            connection.execute(text(
                "INSERT INTO uploads (id, state, expires_on) VALUES ('f' || :pad, 'finished', "
                ":day)"), {"pad": "x" * 31, "day": DAY})
        command.upgrade(config, "0006_pg_blobs")  # not head: 0007 comes after it
        with engine.connect() as connection:  # the models are the newest shape: plain SQL here
            opened, filed = (connection.execute(text(
                "SELECT received, started_on, expires_on FROM uploads WHERE id = :id"),
                {"id": c + "x" * 31}).one() for c in "of")
        assert str(opened.started_on) == str(datetime.now(UTC).date())
        assert opened.received == 1200
        assert filed.started_on is None and str(filed.expires_on) == str(DAY)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO blob_chunks (shelf, blob_id, start, data) VALUES (3, :id, 0, :d)"),
                {"id": "ab" * 16, "d": b"age"})
        with pytest.raises(RuntimeError, match="still holds blobs"):
            command.downgrade(config, "0004_ack_proofs")
        assert db.current_revision(engine) == "0006_pg_blobs"
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM blob_chunks"))
        command.downgrade(config, "0004_ack_proofs")
        assert "blob_chunks" not in table_names(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM uploads")).scalar() == 2
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_migration_0007_keeps_uploads_and_refuses_to_drop_mailboxes(database_url):
    from alembic import command

    config = db.alembic_config(database_url)
    command.upgrade(config, "0006_pg_blobs")
    engine = db.make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute,"
                " started_on) VALUES ('o' || :pad, 'open', 5000, 1200, 4, 500000, :day)"),
                {"pad": "x" * 31, "day": DAY})
            connection.execute(text(
                "INSERT INTO uploads (id, state, expires_on) VALUES ('f' || :pad, 'finished', "
                ":day)"), {"pad": "x" * 31, "day": DAY})
        command.upgrade(config, "0007_mailboxes")
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT id, state, received, mailbox FROM uploads ORDER BY id")).all()
        assert [(r.id[0], r.state, r.received, r.mailbox) for r in rows] == [
            ("f", "finished", None, None), ("o", "open", 1200, None)]
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO mailboxes (thread, lookup_hash, wrapped_identity, reply_to,"
                " last_active_on) VALUES (:t, :h, :w, 'age1x', :day)"),
                {"t": "t" * 32, "h": "h" * 64, "w": b"wrapped", "day": DAY})
        with pytest.raises(RuntimeError, match="still holds sources' mailboxes"):
            command.downgrade(config, "0006_pg_blobs")
        assert db.current_revision(engine) == "0007_mailboxes"
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM mailboxes"))
        command.downgrade(config, "0006_pg_blobs")
        assert "mailboxes" not in table_names(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM uploads")).scalar() == 2
        command.upgrade(config, "head")
        assert db.current_revision(engine) == db.head_revision() == "0007_mailboxes"
    finally:
        engine.dispose()
