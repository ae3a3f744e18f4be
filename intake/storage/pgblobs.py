"""The PostgreSQL blob store: ciphertext as chunk rows, so that app servers keep nothing.

With INTAKE_BLOB_STORE=postgresql a submission's age file is cut into rows
of at most `CHUNK` (1 MiB) bytes in `blob_chunks` (`intake.storage.models.
BlobChunk`): its id, the offset each row starts at, and its shelf. Browser
uploads in progress are rows of the same table under ``part:<upload id>``
(`intake.storage.uploads.PostgresUploadStore`), so an upload begun on one app
server is finished on another, and filing it renames its rows: no byte is
copied.

What it promises:

- **Streamed.** `writer` keeps at most one chunk in memory and inserts each
  as it fills; `open` fetches one row at a time. Neither ever holds a whole
  blob (bench/large_upload.py --blob-store postgresql and
  tests/test_pgblobs.py measure it).
- **Whole or absent.** A blob's rows are inserted in one transaction, committed
  when the writer's block ends cleanly: an exception, a killed process or a
  database that stops mid-write rolls it back, and nothing of it is visible.
  The commit is durable (synchronous_commit, as PostgreSQL ships) before the
  caller records the submission's row, as on disk.
- **No superuser.** The app's role needs only to own its tables; nothing
  here uses large objects (see below).
- **Purge removes the bytes, not just the rows.** A DELETE leaves the rows'
  bytes in the table's files until the space is reused, and a plain VACUUM
  does not clear them either (measured: bench/pg_blob_layouts.py). So the
  table is LIST-partitioned by shelf (the day the blob arrived, modulo 32) and
  `reclaim` empties (TRUNCATE) each shelf that purge left without a blob, and
  rewrites (VACUUM FULL) each one it left with some: either gives the shelf
  fresh files holding only the live rows, and the old files are unlinked.
  Each takes an ACCESS EXCLUSIVE lock on that one partition only: uploads to
  today's shelf wait while it is rewritten (about a second per 100 MiB of
  live blobs on it, measured), every other shelf carries on. A shelf whose
  lock cannot be had within `RECLAIM_LOCK_TIMEOUT` is skipped and reported.
- **What stays anyway.** The write-ahead log, standbys and WAL archives keep
  copies of the bytes for their own retention (SECURITY.md says how long and
  how to shorten it); the file system keeps unlinked blocks until reused.

Why chunk rows and not large objects: large objects live in the one
catalog table `pg_largeobject`, whose space only `VACUUM FULL pg_largeobject`
gives back. On PostgreSQL 15 only a superuser or the database's owner may run
it, it rewrites every blob in the database, and it locks out every upload and
export meanwhile; and they wrote at about half the speed of chunk rows here
(bench/pg_blob_layouts.py, figures in deploy/README.md).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import date
from typing import BinaryIO

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from intake.storage.blobs import BlobStore, Progress, Reclaimed, check_id
from intake.storage.models import SHELVES, BlobChunk, shelf_of, shelf_table

#: The largest row: a write is cut into rows of this size, a read fetches one at a time.
CHUNK = 1 << 20

#: How an upload's rows are named while it is in progress (an upload id is never 32 hex).
PART_PREFIX = "part:"

#: How long `reclaim` waits for a shelf's lock before it skips that shelf.
RECLAIM_LOCK_TIMEOUT = "10s"

_chunks = BlobChunk.__table__


def part_blob_id(upload_id: str) -> str:
    return PART_PREFIX + upload_id


def insert_chunks(connection: Connection, shelf: int, blob_id: str, start: int,
                  data: bytes | memoryview) -> None:
    """Insert `data` as rows of at most `CHUNK` bytes, the first starting at `start`."""
    view = memoryview(data)
    for offset in range(0, len(view), CHUNK):
        connection.execute(insert(_chunks), {
            "shelf": shelf, "blob_id": blob_id, "start": start + offset,
            "data": bytes(view[offset:offset + CHUNK]),
        })


def stored_size(connection: Connection, shelf: int, blob_id: str) -> tuple[int, int]:
    """(rows, bytes) of a blob on `shelf`; octet_length reads only each row's TOAST pointer."""
    count, size = connection.execute(
        select(func.count(), func.coalesce(func.sum(func.octet_length(_chunks.c.data)), 0))
        .where(_chunks.c.shelf == shelf, _chunks.c.blob_id == blob_id)
    ).one()
    return int(count), int(size)


def read_prefix(connection: Connection, shelf: int, blob_id: str, length: int) -> bytes:
    """The first `length` bytes of a blob (fewer if it is shorter), row by row."""
    out = bytearray()
    while len(out) < length:
        piece = connection.execute(
            select(func.substring(_chunks.c.data, 1, length - len(out)))
            .where(_chunks.c.shelf == shelf, _chunks.c.blob_id == blob_id,
                   _chunks.c.start == len(out))
        ).scalar()
        if not piece:
            break
        out += piece
    return bytes(out)


