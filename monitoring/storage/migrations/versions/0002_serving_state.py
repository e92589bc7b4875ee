"""What the web tier serves from any host: model versions, the live pointer, profiles.

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
        "model_versions",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("trained_at", sa.String(32), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False),
        sa.Column("reference", sa.LargeBinary, nullable=False),
        sa.Column("score", sa.Text),
        sa.Column("ingestion_record", sa.Text),
        sa.Column("model_card", sa.Text),
        sa.Column("deployed_at", sa.String(32)),
    )
    op.create_table(
        "live_model",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.String(64)),
        sa.Column("changed_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "data_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("data_sha256", sa.String(64)),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("reference", sa.LargeBinary),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("counters", "data_profiles", "live_model", "model_versions"):
        op.drop_table(table)
