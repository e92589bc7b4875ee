"""Data drift and model drift.

- :mod:`~monitoring.drift.statistics`: two-sample statistics (KS, Wasserstein,
  PSI, chi-square, Jensen-Shannon) and Benjamini-Hochberg, pure functions;
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
from monitoring.drift.statistics import (
    benjamini_hochberg,
    chi_square,
    jensen_shannon,
    ks_statistic_sorted,
    psi,
    wasserstein_normed,
)

__all__ = [
    "STATUSES",
    "ReferenceProfile",
    "benjamini_hochberg",
    "chi_square",
    "compare_score_histories",
    "detect_data_drift",
    "iqr_drift",
    "jensen_shannon",
    "ks_statistic_sorted",
    "live_model_drift",
    "model_drift_status",
    "parametric_drift",
    "psi",
    "raw_drift",
    "tolerance_drift",
    "wasserstein_normed",
]
