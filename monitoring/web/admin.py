"""State-changing endpoints (``POST /ingest``, ``/retrain``, ``/deploy``, ``/rollback``,
``/run``: the functions the CLI calls) and the bearer-token check of every request.

POST only, so no GET, HEAD or OPTIONS (a crawler, a link preview, a CORS preflight) can
change anything. With ``MONITORING_API_TOKEN`` set, admin endpoints need
``Authorization: Bearer <token>`` (compared in constant time, never logged or echoed),
and so do reads with ``api.require_token_for_reads``; ``/health``, ``/openapi.json`` and
``/docs`` (with its assets and ``/docs/reference``) stay open. Without a token admin
endpoints answer 403 unless ``api.allow_unauthenticated_admin`` (loopback-only
services). ``POST /feedback`` needs
``MONITORING_FEEDBACK_TOKEN`` or the admin token when either is set (open otherwise);
``GET /feedback/<row_id>/history`` is an admin read. Every admin operation holds
the pipeline lock: one overlapping a run, the CLI or another admin call gets 409.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, request

from monitoring.config import Settings
from monitoring.data.ingestion import ingest as run_ingest
from monitoring.data.validation import shown
from monitoring.exceptions import BadRequestError, DataValidationError, UnsupportedMediaTypeError
from monitoring.model.deployment import rollback as run_rollback
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.pipeline import pipeline_lock, publish, run_full_process
from monitoring.readmodels import ReadModels
from monitoring.reports.reporting import generate_report
from monitoring.web.api import views
from monitoring.web.errors import error_response
from monitoring.web.openapi import View, doc
from monitoring.web.schemas import ADMIN_ERRORS, json_body, ref

bp = Blueprint("admin", __name__)

MAX_VERSION_CHARS = 64  # the width of a model version in the store
ALWAYS_OPEN = frozenset(
    {
        "api.health",
        "api.ready",
        "openapi.spec",
        "openapi.docs",
        "openapi.swagger_css",
        "openapi.swagger_js",
        "openapi.reference",
        "static",
    }
)
FEEDBACK = "ops.feedback"  # labels: the feedback token or the admin token, when either is set
ADMIN_READS = frozenset({"ops.feedback_history"})  # reads that need the admin token
ADMIN_DISABLED = (
    "admin endpoints are disabled: set MONITORING_API_TOKEN "
    "(or api.allow_unauthenticated_admin for a loopback-only service)"
)


def _bearer_ok(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return secrets.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def feedback_caller(settings: Settings) -> str | None:
    """Who is sending feedback: ``"admin_token"``, ``"feedback_token"``, ``"anonymous"``
    when no token is set (feedback is open then), or None (a token is set, and the request
    does not carry it)."""
    if settings.api_token is not None and _bearer_ok(settings.api_token):
        return "admin_token"
    if settings.feedback_token is not None and _bearer_ok(settings.feedback_token):
        return "feedback_token"
    if settings.api_token is None and settings.feedback_token is None:
        return "anonymous"
    return None


def check_access(settings: Settings, endpoint: str | None, blueprint: str | None) -> Any:
    """The error response for a request that may not proceed, or None.

    ``endpoint`` is None for unknown URLs, which fall through to 404/405.
    """
    if endpoint is None or endpoint in ALWAYS_OPEN:
        return None
    if endpoint == FEEDBACK and (settings.api_token or settings.feedback_token):
        if feedback_caller(settings) is not None:
            return None
        challenge = [("WWW-Authenticate", 'Bearer realm="monitoring"')]
        message = "feedback needs 'Authorization: Bearer <token>' (the feedback or admin token)"
        return error_response(401, message, challenge)
    admin = blueprint == bp.name or endpoint in ADMIN_READS
    if not (admin or settings.api.require_token_for_reads):
        return None
    token = settings.api_token
    if token is None:
        if admin and settings.api.allow_unauthenticated_admin:
            return None
        reads = "reads require a token (api.require_token_for_reads) but none is set"
        return error_response(403, ADMIN_DISABLED if admin else reads)
    if _bearer_ok(token):
        return None
    who = "admin endpoints need" if admin else "this service needs"
    challenge = [("WWW-Authenticate", 'Bearer realm="monitoring"')]
    return error_response(401, f"{who} 'Authorization: Bearer <token>'", challenge)


@bp.before_app_request
def _authenticate() -> Any:
    if request.routing_exception is not None or request.method == "OPTIONS":
        return None  # 404/405 as they are; OPTIONS only lists methods, runs no view
    return check_access(views().settings, request.endpoint, request.blueprint)


def _options(allowed: dict[str, type]) -> dict[str, Any]:
    """The optional JSON object body of an admin call, checked against ``allowed``."""
    if not request.get_data().strip():
        return {}
    if not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise UnsupportedMediaTypeError(
            f"unsupported content type '{request.mimetype or 'none'}'; send application/json"
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    unknown = sorted(shown(key) for key in set(body) - set(allowed))
    if unknown:
        raise BadRequestError(
            f"unknown field(s) [{', '.join(unknown[:5])}]; this endpoint takes "
            f"{sorted(allowed) or 'no fields'}"
        )
    for key, kind in allowed.items():
        value = body.get(key)
        if value is not None and not isinstance(value, kind):
            raise BadRequestError(
                f"field '{key}' must be {kind.__name__} or null, got {shown(value)}"
            )
    return body


def _locked(step: Callable[[ReadModels], dict[str, Any]]) -> dict[str, Any]:
    """``step(views())`` under the pipeline lock; this worker serves its outcome at once."""
    m = views()
    try:
        with pipeline_lock(m.settings):
            return step(m)
    finally:
        m.model.expire()  # other workers, on any host, follow within LIVE_POLL_SECONDS


def _admin_doc(summary: str, ok: str, body: Any = None) -> Callable[[View], View]:
    """:func:`doc` for an admin operation: the bearer token and the admin error statuses."""
    return doc(summary, ok=ok, errors=ADMIN_ERRORS, tag="admin", admin=True, body=body)


@bp.post("/ingest")
@_admin_doc("Ingest", "Ingestion")
def ingest() -> Any:
    """Merge every data file of the input folder into finaldata.csv."""
    _options({})

    def step(m: ReadModels) -> dict[str, Any]:
        result = run_ingest(m.settings, store=m.store).to_dict()
        for record in result["files"]:  # never an absolute server path in an answer
            record["source_path"] = m.settings.public(Path(record["source_path"]))
        return result

    return _locked(step)


@bp.post("/retrain")
@_admin_doc("Retrain", "Retrain")
def retrain() -> Any:
    """Train on the ingested data and score on the test data; does not deploy."""
    _options({})

    def step(m: ReadModels) -> dict[str, Any]:
        metadata = train(m.settings, store=m.store)
        return {"model_version": metadata["version"], "score": score(m.settings, store=m.store)}

    return _locked(step)


@bp.post("/deploy")
@_admin_doc("Deploy", "Deployment")
def deploy() -> Any:
    """Deploy the trained, scored model (checksum verified before it goes live)."""
    _options({})
    return _locked(lambda m: publish(m.settings, m.store))


@bp.post("/rollback")
@_admin_doc("Roll back", "Deployment", json_body(ref("RollbackRequest")))
def rollback() -> Any:
    """Make an earlier version live; default: the one before the live one."""
    version = _options({"version": str}).get("version")
    if version is not None and len(version) > MAX_VERSION_CHARS:
        raise DataValidationError(
            f"field 'version' must be at most {MAX_VERSION_CHARS} characters, got {len(version)}"
        )
    return _locked(lambda m: run_rollback(m.settings, to_version=version, store=m.store))


@bp.post("/run")
@_admin_doc("Full process", "Run", json_body(ref("RunRequest")))
def run() -> Any:
    """New data, drift, retrain, gate, redeploy, report. 409 while another run holds the lock."""
    force = _options({"force": bool}).get("force")
    m = views()
    current_app.logger.info("pipeline run requested over the API (force=%s)", force)
    try:
        return run_full_process(
            m.settings,
            store=m.store,
            force=bool(force),
            after_deploy=lambda: generate_report(m.settings),
        )
    finally:
        m.model.expire()
