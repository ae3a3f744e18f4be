"""Uploads keep less: a 15-minute deadline while open, only a day once filed.

An open upload's expiry moves from "creation hour + 25" to a deadline in
minutes that each chunk pushes 15 minutes ahead (`expires_minute`). A filed
upload keeps only its id, its state and the day its row goes (`expires_on`):
no size, no keyring version, no hour. The check constraint `upload_row_shape`
holds every row to one of these two shapes.

The table is rebuilt (SQLite cannot alter a column's nullability): uploads in
progress keep their sizes and get a fresh 15-minute deadline, filed ones are
cut down to the new shape. Written by hand, for SQLite and PostgreSQL alike.

Revision ID: 0003_upload_budget
Revises: 0002
"""

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003_upload_budget"
# The file 0002_uploads.py names its revision "0002".
down_revision = "0002"
branch_labels = None
depends_on = None

#: The two shapes a row may have (intake.storage.models.UPLOAD_ROW_SHAPE, frozen here).
ROW_SHAPE = (
    "(state IN ('open', 'finishing') AND size IS NOT NULL AND received IS NOT NULL"
    " AND keyring_version IS NOT NULL AND expires_minute IS NOT NULL AND expires_on IS NULL)"
    " OR (state = 'finished' AND size IS NULL AND received IS NULL"
    " AND keyring_version IS NULL AND expires_minute IS NULL AND expires_on IS NOT NULL)"
)
STATES = "state IN ('open', 'finishing', 'finished')"
#: An open upload's deadline after the migration: 15 whole minutes at least (uploads.py).
STALL_MINUTES = 15


def _set_aside_old_table() -> None:
    op.rename_table("uploads", "uploads_old")
    if op.get_bind().dialect.name == "postgresql":
        # The primary key's index keeps its name through a table rename; free it.
        op.execute("ALTER INDEX uploads_pkey RENAME TO uploads_old_pkey")


def upgrade() -> None:
    _set_aside_old_table()
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("received", sa.BigInteger, nullable=True),
        sa.Column("keyring_version", sa.Integer, nullable=True),
        sa.Column("expires_minute", sa.Integer, nullable=True),
        sa.Column("expires_on", sa.Date, nullable=True),
        sa.CheckConstraint(STATES, name="upload_state"),
        sa.CheckConstraint(ROW_SHAPE, name="upload_row_shape"),
    )
    deadline = int(time.time() // 60) + STALL_MINUTES + 1
    goes_after = datetime.now(UTC).date() + timedelta(days=1)
    op.execute(
        sa.text(
            "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute)"
            " SELECT id, state, size, received, keyring_version, :deadline FROM uploads_old"
            " WHERE state IN ('open', 'finishing')"
        ).bindparams(deadline=deadline)
    )
    op.execute(
        sa.text(
            "INSERT INTO uploads (id, state, expires_on)"
            " SELECT id, state, :day FROM uploads_old WHERE state = 'finished'"
        ).bindparams(sa.bindparam("day", goes_after, type_=sa.Date))
    )
    op.drop_table("uploads_old")


def downgrade() -> None:
    _set_aside_old_table()
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("keyring_version", sa.Integer, nullable=False),
        sa.Column("expires_hour", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.CheckConstraint(STATES, name="upload_state"),
    )
    # 0002 kept uploads for 24 hours after the hour they began; a filed row's sizes are
    # gone, and 0002 never read them for a filed upload.
    expires_hour = int(time.time() // 3600) + 25
    op.execute(
        sa.text(
            "INSERT INTO uploads (id, size, received, keyring_version, expires_hour, state)"
            " SELECT id, COALESCE(size, 0), COALESCE(received, 0), COALESCE(keyring_version, 0),"
            " :hour, state FROM uploads_old"
        ).bindparams(hour=expires_hour)
    )
    op.drop_table("uploads_old")
