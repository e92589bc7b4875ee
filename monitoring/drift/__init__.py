"""Data drift and model drift.

:func:`detect_data_drift` tests a batch against a :class:`ReferenceProfile` of the
training data (statistics in :mod:`~monitoring.drift.statistics`);
:mod:`~monitoring.drift.model_drift` holds score-based tests and the service's verdict.
"""

from monitoring.drift.data_drift import STATUSES, detect_data_drift
from monitoring.drift.model_drift import (
    compare_score_histories,
    iqr_drift,
    live_model_drift,
    model_drift_status,
    parametric_drift,
    raw_drift,
    tolerance_drift,
)
from monitoring.drift.reference import ReferenceProfile
from monitoring.drift.statistics import benjamini_hochberg

__all__ = [
    "STATUSES",
    "ReferenceProfile",
    "benjamini_hochberg",
    "compare_score_histories",
    "detect_data_drift",
    "iqr_drift",
    "live_model_drift",
    "model_drift_status",
    "parametric_drift",
    "raw_drift",
    "tolerance_drift",
]
