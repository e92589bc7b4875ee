"""Model monitoring for a deployed churn-risk classifier.

Subpackages by capability, each layer importing only the ones below it:

- :mod:`~monitoring.web` and :mod:`~monitoring.cli`: the HTTP API and the command line;
- :mod:`~monitoring.pipeline`: the full process (new data, drift, retrain, gate, deploy);
- :mod:`~monitoring.reports`: report, dashboard, model card;
- :mod:`~monitoring.readmodels`: what the API serves, cached per process;
- :mod:`~monitoring.capture`: captured predictions, feedback labels, live performance;
- :mod:`~monitoring.diagnostics`: step timings, dependency check;
- :mod:`~monitoring.model`: artifact, training, scoring, deployment;
- :mod:`~monitoring.data`: validation, request payloads, ingestion, data profile;
- :mod:`~monitoring.drift`: data drift and model drift;
- :mod:`~monitoring.config`, :mod:`~monitoring.storage`, :mod:`~monitoring.exceptions`.

The names below are the public API, importable from ``monitoring`` directly; each
is loaded on first use, so ``import monitoring.config`` stays cheap. The command
line is ``python -m monitoring``; the HTTP API is ``app.create_app``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Settings": "monitoring.config",
    "load_settings": "monitoring.config",
    "ingest": "monitoring.data.ingestion",
    "train": "monitoring.model.training",
    "score": "monitoring.model.scoring",
    "deploy": "monitoring.model.deployment",
    "rollback": "monitoring.model.deployment",
    "list_versions": "monitoring.model.deployment",
    "load_artifact": "monitoring.model.artifact",
    "detect_data_drift": "monitoring.drift",
    "ReferenceProfile": "monitoring.drift",
    "model_drift_status": "monitoring.drift",
    "live_performance": "monitoring.capture",
    "generate_report": "monitoring.reports",
    "bootstrap": "monitoring.pipeline",
    "publish": "monitoring.pipeline",
    "run_full_process": "monitoring.pipeline",
    "Store": "monitoring.storage.store",
    "MonitoringError": "monitoring.exceptions",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
