"""The PostgreSQL blob store (INTAKE_BLOB_STORE=postgresql), on a real PostgreSQL.

What is pinned down:

- a blob reads back byte for byte from rows of at most 1 MiB, on its day's
  shelf; nothing of it is visible before its writer ends cleanly, after an
  exception, or after the database connection dies mid-write (which says
  "unavailable", so the web layer answers 503);
- neither writing nor reading a 500 MiB blob grows the process by more than
  64 MiB (measured in a child process, printed);
- an upload's chunks are rows that any app server can extend, resends are
  harmless, gaps are refused; filing it renames its rows (the TOAST table does
  not grow: no byte is copied) and adds its submission in one transaction,
  exactly once, dated to the day the upload began; a refused one is gone; the
  cleanup deletes expired uploads with their rows, one server at a time;
- reclaim empties a shelf with no blob left and rewrites one with some (new
  files), and skips a busy one;
- the web app on this store keeps nothing in its data folder but the spool:
  no blobs/, no uploads/, no secret key when INTAKE_SECRET_KEY_FILE is given;
- export and purge run with no data folder at all;
- `intake db move-blobs`, killed half-way and run again, moves every blob
  once, verified by hash, and says when there is nothing left to move; a copy
  that does not match stops it with one sentence;
- after purge (and its reclaim), no byte of a purged report's ciphertext is in
  any relation file of the database, though a kept report's is, and a plain
  DELETE and VACUUM would have left it (private cluster: the files are read).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from helpers import Deployment, cheap_receipt_secrets, form_tokens, make_settings, valid_report
from pg_cluster import files_holding, private_cluster
from sqlalchemy import select, text
from test_api import age_encrypt, container_plaintext
from test_storage import clean_postgres

from intake.config import Settings, settings_from_env
from intake.crypto.envelope import decrypt_stream, encrypt_stream
from intake.crypto.receipt import SECRETS_FILE
from intake.errors import IntakeError
from intake.storage import db, pgblobs
from intake.storage.blobs import FilesystemBlobStore
from intake.storage.models import BlobChunk, Submission, Upload, shelf_of, shelf_table
from intake.storage.pgblobs import CHUNK, PostgresBlobStore, part_blob_id
from intake.storage.submissions import new_submission_id, record_submission
from intake.storage.uploads import (
    FilesystemUploadStore,
    OffsetMismatch,
    PostgresUploadStore,
    UploadGone,
    UploadInProgress,
    UploadRefused,
)
from intake.web.app import build_app

MiB = 1 << 20
DAY = date(2026, 11, 28)
ROOT = Path(__file__).resolve().parent.parent


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL and sets it)")
    clean_postgres(url)
    db.upgrade(url)
    return url


@pytest.fixture
def engine(pg_url):
    engine = db.make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine) -> PostgresBlobStore:
    return PostgresBlobStore(engine)


@pytest.fixture
def factory(engine):
    return db.make_session_factory(engine)


def rows_of(engine, blob_id: str) -> list[tuple[int, int, int]]:
    """(shelf, start, length) of every row of a blob, in order."""
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(
            select(BlobChunk.shelf, BlobChunk.start, text("octet_length(data)"))
            .where(BlobChunk.blob_id == blob_id).order_by(BlobChunk.start))]


def read_all(handle, piece: int = 100_000) -> bytes:
    out = bytearray()
    with handle:
        while block := handle.read(piece):
            out += block
    return bytes(out)


def write(store: PostgresBlobStore, content: bytes, day: date = DAY) -> str:
    submission_id = new_submission_id()
    with store.writer(submission_id, day) as out:
        for offset in range(0, len(content), 70_000):  # as pyrage writes: pieces, not chunks
            out.write(content[offset:offset + 70_000])
    return submission_id


# -- the store -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_a_blob_of_any_size_reads_back_whole_from_rows_of_at_most_one_mib(store, engine, size):
    content = os.urandom(size)
    submission_id = write(store, content)
    rows = rows_of(engine, submission_id)
    assert {shelf for shelf, _, _ in rows} == {shelf_of(DAY)}
    assert all(length <= CHUNK for _, _, length in rows) and len(rows) == max(1, -(-size // CHUNK))
    assert [start for _, start, _ in rows] == list(range(0, max(size, 1), CHUNK))
    assert read_all(store.open(submission_id, DAY)) == content
    assert read_all(store.open(submission_id)) == content  # found without its day, too
    with store.open(submission_id, DAY) as fh:  # whole pieces across rows: tarfile needs them
        pieces = iter(lambda: fh.read(10_000), b"")
        assert [len(p) for p in pieces] == [10_000] * (size // 10_000) + (
            [size % 10_000] if size % 10_000 else [])
    assert store.size(submission_id, DAY) == size == store.size(submission_id)
    assert store.sha256(submission_id, DAY) == hashlib.sha256(content).hexdigest()
    assert store.ids() == {submission_id} and store.exists(submission_id, DAY)
    assert not store.exists(submission_id, DAY + timedelta(days=1))  # another shelf
    store.delete(submission_id, DAY)
    assert store.ids() == set() and rows_of(engine, submission_id) == []
    with pytest.raises(FileNotFoundError):
        store.open(submission_id, DAY)


def test_nothing_of_a_blob_is_visible_before_its_writer_ends_or_after_it_fails(store, engine):
    submission_id = new_submission_id()
    with pytest.raises(RuntimeError, match="half-way"), store.writer(submission_id, DAY) as out:
        out.write(os.urandom(3 * CHUNK + 5))  # three rows inserted, not committed
        assert store.ids() == set() and not store.exists(submission_id, DAY)
        with engine.connect() as other:
            assert other.execute(text("SELECT count(*) FROM blob_chunks")).scalar() == 0
        raise RuntimeError("the encryption failed half-way")
    assert store.ids() == set() and rows_of(engine, submission_id) == []


def test_a_second_writer_for_the_same_id_refuses_and_the_first_stays(store):
    submission_id = write(store, b"first")
    with pytest.raises(FileExistsError), store.writer(submission_id, DAY) as out:
        out.write(b"second")
    assert read_all(store.open(submission_id, DAY)) == b"first"


def test_racing_writers_of_one_id_leave_exactly_one_blob(store, engine):
    submission_id, outcomes, started = new_submission_id(), [], threading.Barrier(2)

    def one(content: bytes) -> None:
        try:
            with store.writer(submission_id, DAY) as out:
                started.wait(10)
                out.write(content)
                time.sleep(0.2)
            outcomes.append(content)
        except FileExistsError:
            outcomes.append(None)

    threads = [threading.Thread(target=one, args=(bytes([i]) * 5000,)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    [winner] = [o for o in outcomes if o is not None]
    assert outcomes.count(None) == 1
    assert read_all(store.open(submission_id, DAY)) == winner


def test_a_connection_lost_mid_write_leaves_nothing_and_says_unavailable(store, engine,
                                                                         reviewer_keys):
    """As when PostgreSQL stops or the network drops: the error is one the app answers 503."""
    submission_id = new_submission_id()

    class KillsTheWriterHalfway(io.RawIOBase):
        def __init__(self):
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if self.sent == 3 * CHUNK:  # the writer has rows in its open transaction now
                with engine.connect() as other:
                    killed = other.execute(text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND state = 'idle in transaction'"
                    )).scalars().all()
                assert killed == [True]
            n = min(len(buffer), 8 * CHUNK - self.sent)
            buffer[:n] = os.urandom(n)
            self.sent += n
            return n

    with pytest.raises(Exception) as caught, store.writer(submission_id, DAY) as out:
        encrypt_stream(KillsTheWriterHalfway(), out, [str(reviewer_keys[0].to_public())])
    assert db.is_unavailable(caught.value), repr(caught.value)
    assert store.ids() == set() and rows_of(engine, submission_id) == []


@pytest.mark.slow
def test_writing_and_reading_500_mib_grows_the_process_by_at_most_64_mib(pg_url):
    """Measured in a child process (its peak RSS, VmHWM), and printed."""
    script = textwrap.dedent('''
        import hashlib, os, sys
        from datetime import date
        from intake.storage import db
        from intake.storage.pgblobs import PostgresBlobStore

        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        engine = db.make_engine(sys.argv[1])
        store = PostgresBlobStore(engine)
        day, block = date(2026, 11, 28), os.urandom(1 << 20)
        warm = "0" * 32
        with store.writer(warm, day) as out:  # connections, imports, buffers: before the baseline
            out.write(block + b"x")
        store.sha256(warm, day)
        before = hwm()
        digest, big = hashlib.sha256(), "1" * 32
        with store.writer(big, day) as out:
            for i in range(500):
                piece = i.to_bytes(4, "big") + block[4:]
                digest.update(piece)
                out.write(piece)
        after_write = hwm()
        assert store.sha256(big, day) == digest.hexdigest()
        after_read = hwm()
        store.delete(big, day)
        store.delete(warm, day)
        print(after_write - before, after_read - before)
    ''')
    run = subprocess.run([sys.executable, "-c", script, pg_url], capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stderr
    write_growth, read_growth = (int(x) for x in run.stdout.split())
    print(f"500 MiB blob in PostgreSQL: peak RSS growth {write_growth / MiB:.1f} MiB writing, "
          f"{read_growth / MiB:.1f} MiB after reading it back (limit 64 MiB)")
    assert write_growth <= 64 * MiB and read_growth <= 64 * MiB


# -- reclaim ---------------------------------------------------------------------------------


def filenode(engine, table: str) -> tuple[int, int]:
    """The files (relfilenode) of a partition and of its TOAST table."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(
            "SELECT c.relfilenode, t.relfilenode FROM pg_class c JOIN pg_class t "
            "ON t.oid = c.reltoastrelid WHERE c.relname = :t"), {"t": table}).one())


