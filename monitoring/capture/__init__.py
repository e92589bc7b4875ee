"""Prediction capture, delayed ground-truth labels and live performance.

Every ``POST /prediction`` request (or a sampled share of them,
``capture.sample_rate``) is recorded in the record store table
``captured_predictions``: one row per predicted input row with the request id, the
time, the model version, the row's inputs and the model's output
(:mod:`~monitoring.capture.records`). With a SQLite store a request only appends
its rows to a journal file (:mod:`~monitoring.capture.journal`). Labels arrive
later through ``POST /feedback`` (:mod:`~monitoring.capture.feedback`).
"""

from monitoring.capture.feedback import (
    apply_feedback,
    labelled_count,
    live_performance,
    parse_feedback,
)
from monitoring.capture.journal import import_journals, run_importer
from monitoring.capture.records import captured, purge, record, should_capture

__all__ = [
    "apply_feedback",
    "captured",
    "import_journals",
    "labelled_count",
    "live_performance",
    "parse_feedback",
    "purge",
    "record",
    "run_importer",
    "should_capture",
]
