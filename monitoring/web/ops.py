"""Operations routes (``GET /metrics``, ``POST /feedback``, ``GET /feedback/<row_id>/history``,
``GET /dashboard``) and the request hooks: request ids, JSON logs, request metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request, url_for
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitoring.capture.feedback import MAX_ROW_ID, apply_feedback, label_history
from monitoring.exceptions import BadRequestError, NotFoundError
from monitoring.reports import dashboard as pages
from monitoring.reports.formatting import TEMPLATES
from monitoring.web.admin import feedback_caller
from monitoring.web.api import views
from monitoring.web.latency import LatencyRecorder
from monitoring.web.logs import configure_json_logging
from monitoring.web.metrics import finish_request, render_metrics, start_request
from monitoring.web.openapi import doc
from monitoring.web.schemas import (
    ANY_OBJ,
    BOOL,
    INT,
    STR,
    array,
    json_body,
    nullable,
    obj,
    text,
)

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
@doc("Prometheus metrics", ok=text("text/plain"), tag="ops")
def metrics() -> Any:
    """Request, prediction and pipeline metrics in the Prometheus text format."""
    v = views()
    return Response(render_metrics(v.settings, v.store), mimetype=CONTENT_TYPE_LATEST)


@bp.post("/feedback")
@doc(
    "Ground-truth feedback",
    ok=obj(
        ("labelled_rows", "relabelled"),
        labelled_rows=INT,
        relabelled=INT,
        request_ids=array(STR),
        row_ids=array(INT),
    ),
    errors=(400, 404, 413, 415, 422),
    body=json_body(
        ANY_OBJ,
        '{"request_id": "...", "labels": [0, 1]}, {"row_id": 17, "label": 1} or '
        '{"feedback": [items]}.',
    ),
)
def feedback() -> Any:
    """Labels for captured predictions, by request id or row id (all or nothing); needs
    the feedback or admin token when either is set.

    ``labels`` are one per row of that request, in order; unknown ids give 404 (the
    first ten named, nothing stored), invalid labels or a wrong label count 422. Every
    label is kept in the row's label history; ``relabelled`` counts rows that had one.
    """
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError("feedback must be a JSON body")
    v = views()
    source = feedback_caller(v.settings) or "anonymous"
    return apply_feedback(v.store, v.settings, body, source=source)


@bp.get(f"/feedback/<int(max={MAX_ROW_ID}):row_id>/history")
@doc(
    "Label history of a row",
    ok=obj(
        ("row_id", "captured", "label", "events"),
        row_id=INT,
        captured=BOOL,
        label=nullable(INT),
        events=array(
            obj(
                ("label", "previous_label", "labelled_at", "source"),
                label=INT,
                previous_label=nullable(INT),
                labelled_at=STR,
                source=nullable(STR),
            )
        ),
    ),
    errors=(404,),
    params=[
        {
            "name": "row_id",
            "in": "path",
            "required": True,
            "schema": INT,
            "description": "A captured row id.",
        }
    ],
    tag="admin",
    admin=True,
)
def feedback_history(row_id: int) -> Any:
    """Every label given to a captured row, oldest first, and its current label (admin).

    ``source`` says who gave it: ``admin_token``, ``feedback_token`` or ``anonymous``.
    """
    v = views()
    found = label_history(v.store, v.settings, row_id)
    if found is None:
        raise NotFoundError(f"row {row_id} has no capture and no label history")
    return found


@bp.get("/dashboard")
@doc("Dashboard", ok=text("text/html"), errors=(503,), tag="ops")
def dashboard() -> Any:
    """The monitoring dashboard: trends and the latest state, charts drawn in the browser
    by the plotly.js this app serves (no CDN)."""
    src = url_for("ops.plotly_js", v=pages.plotly_js_version())
    return Response(pages.dashboard_html(views(), plotly_src=src), mimetype="text/html")


@bp.get("/dashboard/plotly.min.js")
@doc("plotly.js for the dashboard", ok=text("text/javascript"), tag="ops")
def plotly_js() -> Any:
    """The plotly.js shipped in the pinned ``plotly`` package, cached by browsers for a day
    (the dashboard's URL names its version)."""
    response = Response(pages.plotly_js(), mimetype="text/javascript")
    response.set_etag(f"plotly.js-{pages.plotly_js_version()}")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    """Install request ids, JSON logs, request metrics (and the hourly latency record of
    the dashboard) and the ops routes on ``app``."""
    if not app.testing:
        configure_json_logging()
    readmodels = app.extensions["readmodels"]
    app.extensions["latency"] = LatencyRecorder(
        readmodels.store,
        retention_days=readmodels.settings.capture.retention_days,
        background=not app.testing,
    )
    TEMPLATES.get_template("page.html")  # compiled now, not by the first /dashboard
    app.before_request(start_request)
    app.after_request(finish_request)
    app.register_blueprint(bp)