def test_reclaim_empties_a_shelf_left_without_blobs_and_rewrites_one_with_some(store, engine):
    other_day = DAY + timedelta(days=1)
    alone = write(store, os.urandom(2 * CHUNK))
    gone, stays = write(store, os.urandom(2 * CHUNK), other_day), write(store, b"x" * 9000,
                                                                         other_day)
    files = {day: filenode(engine, shelf_table(shelf_of(day))) for day in (DAY, other_day)}
    assert store.reclaim().emptied == [] and store.touched == set()  # nothing deleted yet
    store.delete(alone, DAY)
    store.delete(gone, other_day)
    assert store.touched == {shelf_of(DAY), shelf_of(other_day)}
    done = store.reclaim()
    assert done.emptied == [shelf_of(DAY)] and done.rewritten == [shelf_of(other_day)]
    assert done.copied == 9000 and done.busy == [] and store.touched == set()
    for day in (DAY, other_day):  # both have new files: the old ones, with the bytes, are gone
        new = filenode(engine, shelf_table(shelf_of(day)))
        assert new[0] != files[day][0] and new[1] != files[day][1]
    assert read_all(store.open(stays, other_day)) == b"x" * 9000


def test_a_shelf_whose_lock_is_held_is_skipped_and_reported_busy(store, engine, monkeypatch):
    monkeypatch.setattr(pgblobs, "RECLAIM_LOCK_TIMEOUT", "300ms")
    store.delete(write(store, b"purged"), DAY)
    with engine.connect() as holder, holder.begin():
        holder.execute(text(f"LOCK TABLE {shelf_table(shelf_of(DAY))} IN ACCESS SHARE MODE"))
        done = store.reclaim()
    assert done.busy == [shelf_of(DAY)] and store.touched == {shelf_of(DAY)}
    assert store.reclaim().emptied == [shelf_of(DAY)]  # released: the next one does it


