"""Data drift and model drift.

- :mod:`~monitoring.drift.statistics`: the two-sample statistics behind the
  checks, and Benjamini-Hochberg;
- :mod:`~monitoring.drift.reference`: :class:`ReferenceProfile`, the training
  data summarised once;
- :mod:`~monitoring.drift.data_drift`: :func:`detect_data_drift`, every column of
  a batch against the reference;
- :mod:`~monitoring.drift.model_drift`: score-based model-drift tests and the
  service's verdict.
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