def rename_blob(connection: Connection, shelf: int, old_id: str, new_id: str) -> int:
    """Give a blob's rows a new id on the same shelf; only the small heap tuples are
    rewritten (PostgreSQL keeps an unchanged out-of-line value in place). Rows renamed."""
    return connection.execute(
        update(_chunks).where(_chunks.c.shelf == shelf, _chunks.c.blob_id == old_id)
        .values(blob_id=new_id)
    ).rowcount


class _ChunkWriter(io.RawIOBase):
    """A write-only file that inserts a row each time `CHUNK` bytes have gathered."""

    def __init__(self, connection: Connection, shelf: int, blob_id: str):
        super().__init__()
        self._connection, self._shelf, self._blob_id = connection, shelf, blob_id
        self._buffer = bytearray()
        self._written = 0
        #: The database's error, kept: pyrage wraps what a write raises in its own error.
        self.failure: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed blob writer")
        if self.failure is not None:
            raise self.failure
        view = memoryview(data).cast("B")
        self._buffer += view
        try:
            while len(self._buffer) >= CHUNK:
                self._insert(bytes(self._buffer[:CHUNK]))
                del self._buffer[:CHUNK]
        except BaseException as exc:
            self.failure = exc
            raise
        return len(view)

    def finish(self) -> int:
        """Insert what is left (a blob always has its row at offset 0); the blob's size."""
        if self.failure is not None:
            raise self.failure
        if self._buffer or not self._written:
            self._insert(bytes(self._buffer))
            self._buffer.clear()
        return self._written

    def _insert(self, piece: bytes) -> None:
        self._connection.execute(insert(_chunks), {
            "shelf": self._shelf, "blob_id": self._blob_id, "start": self._written,
            "data": piece,
        })
        self._written += len(piece)


class _ChunkReader(io.RawIOBase):
    """A read-only file over a blob's rows, fetching one row (at most 1 MiB) at a time."""

    def __init__(self, engine: Engine, shelf: int, blob_id: str, size: int):
        super().__init__()
        self._engine, self._shelf, self._blob_id, self._size = engine, shelf, blob_id, size
        self._row = b""
        self._row_start = 0
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._position >= self._size:
            return 0
        offset = self._position - self._row_start
        if offset >= len(self._row):
            self._fetch()
            offset = 0
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._row) - offset)
        view[:count] = self._row[offset:offset + count]
        self._position += count
        return count

    def read(self, size: int = -1) -> bytes:
        """`size` bytes, fewer only at the end (tarfile counts a short read as the end).
        Without a size, the next `CHUNK` bytes: never the whole blob at once."""
        if size is None or size < 0:
            size = CHUNK
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size and (count := self.readinto(view[got:])):
            got += count
        view.release()
        del buffer[got:]
        return bytes(buffer)

    def readall(self) -> bytes:
        raise io.UnsupportedOperation("read a blob in pieces: read(n)")

    def _fetch(self) -> None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_chunks.c.data).where(
                    _chunks.c.shelf == self._shelf, _chunks.c.blob_id == self._blob_id,
                    _chunks.c.start == self._position,
                )
            ).scalar()
        if not row:
            raise OSError(f"the blob is missing its bytes from offset {self._position}")
        self._row, self._row_start = row, self._position