# -- uploads in PostgreSQL -------------------------------------------------------------------


class Clock:
    def __init__(self, when: datetime):
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def test_chunks_from_any_server_make_one_part_resends_harmless_gaps_refused(factory, engine):
    clock = Clock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    here, there = (PostgresUploadStore(factory, clock=clock) for _ in range(2))  # two servers
    content = os.urandom(5 * CHUNK + 333)
    upload_id = here.create(len(content), 3)
    assert here.write_chunk(upload_id, 0, content[:CHUNK + 10]) == CHUNK + 10
    with pytest.raises(OffsetMismatch) as gap:
        there.write_chunk(upload_id, CHUNK + 11, content[CHUNK + 11:])
    assert gap.value.received == CHUNK + 10
    # A resend overlapping what arrived stores only what is new.
    assert there.write_chunk(upload_id, 5, content[5:3 * CHUNK]) == 3 * CHUNK
    assert here.write_chunk(upload_id, 3 * CHUNK, content[3 * CHUNK:]) == len(content)
    assert there.write_chunk(upload_id, 0, content[:100]) == len(content)  # nothing new
    rows = rows_of(engine, part_blob_id(upload_id))
    assert all(length <= CHUNK for _, _, length in rows)
    assert sum(length for _, _, length in rows) == len(content)
    with engine.connect() as connection:
        stored = b"".join(connection.execute(
            select(BlobChunk.data).where(BlobChunk.blob_id == part_blob_id(upload_id))
            .order_by(BlobChunk.start)).scalars())
    assert stored == content


