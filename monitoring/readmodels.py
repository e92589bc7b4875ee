"""Read models: what the API, the dashboard and the report show, cached per process.

:class:`ReadModels` is built once per process (per gunicorn worker) and holds one read
model per thing served: :class:`LiveModel` (``/prediction``, ``/health``; follows the
store's live pointer, so a redeploy on any host is served without a restart),
:class:`ScoringView`, :class:`ProfileView`, :class:`DiagnosticsView` and
:class:`DriftView`. Each caches what it derives in one :class:`ResultCache`, keyed on the
identity of the files or store state it comes from. Nothing here writes production
files; only ``POST /drift`` records its report.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError

from monitoring.capture import live_performance
from monitoring.capture.estimation import estimated_performance
from monitoring.config import Settings
from monitoring.data.payloads import Batch
from monitoring.data.validation import check_columns, check_not_empty, to_numeric_columns
from monitoring.diagnostics import dependencies
from monitoring.diagnostics.timing import recorded_timings
from monitoring.drift import ReferenceProfile, detect_data_drift, model_drift_status
from monitoring.exceptions import (
    DataValidationError,
    IntegrityError,
    MissingArtifactError,
    ModelUnavailableError,
    MonitoringError,
    NotDeployedError,
    NotFoundError,
    StoreUnavailableError,
)
from monitoring.model.artifact import CHECKSUM_FAILED, Artifact, load_artifact
from monitoring.storage.engine import is_corrupt, unavailable
from monitoring.storage.files import file_identity
from monitoring.storage.store import ADHOC_SOURCE, Store, utcnow

log = logging.getLogger(__name__)
DEPENDENCY_CACHE = ".dependency-check.json"
# The dependency report lists installed versions, read from package metadata (a few
# ms); it is recomputed when its inputs change or after this many seconds.
DEPENDENCY_TTL_SECONDS = 10.0
# A result kept with a min_age is kept at least this many times as long as it took
# to compute, so refreshing a summary that grew expensive costs a worker about 5%.
REFRESH_COST_FACTOR = 20
# A request waits for a refresh only while refreshing costs at most this long
# (seconds); a dearer one runs on a thread while the previous value is served.
REFRESH_WAIT_SECONDS = 0.010
REFRESH_SWITCH_SECONDS = 0.0002  # the GIL switch interval while such a refresh runs
# A worker reads the store's live pointer at most this often (seconds), never per
# request: a deploy or rollback made anywhere is served by every worker within it,
# plus one model load.
LIVE_POLL_SECONDS = 0.1
KEEP_VERSIONS = 3  # loaded models kept per process (a rollback and back loads nothing)
REFUSED = Counter(
    "monitoring_live_model_refused",
    "Live model versions a worker refused to serve (the artifact failed its checksum or "
    "could not be unpickled); the version served before, if any, keeps serving.",
)
NOT_INGESTED = "no data has been ingested yet; run 'python -m monitoring ingest' first"
INGESTED = "the ingested data"  # names the latest ingestion's profile in messages


class ResultCache:
    """Results kept until their key changes; ``clock`` gives seconds for ``min_age``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[Any, Any, float, float]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()  # names being refreshed on a thread

    def get(self, name: str, key: Any, compute: Callable[[], Any], *, min_age: float = 0.0) -> Any:
        """``compute()`` unless the value cached as ``name`` was computed for ``key``.

        With ``min_age`` (for summaries of ever-growing tables) a value is kept that many
        seconds whatever the key, and at least :data:`REFRESH_COST_FACTOR` times as long
        as it took.
        """
        entry = self._entries.get(name)
        now = self.clock()
        if entry is not None:
            cached_key, value, computed_at, cost = entry
            if cached_key == key or (
                min_age and now - computed_at < max(min_age, REFRESH_COST_FACTOR * cost)
            ):
                return value
        value = compute()
        self._entries[name] = (key, value, now, self.clock() - now)
        return value

    def get_stale(
        self, name: str, key: Any, compute: Callable[[], Any], *, min_age: float
    ) -> tuple[Any, float]:
        """``(value, computed_at)`` as :meth:`get` with ``min_age``, but no caller waits
        for a refresh that last took longer than :data:`REFRESH_WAIT_SECONDS`.

        Such a refresh runs on a background thread (one at a time per ``name``) while
        the value computed before is returned; the next call after it finished gets
        the new value. Only the first value of a process is always computed by its
        caller. A failed background refresh is logged; the previous value is kept and
        refreshed again when it would next be.
        """
        with self._lock:
            entry = self._entries.get(name)
            now = self.clock()
            if entry is not None:
                cached_key, value, computed_at, cost = entry
                fresh = cached_key == key or now - computed_at < max(
                    min_age, REFRESH_COST_FACTOR * cost
                )
                if fresh or name in self._refreshing:
                    return value, computed_at
                if cost > REFRESH_WAIT_SECONDS:
                    self._refreshing.add(name)
                    thread = threading.Thread(
                        target=self._refresh,
                        args=(name, key, compute, entry),
                        name=f"refresh-{name}",
                        daemon=True,
                    )
                    thread.start()
                    return value, computed_at
        value = compute()
        done = self.clock()
        with self._lock:
            self._entries[name] = (key, value, now, done - now)
        return value, now

    def _refresh(
        self, name: str, key: Any, compute: Callable[[], Any], stale: tuple[Any, Any, float, float]
    ) -> None:
        started = self.clock()
        # While it runs, the interpreter asks for the GIL back after 0.2 ms instead
        # of 5 ms, so a request of this worker waits about that long for this thread
        # at a time (longer only inside one C call: rows are converted in batches).
        # The interval is the process's: it is restored when the refresh ends.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, REFRESH_SWITCH_SECONDS))
        try:
            value = compute()
            entry = (key, value, started, self.clock() - started)
        except Exception:  # the stale value keeps serving; retried after min_age
            log.exception("refreshing %s failed; the previous value is served", name)
            entry = (stale[0], stale[1], started, stale[3])
        finally:
            sys.setswitchinterval(interval)
        with self._lock:
            self._entries[name] = entry
            self._refreshing.discard(name)

    def forget(self, name: str) -> None:
        """Drop the value cached as ``name``."""
        self._entries.pop(name, None)


