"""The deployed model versions, read from the record store alone.

Kept apart from :mod:`monitoring.model.deployment` (which loads models, and so
scikit-learn) so that ``python -m monitoring versions`` starts in a fraction of a
second; deployment re-exports both functions.
"""

from __future__ import annotations

from typing import Any

from monitoring.storage.store import Store


def current_version(store: Store) -> str | None:
    """The live version, or None when nothing is deployed."""
    return store.live_version()


def list_versions(store: Store) -> list[dict[str, Any]]:
    """Every deployed version with its metadata summary, oldest first."""
    live = store.live_version()
    return [
        {
            "version": row["version"],
            "trained_at": row["trained_at"],
            "deployed_at": row["deployed_at"],
            "estimator": row["metadata"].get("estimator"),
            "training_data_sha256": (row["metadata"].get("training_data") or {}).get("sha256"),
            "f1": (row["score"] or {}).get("f1"),
            "live": row["version"] == live,
        }
        for row in store.deployed_models()
    ]
