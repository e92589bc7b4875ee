"""The record store as it was before migrations: history and captured predictions.

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
        "ingestions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.String(36), nullable=False, index=True),
        sa.Column("ingested_at", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_read", sa.Integer),
        sa.Column("rows_kept", sa.Integer),
        sa.Column("duplicates_removed", sa.Integer),
        sa.Column("sha256", sa.String(64)),
        sa.Column("message", sa.Text),
    )
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scored_at", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False, index=True),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("dataset_sha256", sa.String(64)),
        sa.Column("n_rows", sa.Integer),
        *(sa.Column(name, sa.Float) for name in ("f1", "precision", "recall", "accuracy")),
        sa.Column("roc_auc", sa.Float),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployed_at", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("previous_version", sa.String(64)),
        sa.Column("f1", sa.Float),
        sa.Column("sha256", sa.String(64)),
    )
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64)),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dataset_sha256", sa.String(64)),
        sa.Column("n_current", sa.Integer),
        sa.Column("dataset_drift", sa.Boolean),
        sa.Column("drift_share", sa.Float),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_table(
        "timings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("measured_at", sa.String(32), nullable=False),
        sa.Column("step", sa.String(32), nullable=False, index=True),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("reason", sa.Text),
        sa.Column("evidence", sa.Text),
    )
    op.create_table(
        "captured_predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("row_index", sa.Integer, nullable=False),
        sa.Column("captured_at", sa.String(32), nullable=False, index=True),
        sa.Column("model_version", sa.String(64), index=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("prediction", sa.Integer, nullable=False),
        sa.Column("probability", sa.Float),
        sa.Column("label", sa.Integer),
        sa.Column("labelled_at", sa.String(32)),
    )
    labelled = sa.text("label IS NOT NULL")
    op.create_index(
        "ix_captured_predictions_labelled",
        "captured_predictions",
        ["model_version", "label", "prediction", "probability"],
        sqlite_where=labelled,
        postgresql_where=labelled,
    )
    op.create_table(
        "capture_journals",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("imported", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "capture_journals",
        "captured_predictions",
        "runs",
        "timings",
        "drift_reports",
        "deployments",
        "scores",
        "ingestions",
    ):
        op.drop_table(table)
