"""Blobs in PostgreSQL: the chunk table, and the day each upload began.

`blob_chunks` holds the ciphertext of submissions and of browser uploads in
progress when INTAKE_BLOB_STORE=postgresql (intake.storage.pgblobs): rows of
at most 1 MiB, keyed by blob id, offset and shelf. On PostgreSQL it is
LIST-partitioned by shelf into `blob_chunks_00` … `blob_chunks_31` (a day's
blobs on one shelf, so purge can rewrite or empty one partition at a time),
and its `data` column is STORAGE EXTERNAL (out of line, never compressed:
ciphertext does not compress). On SQLite it is a plain table that stays
empty: the PostgreSQL store needs PostgreSQL.

`uploads` gains `started_on`, the day an open upload began (its submission
is dated to it, and its chunks lie on that day's shelf); a filed row keeps
none, and the check constraint `upload_row_shape` now says so. The table is
rebuilt as in 0003 (SQLite cannot add a constraint): uploads in progress are
taken to have begun today, filed rows keep their shape.

Revision ID: 0006_pg_blobs
Revises: 0004_ack_proofs
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006_pg_blobs"
down_revision = "0004_ack_proofs"
branch_labels = None
depends_on = None

#: intake.storage.models.SHELVES, frozen here.
SHELVES = 32

#: The two shapes an upload row may have (intake.storage.models.UPLOAD_ROW_SHAPE, frozen here).
ROW_SHAPE = (
    "(state IN ('open', 'finishing') AND size IS NOT NULL AND received IS NOT NULL"
    " AND keyring_version IS NOT NULL AND expires_minute IS NOT NULL AND started_on IS NOT NULL"
    " AND expires_on IS NULL)"
    " OR (state = 'finished' AND size IS NULL AND received IS NULL"
    " AND keyring_version IS NULL AND expires_minute IS NULL AND started_on IS NULL"
    " AND expires_on IS NOT NULL)"
)
#: The shapes before this revision (0003_upload_budget.ROW_SHAPE).
OLD_ROW_SHAPE = (
    "(state IN ('open', 'finishing') AND size IS NOT NULL AND received IS NOT NULL"
    " AND keyring_version IS NOT NULL AND expires_minute IS NOT NULL AND expires_on IS NULL)"
    " OR (state = 'finished' AND size IS NULL AND received IS NULL"
    " AND keyring_version IS NULL AND expires_minute IS NULL AND expires_on IS NOT NULL)"
)
STATES = "state IN ('open', 'finishing', 'finished')"


def _set_aside_uploads() -> None:
    op.rename_table("uploads", "uploads_old")
    if op.get_bind().dialect.name == "postgresql":
        # The primary key's index keeps its name through a table rename; free it.
        op.execute("ALTER INDEX uploads_pkey RENAME TO uploads_old_pkey")


def _uploads_table(shape: str, *, started_on: bool) -> None:
    columns = [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("received", sa.BigInteger, nullable=True),
        sa.Column("keyring_version", sa.Integer, nullable=True),
        sa.Column("expires_minute", sa.Integer, nullable=True),
        sa.Column("expires_on", sa.Date, nullable=True),
    ]
    if started_on:
        columns.append(sa.Column("started_on", sa.Date, nullable=True))
    op.create_table(
        "uploads",
        *columns,
        sa.CheckConstraint(STATES, name="upload_state"),
        sa.CheckConstraint(shape, name="upload_row_shape"),
    )


def upgrade() -> None:
    _set_aside_uploads()
    _uploads_table(ROW_SHAPE, started_on=True)
    today = datetime.now(UTC).date()
    op.execute(
        sa.text(
            "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute,"
            " expires_on, started_on) SELECT id, state, size, received, keyring_version,"
            " expires_minute, expires_on, :day FROM uploads_old"
            " WHERE state IN ('open', 'finishing')"
        ).bindparams(sa.bindparam("day", today, type_=sa.Date))
    )
    op.execute(
        "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute,"
        " expires_on) SELECT id, state, size, received, keyring_version, expires_minute,"
        " expires_on FROM uploads_old WHERE state = 'finished'"
    )
    op.drop_table("uploads_old")

    op.create_table(
        "blob_chunks",
        sa.Column("shelf", sa.SmallInteger, nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("start", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("blob_id", "start", "shelf", name="blob_chunks_pkey"),
        sa.CheckConstraint("start >= 0", name="blob_chunk_start"),
        postgresql_partition_by="LIST (shelf)",
    )
    if op.get_bind().dialect.name == "postgresql":
        # Ciphertext does not compress: store it out of line as it is, without trying.
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        for shelf in range(SHELVES):
            op.execute(
                f"CREATE TABLE blob_chunks_{shelf:02d} PARTITION OF blob_chunks "
                f"FOR VALUES IN ({shelf})"
            )


def downgrade() -> None:
    # Dropping the table would drop every report kept in PostgreSQL: refuse while any is.
    if op.get_bind().execute(sa.text("SELECT 1 FROM blob_chunks LIMIT 1")).first() is not None:
        raise RuntimeError(
            "blob_chunks still holds blobs (INTAKE_BLOB_STORE=postgresql); export and purge "
            "them before going back to a version without the PostgreSQL blob store."
        )
    op.drop_table("blob_chunks")  # the partitions go with it
    _set_aside_uploads()
    _uploads_table(OLD_ROW_SHAPE, started_on=False)
    op.execute(
        "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute,"
        " expires_on) SELECT id, state, size, received, keyring_version, expires_minute,"
        " expires_on FROM uploads_old"
    )
    op.drop_table("uploads_old")