def toast_size(engine, shelf: int) -> int:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = :t"),
            {"t": shelf_table(shelf)}).scalar()


def test_filing_renames_the_rows_copies_no_byte_and_dates_the_report_to_its_first_day(
    factory, engine, store
):
    began = datetime(2026, 11, 28, 23, 58, tzinfo=UTC)
    clock = Clock(began)
    uploads = PostgresUploadStore(factory, clock=clock)
    content = os.urandom(4 * CHUNK)
    upload_id = uploads.create(len(content), 5)
    uploads.write_chunk(upload_id, 0, content[:CHUNK])
    clock.now += 300  # past midnight: the rest arrives the next day
    uploads.write_chunk(upload_id, CHUNK, content[CHUNK:])
    shelf = shelf_of(began.date())
    before = toast_size(engine, shelf)
    seen = []
    assert uploads.file(upload_id, store, lambda prefix: seen.append(prefix) or 5, prefix=100)
    assert seen == [content[:100]]
    assert toast_size(engine, shelf) == before  # renamed in place: the bytes did not move
    [submission_id] = store.ids()
    assert read_all(store.open(submission_id, began.date())) == content
    with factory() as session:
        row = session.get(Submission, submission_id)
        upload = session.get(Upload, upload_id)
    assert (row.received_on, row.size, row.keyring_version, row.state) == (
        began.date(), len(content), 5, "received")
    assert (upload.state, upload.size, upload.started_on) == ("finished", None, None)
    assert rows_of(engine, part_blob_id(upload_id)) == []
    # A finish sent again is told "already filed", and files nothing more.
    assert uploads.file(upload_id, store, lambda prefix: 5, prefix=100) is False
    assert store.ids() == {submission_id}


def test_a_finish_held_by_another_live_request_is_not_taken_over(factory, store):
    uploads = PostgresUploadStore(factory)
    upload_id = uploads.create(1000, 1)
    uploads.write_chunk(upload_id, 0, os.urandom(1000))
    with factory() as other, other.begin():  # another request, filing it right now
        other.execute(select(Upload).where(Upload.id == upload_id).with_for_update())
        with pytest.raises(UploadInProgress):
            uploads.file(upload_id, store, lambda prefix: 1, prefix=10)
    assert store.ids() == set()
    assert uploads.file(upload_id, store, lambda prefix: 1, prefix=10) is True


def test_a_refused_upload_is_discarded_with_its_rows(factory, store, engine):
    uploads = PostgresUploadStore(factory)
    upload_id = uploads.create(3000, 1)
    uploads.write_chunk(upload_id, 0, os.urandom(3000))

    def refuse(prefix: bytes) -> int:
        raise UploadRefused(ValueError("not age"))

    with pytest.raises(UploadRefused):
        uploads.file(upload_id, store, refuse, prefix=10)
    assert rows_of(engine, part_blob_id(upload_id)) == [] and store.ids() == set()
    with pytest.raises(UploadGone):
        uploads.get(upload_id)


def test_the_cleanup_takes_expired_uploads_with_their_rows_one_server_at_a_time(
    factory, engine
):
    clock = Clock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    uploads = PostgresUploadStore(factory, clock=clock)
    stalled, alive = uploads.create(2 * CHUNK, 1), uploads.create(2 * CHUNK, 1)
    uploads.write_chunk(stalled, 0, os.urandom(CHUNK))
    clock.now += 10 * 60
    uploads.write_chunk(alive, 0, os.urandom(CHUNK))
    clock.now += 6 * 60 + 60  # the stalled one passed its 15 minutes; the other did not
    with engine.connect() as other, other.begin():  # another server is cleaning up
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x696E74616B6502})
        assert uploads.cleanup() == 0
    assert rows_of(engine, part_blob_id(stalled)) != []
    assert uploads.cleanup() == 1
    assert rows_of(engine, part_blob_id(stalled)) == []
    assert rows_of(engine, part_blob_id(alive)) != []
    with pytest.raises(UploadGone):
        uploads.get(stalled)


# -- the web app on the PostgreSQL store -----------------------------------------------------


@pytest.fixture
def deployment(tmp_path) -> Deployment:
    return Deployment(tmp_path / "keys").setup(recipients=2)