def store_key(store: Store, clock: Callable[[], float], *, records_only: bool = False) -> Any:
    """:meth:`Store.change_key`, or the current second for a store without files."""
    key = store.change_key(records_only=records_only)
    return ("second", int(clock())) if key is None else key


class LiveModel:
    """The live model of this process: the version the store's live pointer names.

    The pointer is read at most every :data:`LIVE_POLL_SECONDS` (a deploy or rollback
    made by any process on any host is served within that), each version is loaded
    and verified once. While the store cannot be reached the model already loaded
    keeps serving (the outage is logged once); other requests than the one reading
    the pointer never wait for it once a model is loaded.

    A live version whose artifact fails its checksum or cannot be unpickled is
    refused (logged once and counted in ``monitoring_live_model_refused_total``): the
    version served before keeps serving, and ``/ready`` says so; with none loaded,
    requests get a 503 naming the reason (:class:`ModelUnavailableError`).
    """

    def __init__(self, store: Store, cache: ResultCache) -> None:
        self.store, self.cache = store, cache
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._served: Artifact | MonitoringError | None = None  # the latest poll's outcome
        self._versions: dict[str, Artifact] = {}  # loaded versions, the latest last
        self._refused: dict[str, ModelUnavailableError] = {}  # failed their checks
        self._fallback: str | None = None  # why the version served is not the live one
        self._outage = False

    def artifact(self) -> Artifact:
        """The live model; :class:`NotDeployedError` if nothing is deployed.

        Without a model loaded: :class:`StoreUnavailableError` while the store cannot be
        reached, :class:`MissingArtifactError` if the pointer names an unknown version,
        :class:`ModelUnavailableError` if the live version fails its checks.
        """
        checked = self._checked_at
        if checked is None or self.cache.clock() - checked >= LIVE_POLL_SECONDS:
            # With a model to serve, the requests meanwhile do not wait for the poll.
            if self._lock.acquire(blocking=not isinstance(self._served, Artifact)):
                try:
                    checked = self._checked_at
                    if checked is None or self.cache.clock() - checked >= LIVE_POLL_SECONDS:
                        self._poll()
                finally:
                    self._lock.release()
        served = self._served
        if isinstance(served, Artifact):
            return served
        assert served is not None  # a poll always leaves an outcome
        raise type(served)(served.message, details=served.details)

    def _poll(self) -> None:
        """Read the live pointer and load the version it names unless loaded already."""
        try:
            version = self.store.live_version()
            if version is None:
                self._fallback = None
                self._served = NotDeployedError(
                    "no model is deployed yet; run 'python -m monitoring setup' first"
                )
            else:
                self._serve(version, self._load(version))
        except StoreUnavailableError as exc:
            self._unreachable(exc)
        except DBAPIError as exc:
            self._unreachable(unavailable(self.store.url, exc))
        else:
            if self._outage:
                log.warning("the record store is reachable again")
                self._outage = False
        self._checked_at = self.cache.clock()

    def _serve(self, version: str, loaded: Artifact | MonitoringError) -> None:
        """Serve what loading ``version`` gave; a refused artifact leaves the model
        served until now (if any) in place."""
        served = self._served
        if isinstance(loaded, ModelUnavailableError) and isinstance(served, Artifact):
            self._fallback = f"live version {version}: {loaded.details}; serving {served.version}"
            return
        self._served, self._fallback = loaded, None

    def _unreachable(self, failure: StoreUnavailableError) -> None:
        """Keep serving the loaded model, if any; log the first failure of an outage."""
        served = self._served
        if not self._outage:
            kept = f"model {served.version}" if isinstance(served, Artifact) else "no model"
            log.warning("%s; serving %s until it is back", failure.message, kept)
            self._outage = True
        if not isinstance(served, Artifact):
            self._served = failure

    def _load(self, version: str) -> Artifact | MonitoringError:
        """The artifact of ``version`` (loaded once), or the error that refuses it."""
        known = self._versions.get(version) or self._refused.get(version)
        if known is not None:
            return known
        try:
            artifact = load_artifact(self.store, version)
        except NotFoundError:
            return MissingArtifactError(
                f"the live model is version '{version}', which is not in the record store"
            )
        except IntegrityError as exc:  # refused for the life of this process, logged once
            kept = self._served.version if isinstance(self._served, Artifact) else None
            log.error(
                "live model not loaded: %s; %s",
                exc.message,
                f"serving version {kept} instead" if kept else "no model to serve",
            )
            REFUSED.inc()
            reason = str(exc.details or CHECKSUM_FAILED)
            refused = ModelUnavailableError(
                f"the live model (version {version}) is not served: {reason}; see the server log",
                details=reason,
            )
            self._refused[version] = refused
            return refused
        self._versions[version] = artifact
        while len(self._versions) > KEEP_VERSIONS:  # the oldest loaded go first
            self._versions.pop(next(iter(self._versions)))
        return artifact

    def expire(self) -> None:
        """Read the live pointer on the next use (after this process deployed or rolled back)."""
        self._checked_at = None

    def served_version(self) -> str | None:
        """The version :meth:`artifact` serves now, or None if it serves none."""
        try:
            return self.artifact().version
        except MonitoringError:
            return None

    def reference(self) -> ReferenceProfile:
        """The drift reference profile saved with the live model."""
        return self.artifact().reference

    def predict(self, frame: pd.DataFrame, *, input_name: str) -> dict[str, Any]:
        """``/prediction``: classes and probabilities of the live model for ``frame``."""
        artifact = self.artifact()
        result = artifact.predict(frame, input_name=input_name)
        return {"model_version": artifact.version, "n_rows": len(frame), **result}

    def predict_batch(self, batch: Batch) -> dict[str, Any]:
        """``/prediction`` of a request's :class:`~monitoring.data.payloads.Batch`: its
        feature matrix straight to the model when it is plainly valid, else its checked
        DataFrame (whose checks name what is wrong)."""
        artifact = self.artifact()
        matrix = batch.matrix(artifact.features)
        if matrix is None:
            frame = batch.frame()
            return {
                "model_version": artifact.version,
                "n_rows": len(frame),
                **artifact.predict(frame, input_name=batch.name),
            }
        proba = artifact.positive_proba(matrix)
        labels, rounded = artifact.outputs(proba)
        batch.outputs = (labels, rounded)  # the capture takes the arrays, not the lists
        result = {"predictions": labels.tolist(), "probabilities": rounded.tolist()}
        return {"model_version": artifact.version, "n_rows": len(matrix), **result}

    def health(self) -> dict[str, Any]:
        """``/health``: liveness, and which version is served.

        ``no_model`` before the first deployment, ``unavailable`` when the live model
        cannot be loaded (the store unreachable, a failed checksum): never an error.
        """
        try:
            version: str | None = self.artifact().version
            status = "ok"
        except NotDeployedError:
            version, status = None, "no_model"
        except MonitoringError:
            version, status = None, "unavailable"
        return {"status": status, "model_version": version, "time": time.time()}

    def readiness(self) -> dict[str, Any]:
        """The ``model`` check of ``/ready``: ``ok`` with the version served, or why not.

        ``fallback`` (still ready: it serves) while an earlier version is served
        because the live one was refused, with the reason.
        """
        try:
            version = self.artifact().version
        except NotDeployedError as exc:
            return {"status": "no_model", "reason": exc.message}
        except ModelUnavailableError as exc:
            return {"status": "unavailable", "reason": str(exc.details)}
        except MonitoringError as exc:
            return {"status": "unavailable", "reason": type(exc).__name__}
        fallback = self._fallback
        if fallback is not None:
            return {"status": "fallback", "version": version, "reason": fallback}
        return {"status": "ok", "version": version}


