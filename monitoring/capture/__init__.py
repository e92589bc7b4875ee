"""Prediction capture, delayed ground-truth labels and live performance.

Every ``POST /prediction`` request (or the ``capture.sample_rate`` share of them) is
recorded in ``captured_predictions``, one row per predicted input row
(:mod:`~monitoring.capture.records`): appended to a host-local journal on the request
path (:mod:`~monitoring.capture.writer`, :mod:`~monitoring.capture.journal`), moved into
the store by the importer (:mod:`~monitoring.capture.importer`,
:mod:`~monitoring.capture.ledger`). Labels arrive later through ``POST /feedback``
(:mod:`~monitoring.capture.feedback`).
"""

from monitoring.capture.feedback import live_performance
from monitoring.capture.importer import import_journals
from monitoring.capture.records import captured, purge, record, should_capture

__all__ = ["captured", "import_journals", "live_performance", "purge", "record", "should_capture"]
