"""Storage on SQLite and PostgreSQL: only the allowed metadata, durable blobs,
orphans found both ways, and a keyring version floor that never goes down."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import inspect, text

from intake.storage import db
from intake.storage.blobs import BlobStore
from intake.storage.models import Submission
from intake.storage.submissions import (
    find_orphans,
    highest_keyring_version,
    listable_submissions,
    new_submission_id,
    raise_keyring_version,
    record_submission,
)

DAY = date(2026, 11, 28)
ALLOWED = {
    "submissions": {"id", "received_on", "size", "keyring_version", "state"},
    "keyring_state": {"id", "highest_version"},
    "uploads": {"id", "size", "received", "keyring_version", "expires_hour", "state"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'intake.db'}"
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set (.ci/run sets it)")
    engine = db.make_engine(url)
    with engine.begin() as connection:  # a clean schema for every test
        for table in ("submissions", "keyring_state", "uploads", "alembic_version"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    return url


@pytest.fixture
def factory(database_url):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield db.make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path / "blobs")


def write_blob(store: BlobStore, content: bytes = b"age-encryption.org/v1\n...") -> str:
    submission_id = new_submission_id()
    with store.writer(submission_id, DAY) as fh:
        fh.write(content)
    return submission_id


def test_upgrade_is_idempotent_and_up_to_date(database_url):
    db.upgrade(database_url)
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    assert db.is_up_to_date(engine) and db.current_revision(engine) == "0002"
    engine.dispose()


def test_the_database_holds_no_column_beyond_the_allowed_metadata(factory, database_url):
    engine = db.make_engine(database_url)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(ALLOWED)
    for table, columns in ALLOWED.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns
    types = {c["name"]: str(c["type"]).upper() for c in inspector.get_columns("submissions")}
    assert types["received_on"] == "DATE"  # a day, never a time
    engine.dispose()


def test_a_recorded_submission_keeps_the_day_size_version_and_state(factory, store):
    submission_id = write_blob(store, b"x" * 1234)
    record_submission(factory, store, submission_id=submission_id, day=DAY, keyring_version=7)
    with factory() as session:
        row = session.get(Submission, submission_id)
        assert (row.received_on, row.size, row.keyring_version, row.state) == (
            DAY, 1234, 7, "received")
        assert [r.id for r in listable_submissions(session, store)] == [submission_id]


def test_a_failed_commit_deletes_the_blob(factory, store):
    duplicate = new_submission_id()
    with store.writer(duplicate, DAY) as fh:
        fh.write(b"dup")
    with factory() as session, session.begin():
        session.add(Submission(id=duplicate, received_on=DAY, size=1, keyring_version=1,
                               state="received"))
    with pytest.raises(Exception):  # noqa: B017 - IntegrityError from either backend
        record_submission(factory, store, submission_id=duplicate, day=DAY, keyring_version=1)
    assert not store.exists(duplicate)


def test_orphans_are_found_both_ways_and_never_listed(factory, store):
    kept = write_blob(store)
    record_submission(factory, store, submission_id=kept, day=DAY, keyring_version=1)
    blob_only = write_blob(store)  # a crash between the blob and its row
    row_only = new_submission_id()  # a blob lost after its row
    with factory() as session, session.begin():
        session.add(Submission(id=row_only, received_on=DAY, size=10, keyring_version=1,
                               state="received"))
    (store.root / ".tmp-0123456789abcdef").write_bytes(b"half")
    orphans = find_orphans(factory, store)
    assert orphans.blobs_without_row == {blob_only}
    assert orphans.rows_without_blob == {row_only}
    assert [p.name for p in orphans.temp_files] == [".tmp-0123456789abcdef"]
    with factory() as session:
        assert [r.id for r in listable_submissions(session, store)] == [kept]


def test_the_keyring_floor_only_rises(factory):
    assert highest_keyring_version(factory) == 0
    assert raise_keyring_version(factory, 5) == 5
    assert raise_keyring_version(factory, 3) == 5
    assert raise_keyring_version(factory, 6) == 6


def test_the_keyring_floor_is_monotone_under_concurrent_writers(factory, database_url):
    other = db.make_session_factory(db.make_engine(database_url))
    errors: list[BaseException] = []

    def bump(f, versions):
        try:
            for v in versions:
                raise_keyring_version(f, v)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(f, range(start, 60, 3)))
               for f, start in ((factory, 1), (other, 2), (factory, 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert highest_keyring_version(factory) == 59


# -- the blob store (no database) -------------------------------------------------------------

def test_a_blob_is_written_whole_private_and_dated_to_the_day_only(store):
    submission_id = write_blob(store, b"ciphertext")
    path = store.path(submission_id)
    assert [p.name for p in store.root.iterdir()] == [path.name]
    assert path.read_bytes() == b"ciphertext"
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert (moment.date(), moment.hour, moment.minute, moment.second) == (DAY, 0, 0, 0)


def test_an_error_while_writing_leaves_no_file_at_all(store):
    submission_id = new_submission_id()
    with pytest.raises(RuntimeError), store.writer(submission_id, DAY) as fh:
        fh.write(b"partial")
        raise RuntimeError("client went away")
    assert list(store.root.iterdir()) == []


def test_an_existing_blob_is_never_replaced(store):
    submission_id = write_blob(store, b"first")
    with pytest.raises(FileExistsError), store.writer(submission_id, DAY) as fh:
        fh.write(b"second")
    assert store.path(submission_id).read_bytes() == b"first"
    assert store.temp_files() == []


@pytest.mark.parametrize(
    "bad", ["../x", "ABCDEF0123456789ABCDEF0123456789", "a" * 31, "", "x" * 32]
)
def test_ids_that_are_not_32_hex_digits_are_refused(store, bad):
    with pytest.raises(ValueError):
        store.path(bad)


def test_ids_lists_only_well_formed_blobs_and_sha256_streams(store):
    submission_id = write_blob(store, b"abc")
    (store.root / "notes.age").write_bytes(b"stray")
    assert store.ids() == {submission_id}
    assert store.sha256(submission_id) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    store.delete(submission_id)
    assert store.ids() == set()