def store_readiness(store: Store) -> dict[str, Any]:
    """The ``store`` check of ``/ready``: ``ok`` if a query gets through, ``corrupt`` if
    the database file is damaged, else ``unreachable``."""
    try:
        store.ping()
    except DBAPIError as exc:
        return {"status": "corrupt" if is_corrupt(exc) else "unreachable"}
    except StoreUnavailableError:
        return {"status": "unreachable"}
    return {"status": "ok"}


class ScoringView:
    """``/scoring``: the live model's test score, model-drift verdict, live performance and
    estimated performance (CBPE)."""

    def __init__(self, settings: Settings, store: Store, model: LiveModel) -> None:
        self.settings, self.store, self.model, self.cache = settings, store, model, model.cache

    def current(self) -> dict[str, Any]:
        """The recorded test score of the live model with its model-drift verdict."""
        artifact = self.model.artifact()
        key = (artifact.version, self._history_key())
        return self.cache.get("scoring", key, lambda: self._scoring(artifact))

    def live(self) -> dict[str, Any]:
        """Metrics of each version on labelled captured traffic refreshed at most once a
        second; once a refresh costs more than :data:`REFRESH_WAIT_SECONDS` it runs off
        the request path and the previous value is served meanwhile."""
        key = store_key(self.store, self.cache.clock)
        value, _ = self.cache.get_stale(
            "live_performance", key, lambda: live_performance(self.store), min_age=1.0
        )
        return value

    def estimated(self) -> dict[str, Any]:
        """CBPE of the live model's captured traffic (:func:`estimated_performance`),
        refreshed at most once a second."""
        artifact = self.model.artifact()
        key = (artifact.version, store_key(self.store, self.cache.clock))
        return self.cache.get(
            "estimated_performance",
            key,
            lambda: estimated_performance(
                self.store, self.settings, artifact.version, artifact.metadata
            ),
            min_age=1.0,
        )

    def _history_key(self) -> Any:
        stamp = self.store.change_key(records_only=True)  # every score write touches it
        if stamp is not None:
            return stamp
        rows = self.store.scores(limit=1)  # another database: scores only grow
        return rows[-1]["id"] if rows else None

    def _scoring(self, artifact: Artifact) -> dict[str, Any]:
        row = self.store.model_version(artifact.version, with_bytes=False)
        score = None if row is None else row["score"]  # as recorded now
        if score is None:
            raise MissingArtifactError(f"the deployed model {artifact.version} has no score")
        names = ("f1", "precision", "recall", "accuracy", "roc_auc", "n_rows", "confusion_matrix")
        return {
            "model_version": artifact.version,
            "model_score": score.get("f1"),
            "metric": "f1",
            "dataset": "test",
            **{name: score.get(name) for name in (*names, "scored_at")},
            "model_drift": model_drift_status(self.settings, self.store, artifact),
        }


