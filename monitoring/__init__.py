"""Model monitoring for a deployed churn-risk classifier.

One module per step: :mod:`~monitoring.ingestion`, :mod:`~monitoring.training`,
:mod:`~monitoring.scoring`, :mod:`~monitoring.deployment`,
:mod:`~monitoring.diagnostics`, :mod:`~monitoring.drift`,
:mod:`~monitoring.reporting` and the full process in :mod:`~monitoring.pipeline`.
The command line is ``python -m monitoring``; the HTTP API is ``app.create_app``.
"""

__version__ = "0.1.0"
