"""The first schema: submissions and the keyring version floor.

Only the metadata the architecture allows: per submission a random id, the day
it arrived (a DATE), the padded ciphertext size, the keyring version and a
state; and one row holding the highest keyring version ever accepted, starting
at 0. Written by hand, for SQLite and PostgreSQL alike.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("received_on", sa.Date, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("keyring_version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="received"),
        sa.CheckConstraint("state IN ('received', 'exported', 'purged')", name="submission_state"),
    )
    keyring_state = op.create_table(
        "keyring_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("highest_version", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("id = 1", name="keyring_state_single_row"),
    )
    op.bulk_insert(keyring_state, [{"id": 1, "highest_version": 0}])


def downgrade() -> None:
    op.drop_table("keyring_state")
    op.drop_table("submissions")
