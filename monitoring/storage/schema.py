"""The tables of the record store (SQLAlchemy Core); changes go through Alembic.

History (ingestions, scores, deployments, drift reports, timings, runs), captured
predictions, and what the web tier serves from any host: model versions with their
artifact bytes (``model_versions``), the live pointer (``live_model``) and the data
profile of the latest ingestion (``data_profiles``). A schema change is a new
migration in ``monitoring/storage/migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

ingestions = Table(
    "ingestions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", String(36), nullable=False, index=True),
    Column("ingested_at", String(32), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("source_path", Text, nullable=False),
    Column("status", String(16), nullable=False),  # accepted | rejected
    Column("rows_read", Integer),
    Column("rows_kept", Integer),
    Column("duplicates_removed", Integer),
    Column("sha256", String(64)),
    Column("message", Text),
)

scores = Table(
    "scores",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scored_at", String(32), nullable=False),
    Column("model_version", String(64), nullable=False, index=True),
    Column("dataset", String(32), nullable=False),  # test | ingested | live
    Column("dataset_sha256", String(64)),
    Column("n_rows", Integer),
    Column("f1", Float),
    Column("precision", Float),
    Column("recall", Float),
    Column("accuracy", Float),
    Column("roc_auc", Float),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deployed_at", String(32), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # deploy | rollback
    Column("previous_version", String(64)),
    Column("f1", Float),
    Column("sha256", String(64)),
)

drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("model_version", String(64)),
    Column("source", String(32), nullable=False),  # ingested | pipeline | request (ad-hoc)
    Column("dataset_sha256", String(64)),
    Column("n_current", Integer),
    Column("dataset_drift", Boolean),
    Column("drift_share", Float),
    Column("report", Text, nullable=False),
)

timings = Table(
    "timings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("measured_at", String(32), nullable=False),
    Column("step", String(32), nullable=False, index=True),
    Column("seconds", Float, nullable=False),
    Column("rows", Integer),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("status", String(16), nullable=False),  # running | completed | failed
    Column("outcome", String(32)),
    Column("reason", Text),
    Column("evidence", Text),
)

# One row per predicted input row of /prediction, labelled later (monitoring.capture).
captured_predictions = Table(
    "captured_predictions",
    metadata,
    Column("id", Integer, primary_key=True),  # the row id given to clients
    Column("request_id", String(128), nullable=False, index=True),
    Column("row_index", Integer, nullable=False),
    Column("captured_at", String(32), nullable=False, index=True),
    Column("model_version", String(64), index=True),
    Column("inputs", Text, nullable=False),  # JSON object of the row's columns
    Column("prediction", Integer, nullable=False),
    Column("probability", Float),
    Column("label", Integer),  # ground truth, NULL until feedback arrives
    Column("labelled_at", String(32)),
)
# Live performance reads only labelled rows: a partial index holding what it needs
# keeps that query proportional to the labelled rows, not to all captured ones.
Index(
    "ix_captured_predictions_labelled",
    captured_predictions.c.model_version,
    captured_predictions.c.label,
    captured_predictions.c.prediction,
    captured_predictions.c.probability,
    sqlite_where=captured_predictions.c.label.is_not(None),
    postgresql_where=captured_predictions.c.label.is_not(None),
)


# Bytes of each capture journal imported so far: each line is imported exactly once.
capture_journals = Table(
    "capture_journals",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("imported", Integer, nullable=False),
)

# Every model trained: its pickle and drift reference as bytes (verified by SHA-256 on
# load), metadata and test score as JSON; ``deployed_at`` once published.
model_versions = Table(
    "model_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("trained_at", String(32), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("reference", LargeBinary, nullable=False),
    Column("score", Text),
    Column("ingestion_record", Text),
    Column("model_card", Text),
    Column("deployed_at", String(32)),
)

# The live model: one row (id 1) naming the deployed version.
live_model = Table(
    "live_model",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(64)),
    Column("changed_at", String(32), nullable=False),
)

# The profile of each ingestion: summary statistics and missing data as JSON, and the
# drift profile of the ingested features (ReferenceProfile bytes) for GET /drift.
data_profiles = Table(
    "data_profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("data_sha256", String(64)),
    Column("profile", Text, nullable=False),
    Column("reference", LargeBinary),
)

# The rows each ingestion kept (its ``finaldata.csv``), as zstd-compressed CSV pieces
# (each with the header line): what a
# training window other than ``new`` trains on (``training.window``). A batch whose
# data is byte-identical to a stored one is stored once (``data_sha256``).
ingested_batches = Table(
    "ingested_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", String(36), nullable=False, index=True),
    Column("ingested_at", String(32), nullable=False),
    Column("data_sha256", String(64), nullable=False, index=True),
    Column("piece", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),  # bytes of the CSV before compression
    Column("data", LargeBinary, nullable=False),
)

# Named counters handed out in blocks (capture row ids), atomically across hosts.
counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Journal lines the importer could not read (torn or foreign bytes): where they were,
# why, and their first bytes; the whole line is kept in the host's quarantine folder.
capture_quarantine = Table(
    "capture_quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("quarantined_at", String(32), nullable=False),
    Column("journal", String(128), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("excerpt", Text),
)

# Every label given to a captured row, in order: relabelling adds an event, and
# ``captured_predictions.label`` holds the latest.
label_events = Table(
    "label_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("row_id", BigInteger, nullable=False, index=True),
    Column("label", Integer, nullable=False),
    Column("previous_label", Integer),
    Column("labelled_at", String(32), nullable=False),
    Column("source", String(64)),  # who sent it: admin_token, feedback_token or anonymous
)

# Request latency per hour (UTC, ``YYYY-MM-DDTHH``), URL rule and latency bucket: each
# worker adds its counts every few seconds (monitoring.web.latency), so the table holds
# at most hours x rules x buckets rows; hours older than capture.retention_days go.
request_latency = Table(
    "request_latency",
    metadata,
    Column("hour", String(13), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("bucket", Integer, nullable=False),  # index into LATENCY_BUCKETS (upper bounds)
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("hour", "endpoint", "bucket", name="pk_request_latency"),
)
