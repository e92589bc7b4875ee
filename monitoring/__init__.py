"""Model monitoring for a deployed churn-risk classifier.

Subpackages by capability, each importing only the ones after it (the import-linter
contract in pyproject.toml): web, cli, pipeline, reports, readmodels, capture,
diagnostics, model, data, drift, config, storage, exceptions. The names below are
the public API, each loaded on first use so ``import monitoring.config`` stays
cheap. The command line is ``python -m monitoring``; the HTTP API is
``app.create_app``.
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
    "generate_report": "monitoring.reports.reporting",
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
