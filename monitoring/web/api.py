"""HTTP views: thin wrappers that parse the request and call :mod:`monitoring`.

Every response is JSON (errors in the one shape of :mod:`monitoring.web.errors`).
Read-only endpoints are GET; nothing that changes state answers to GET or OPTIONS.
A view's docstring opens with its OpenAPI description (:func:`~monitoring.web.openapi.doc`).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, current_app, request

from monitoring.capture import record, should_capture
from monitoring.data.payloads import Batch, batch_from_request
from monitoring.exceptions import DataValidationError, RowLimitError
from monitoring.model.deployment import list_versions
from monitoring.readmodels import ReadModels, store_readiness
from monitoring.reports.fairness import live_audit
from monitoring.web.logs import response_id
from monitoring.web.metrics import count_predictions
from monitoring.web.openapi import doc
from monitoring.web.schemas import DATA_BODY, DATA_ERRORS, LIMIT, PATH_QUERY, STR, query

bp = Blueprint("api", __name__)


def views() -> ReadModels:
    """The per-process :class:`~monitoring.readmodels.ReadModels` of the app factory."""
    return current_app.extensions["readmodels"]


def _batch() -> Batch:
    """The rows of the request body (or ``?dataset_path=``), within ``MAX_ROWS``."""
    batch = batch_from_request(request, views().settings)
    limit = current_app.config["MAX_ROWS"]
    if len(batch) > limit:
        raise RowLimitError(f"request has {len(batch)} rows; the limit is {limit}")
    return batch


def _limit() -> int:
    """The ``limit`` query parameter, within the bounds :data:`LIMIT` documents."""
    bounds = LIMIT["schema"]
    raw = request.args.get("limit")
    if raw is None:
        return bounds["default"]
    try:
        value = int(raw)
    except ValueError:
        raise DataValidationError(
            f"query parameter 'limit' must be an integer, got {raw!r}"
        ) from None
    low, high = bounds["minimum"], bounds["maximum"]
    if not low <= value <= high:
        raise DataValidationError(f"query parameter 'limit' must be between {low} and {high}")
    return value


@bp.post("/prediction")
@doc(
    "Predict with the deployed model",
    ok="Prediction",
    errors=DATA_ERRORS,
    params=[PATH_QUERY],
    body=DATA_BODY,
)
def prediction() -> Any:
    """Classes and positive-class probabilities for each row.

    Counts the rows for the metrics and captures them when sampled; the body adds
    ``request_id`` (made by the server for this response: a client's ``X-Request-ID``
    stays in the header and logs) and, when captured, ``row_ids`` (one per row, for
    ``POST /feedback``; null when the store could not give ids, where the request id
    still labels the rows, or when the capture failed, which never fails the request).
    """
    v = views()
    batch = _batch()
    result = v.model.predict_batch(batch)
    version = str(result.get("model_version"))
    count_predictions(version, result["predictions"])
    rid = response_id()
    body = {**result, "request_id": rid}
    if should_capture(v.settings):
        body["row_ids"] = record(
            v.store, v.settings, request_id=rid, model_version=version, rows=batch, result=result
        )
    # orjson: the same JSON as Flask's provider (keys sorted, compact, a final newline),
    # about 10x faster for the 20,000 numbers of a 10,000-row answer.
    data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    return current_app.response_class(data, mimetype="application/json")


@bp.get("/scoring")
@doc("Score of the deployed model", ok="Scoring", errors=(503,))
def scoring() -> Any:
    """F1 and other metrics on the test data, with the model-drift verdict.

    ``live_performance``: each version's metrics on traffic labelled by ``POST /feedback``;
    ``estimated_performance``: the live model's F1, precision and recall estimated
    without labels (CBPE) for each chunk of its captured traffic, with a band, and the
    realised values once labelled.
    """
    scores = views().scoring
    return {
        **scores.current(),
        "live_performance": scores.live(),
        "estimated_performance": scores.estimated(),
    }


@bp.get("/summarystats")
@doc("Summary statistics", ok="SummaryStats", errors=(503,))
def summarystats() -> Any:
    """Mean, median, std, min, quartiles and max of each feature of the ingested data."""
    return views().profile.summary()


@bp.get("/diagnostics")
@doc("Diagnostics", ok="Diagnostics")
def diagnostics() -> Any:
    """Missing data, step timings and the dependency check (cached)."""
    return views().diagnostics.current()


@bp.get("/drift")
@doc("Drift of the ingested data", ok="DriftReport", errors=(422, 503))
def drift_latest() -> Any:
    """Data drift of the latest ingested data against the training data; not recorded."""
    return views().drift.latest()


@bp.post("/drift")
@doc("Drift of a batch", ok="DriftReport", errors=DATA_ERRORS, params=[PATH_QUERY], body=DATA_BODY)
def drift_batch() -> Any:
    """Data drift of the rows in the body (same formats as /prediction); recorded as
    ad-hoc (``adhoc: true``): it never changes the drift metric or triggers a retrain."""
    batch = _batch()
    return views().drift.record(batch.frame(), input_name=batch.name)


@bp.get("/drift/history")
@doc(
    "Drift history",
    ok="DriftHistory",
    errors=(422,),
    params=[LIMIT, query("full", STR, "1/true/yes: include the per-column tables.")],
)
def drift_history() -> Any:
    """Recorded drift reports, newest first."""
    full = request.args.get("full", "0") in ("1", "true", "yes")
    return {"reports": views().store.drift_reports(limit=_limit(), full=full)}


@bp.get("/fairness")
@doc("Bias audit of the deployed model", ok="Fairness", errors=(503,))
def fairness() -> Any:
    """Group metrics, disparities against the reference group and verdicts per
    configured attribute (``fairness.attributes``), on the test data and on labelled
    captured traffic; a disparity passes within [tau, 1/tau] (README, *Bias audit*).

    Recomputed when the live model changes, and when the store or the test data
    changes at most every 5 seconds.
    """
    return live_audit(views())


@bp.get("/runs")
@doc("Pipeline runs", ok="Runs", errors=(422,), params=[LIMIT])
def runs() -> Any:
    """Recorded pipeline runs with their decisions and evidence, newest first."""
    return {"runs": views().store.runs(limit=_limit())}


@bp.get("/versions")
@doc("Model versions", ok="Versions")
def versions() -> Any:
    """Every deployed model version and the deployment history."""
    v = views()
    return {"versions": list_versions(v.store), "deployments": v.store.deployments()}


@bp.get("/health")
@doc("Liveness", ok="Health", tag="ops", public=True)
def health() -> Any:
    """Always open (no token). 'no_model' before the first deployment."""
    return views().model.health()


@bp.get("/ready")
@doc("Readiness", ok="Ready", shaped={503: "Ready"}, tag="ops", public=True)
def ready() -> Any:
    """Always open (no token). 200 when a model is served and the record store answers,
    503 otherwise; each check says its status (``fallback``: an earlier version is
    served because the live one failed its checks; still ready)."""
    v = views()
    checks = {"model": v.model.readiness(), "store": store_readiness(v.store)}
    ok = checks["model"]["status"] in ("ok", "fallback") and checks["store"]["status"] == "ok"
    return {"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503
