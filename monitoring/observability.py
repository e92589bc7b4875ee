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

import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, TypeVar

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
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the same header in the WSGI environ
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")  # whole value (fullmatch)

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


_Metric = TypeVar("_Metric", Counter, Histogram)
_SERIES: dict[tuple[Any, ...], Any] = {}


def series(metric: _Metric, *labels: str) -> _Metric:
    """``metric.labels(*labels)``, looked up once per process and label set.

    The same object ``.labels()`` returns (prometheus-client keeps every child
    too), without its argument checks and lock on each request.
    """
    key = (metric, *labels)
    child = _SERIES.get(key)
    if child is None:
        child = _SERIES[key] = metric.labels(*labels)
    return child


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (multiprocess mode), else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# -- request ids and JSON logs ---------------------------------------------------
def request_id() -> str | None:
    """The current request's id, or None outside a request."""
    if has_request_context():
        return g.get("request_id")
    return None


def new_request_id() -> str:
    """A fresh request id: a random version-4 UUID as 32 hex digits.

    The same as ``uuid.uuid4().hex``, without building a :class:`uuid.UUID`.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def _incoming_request_id() -> str:
    given = request.environ.get(_REQUEST_ID_ENVIRON)
    if given and _SANE_ID.fullmatch(given):
        return given
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Put ``request_id`` on every record (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
_ENCODER = json.JSONEncoder(default=str)  # json.dumps(..., default=str), built once


def _utc_time(created: float) -> str:
    """``created`` (seconds since the epoch) as ``2024-05-01T12:00:00.123Z``."""
    seconds = int(created)
    return f"{_utc_second(seconds)}.{int((created - seconds) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # Formatted once per second, not once per line.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc_time(record.created),
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
        return _ENCODER.encode(out)


JsonFormatter.converter = time.gmtime


class JsonLogHandler(logging.StreamHandler):
    """The JSON-lines handler of :func:`configure_json_logging`.

    A :class:`~logging.StreamHandler` with a :class:`JsonFormatter` and a
    :class:`RequestIdFilter`, plus :meth:`write_fields` to write a line that was
    built without a :class:`~logging.LogRecord` (the per-request access line).

    Parameters
    ----------
    stream : file-like, optional
        Default: ``sys.stderr``, as for :class:`~logging.StreamHandler`.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def write_fields(self, fields: dict[str, Any]) -> None:
        """Write ``fields`` as one JSON line, the way :meth:`emit` writes a record.

        ``fields`` must hold what :class:`JsonFormatter` would put in the line, in
        its order: time, level, logger, message, request_id, then the extras.
        """
        self.acquire()
        try:
            self.stream.write(_ENCODER.encode(fields) + self.terminator)
            self.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": fields.get("message")}))
        finally:
            self.release()


def sole_json_handler(logger: logging.Logger, level: int) -> JsonLogHandler | None:
    """The one handler a ``level`` record of ``logger`` would reach, if a plain JSON one.

    When a handler is returned, writing the line with
    :meth:`JsonLogHandler.write_fields` gives the same output as logging it: the
    record would reach exactly that :class:`JsonLogHandler` (at ``level`` or below,
    with its own formatter and filter) and ``logger`` has no filters. Any other
    set-up (another handler, as tests and embedding applications add, a custom
    formatter, a logger filter) gives None: log through ``logger`` then. The caller
    checks ``logger.isEnabledFor(level)``.
    """
    if logger.filters:
        return None
    found: JsonLogHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLogHandler:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (
        found is None
        or level < found.level
        or type(found.formatter) is not JsonFormatter
        or any(type(f) is not RequestIdFilter for f in found.filters)
    ):
        return None
    return found


def configure_json_logging(level: int = logging.INFO) -> logging.Handler:
    """Send the root logger to stdout as JSON lines (idempotent); return the handler."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, JsonLogHandler):
            return handler
    handler = JsonLogHandler(sys.stdout)
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
    method = request.method
    code = response.status_code
    status = str(code)
    series(REQUESTS, endpoint, method, status).inc()
    series(LATENCY, endpoint, method, status).observe(seconds)
    if log.isEnabledFor(logging.INFO):
        _access_log(rid, method, request.path, code, seconds)
    return response


def _access_log(rid: str | None, method: str, path: str, status: int, seconds: float) -> None:
    """Log the access line: ``"GET /health 200"`` with the fields as extras.

    Written straight to the JSON handler when it is the only place the line goes
    (production); otherwise through the ``monitoring.request`` logger.
    """
    duration_ms = round(seconds * 1000, 3)
    handler = sole_json_handler(log, logging.INFO)
    if handler is None:
        extra = {"method": method, "path": path, "status": status, "duration_ms": duration_ms}
        log.info("%s %s %s", method, path, str(status), extra=extra)
        return
    handler.write_fields(
        {
            "time": _utc_time(time.time()),
            "level": "INFO",
            "logger": log.name,
            "message": f"{method} {path} {status}",
            "request_id": rid,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        }
    )


def count_predictions(model_version: str, predictions: list[int]) -> None:
    """Count predicted rows and predicted positives for the metrics."""
    series(PREDICTIONS, model_version).inc(len(predictions))
    positives = sum(predictions)
    if positives:
        series(POSITIVES, model_version).inc(positives)


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
    rid = request_id() or new_request_id()
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
