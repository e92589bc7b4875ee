"""The rows of every ingestion, for training windows beyond the newest batch.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingested_batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("ingested_at", sa.String(32), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("piece", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_ingested_batches_batch_id", "ingested_batches", ["batch_id"])
    op.create_index("ix_ingested_batches_data_sha256", "ingested_batches", ["data_sha256"])


def downgrade() -> None:
    op.drop_index("ix_ingested_batches_data_sha256", table_name="ingested_batches")
    op.drop_index("ix_ingested_batches_batch_id", table_name="ingested_batches")
    op.drop_table("ingested_batches")
