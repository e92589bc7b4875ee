"""Prometheus metrics: request and prediction counts, and state read at scrape time.

With several gunicorn workers each process counts on its own; when
``PROMETHEUS_MULTIPROC_DIR`` is set (``gunicorn.conf.py`` makes a fresh folder on every
start and marks dead workers) prometheus-client keeps the live metrics in memory-mapped
files there and ``/metrics`` sums them. Metrics of *state* (deployed model, latest drift
verdict, age of the ingested data, pipeline run outcomes, live F1) are not counted:
:class:`StateCollector` reads them from the files and the record store when scraped, so
they are right whichever worker answers and include runs made by the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from prometheus_client import Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from monitoring.capture import ledger
from monitoring.capture.estimation import estimated_performance
from monitoring.capture.feedback import live_performance
from monitoring.config import Settings
from monitoring.diagnostics.delivery import delivery_metrics
from monitoring.exceptions import StoreUnavailableError
from monitoring.model.deployment import current_version
from monitoring.readmodels import ResultCache
from monitoring.storage.schema import runs as store_runs
from monitoring.storage.store import Store
from monitoring.web.logs import REQUEST_ID_HEADER, access_log, incoming_request_id, log

REQUESTS = Counter(
    "monitoring_http_requests",
    "HTTP requests handled, by endpoint (URL rule), method and status code.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "monitoring_http_request_duration_seconds",
    "Time to handle an HTTP request, by endpoint (URL rule), method and status code.",
    ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter(
    "monitoring_predictions", "Rows predicted by /prediction, by model version.", ["model_version"]
)
POSITIVES = Counter(
    "monitoring_predicted_positive",
    "Rows predicted as class 1 (churn) by /prediction, by model version; divide by "
    "monitoring_predictions_total for the predicted-positive rate.",
    ["model_version"],
)


# Label values come from fixed sets, whatever a client sends: the methods HTTP defines
# (anything else is "other"), the app's URL rules ("<unmatched>" for any other path) and
# the status codes HTTP defines.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
STATUSES = frozenset(str(int(status)) for status in HTTPStatus)

_Metric = TypeVar("_Metric", Counter, Histogram)
_SERIES: dict[tuple[Any, ...], Any] = {}


def series(metric: _Metric, *labels: str) -> _Metric:
    """``metric.labels(*labels)`` (the same child), without its checks and lock per call."""
    key = (metric, *labels)
    child = _SERIES.get(key)
    if child is None:
        child = _SERIES[key] = metric.labels(*labels)
    return child


def start_request() -> None:
    """Before each request: its id and start time."""
    g.request_id = incoming_request_id()
    g.started = time.perf_counter()


def finish_request(response: Response) -> Response:
    """After each request: the id header, the request metrics and the access line."""
    started = g.get("started")
    rid = g.get("request_id")
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid
    if started is None:
        return response
    seconds = time.perf_counter() - started
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "<unmatched>"
    method, code = request.method, response.status_code
    status = str(code)
    method_label = method if method in METHODS else "other"
    status_label = status if status in STATUSES else "other"
    series(REQUESTS, endpoint, method_label, status_label).inc()
    series(LATENCY, endpoint, method_label, status_label).observe(seconds)
    recorder = current_app.extensions.get("latency")
    if recorder is not None and rule is not None:
        recorder.observe(endpoint, seconds)
    if log.isEnabledFor(logging.INFO):
        access_log(rid, method, request.path, code, seconds)
    return response


def count_predictions(model_version: str, predictions: list[int]) -> None:
    """Count predicted rows and predicted positives for the metrics."""
    series(PREDICTIONS, model_version).inc(len(predictions))
    positives = sum(predictions)
    if positives:
        series(POSITIVES, model_version).inc(positives)


DELIVERY_SECONDS = 60  # the delivery window slides: its metrics are recomputed this often
_DELIVERY = ResultCache()  # per store URL: scrapes come to a new collector each time


class StateCollector(Collector):
    """Metrics read from the record store when scraped; only ``monitoring_store_up 0``
    while it cannot be reached (the process metrics are served all the same). The
    delivery metrics, which read the whole deployment and ingestion history, are kept
    on a SQLite store until its records change or ``DELIVERY_SECONDS`` pass (a server
    store, written by other hosts too, has no such key: they are read every scrape)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "monitoring_store_up", "Whether the record store answered this scrape (1) or not (0)."
        )
        try:
            state = list(self._state())
        except (DBAPIError, StoreUnavailableError):
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from state

    def _state(self) -> Iterator[Metric]:
        version = current_version(self.store)
        info = GaugeMetricFamily(
            "monitoring_model_info",
            "The deployed model version (value 1; 0 series when nothing is deployed).",
            labels=["model_version"],
        )
        if version is not None:
            info.add_metric([version], 1.0)
        yield info

        reports = self.store.drift_reports(limit=1, source="pipeline")  # the one that acts
        drift = GaugeMetricFamily(
            "monitoring_data_drift_detected",
            "Verdict of the latest data-drift report recorded by the pipeline (1 drift, "
            "0 none); ad-hoc POST /drift reports and the drift command never count.",
        )
        drifted = GaugeMetricFamily(
            "monitoring_data_drift_drifted_columns",
            "Number of drifted columns in the latest data-drift report of the pipeline.",
        )
        if reports:
            drift.add_metric([], 1.0 if reports[0]["dataset_drift"] else 0.0)
            drifted.add_metric([], float(len(reports[0]["drifted_columns"])))
        yield drift
        yield drifted

        age = GaugeMetricFamily(
            "monitoring_ingested_data_age_seconds",
            "Seconds since the latest ingestion stored its data profile.",
        )
        latest = self.store.data_profile()
        if latest is not None:
            created = datetime.fromisoformat(latest["created_at"]).timestamp()
            age.add_metric([], max(0.0, time.time() - created))
        yield age

        runs = CounterMetricFamily(
            "monitoring_pipeline_runs",
            "Recorded pipeline runs by outcome (from the record store).",
            labels=["outcome"],
        )
        outcome = func.coalesce(store_runs.c.outcome, store_runs.c.status)  # "running" until done
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(outcome, func.count()).group_by(outcome)).all()
        for name, n in sorted(rows):
            runs.add_metric([name], float(n))
        yield runs

        yield from self._delivery()

        live_f1 = GaugeMetricFamily(
            "monitoring_live_f1",
            "F1 of each model version on labelled captured traffic.",
            labels=["model_version"],
        )
        labelled = GaugeMetricFamily(
            "monitoring_live_labelled_rows",
            "Captured prediction rows with a ground-truth label, by model version.",
            labels=["model_version"],
        )
        for model_version, perf in live_performance(self.store).items():
            labelled.add_metric([model_version], float(perf["n_labelled"]))
            if perf.get("f1") is not None:
                live_f1.add_metric([model_version], float(perf["f1"]))
        yield live_f1
        yield labelled

        yield from self._estimated(version)

        counted = ledger.counter_values(self.store)
        used = GaugeMetricFamily(
            "monitoring_capture_bytes",
            "Bytes of the captured prediction rows in the record store, counted against "
            "capture.max_bytes (inputs JSON, ids and 64 per row).",
        )
        used.add_metric([], float(counted[ledger.BYTES]))
        yield used
        evicted = CounterMetricFamily(
            "monitoring_capture_evicted",
            "Captured rows evicted, oldest first, to keep within capture.max_bytes.",
        )
        evicted.add_metric([], float(counted[ledger.EVICTED]))
        yield evicted

    def _delivery(self) -> Iterator[Metric]:
        """The delivery metrics over ``delivery.window_days`` (no labels; a gauge without
        a value has no sample)."""

        def compute() -> dict[str, Any]:
            return delivery_metrics(self.store, self.settings)

        records = self.store.change_key(records_only=True)  # None: another host may write
        if records is None:
            found = compute()
        else:
            key = (records, int(time.time() // DELIVERY_SECONDS), self.settings.delivery)
            found = _DELIVERY.get(self.store.url, key, compute)
        window = f"over the last delivery.window_days ({found['window_days']:g})"
        gauges = {
            "monitoring_delivery_deployments": (
                f"Deployments (not rollbacks) {window}.",
                found["deployments"],
            ),
            "monitoring_delivery_deployments_per_week": (
                f"Deployment frequency: deployments per week {window}.",
                found["deployment_frequency_per_week"],
            ),
            "monitoring_delivery_lead_time_seconds": (
                "Median lead time of the deployments "
                f"{window}: new data first ingested to the model trained on it live.",
                found["lead_time_seconds"]["median"],
            ),
            "monitoring_delivery_change_failure_rate": (
                f"Share of the deployments {window} rolled back, or followed by a failed "
                "run within delivery.failure_window_hours.",
                found["change_failure_rate"],
            ),
            "monitoring_delivery_time_to_restore_seconds": (
                f"Median time from a failed deployment {window} to its rollback.",
                found["time_to_restore_seconds"]["median"],
            ),
        }
        for name, (about, value) in gauges.items():
            gauge = GaugeMetricFamily(name, about)
            if value is not None:
                gauge.add_metric([], float(value))
            yield gauge

    def _estimated(self, version: str | None) -> Iterator[Metric]:
        """The live model's estimated F1 (CBPE) on its newest chunk of captured traffic
        that has ``performance_estimation.min_chunk_rows`` rows, with its band: one
        series each, labelled by the live version only."""
        gauges = {
            "f1": GaugeMetricFamily(
                "monitoring_estimated_f1",
                "F1 of the live model estimated without labels (CBPE) on its newest chunk of "
                "captured traffic with at least performance_estimation.min_chunk_rows rows.",
                labels=["model_version"],
            ),
            "lower": GaugeMetricFamily(
                "monitoring_estimated_f1_lower",
                "Lower end of the estimated F1's band (estimate - 3 standard errors).",
                labels=["model_version"],
            ),
            "upper": GaugeMetricFamily(
                "monitoring_estimated_f1_upper",
                "Upper end of the estimated F1's band (estimate + 3 standard errors).",
                labels=["model_version"],
            ),
        }
        row = None if version is None else self.store.model_version(version, with_bytes=False)
        if version is not None and row is not None:
            # The newest two chunks hold the newest one that is large enough, if any.
            found = estimated_performance(
                self.store, self.settings, version, row["metadata"], max_chunks=2
            )
            latest = found["latest"]
            if latest is not None:
                values = {"f1": latest["f1"], **{k: latest[k]["f1"] for k in ("lower", "upper")}}
                for name, value in values.items():
                    if value is not None:
                        gauges[name].add_metric([version], float(value))
        yield from gauges.values()


def render_metrics(settings: Settings, store: Store) -> bytes:
    """The Prometheus text exposition of the live and the state metrics."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(settings, store))
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    live = REGISTRY
    if folder:
        live = CollectorRegistry()
        multiprocess.MultiProcessCollector(live, path=folder)
    return generate_latest(live) + generate_latest(state)
