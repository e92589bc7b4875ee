"""Operational monitoring: Prometheus metrics, JSON logs with request ids, ops routes.

:func:`init_app` is the one call the app factory makes. It adds

- a request id to every request (an incoming ``X-Request-ID`` when it is sane,
  otherwise a new one), returned in the ``X-Request-ID`` response header and put
  on every log line written while the request is handled;
- structured JSON logs on stdout (one object per line) unless the app is testing;
- request count and latency metrics per endpoint, method and status;
- the routes ``GET /metrics``, ``POST /feedback`` and ``GET /dashboard``.

Metrics under gunicorn
----------------------
With several workers each process counts on its own. When
``PROMETHEUS_MULTIPROC_DIR`` is set (``gunicorn.conf.py`` makes a fresh folder on
every server start and marks dead workers), prometheus-client writes the live
metrics to memory-mapped files there and ``/metrics`` sums them across workers.
Without it (tests, the CLI) the normal in-process registry is used.

Metrics that describe *state* (deployed model, latest drift verdict, age of the
ingested data, pipeline run outcomes, live F1) are not counted by the workers:
:class:`StateCollector` reads them from the files and the record store at scrape
time, so they are right whichever worker answers and include pipeline runs made
by the CLI process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from monitoring.config import Settings
from monitoring.store import Store
from monitoring.store import runs as store_runs

log = logging.getLogger("monitoring.request")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

# Live (per-process, summed across workers in multiprocess mode) metrics. Module
# level: one set per process, shared by every app built in it.
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
    "monitoring_predictions",
    "Rows predicted by /prediction, by model version.",
    ["model_version"],
)
POSITIVES = Counter(
    "monitoring_predicted_positive",
    "Rows predicted as class 1 (churn) by /prediction, by model version; divide by "
    "monitoring_predictions_total for the predicted-positive rate.",
    ["model_version"],
)


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (multiprocess mode), else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# -- request ids and JSON logs ---------------------------------------------------
def request_id() -> str | None:
    """The current request's id, or None outside a request."""
    if has_request_context():
        return g.get("request_id")
    return None


