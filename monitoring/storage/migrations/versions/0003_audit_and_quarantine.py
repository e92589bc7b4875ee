"""Unreadable capture-journal lines in quarantine; every label given as an audit trail.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_quarantine",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("quarantined_at", sa.String(32), nullable=False),
        sa.Column("journal", sa.String(128), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("length", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("excerpt", sa.Text),
    )
    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("row_id", sa.BigInteger, nullable=False),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("previous_label", sa.Integer),
        sa.Column("labelled_at", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64)),
    )
    op.create_index("ix_label_events_row_id", "label_events", ["row_id"])


def downgrade() -> None:
    op.drop_index("ix_label_events_row_id", table_name="label_events")
    op.drop_table("label_events")
    op.drop_table("capture_quarantine")
