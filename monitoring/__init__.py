"""Model monitoring for a deployed churn-risk classifier.

One module per step: :mod:`~monitoring.data.ingestion`, :mod:`~monitoring.model.training`,
:mod:`~monitoring.model.scoring`, :mod:`~monitoring.model.deployment`,
:mod:`~monitoring.diagnostics.timing`, :mod:`~monitoring.drift`,
:mod:`~monitoring.reports.reporting` and the full process in :mod:`~monitoring.pipeline`.
The command line is ``python -m monitoring``; the HTTP API is ``app.create_app``.
"""

__version__ = "0.1.0"