class PostgresBlobStore(BlobStore):
    """Blobs as chunk rows in `blob_chunks` (see the module docstring)."""

    kind = "postgresql"

    def __init__(self, engine: Engine):
        if engine.dialect.name != "postgresql":
            raise ValueError("the PostgreSQL blob store needs a PostgreSQL database")
        self.engine = engine
        #: Shelves this process deleted blobs from since its last `reclaim`.
        self.touched: set[int] = set()

    def _shelf(self, submission_id: str, day: date | None) -> int | None:
        check_id(submission_id)
        if day is not None:
            return shelf_of(day)
        with self.engine.connect() as connection:  # every shelf's index: only when no day is known
            return connection.execute(
                select(_chunks.c.shelf).where(_chunks.c.blob_id == submission_id,
                                              _chunks.c.start == 0)
            ).scalar()

    @contextlib.contextmanager
    def writer(self, submission_id: str, day: date) -> Iterator[BinaryIO]:
        check_id(submission_id)
        shelf = shelf_of(day)
        if self.exists(submission_id, day):
            raise FileExistsError("a blob with this id already exists")
        with self.engine.connect() as connection:
            transaction = connection.begin()
            out = _ChunkWriter(connection, shelf, submission_id)
            try:
                yield out  # type: ignore[misc]
                out.finish()
                transaction.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    transaction.rollback()
                if isinstance(exc, IntegrityError) or isinstance(out.failure, IntegrityError):
                    raise FileExistsError("a blob with this id already exists") from None
                if out.failure is not None and exc is not out.failure:
                    # pyrage reports a failed write as its own error: the cause is the database's.
                    raise out.failure from None
                raise
            finally:
                out.close()

    def open(self, submission_id: str, day: date | None = None) -> BinaryIO:
        shelf = self._shelf(submission_id, day)
        if shelf is None:
            raise FileNotFoundError("there is no blob with this id")
        with self.engine.connect() as connection:
            count, size = stored_size(connection, shelf, submission_id)
        if not count:
            raise FileNotFoundError("there is no blob with this id")
        return _ChunkReader(self.engine, shelf, submission_id, size)  # type: ignore[return-value]

    def size(self, submission_id: str, day: date | None = None) -> int:
        shelf = self._shelf(submission_id, day)
        if shelf is not None:
            with self.engine.connect() as connection:
                count, size = stored_size(connection, shelf, submission_id)
            if count:
                return size
        raise FileNotFoundError("there is no blob with this id")

    def exists(self, submission_id: str, day: date | None = None) -> bool:
        shelf = self._shelf(submission_id, day)
        if shelf is None:
            return False
        with self.engine.connect() as connection:
            return connection.execute(
                select(_chunks.c.start).where(_chunks.c.shelf == shelf,
                                              _chunks.c.blob_id == submission_id,
                                              _chunks.c.start == 0)
            ).first() is not None

    def delete(self, submission_id: str, day: date | None = None) -> None:
        shelf = self._shelf(submission_id, day)
        if shelf is None:
            return
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(_chunks).where(_chunks.c.shelf == shelf, _chunks.c.blob_id == submission_id)
            ).rowcount
        if deleted:
            self.touched.add(shelf)

    def ids(self) -> set[str]:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(_chunks.c.blob_id).where(_chunks.c.start == 0,
                                                _chunks.c.blob_id.not_like(PART_PREFIX + "%"))
            ).scalars()
            return {blob_id for blob_id in found if _is_submission_id(blob_id)}

    def reclaim(self, *, everything: bool = False, progress: Progress | None = None) -> Reclaimed:
        """Empty or rewrite the shelves this process deleted from (`everything`: every shelf).

        A shelf with no row left is emptied (TRUNCATE, under its lock, so a blob
        written meanwhile is seen and the shelf rewritten instead); a shelf with
        rows is rewritten (VACUUM FULL). Both give the partition and its TOAST
        table new files that hold only live rows. A shelf whose lock is not had
        within `RECLAIM_LOCK_TIMEOUT` is left as it is and listed as busy.
        """
        shelves = sorted(range(SHELVES) if everything else self.touched)
        result = Reclaimed()
        for done, shelf in enumerate(shelves):
            if progress:
                progress(done, len(shelves))
            try:
                emptied, copied = self._reclaim_shelf(shelf)
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                result.busy.append(shelf)
                continue
            (result.emptied if emptied else result.rewritten).append(shelf)
            result.copied += copied
            self.touched.discard(shelf)
        if progress:
            progress(len(shelves), len(shelves))
        return result

    def _reclaim_shelf(self, shelf: int) -> tuple[bool, int]:
        """(emptied, live bytes copied) for one partition; raises on a lock timeout."""
        table = shelf_table(shelf)  # "blob_chunks_" and two digits: never input
        with self.engine.connect() as connection:
            with connection.begin():
                connection.execute(text(f"SET LOCAL lock_timeout = '{RECLAIM_LOCK_TIMEOUT}'"))
                connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                # Through the parent with the shelf given: pruned to the partition locked above.
                rows, live = connection.execute(
                    select(func.count(),
                           func.coalesce(func.sum(func.octet_length(_chunks.c.data)), 0))
                    .where(_chunks.c.shelf == shelf)
                ).one()
                if not rows:
                    connection.execute(text(f"TRUNCATE {table}"))
                    return True, 0
            # VACUUM cannot run in a transaction: on this connection, outside one.
            auto = connection.execution_options(isolation_level="AUTOCOMMIT")
            auto.execute(text(f"SET lock_timeout = '{RECLAIM_LOCK_TIMEOUT}'"))
            try:
                auto.execute(text(f"VACUUM FULL {table}"))
            finally:
                auto.execute(text("RESET lock_timeout"))
            return False, int(live)


def _is_submission_id(blob_id: str) -> bool:
    try:
        check_id(blob_id)
    except ValueError:
        return False
    return True
