"""Request latency per hour, URL rule and latency bucket (the dashboard's p95 trend).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_latency",
        sa.Column("hour", sa.String(13), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hour", "endpoint", "bucket", name="pk_request_latency"),
    )


def downgrade() -> None:
    op.drop_table("request_latency")
