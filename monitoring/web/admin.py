"""State-changing endpoints and the bearer-token check.

``POST /ingest``, ``/retrain``, ``/deploy``, ``/rollback`` and ``/run`` call the
same functions as the CLI. They answer to POST only, so no GET, HEAD or OPTIONS
request (a crawler, a link preview, a CORS preflight) can change anything.

Authentication (``Authorization: Bearer <token>``):

- ``MONITORING_API_TOKEN`` set: admin endpoints need the token (401 without it or
  with a wrong one, compared in constant time; the token is never logged or
  echoed). With ``api.require_token_for_reads`` the read endpoints need it too;
  ``/health``, ``/openapi.json`` and ``/docs`` always stay open.
- no token set: admin endpoints refuse with 403 (safe default) unless
  ``api.allow_unauthenticated_admin`` is true (for a loopback-only deployment).

Every admin operation holds the pipeline lock, so it never overlaps a pipeline
run, the CLI or another admin call: the second one gets 409.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, request

from monitoring.config import Settings
from monitoring.data.ingestion import ingest as run_ingest
from monitoring.exceptions import BadRequestError, UnsupportedMediaTypeError
from monitoring.model.deployment import rollback as run_rollback
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.pipeline import pipeline_lock, publish, run_full_process
from monitoring.reports.reporting import generate_report
from monitoring.web.api import views
from monitoring.web.errors import error_response
from monitoring.web.openapi import doc
from monitoring.web.schemas import ADMIN_ERRORS, json_body, ref

bp = Blueprint("admin", __name__)

ALWAYS_OPEN = frozenset({"api.health", "openapi.spec", "openapi.docs", "static"})
ADMIN_DISABLED = (
    "admin endpoints are disabled: set MONITORING_API_TOKEN "
    "(or api.allow_unauthenticated_admin for a loopback-only service)"
)


def _bearer_ok(token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return secrets.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def _unauthorized(message: str) -> Any:
    return error_response(401, message, [("WWW-Authenticate", 'Bearer realm="monitoring"')])


def check_access(settings: Settings, endpoint: str | None, blueprint: str | None) -> Any:
    """The error response for a request that may not proceed, or None.

    Parameters
    ----------
    settings : Settings
    endpoint : str or None
        Flask endpoint name (``None`` for unknown URLs, which fall through to 404/405).
    blueprint : str or None
        Blueprint of the endpoint.
    """
    if endpoint is None or endpoint in ALWAYS_OPEN:
        return None
    token = settings.api_token
    if blueprint == bp.name:
        if token is None:
            if settings.api.allow_unauthenticated_admin:
                return None
            return error_response(403, ADMIN_DISABLED)
        if not _bearer_ok(token):
            return _unauthorized("admin endpoints need 'Authorization: Bearer <token>'")
        return None
    if settings.api.require_token_for_reads:
        if token is None:
            return error_response(
                403, "reads require a token (api.require_token_for_reads) but none is set"
            )
        if not _bearer_ok(token):
            return _unauthorized("this service needs 'Authorization: Bearer <token>'")
    return None


@bp.before_app_request
def _authenticate() -> Any:
    if request.routing_exception is not None or request.method == "OPTIONS":
        return None  # 404/405 as they are; OPTIONS only lists methods, runs no view
    return check_access(views().settings, request.endpoint, request.blueprint)


def _options(allowed: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The optional JSON object body of an admin call, checked against ``allowed``."""
    data = request.get_data()
    if not data.strip():
        return {}
    if not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise UnsupportedMediaTypeError(
            f"unsupported content type '{request.mimetype or 'none'}'; send application/json"
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequestError(
            f"unknown field(s) {unknown}; this endpoint takes {sorted(allowed) or 'no fields'}"
        )
    for key, types in allowed.items():
        value = body.get(key)
        if value is not None and not isinstance(value, types):
            names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise BadRequestError(f"field '{key}' must be {names} or null, got {value!r}")
    return body


def _locked(step: Callable[[], dict[str, Any]]) -> dict[str, Any]:

    with pipeline_lock(views().settings):
        return step()


@bp.post("/ingest")
@doc(
    "Ingest",
    "Merge every data file of the input folder into finaldata.csv.",
    ok="Ingestion",
    errors=ADMIN_ERRORS,
    tag="admin",
    admin=True,
)
def ingest() -> Any:
    """Merge every data file of the input folder into ``finaldata.csv``."""

    _options({})
    m = views()
    return _locked(lambda: run_ingest(m.settings, store=m.store).to_dict())


@bp.post("/retrain")
@doc(
    "Retrain",
    "Train on the ingested data and score on the test data; does not deploy.",
    ok="Retrain",
    errors=ADMIN_ERRORS,
    tag="admin",
    admin=True,
)
def retrain() -> Any:
    """Train on the ingested data and score on the test data (not deployed)."""

    _options({})
    m = views()

    def step() -> dict[str, Any]:
        metadata = train(m.settings, store=m.store)
        metrics = score(m.settings, store=m.store)
        return {"model_version": metadata["version"], "score": metrics}

    return _locked(step)


@bp.post("/deploy")
@doc(
    "Deploy",
    "Deploy the trained, scored model (checksum verified before it goes live).",
    ok="Deployment",
    errors=ADMIN_ERRORS,
    tag="admin",
    admin=True,
)
def deploy() -> Any:
    """Deploy the trained, scored model."""

    _options({})
    m = views()
    return _locked(lambda: publish(m.settings, m.store))


@bp.post("/rollback")
@doc(
    "Roll back",
    "Make an earlier version live; default: the one before the live one.",
    ok="Deployment",
    errors=ADMIN_ERRORS,
    tag="admin",
    admin=True,
    body=json_body(ref("RollbackRequest")),
)
def rollback() -> Any:
    """Make an earlier version live (``{"version": ...}``; default: the previous one)."""

    body = _options({"version": str})
    m = views()
    return _locked(lambda: run_rollback(m.settings, to_version=body.get("version"), store=m.store))


@bp.post("/run")
@doc(
    "Full process",
    "New data, drift, retrain, gate, redeploy, report. 409 while another run holds the lock.",
    ok="Run",
    errors=ADMIN_ERRORS,
    tag="admin",
    admin=True,
    body=json_body(ref("RunRequest")),
)
def run() -> Any:
    """The full process (``{"force": bool}``); 409 while another run holds the lock."""

    body = _options({"force": bool})
    m = views()
    current_app.logger.info("pipeline run requested over the API (force=%s)", body.get("force"))
    return run_full_process(
        m.settings,
        store=m.store,
        force=bool(body.get("force")),
        after_deploy=lambda: generate_report(m.settings),
    )
