"""The OpenAPI 3.1 document of the API (``GET /openapi.json``) and an offline HTML page
rendered from it on the server (``GET /docs``: no JavaScript, no CDN).

Adding an endpoint is one entry in :data:`PATHS` (schemas, shared parameters and
bodies: :mod:`monitoring.web.schemas`)::

    "/metrics": {
        "get": operation(
            "Prometheus metrics", "Counters and histograms.", tag="ops",
            ok=text("text/plain"), errors=(),
        ),
    },

``operation`` takes the summary, a description, the 200 response (a JSON schema,
or :func:`text` for a non-JSON body), the error statuses the endpoint can answer
with (each documented with the shared error shape), and optionally the query
parameters and the request body. ``tests/test_openapi.py`` fails when a Flask route
is missing here or documented with other methods, and fuzzes every operation
against the documented responses.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app
from werkzeug.http import HTTP_STATUS_CODES

from monitoring.web.schemas import (
    ADMIN_ERRORS,
    ANY_OBJ,
    DATA_BODY,
    DATA_ERRORS,
    INT,
    LIMIT,
    PATH_QUERY,
    SCHEMAS,
    STR,
    Schema,
    array,
    json_body,
    obj,
    query,
    ref,
    text,
)

bp = Blueprint("openapi", __name__)

View = TypeVar("View", bound=Callable[..., Any])

ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
# Every endpoint may answer these (unknown method, access control, server trouble).
COMMON_ERRORS = (401, 403, 405, 500)
_OPERATION = "openapi_operation"  # the attribute doc() sets on a view
_declared: list[Callable[..., Any]] = []  # every view doc() saw, to find unrouted ones


def operation(
    summary: str,
    description: str,
    *,
    ok: Schema,
    errors: Iterable[int] = (),
    tag: str = "monitoring",
    parameters: Iterable[Mapping[str, Any]] = (),
    body: Mapping[str, Any] | None = None,
    admin: bool = False,
) -> dict[str, Any]:
    """One OpenAPI operation object.

    Parameters
    ----------
    summary, description : str
    ok : dict
        JSON schema of the 200 response, or :func:`text` for a non-JSON body.
    errors : iterable of int
        Error statuses besides :data:`COMMON_ERRORS`; all use the ``Error`` schema.
    tag : str
        Group on the docs page.
    parameters : iterable of dict
        Query parameters (OpenAPI parameter objects).
    body : dict, optional
        OpenAPI request body object.
    admin : bool
        State-changing: needs the bearer token.
    """
    media = ok.get("x-media-type", "application/json")
    schema = {k: v for k, v in ok.items() if k != "x-media-type"}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {media: {"schema": schema}}}
    }
    for status in sorted(set(errors) | set(COMMON_ERRORS)):
        responses[str(status)] = {
            "description": HTTP_STATUS_CODES.get(status, "Error"),
            "content": {"application/json": {"schema": ref("Error")}},
        }
    op: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "tags": [tag],
        "parameters": list(parameters),
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = dict(body)
    if admin:
        op["security"] = ADMIN_SECURITY
    return op


def doc(
    summary: str,
    description: str,
    *,
    ok: Schema | str,
    errors: Iterable[int] = (),
    params: Iterable[Mapping[str, Any]] = (),
    body: Mapping[str, Any] | None = None,
    tag: str = "monitoring",
    admin: bool = False,
) -> Callable[[View], View]:
    """Declare the OpenAPI operation of the view it decorates (see :func:`operation`).

    ``ok`` may also name a schema of :data:`SCHEMAS`; ``params`` are the query
    parameters.

    Raises
    ------
    ValueError
        ``ok`` names no schema of :data:`SCHEMAS`.
    """
    if isinstance(ok, str):
        if ok not in SCHEMAS:
            raise ValueError(f"doc(ok={ok!r}): no such schema; known: {sorted(SCHEMAS)}")
        ok = ref(ok)
    op = operation(
        summary,
        description,
        ok=ok,
        errors=errors,
        tag=tag,
        parameters=params,
        body=body,
        admin=admin,
    )

    def declare(view: View) -> View:
        setattr(view, _OPERATION, op)
        _declared.append(view)
        return view

    return declare


PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "/prediction": {
        "post": operation(
            "Predict with the deployed model",
            "Classes and positive-class probabilities for each row.",
            ok=ref("Prediction"),
            errors=DATA_ERRORS,
            parameters=[PATH_QUERY],
            body=DATA_BODY,
        )
    },
    "/scoring": {
        "get": operation(
            "Score of the deployed model",
            "F1 and other metrics on the test data, with the model-drift verdict.",
            ok=ref("Scoring"),
            errors=(503,),
        )
    },
    "/summarystats": {
        "get": operation(
            "Summary statistics",
            "Mean, median, std, min, quartiles and max of each feature of the ingested data.",
            ok=ref("SummaryStats"),
            errors=(503,),
        )
    },
    "/diagnostics": {
        "get": operation(
            "Diagnostics",
            "Missing data, step timings and the dependency check (cached).",
            ok=ref("Diagnostics"),
        )
    },
    "/drift": {
        "get": operation(
            "Drift of the ingested data",
            "Data drift of the latest ingested data against the training data; not recorded.",
            ok=ref("DriftReport"),
            errors=(422, 503),
        ),
        "post": operation(
            "Drift of a batch",
            "Data drift of the rows in the body (same formats as /prediction); recorded.",
            ok=ref("DriftReport"),
            errors=DATA_ERRORS,
            parameters=[PATH_QUERY],
            body=DATA_BODY,
        ),
    },
    "/drift/history": {
        "get": operation(
            "Drift history",
            "Recorded drift reports, newest first.",
            ok=ref("DriftHistory"),
            errors=(422,),
            parameters=[
                LIMIT,
                query("full", STR, "1/true/yes: include the per-column tables."),
            ],
        )
    },
    "/runs": {
        "get": operation(
            "Pipeline runs",
            "Recorded pipeline runs with their decisions and evidence, newest first.",
            ok=ref("Runs"),
            errors=(422,),
            parameters=[LIMIT],
        )
    },
    "/versions": {
        "get": operation(
            "Model versions",
            "Every deployed model version and the deployment history.",
            ok=ref("Versions"),
        )
    },
    "/health": {
        "get": operation(
            "Liveness",
            "Always open (no token). 'no_model' before the first deployment.",
            ok=ref("Health"),
            tag="ops",
        )
    },
    "/openapi.json": {
        "get": operation("This document", "OpenAPI 3.1.", ok=ref("OpenAPI"), tag="ops")
    },
    "/docs": {
        "get": operation(
            "API documentation", "This document as HTML.", ok=text("text/html"), tag="ops"
        )
    },
    "/metrics": {
        "get": operation(
            "Prometheus metrics",
            "Request, prediction and pipeline metrics in the Prometheus text format.",
            ok=text("text/plain"),
            tag="ops",
        )
    },
    "/dashboard": {
        "get": operation(
            "Dashboard",
            "The monitoring dashboard as one self-contained HTML page.",
            ok=text("text/html"),
            errors=(503,),
            tag="ops",
        )
    },
    "/feedback": {
        "post": operation(
            "Ground-truth feedback",
            "Labels for captured predictions, by request id or row id (all or nothing).",
            ok=obj(
                ("labelled_rows",),
                labelled_rows=INT,
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
    },
    "/ingest": {
        "post": operation(
            "Ingest",
            "Merge every data file of the input folder into finaldata.csv.",
            ok=ref("Ingestion"),
            errors=ADMIN_ERRORS,
            tag="admin",
            admin=True,
        )
    },
    "/retrain": {
        "post": operation(
            "Retrain",
            "Train on the ingested data and score on the test data; does not deploy.",
            ok=ref("Retrain"),
            errors=ADMIN_ERRORS,
            tag="admin",
            admin=True,
        )
    },
    "/deploy": {
        "post": operation(
            "Deploy",
            "Deploy the trained, scored model (checksum verified before it goes live).",
            ok=ref("Deployment"),
            errors=ADMIN_ERRORS,
            tag="admin",
            admin=True,
        )
    },
    "/rollback": {
        "post": operation(
            "Roll back",
            "Make an earlier version live; default: the one before the live one.",
            ok=ref("Deployment"),
            errors=ADMIN_ERRORS,
            tag="admin",
            admin=True,
            body=json_body(ref("RollbackRequest")),
        )
    },
    "/run": {
        "post": operation(
            "Full process",
            "New data, drift, retrain, gate, redeploy, report. 409 while another run holds "
            "the lock.",
            ok=ref("Run"),
            errors=ADMIN_ERRORS,
            tag="admin",
            admin=True,
            body=json_body(ref("RunRequest")),
        )
    },
}


def spec() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Churn-risk model monitoring",
            "version": "1.0.0",
            "description": "Predictions, scores, drift and the retraining pipeline. Errors are "
            'JSON {"error", "message", "status"}. Admin endpoints need '
            "'Authorization: Bearer <MONITORING_API_TOKEN>'.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def response_schema(path: str, method: str, status: int) -> tuple[str, Schema] | None:
    """Media type and schema documented for a response, or None if undocumented."""
    responses = PATHS[path][method]["responses"]
    entry = responses.get(str(status))
    if entry is None:
        return None
    media, content = next(iter(entry["content"].items()))
    return media, content["schema"]


@bp.get("/openapi.json", endpoint="spec")
@doc("This document", "OpenAPI 3.1.", ok="OpenAPI", tag="ops")
def openapi_json() -> Any:
    """The OpenAPI document."""
    return spec()


def render_html(document: Mapping[str, Any]) -> str:
    """A self-contained HTML page listing every operation of ``document``."""
    e = html.escape
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(info['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}h2{border-bottom:1px solid #ccc}.m{font-weight:bold;"
        "text-transform:uppercase;margin-right:.5rem}pre{background:#f5f5f5;padding:.5rem;"
        "overflow:auto}details{margin:.3rem 0}</style></head><body>",
        f"<h1>{e(info['title'])} <small>{e(info['version'])}</small></h1>",
        f"<p>{e(info['description'])}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a></p>",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            lock = " 🔒 bearer token" if op.get("security") else ""
            parts.append(
                f"<h2 id='{e(method + path)}'><span class='m'>{e(method)}</span>"
                f"<code>{e(path)}</code>{lock}</h2>"
                f"<p><b>{e(op['summary'])}</b>. {e(op['description'])}</p>"
            )
            if op["parameters"]:
                items = "".join(
                    f"<li><code>{e(p['name'])}</code> ({e(p['in'])}): "
                    f"{e(p.get('description', ''))}</li>"
                    for p in op["parameters"]
                )
                parts.append(f"<p>Parameters:</p><ul>{items}</ul>")
            if "requestBody" in op:
                types = ", ".join(op["requestBody"]["content"])
                parts.append(
                    f"<p>Body ({e(types)}): {e(op['requestBody'].get('description', ''))}</p>"
                )
            statuses = ", ".join(
                f"{code} {e(r['description'])}" for code, r in op["responses"].items()
            )
            parts.append(f"<p>Responses: {statuses}</p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(
            f"<details id='schema-{e(name)}'><summary><code>{e(name)}</code></summary>"
            f"<pre>{e(json.dumps(schema, indent=2))}</pre></details>"
        )
    parts.append("</body></html>")
    return "".join(parts)


@bp.get("/docs")
@doc("API documentation", "This document as HTML.", ok=text("text/html"), tag="ops")
def docs() -> Any:
    """The API documentation as one HTML page (works offline)."""
    cache = current_app.extensions.setdefault("openapi_html", {})
    if "page" not in cache:
        cache["page"] = render_html(spec())
    return Response(cache["page"], mimetype="text/html")