def pg_settings(tmp_path: Path, deployment: Deployment, url: str, **extra) -> Settings:
    key = tmp_path / "shared" / "secret_key"
    key.parent.mkdir(exist_ok=True)
    key.write_text("ab" * 32)
    key.chmod(0o640)
    base = make_settings(tmp_path / "var", deployment, database_url=url)
    # Beside a shared key the receipt secrets are shared too (made once, as by `intake db
    # receipt-secrets`); the data folder keeps none.
    cheap_receipt_secrets(key.parent)
    (base.data_dir / SECRETS_FILE).unlink()
    return Settings(**{**base.__dict__, "blob_store": "postgresql", "secret_key_file": key,
                       **extra})


def test_the_app_keeps_nothing_in_its_data_folder_but_the_spool(tmp_path, deployment, pg_url,
                                                                 engine):
    settings = pg_settings(tmp_path, deployment, pg_url, max_upload=16 * MiB)
    client = build_app(settings, {"TESTING": True}).test_client()
    page = client.get("/en/report").get_data(as_text=True)
    attachment = os.urandom(2 * MiB + 7)
    sent = client.post("/en/report", content_type="multipart/form-data", data={
        **form_tokens(page), **valid_report(narrative="NOJS-PG"),
        "attachments": [(io.BytesIO(attachment), "capture.bin")]})
    assert sent.status_code == 200  # the thank-you page with its receipt
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    ciphertext = age_encrypt(deployment, container_plaintext(3 * MiB))
    created = client.post("/api/v1/uploads", headers={"X-CSRFToken": csrf}, json={
        "size": len(ciphertext), "keyring_version": deployment.current().version})
    assert created.status_code == 201, created.json
    upload_id = created.json["id"]
    for offset in range(0, len(ciphertext), 700_000):
        put = client.put(f"/api/v1/uploads/{upload_id}?offset={offset}",
                         data=ciphertext[offset:offset + 700_000],
                         headers={"X-CSRFToken": csrf}, content_type="application/octet-stream")
        assert put.status_code == 200, put.json
    done = client.post(f"/api/v1/uploads/{upload_id}/finish", headers={"X-CSRFToken": csrf},
                       json={"size": len(ciphertext)})
    assert done.status_code == 201, done.json

    store = PostgresBlobStore(engine)
    assert len(store.ids()) == 2
    stored = {i: read_all(store.open(i)) for i in store.ids()}
    assert ciphertext in stored.values()
    plain = io.BytesIO()
    [nojs] = [blob for blob in stored.values() if blob != ciphertext]
    decrypt_stream(io.BytesIO(nojs), plain, [deployment.identities[0]])
    assert attachment in plain.getvalue()  # the no-JS report, whole, opened with a reviewer key
    left = sorted(p.relative_to(settings.data_dir).as_posix()
                  for p in settings.data_dir.rglob("*"))
    assert all(name == "spool" or name.startswith("spool/") for name in left), left


def test_a_database_that_does_not_answer_is_a_503_that_says_try_again(tmp_path, deployment,
                                                                      pg_url):
    """The page and the API say "nothing was stored, try again", never a 500."""
    from intake.storage.blobs import open_blob_store

    settings = pg_settings(tmp_path, deployment, pg_url)
    app = build_app(settings, {"TESTING": True})
    client = app.test_client()
    page = client.get("/en/report").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    created = client.post("/api/v1/uploads", headers={"X-CSRFToken": csrf}, json={
        "size": valid_size(deployment), "keyring_version": deployment.current().version})
    assert created.status_code == 201
    # The database goes away: every new connection is refused from now on.
    unreachable = db.make_engine(re.sub(r"@[^/]+/", "@127.0.0.1:1/", pg_url))
    state = app.extensions["intake"]
    state.store = open_blob_store(settings, unreachable)
    state.session_factory = state.uploads._sessions = db.make_session_factory(unreachable)
    sent = client.post("/en/report", content_type="multipart/form-data", data={
        **form_tokens(page), **valid_report(narrative="DOWN"),
        "attachments": [(io.BytesIO(b""), "")]})
    assert sent.status_code == 503 and sent.headers["Retry-After"]
    assert "Nothing was stored. Please try again in a few minutes." in sent.get_data(as_text=True)
    put = client.put(f"/api/v1/uploads/{created.json['id']}?offset=0", data=b"x" * 100,
                     headers={"X-CSRFToken": csrf}, content_type="application/octet-stream")
    assert put.status_code == 503 and put.json["error"] == "unavailable"
    unreachable.dispose()


def valid_size(deployment: Deployment) -> int:
    return len(age_encrypt(deployment, container_plaintext()))