class ProfileView:
    """``/summarystats`` and missing data: the data profile the latest ingestion stored.

    Served from the record store, so every host serves the same profile; cached by its
    id, which is looked up again when the store changes (SQLite: a ``stat`` of its
    stamp; another database: one indexed query).
    """

    def __init__(self, settings: Settings, store: Store, cache: ResultCache) -> None:
        self.settings, self.store, self.cache = settings, store, cache

    def latest_id(self) -> int | None:
        """Id of the latest data profile (None before the first ingestion)."""
        stamp = self.store.change_key(records_only=True)  # touched by every profile write
        if stamp is None:
            return self.store.latest_data_profile_id()
        return self.cache.get("profile_id", stamp, self.store.latest_data_profile_id)

    def _profile(self) -> dict[str, Any] | None:
        profile_id = self.latest_id()
        if profile_id is None:
            return None
        row = self.cache.get("profile", profile_id, lambda: self.store.data_profile(profile_id))
        return None if row is None else row["profile"]

    def summary(self) -> dict[str, Any]:
        """Summary statistics of the ingested data, computed at ingestion."""
        profile = self._profile()
        if profile is None:
            raise MissingArtifactError(NOT_INGESTED)
        return {key: profile[key] for key in ("rows", "computed_at", "summary")}

    def missing(self) -> list[dict[str, Any]]:
        """Missing-data share of each column (empty before the first ingestion)."""
        return list((self._profile() or {}).get("missing", []))

    def reference(self, profile_id: int) -> ReferenceProfile:
        """The drift profile of the ingested features stored with profile ``profile_id``
        (not cached: it holds every value; what is derived from it is)."""
        data = self.store.data_profile_reference(profile_id)
        if data is None:
            raise MissingArtifactError(
                f"data profile {profile_id} has no drift profile; run "
                "'python -m monitoring ingest' again"
            )
        return ReferenceProfile.load(io.BytesIO(data))


