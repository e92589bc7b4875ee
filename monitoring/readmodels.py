"""The read side of the service: what the API, the report and ``apicalls`` show.

:class:`Monitor` is created once per process (per gunicorn worker). It keeps the
deployed model in memory and notices a redeploy by a ``stat`` of the ``CURRENT``
file on each use, so a new model is served on the next request without a restart.
Derived results (the data profile, the deployed model's score) are cached against
the identity of the file they come from, so a request never re-reads data or
re-runs a step. Nothing here writes production files.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.config import Settings
from monitoring.data.validation import check_columns, check_not_empty
from monitoring.diagnostics import dependencies as depcheck
from monitoring.diagnostics.timing import recorded_timings
from monitoring.drift import detect_data_drift, model_drift_status
from monitoring.exceptions import MissingArtifactError, NotDeployedError
from monitoring.model.artifact import Artifact, load_artifact
from monitoring.model.deployment import CURRENT_FILE, current_folder, list_versions
from monitoring.model.scoring import read_score
from monitoring.model.training import artifact_reference
from monitoring.storage.files import file_identity, read_json, read_table
from monitoring.storage.store import Store, utcnow

DEPENDENCY_CACHE = ".dependency-check.json"
# The dependency report lists installed versions, read from package metadata (a few
# ms); it is recomputed when its inputs change or after this many seconds.
DEPENDENCY_TTL_SECONDS = 10.0
# A store summary refreshed with a min_age is kept at least this many times as long
# as it took to compute (Monitor.store_cached).
REFRESH_COST_FACTOR = 20


class Monitor:
    """Per-process access to the deployed model and the cached diagnostics.

    Parameters
    ----------
    settings : Settings
    store : Store, optional
    """

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self._lock = threading.Lock()
        self._model_key: tuple[int, int, int] | None = None
        self._artifact: Artifact | None = None
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._computed_at: dict[str, float] = {}
        self._compute_seconds: dict[str, float] = {}
        # Stat on every request: the paths are built once.
        self._current_file = settings.prod_deployment_path / CURRENT_FILE
        self._profile_file = settings.profile_file
        database = self.store.file
        self._store_files = None if database is None else (database, Path(f"{database}-wal"))

    # -- the deployed model ------------------------------------------------------
    def artifact(self) -> Artifact:
        """The live model, reloaded when ``CURRENT`` changes.

        Raises
        ------
        NotDeployedError
            If nothing is deployed.
        """
        key = file_identity(self._current_file)
        if key is None:
            raise NotDeployedError(
                "no model is deployed yet; run 'python -m monitoring setup' first"
            )
        artifact = self._artifact
        if artifact is None or key != self._model_key:
            with self._lock:
                if self._artifact is None or key != self._model_key:
                    self._artifact = load_artifact(current_folder(self.settings))
                    self._model_key = key
                artifact = self._artifact
        assert artifact is not None
        return artifact

    def _cached(self, name: str, key: Any, compute: Any) -> Any:
        """``compute()`` unless the value cached under ``name`` has ``key``.

        Records when and for how long a value was computed (``store_cached``).
        """
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        started = time.monotonic()
        value = compute()
        self._computed_at[name] = started
        self._compute_seconds[name] = time.monotonic() - started
        self._cache[name] = (key, value)
        return value

    # -- endpoints ---------------------------------------------------------------
    def predict(self, frame: pd.DataFrame, *, input_name: str) -> dict[str, Any]:
        """Predictions of the live model for ``frame``."""
        artifact = self.artifact()
        result = artifact.predict(frame, input_name=input_name)
        return {"model_version": artifact.version, "n_rows": len(frame), **result}

    def scoring(self) -> dict[str, Any]:
        """The live model's recorded test score with its model-drift verdict."""
        artifact = self.artifact()
        key = (artifact.version, self._history_key())
        return self._cached("scoring", key, lambda: self._scoring(artifact))

    def _records_key(self) -> tuple[str, Any] | None:
        """Identity of the store's records stamp (``None`` without a SQLite file)."""
        if self.store.stamp is None:
            return None
        return ("stamp", file_identity(self.store.stamp))

    def _history_key(self) -> Any:
        # Every write of scores touches the store's records stamp: a stat is enough.
        stamp = self._records_key()
        if stamp is not None:
            return stamp
        # Another database: scores only grow, so a new row means new history.
        rows = self.store.scores(limit=1)
        return rows[-1]["id"] if rows else None

    def store_cached(
        self, name: str, compute: Any, *, min_age: float = 0.0, records_only: bool = False
    ) -> Any:
        """``compute()``, cached in this process until the record store changes.

        For results derived only from the store (for example the live performance
        on captured traffic), so a GET does not query the database each time.
        Without a SQLite file to stat the result is kept for at most a second.
        With ``min_age`` a result is kept that many seconds even if the store
        changes meanwhile (for summaries of a table that grows all the time), and
        at least :data:`REFRESH_COST_FACTOR` times as long as computing it took,
        so refreshing a summary that grew expensive takes at most about 5% of a
        worker's time.
        With ``records_only`` only writes of the store's records (not captured
        predictions or labels) count as changes (:func:`~monitoring.store.records_stamp`).
        """
        now = time.monotonic()
        computed = self._computed_at.get(name)
        if min_age and computed is not None and name in self._cache:
            keep = max(min_age, REFRESH_COST_FACTOR * self._compute_seconds.get(name, 0.0))
            if now - computed < keep:
                return self._cache[name][1]
        key = (self._records_key() if records_only else None) or self._store_key()
        if key is None:
            key = ("time", int(now))
        return self._cached(name, key, compute)

    def _store_key(self) -> tuple[Any, ...] | None:
        """Identity of the SQLite store's files (``None`` for another database).

        With WAL journaling a commit appends to ``-wal`` and a checkpoint rewrites
        the main file, so together they change on every write.
        """
        if self._store_files is None:
            return None
        database, wal = self._store_files
        return (file_identity(database), file_identity(wal))

    def _scoring(self, artifact: Artifact) -> dict[str, Any]:
        score = read_score(artifact.folder)
        if score is None:
            raise MissingArtifactError(f"the deployed model {artifact.version} has no score")
        metrics = {
            k: score.get(k)
            for k in (
                "f1",
                "precision",
                "recall",
                "accuracy",
                "roc_auc",
                "n_rows",
                "confusion_matrix",
                "scored_at",
            )
        }
        return {
            "model_version": artifact.version,
            "model_score": score.get("f1"),
            "metric": "f1",
            "dataset": "test",
            **metrics,
            "model_drift": model_drift_status(self.settings, self.store, artifact),
        }

    def summarystats(self) -> dict[str, Any]:
        """Summary statistics of the ingested data, computed at ingestion."""
        path = self._profile_file

        def load() -> dict[str, Any]:
            profile = read_json(path)
            if not isinstance(profile, dict):
                raise MissingArtifactError(
                    "no data has been ingested yet; run 'python -m monitoring ingest' first"
                )
            return {
                "rows": profile["rows"],
                "computed_at": profile["computed_at"],
                "summary": profile["summary"],
            }

        return self._cached("summarystats", file_identity(path), load)

    def diagnostics(self) -> dict[str, Any]:
        """Missing data, recorded step timings and the (cached) dependency check."""

        profile_path = self._profile_file
        missing = self._cached(
            "missing_data",
            file_identity(profile_path),
            lambda: (read_json(profile_path) or {}).get("missing", []),
        )
        timings = self.store_cached(
            "timings", lambda: recorded_timings(self.store), records_only=True
        )
        return {
            "missing_data": missing,
            "missing_data_unit": "share of rows, 0 to 1",
            "execution_time": timings,
            "execution_time_unit": "seconds",
            "dependencies": self._dependencies(),
        }

    def _dependencies(self) -> dict[str, Any]:
        """The dependency report, kept in memory for a few seconds.

        Keyed on the requirements file and the cache file, so a refresh written by
        any process (or the CLI) is shown on the next request.
        """
        requirements = self.settings.root / "requirements.txt"
        cache = self.settings.output_model_path / DEPENDENCY_CACHE
        now = time.monotonic()
        key = (file_identity(requirements), file_identity(cache))
        hit = self._cache.get("dependencies")
        if hit is not None and hit[0][0] == key and now - hit[0][1] < DEPENDENCY_TTL_SECONDS:
            report: dict[str, Any] = hit[1]
            return report
        report = dict(
            depcheck.get(
                requirements,
                cache,
                max_age_seconds=self.settings.diagnostics.dependency_cache_seconds,
                deadline=self.settings.diagnostics.dependency_deadline_seconds,
            )
        )
        if not report.get("refreshing"):  # a running refresh will rewrite the cache
            self._cache["dependencies"] = ((key, now), report)
        return report

    def drift(
        self,
        frame: pd.DataFrame | None = None,
        *,
        input_name: str = "request body",
        record: bool = True,
    ) -> dict[str, Any]:
        """Data drift of ``frame`` (default: the ingested data) against the live model's
        training data; ``record`` stores the report in the record store.

        The result for the ingested data is cached per (model version,
        ``finaldata.csv`` identity), so repeated ``GET /drift`` cost nothing.
        """
        artifact = self.artifact()
        if frame is None:
            path = self.settings.finaldata_file
            if not path.is_file():
                raise MissingArtifactError(
                    "no data has been ingested yet; run 'python -m monitoring ingest' first"
                )
            report = self._cached(
                "drift",
                (artifact.version, file_identity(path)),
                lambda: self._drift(artifact, read_table(path), path.name, "ingested"),
            )
        else:
            report = self._drift(artifact, frame, input_name, "request")
        if record:
            report = {
                **report,
                "id": self.store.add_drift_report(
                    report, model_version=artifact.version, source=report["source"]
                ),
            }
        return report

    def _drift(
        self, artifact: Artifact, frame: pd.DataFrame, input_name: str, source: str
    ) -> dict[str, Any]:

        check_not_empty(frame, input_name=input_name)
        check_columns(frame, artifact.features, input_name=input_name, allow_extra=True)
        report = detect_data_drift(
            self._cached("reference", artifact.version, lambda: artifact_reference(artifact)),
            frame,
            columns=artifact.features,
            options=self.settings.drift,
        )
        return {
            "model_version": artifact.version,
            "source": source,
            "computed_at": utcnow(),
            **report,
        }

    def versions(self) -> list[dict[str, Any]]:
        return list_versions(self.settings)

    def health(self) -> dict[str, Any]:
        """Liveness plus what is deployed."""
        try:
            version: str | None = self.artifact().version
            status = "ok"
        except (NotDeployedError, MissingArtifactError):
            version, status = None, "no_model"
        return {"status": status, "model_version": version, "time": time.time()}