# -- settings ----------------------------------------------------------------------------------


def test_the_blob_store_setting_is_checked_in_one_sentence():
    with pytest.raises(IntakeError, match="must be filesystem .* or postgresql"):
        settings_from_env({"INTAKE_BLOB_STORE": "s3"})
    with pytest.raises(IntakeError, match="not a PostgreSQL database"):
        settings_from_env({"INTAKE_BLOB_STORE": "postgresql"})
    chosen = settings_from_env({"INTAKE_BLOB_STORE": "PostgreSQL",
                                "INTAKE_DATABASE_URL": "postgresql+psycopg://u@h/d"})
    assert chosen.blob_store == "postgresql"
    assert settings_from_env({}).blob_store == "filesystem"


def test_a_shared_secret_key_file_is_read_never_made_and_must_not_be_open_to_all(
    tmp_path, deployment
):
    settings = make_settings(tmp_path / "var", deployment)
    key = tmp_path / "etc" / "secret_key"
    shared = Settings(**{**settings.__dict__, "secret_key_file": key})
    with pytest.raises(IntakeError, match="does not exist; make it once with"):
        build_app(shared)
    assert not key.exists() and not (settings.data_dir / "secret_key").exists()
    key.parent.mkdir()
    key.write_text("cd" * 32)
    key.chmod(0o644)
    with pytest.raises(IntakeError, match="open to every user"):
        build_app(shared)
    key.chmod(0o640)
    cheap_receipt_secrets(key.parent)
    one, other = (build_app(shared, {"TESTING": True}) for _ in range(2))
    assert one.secret_key == other.secret_key == b"cd" * 32
    key.write_text("short")
    with pytest.raises(IntakeError, match="is damaged"):
        build_app(shared)


# -- export and purge with no data folder ------------------------------------------------------


def intake_cli(env_extra: dict[str, str], *args: str, timeout: float = 600
               ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)


def cli_env(url: str, data_dir: Path, deployment: Deployment | None = None,
            store: str = "postgresql") -> dict[str, str]:
    env = {"INTAKE_DATABASE_URL": url, "INTAKE_DATA_DIR": str(data_dir),
           "INTAKE_BLOB_STORE": store}
    if deployment is not None:
        env.update(INTAKE_KEYRING=str(deployment.keyring_path),
                   INTAKE_ADMINS=str(deployment.admins_path))
    return env


def test_intake_db_reclaim_goes_over_every_shelf_with_no_data_folder(tmp_path, pg_url, engine):
    """After a purge cut short between its deletions and its reclaim."""
    store = PostgresBlobStore(engine)
    kept = write(store, b"k" * 5000, DAY)
    store.delete(write(store, os.urandom(CHUNK), DAY), DAY)
    store.delete(write(store, os.urandom(CHUNK), DAY + timedelta(days=1)), DAY + timedelta(days=1))
    before = filenode(engine, shelf_table(shelf_of(DAY)))
    run = intake_cli(cli_env(pg_url, tmp_path / "none"), "db", "reclaim")
    assert run.returncode == 0, run.stderr
    assert "Space of the deleted blobs reclaimed: 31 partition(s) emptied, 1 rewritten" in (
        run.stderr)
    assert filenode(engine, shelf_table(shelf_of(DAY))) != before
    assert read_all(store.open(kept, DAY)) == b"k" * 5000
    assert not (tmp_path / "none").exists()
    on_disk = intake_cli(cli_env(pg_url, tmp_path, store="filesystem"), "db", "reclaim")
    assert on_disk.returncode == 0 and "Nothing to do" in on_disk.stderr


# -- intake db move-blobs ----------------------------------------------------------------------


def filesystem_deployment(tmp_path: Path, url: str, count: int, size: int
                          ) -> tuple[Path, dict[str, bytes]]:
    """A data folder with `count` blobs of `size` bytes and their rows in `url`'s database."""
    data = tmp_path / "var"
    fs = FilesystemBlobStore(data / "blobs")
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)
    blobs = {}
    try:
        for i in range(count):
            content = os.urandom(size)
            submission_id = new_submission_id()
            with fs.writer(submission_id, DAY - timedelta(days=i % 3)) as out:
                out.write(content)
            record_submission(factory, fs, submission_id=submission_id,
                              day=DAY - timedelta(days=i % 3), keyring_version=1)
            blobs[submission_id] = content
    finally:
        engine.dispose()
    return data, blobs


def moved_count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM blob_chunks WHERE start = 0")).scalar()


