"""Resumable uploads of browser-made ciphertext.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("keyring_version", sa.Integer, nullable=False),
        sa.Column("expires_hour", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.CheckConstraint("state IN ('open', 'finishing', 'finished')", name="upload_state"),
    )


def downgrade() -> None:
    op.drop_table("uploads")
