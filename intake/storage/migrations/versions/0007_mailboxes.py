"""Source mailboxes: the follow-up channel's receipts, statuses and replies.

`mailboxes` keeps per mailbox the hash of its lookup key, its wrapped reply
identity and recipient, its thread id and the day of its last activity;
`mailbox_submissions` the status of each submission sent through it;
`mailbox_replies` the reviewers' replies, padded age ciphertext. Both go with
their mailbox (ON DELETE CASCADE). An open upload gains `mailbox`, the
thread it will be filed into; a filed one keeps none (`upload_mailbox_shape`).

The uploads table is rebuilt (SQLite cannot add a check constraint to a
table), keeping every row as it is. Written by hand, for SQLite and
PostgreSQL alike.

It comes after 0006_pg_blobs: the two were written at the same time on
0004_ack_proofs, and 0006 landed first, so a database already at 0006
upgrades to this one. (Number 0005 is unused.)

Revision ID: 0007_mailboxes
Revises: 0006_pg_blobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_mailboxes"
down_revision = "0006_pg_blobs"
branch_labels = None
depends_on = None

#: Frozen copies of intake.storage.models' constraints as this revision made them.
ROW_SHAPE = (
    "(state IN ('open', 'finishing') AND size IS NOT NULL AND received IS NOT NULL"
    " AND keyring_version IS NOT NULL AND expires_minute IS NOT NULL AND started_on IS NOT NULL"
    " AND expires_on IS NULL)"
    " OR (state = 'finished' AND size IS NULL AND received IS NULL"
    " AND keyring_version IS NULL AND expires_minute IS NULL AND started_on IS NULL"
    " AND expires_on IS NOT NULL)"
)
STATES = "state IN ('open', 'finishing', 'finished')"
MAILBOX_SHAPE = "state IN ('open', 'finishing') OR mailbox IS NULL"
STATUSES = "status IN ('received', 'exported', 'imported')"


def _uploads_table(with_mailbox: bool) -> None:
    columns = [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("received", sa.BigInteger, nullable=True),
        sa.Column("keyring_version", sa.Integer, nullable=True),
        sa.Column("expires_minute", sa.Integer, nullable=True),
        sa.Column("expires_on", sa.Date, nullable=True),
        sa.Column("started_on", sa.Date, nullable=True),
        sa.CheckConstraint(STATES, name="upload_state"),
        sa.CheckConstraint(ROW_SHAPE, name="upload_row_shape"),
    ]
    if with_mailbox:
        columns += [
            sa.Column("mailbox", sa.String(32), nullable=True),
            sa.CheckConstraint(MAILBOX_SHAPE, name="upload_mailbox_shape"),
        ]
    op.create_table("uploads", *columns)


def _rebuild_uploads(with_mailbox: bool) -> None:
    op.rename_table("uploads", "uploads_old")
    if op.get_bind().dialect.name == "postgresql":
        # The primary key's index keeps its name through a table rename; free it.
        op.execute("ALTER INDEX uploads_pkey RENAME TO uploads_old_pkey")
    _uploads_table(with_mailbox)
    op.execute(
        "INSERT INTO uploads (id, state, size, received, keyring_version, expires_minute,"
        " expires_on, started_on) SELECT id, state, size, received, keyring_version,"
        " expires_minute, expires_on, started_on FROM uploads_old"
    )
    op.drop_table("uploads_old")


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("thread", sa.String(32), primary_key=True),
        sa.Column("lookup_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("wrapped_identity", sa.LargeBinary, nullable=False),
        sa.Column("reply_to", sa.String(100), nullable=False),
        sa.Column("last_active_on", sa.Date, nullable=False),
    )
    op.create_table(
        "mailbox_submissions",
        sa.Column("submission_id", sa.String(32), primary_key=True),
        sa.Column(
            "thread",
            sa.String(32),
            sa.ForeignKey("mailboxes.thread", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="received"),
        sa.CheckConstraint(STATUSES, name="mailbox_submission_status"),
        sa.UniqueConstraint("thread", "number", name="mailbox_submission_order"),
    )
    op.create_index("ix_mailbox_submissions_thread", "mailbox_submissions", ["thread"])
    op.create_table(
        "mailbox_replies",
        sa.Column("reply_id", sa.String(32), primary_key=True),
        sa.Column(
            "thread",
            sa.String(32),
            sa.ForeignKey("mailboxes.thread", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("thread", "number", name="mailbox_reply_order"),
    )
    op.create_index("ix_mailbox_replies_thread", "mailbox_replies", ["thread"])
    _rebuild_uploads(with_mailbox=True)


def downgrade() -> None:
    # Dropping the tables would drop every source's mailbox, replies and all, and
    # strand the receipts already given: refuse while any mailbox lives.
    if op.get_bind().execute(sa.text("SELECT 1 FROM mailboxes LIMIT 1")).first() is not None:
        raise RuntimeError(
            "mailboxes still holds sources' mailboxes; going back to a version without the "
            "follow-up channel would delete their replies. Wait until they expire "
            "(INTAKE_MAILBOX_DAYS), or keep this version."
        )
    _rebuild_uploads(with_mailbox=False)
    op.drop_index("ix_mailbox_replies_thread", table_name="mailbox_replies")
    op.drop_table("mailbox_replies")
    op.drop_index("ix_mailbox_submissions_thread", table_name="mailbox_submissions")
    op.drop_table("mailbox_submissions")
    op.drop_table("mailboxes")