class DiagnosticsView:
    """``/diagnostics``: missing data, recorded step timings, the dependency check."""

    def __init__(self, settings: Settings, store: Store, profile: ProfileView) -> None:
        self.settings, self.store, self.profile = settings, store, profile
        self.cache = profile.cache

    def current(self) -> dict[str, Any]:
        key = store_key(self.store, self.cache.clock, records_only=True)
        timings = self.cache.get("timings", key, lambda: recorded_timings(self.store))
        return {
            "missing_data": self.profile.missing(),
            "missing_data_unit": "share of rows, 0 to 1",
            "execution_time": timings,
            "execution_time_unit": "seconds",
            "dependencies": self.dependencies(),
        }

    def dependencies(self) -> dict[str, Any]:
        """The dependency report, kept a few seconds and while its files are unchanged, so
        a refresh written by any process (or the CLI) is shown on the next request."""
        requirements = self.settings.requirements_file
        cache_file = self.settings.output_model_path / DEPENDENCY_CACHE
        ttl_slot = int(self.cache.clock() // DEPENDENCY_TTL_SECONDS)
        key = (file_identity(requirements), file_identity(cache_file), ttl_slot)
        report: dict[str, Any] = self.cache.get(
            "dependencies",
            key,
            lambda: dict(
                dependencies.get(
                    requirements,
                    cache_file,
                    max_age_seconds=self.settings.diagnostics.dependency_cache_seconds,
                    deadline=self.settings.diagnostics.dependency_deadline_seconds,
                )
            ),
        )
        if report.get("refreshing"):  # a running refresh will rewrite the cache file
            self.cache.forget("dependencies")
        return report


class DriftView:
    """``/drift``: data drift against the live model's training data."""

    def __init__(
        self, settings: Settings, store: Store, model: LiveModel, profile: ProfileView
    ) -> None:
        self.settings, self.store, self.model, self.cache = settings, store, model, model.cache
        self.profile = profile

    def latest(self) -> dict[str, Any]:
        """Drift of the latest ingested data (its profile in the store) against the live
        model; cached per live model and data profile.

        Not recorded here, but a report recorded for the same model, profile and drift
        options (by :meth:`keep_latest` after a deploy or a pipeline run, or by ``POST
        /drift``) is read back instead of computed again, so the first dashboard after a
        deploy does not wait for it.
        """
        artifact = self.model.artifact()
        profile_id = self.profile.latest_id()
        if profile_id is None:
            raise MissingArtifactError(NOT_INGESTED)

        def compute() -> dict[str, Any]:
            stored = self._stored(artifact.version, profile_id)
            if stored is not None:
                return stored
            return self.report(
                self.profile.reference(profile_id), input_name=INGESTED, source="ingested"
            )

        report: dict[str, Any] = self.cache.get("drift", (artifact.version, profile_id), compute)
        return report

    def _tag(self, profile_id: int) -> dict[str, Any]:
        """What a recorded report of the ingested data is for, beyond its model: the data
        profile and the drift options (kept in the stored JSON, not shown in answers)."""
        return {"profile_id": profile_id, "options": repr(self.settings.drift)}

    def _stored(self, version: str, profile_id: int) -> dict[str, Any] | None:
        """The newest recorded drift report of the ingested data for this model, profile
        and drift options, if any of the latest few is."""
        tag = self._tag(profile_id)
        for row in self.store.drift_reports(limit=5, source="ingested", full=True):
            report = row["report"]
            if row["model_version"] == version and report.get("recorded_for") == tag:
                return {k: v for k, v in report.items() if k not in ("recorded_for", "adhoc")}
        return None

    def keep_latest(self) -> dict[str, Any]:
        """:meth:`latest`, recorded unless a report for the same model, profile and
        options is (after a deploy or a pipeline run, so no reader computes it)."""
        report = self.latest()
        profile_id = self.profile.latest_id()
        if profile_id is None or self._stored(report["model_version"], profile_id) is not None:
            return report
        return self.record()

    def record(self, frame: pd.DataFrame | None = None, *, input_name: str = "") -> dict[str, Any]:
        """Drift of ``frame`` (default: the ingested data), recorded; the report with its
        ``id`` and ``adhoc``.

        A ``frame``'s report is ad-hoc (source ``request``): it never drives the drift
        metric or a retrain, and only the newest ``drift.max_adhoc_reports`` of them,
        none older than ``drift.adhoc_retention_days``, are kept.
        """
        stored: dict[str, Any] = {}
        if frame is None:
            report = {**self.latest(), "adhoc": False}
            profile_id = self.profile.latest_id()
            if profile_id is not None:
                stored["recorded_for"] = self._tag(profile_id)
        else:
            report = {**self.report(frame, input_name=input_name, source=ADHOC_SOURCE)}
            report["adhoc"] = True
        report_id = self.store.add_drift_report(
            {**report, **stored}, model_version=report["model_version"], source=report["source"]
        )
        if report["adhoc"]:
            options = self.settings.drift
            before = datetime.now(UTC) - timedelta(days=options.adhoc_retention_days)
            self.store.prune_adhoc_drift_reports(
                keep=options.max_adhoc_reports, before=before.isoformat(timespec="microseconds")
            )
        return {**report, "id": report_id}

    def report(
        self, data: pd.DataFrame | ReferenceProfile, *, input_name: str, source: str
    ) -> dict[str, Any]:
        """Drift of ``data`` (a batch, or the profile of one) against the live model's
        reference profile."""
        artifact = self.model.artifact()
        if isinstance(data, pd.DataFrame):
            check_not_empty(data, input_name=input_name)
            check_columns(data, artifact.features, input_name=input_name, allow_extra=True)
            # The features are numbers, as for /prediction (booleans, dates, text: 422).
            to_numeric_columns(data, artifact.features, input_name=input_name, allow_missing=True)
        else:
            if data.n_rows_ == 0:
                raise DataValidationError(f"{input_name}: contains no rows")
            absent = [c for c in artifact.features if c not in data.profiles_]
            if absent:
                raise DataValidationError(
                    f"{input_name}: missing column(s) {', '.join(map(repr, absent))}; "
                    f"expected {list(artifact.features)}"
                )
        report = detect_data_drift(
            self.model.reference(), data, columns=artifact.features, options=self.settings.drift
        )
        return {
            "model_version": artifact.version,
            "source": source,
            "computed_at": utcnow(),
            **report,
        }


class ReadModels:
    """Every read model of one process, sharing one cache (default store: ``database_url``)."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.cache = ResultCache()
        self.model = LiveModel(self.store, self.cache)
        self.scoring = ScoringView(settings, self.store, self.model)
        self.profile = ProfileView(settings, self.store, self.cache)
        self.diagnostics = DiagnosticsView(settings, self.store, self.profile)
        self.drift = DriftView(settings, self.store, self.model, self.profile)
