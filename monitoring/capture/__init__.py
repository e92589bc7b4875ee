"""Prediction capture, delayed ground-truth labels and live performance.

Every ``POST /prediction`` request (or the ``capture.sample_rate`` share of them) is
recorded in ``captured_predictions``, one row per predicted input row
(:mod:`~monitoring.capture.records`, through :mod:`~monitoring.capture.journal` with
SQLite); labels arrive later through ``POST /feedback``
(:mod:`~monitoring.capture.feedback`).
"""

from monitoring.capture.feedback import live_performance
from monitoring.capture.journal import import_journals
from monitoring.capture.records import captured, purge, record, should_capture

__all__ = ["captured", "import_journals", "live_performance", "purge", "record", "should_capture"]