def _incoming_request_id() -> str:
    given = request.headers.get(REQUEST_ID_HEADER)
    if given and _SANE_ID.match(given):
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Put ``request_id`` on every record (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


JsonFormatter.converter = time.gmtime


def configure_json_logging(level: int = logging.INFO) -> logging.Handler:
    """Send the root logger to stdout as JSON lines (idempotent); return the handler."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_monitoring_json", False):
            return handler
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler._monitoring_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler


# -- request hooks ---------------------------------------------------------------
def _before() -> None:
    g.request_id = _incoming_request_id()
    g.started = time.perf_counter()


def _after(response: Response) -> Response:
    started = g.get("started")
    rid = g.get("request_id")
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid
    if started is None:
        return response
    seconds = time.perf_counter() - started
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "<unmatched>"
    status = str(response.status_code)
    REQUESTS.labels(endpoint, request.method, status).inc()
    LATENCY.labels(endpoint, request.method, status).observe(seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
            },
        )
    return response


def count_predictions(model_version: str, predictions: list[int]) -> None:
    """Count predicted rows and predicted positives for the metrics."""
    PREDICTIONS.labels(model_version).inc(len(predictions))
    positives = sum(predictions)
    if positives:
        POSITIVES.labels(model_version).inc(positives)


# -- state read at scrape time ---------------------------------------------------
class StateCollector(Collector):
    """Metrics read from the files and the record store when scraped.

    Parameters
    ----------
    settings : Settings
    store : Store
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from monitoring.deployment import current_version

        version = current_version(self.settings)
        info = GaugeMetricFamily(
            "monitoring_model_info",
            "The deployed model version (value 1; 0 series when nothing is deployed).",
            labels=["model_version"],
        )
        if version is not None:
            info.add_metric([version], 1.0)
        yield info

        reports = self.store.drift_reports(limit=1)
        drift = GaugeMetricFamily(
            "monitoring_data_drift_detected",
            "Verdict of the latest recorded data-drift report (1 drift, 0 none).",
        )
        drifted = GaugeMetricFamily(
            "monitoring_data_drift_drifted_columns",
            "Number of drifted columns in the latest recorded data-drift report.",
        )
        if reports:
            drift.add_metric([], 1.0 if reports[0]["dataset_drift"] else 0.0)
            drifted.add_metric([], float(len(reports[0]["drifted_columns"])))
        yield drift
        yield drifted

        age = GaugeMetricFamily(
            "monitoring_ingested_data_age_seconds",
            "Seconds since the latest ingested data (finaldata.csv) was written.",
        )
        try:
            age.add_metric([], max(0.0, time.time() - self.settings.finaldata_file.stat().st_mtime))
        except FileNotFoundError:
            pass
        yield age

        runs = CounterMetricFamily(
            "monitoring_pipeline_runs",
            "Recorded pipeline runs by outcome (from the record store).",
            labels=["outcome"],
        )
        outcomes: dict[str, int] = {}
        table = store_runs
        query = select(table.c.outcome, table.c.status, func.count()).group_by(
            table.c.outcome, table.c.status
        )
        with self.store.engine.connect() as conn:
            for outcome, status, n in conn.execute(query):
                key = outcome or status  # "running" until a run finishes
                outcomes[key] = outcomes.get(key, 0) + int(n)
        for outcome, n in sorted(outcomes.items()):
            runs.add_metric([outcome], float(n))
        yield runs

        from monitoring.capture import live_performance

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


def render_metrics(settings: Settings, store: Store) -> bytes:
    """The Prometheus text exposition of the live and the state metrics."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(settings, store))
    folder = multiprocess_dir()
    if folder:
        from prometheus_client import multiprocess

        live = CollectorRegistry()
        multiprocess.MultiProcessCollector(live, path=folder)
    else:
        from prometheus_client import REGISTRY as live
    return generate_latest(live) + generate_latest(state)


# -- routes ----------------------------------------------------------------------
bp = Blueprint("ops", __name__)


def _monitor() -> Any:
    return current_app.extensions["monitor"]


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus metrics (text exposition format)."""
    m = _monitor()
    return Response(render_metrics(m.settings, m.store), mimetype=CONTENT_TYPE_LATEST)


@bp.post("/feedback")
def feedback() -> Any:
    """Ground-truth labels for captured predictions, by request id or row id.

    Body: ``{"request_id": "...", "labels": [0, 1, ...]}`` (one label per row of
    that request, in order), ``{"row_id": 17, "label": 1}``, or
    ``{"feedback": [items]}``. Errors: 400 unparseable body, 404 unknown ids
    (all listed; nothing stored), 422 invalid labels or wrong label count.
    """
    from monitoring.capture import apply_feedback
    from monitoring.exceptions import BadRequestError

    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError("feedback must be a JSON body")
    return apply_feedback(_monitor().store, body)


@bp.get("/dashboard")
def dashboard() -> Any:
    """The monitoring dashboard: one self-contained HTML page (cached)."""
    from monitoring.dashboard import dashboard_html

    return Response(dashboard_html(_monitor()), mimetype="text/html")


def init_app(app: Flask) -> None:
    """Install request ids, JSON logs, request metrics and the ops routes on ``app``."""
    if not app.testing:
        configure_json_logging()
    app.before_request(_before)
    app.after_request(_after)
    app.register_blueprint(bp)


def after_prediction(monitor: Any, frame: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Count a prediction for the metrics and capture it; return the response body.

    Adds ``request_id`` and, when the request was captured, ``row_ids`` (one per
    row, for ``POST /feedback``).
    """
    from monitoring.capture import record, should_capture

    version = str(result.get("model_version"))
    count_predictions(version, result["predictions"])
    rid = request_id() or uuid.uuid4().hex
    body = {**result, "request_id": rid}
    if should_capture(monitor.settings):
        body["row_ids"] = record(
            monitor.store,
            monitor.settings,
            request_id=rid,
            model_version=version,
            frame=frame,
            result=result,
        )
    return body
