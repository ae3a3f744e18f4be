"""Reviewer proofs and ack quorum: export challenges and proven acks.

`export_challenges` keeps, per bundle and active recipient, the public key
that the bundle's challenge for that recipient seeds, and the day of the
export; nothing in it names a submission. `submission_acks` records which
reviewers (recipient ids) have proven an ack of a submission; its rows go
with the submission.

Revision ID: 0004_ack_proofs
Revises: 0003_upload_budget
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ack_proofs"
down_revision = "0003_upload_budget"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_challenges",
        sa.Column("bundle_id", sa.String(32), primary_key=True),
        sa.Column("recipient_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("exported_on", sa.Date, nullable=False),
    )
    op.create_table(
        "submission_acks",
        sa.Column(
            "submission_id",
            sa.String(32),
            sa.ForeignKey("submissions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("recipient_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("submission_acks")
    op.drop_table("export_challenges")