@pytest.mark.slow
def test_move_blobs_killed_half_way_resumes_and_moves_everything_once(tmp_path, pg_url,
                                                                      engine):
    data, blobs = filesystem_deployment(tmp_path, pg_url, count=40, size=3 * MiB)
    # An upload in progress moves too: its part, as far as it arrived.
    fs_uploads = FilesystemUploadStore(data / "uploads", db.make_session_factory(engine))
    upload_id = fs_uploads.create(2 * MiB, 1)
    part = os.urandom(MiB + 5)
    fs_uploads.write_chunk(upload_id, 0, part)
    env = cli_env(pg_url, data, store="filesystem")

    run = subprocess.Popen([sys.executable, "-m", "intake", "db", "move-blobs"],
                           env={**{k: v for k, v in os.environ.items()
                                   if not k.startswith("INTAKE_")}, **env},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 300
    while moved_count(engine) < 5 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(60)
    half = moved_count(engine)
    on_disk = FilesystemBlobStore(data / "blobs").ids()
    assert 5 <= half < len(blobs), "the kill did not land half-way: make the blobs larger"
    assert len(on_disk) > 0 and on_disk <= blobs.keys()

    again = intake_cli(env, "db", "move-blobs")
    assert again.returncode == 0, again.stderr
    assert "Moving: 100%" in again.stderr and "Traceback" not in again.stderr
    assert re.search(r"Moved \d+ blob\(s\) into PostgreSQL and verified \d+", again.stderr)
    store = PostgresBlobStore(engine)
    assert store.ids() == blobs.keys()
    with db.make_session_factory(engine)() as session:
        days = dict(session.execute(select(Submission.id, Submission.received_on)).all())
    for submission_id, content in blobs.items():
        assert store.sha256(submission_id, days[submission_id]) == (
            hashlib.sha256(content).hexdigest())
    assert FilesystemBlobStore(data / "blobs").ids() == set()
    assert not list((data / "uploads").glob("*.part"))
    pg_uploads = PostgresUploadStore(db.make_session_factory(engine))
    assert pg_uploads.write_chunk(upload_id, len(part), os.urandom(MiB - 5)) == 2 * MiB

    third = intake_cli(env, "db", "move-blobs")
    assert third.returncode == 0 and "Nothing to move" in third.stderr, third.stderr


def test_move_blobs_stops_with_one_sentence_when_a_copy_does_not_match(tmp_path, pg_url, engine):
    data, blobs = filesystem_deployment(tmp_path, pg_url, count=4, size=1000)
    with db.make_session_factory(engine)() as session:
        days = dict(session.execute(select(Submission.id, Submission.received_on)).all())
    order = sorted(blobs, key=lambda i: (days[i], i))  # the order the command takes them in
    victim = order[1]
    with PostgresBlobStore(engine).writer(victim, days[victim]) as out:  # a different copy
        out.write(b"not the same bytes")
    moved = intake_cli(cli_env(pg_url, data), "db", "move-blobs")
    assert moved.returncode == 1 and "Traceback" not in moved.stderr
    assert f"The copy of blob {victim} in PostgreSQL does not match the file" in moved.stderr
    # The one before it moved; it and everything after are where they were, untouched.
    assert FilesystemBlobStore(data / "blobs").ids() == set(order[1:])
    assert PostgresBlobStore(engine).ids() == {order[0], victim}


def test_move_blobs_refuses_sqlite_in_one_sentence(tmp_path, deployment):
    settings = make_settings(tmp_path / "var", deployment)
    moved = intake_cli({"INTAKE_DATA_DIR": str(settings.data_dir)}, "db", "move-blobs")
    assert moved.returncode == 1 and "Traceback" not in moved.stderr
    assert "is not a PostgreSQL database" in moved.stderr


# -- purge: no purged ciphertext left in the relation files (a private cluster) ------------------


def submit_nojs(client, narrative: str) -> None:
    page = client.get("/en/report").get_data(as_text=True)
    sent = client.post("/en/report", content_type="multipart/form-data", data={
        **form_tokens(page), **valid_report(narrative=narrative),
        "attachments": [(io.BytesIO(os.urandom(300_000)), "capture.bin")]})
    assert sent.status_code == 200  # the thank-you page with its receipt


def needles(blob: bytes) -> list[bytes]:
    """Three 48-byte pieces of a blob's ciphertext: its start, middle and end."""
    return [blob[100:148], blob[len(blob) // 2:len(blob) // 2 + 48], blob[-60:-12]]


@pytest.mark.slow
def test_purge_leaves_no_purged_ciphertext_in_the_databases_files(tmp_path, deployment):
    # wal_recycle off: the WAL step SECURITY.md gives operators who want the WAL short too.
    with private_cluster(settings={"wal_recycle": "off"}) as cluster:
        db.upgrade(cluster.url)
        settings = pg_settings(tmp_path, deployment, cluster.url)
        client = build_app(settings, {"TESTING": True}).test_client()
        for i in range(3):
            submit_nojs(client, f"PURGED-{i}")
        engine = db.make_engine(cluster.url)
        store = PostgresBlobStore(engine)
        purged = {i: read_all(store.open(i)) for i in store.ids()}
        away = tmp_path / "admin-host"  # export and purge run where there is no data folder
        env = cli_env(cluster.url, away / "nothing-here", deployment)
        exported = intake_cli(env, "export", "--out", str(away / "usb"))
        assert exported.returncode == 0, exported.stderr
        [bundle] = (away / "usb").glob("*.tar")
        submit_nojs(client, "KEPT")  # arrives after the export: stays on the server
        [kept] = [read_all(store.open(i)) for i in store.ids() - purged.keys()]

        cluster.checkpoint()
        files = [p for found in cluster.relation_files().values() for p in found]
        before = files_holding(files, [n for blob in purged.values() for n in needles(blob)])
        assert all(before.values()), "the scan does not see ciphertext that is there"

        identity = deployment.identity_file(tmp_path / "reviewer.key", 0)
        cases = tmp_path / "cases"
        imported = intake_cli(env, "review", "import", str(bundle), "--identity", str(identity),
                              "--cases", str(cases))
        assert imported.returncode == 0, imported.stderr
        ack = away / "ack.json"
        acked = intake_cli(env, "review", "ack", str(bundle), "--cases", str(cases),
                           "--out", str(ack))
        assert acked.returncode == 0, acked.stderr
        purge = intake_cli(env, "purge", "--ack", str(ack))
        assert purge.returncode == 0, purge.stderr
        assert "3 deleted" in purge.stderr and "1 rewritten" in purge.stderr
        assert not away.joinpath("nothing-here").exists()

        cluster.checkpoint()
        relation_files = cluster.relation_files()
        files = [p for found in relation_files.values() for p in found]
        base = sorted((cluster.data / "base").rglob("*"))  # every file of every database
        after = files_holding(files + [p for p in base if p.is_file()],
                              [n for blob in purged.values() for n in needles(blob)])
        assert not any(after.values()), {k[:8].hex(): v for k, v in after.items() if v}
        assert all(files_holding(files, needles(kept)).values()), "the kept report is gone"
        assert len(store.ids()) == 1
        engine.dispose()

        # The write-ahead log is not a table: it still holds the purged ciphertext (SECURITY.md)
        # until the segments are removed, which the operator's steps there bring forward.
        def in_wal() -> bool:
            wal = [p for p in (cluster.data / "pg_wal").iterdir() if p.is_file()]
            found = files_holding(wal, [n for blob in purged.values() for n in needles(blob)])
            return any(found.values())

        assert in_wal()
        cluster.psql("CHECKPOINT")
        cluster.psql("SELECT pg_switch_wal()")
        cluster.psql("CHECKPOINT")
        assert not in_wal()


@pytest.mark.slow
def test_without_reclaim_a_deleted_blob_stays_in_the_files(tmp_path):
    """Why purge reclaims: DELETE and a plain VACUUM leave the bytes where they were."""
    with private_cluster() as cluster:
        db.upgrade(cluster.url)
        engine = db.make_engine(cluster.url)
        store = PostgresBlobStore(engine)
        purged = write(store, os.urandom(4 * CHUNK))
        write(store, os.urandom(4 * CHUNK))  # after it: VACUUM cannot cut the file short
        blob = read_all(store.open(purged, DAY))
        store.delete(purged, DAY)
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text(f"VACUUM {shelf_table(shelf_of(DAY))}"))
        cluster.checkpoint()
        files = [p for found in cluster.relation_files().values() for p in found]
        assert any(files_holding(files, needles(blob)).values())
        assert store.reclaim().rewritten == [shelf_of(DAY)]
        cluster.checkpoint()
        files = [p for found in cluster.relation_files().values() for p in found]
        assert not any(files_holding(files, needles(blob)).values())
        engine.dispose()
