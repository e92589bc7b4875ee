"""The OpenAPI 3.1 document (``GET /openapi.json``), generated from the routes; Swagger
UI over it (``GET /docs``: try each operation against this service, the admin token
entered under *Authorize*), served from the files the ``flask-swagger-ui`` package
ships (no CDN: it works offline); and a plain HTML reference rendered from the
document (``GET /docs/reference``: a Jinja2 template, no JavaScript).

Each view declares its operation with :func:`doc` under its route; the description is
the first paragraph of its docstring. :func:`spec` walks the URL map for paths and
methods and raises when a route has no declaration or a declared view has no route, so
the document cannot drift from the routes. (apispec, spectree and flask-smorest want
model classes or YAML; our views parse JSON, CSV or uploads through
:mod:`monitoring.data.payloads`.)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.resources import files
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, render_template, request
from werkzeug.http import HTTP_STATUS_CODES

from monitoring.web.schemas import SCHEMAS, Schema, ref, text

bp = Blueprint("openapi", __name__, template_folder="templates")

View = TypeVar("View", bound=Callable[..., Any])

# Every endpoint may answer these (unknown method, access control, server trouble).
COMMON_ERRORS = (401, 403, 405, 500)
INFO = {
    "title": "Churn-risk model monitoring",
    "version": "1.0.0",
    "description": "Predictions, scores, drift and the retraining pipeline. Errors are "
    'JSON {"error", "message", "status"}. Admin endpoints need '
    "'Authorization: Bearer <MONITORING_API_TOKEN>'.",
}
# Swagger UI's files, as the flask-swagger-ui package ships them (its version is Swagger
# UI's); only these two are served.
SWAGGER_UI = files("flask_swagger_ui") / "dist"
ASSET_MAX_AGE = 86400  # seconds a browser may keep the assets
_OPERATION = "openapi_operation"  # the attribute doc() sets on a view
_declared: list[Callable[..., Any]] = []  # every view doc() saw, to find unrouted ones


def doc(
    summary: str,
    description: str | None = None,
    *,
    ok: Schema | str,
    errors: Iterable[int] = (),
    params: Iterable[Mapping[str, Any]] = (),
    body: Mapping[str, Any] | None = None,
    tag: str = "monitoring",
    admin: bool = False,
    public: bool = False,
    shaped: Mapping[int, str] | None = None,
) -> Callable[[View], View]:
    """Declare the OpenAPI operation of the view it decorates.

    ``description`` defaults to the first paragraph of the view's docstring. ``ok`` is
    the 200 response: a schema name in :data:`SCHEMAS`, an inline JSON schema, or
    :func:`~monitoring.web.schemas.text` for a non-JSON body. ``errors`` are the error
    statuses besides :data:`COMMON_ERRORS`; ``params`` and ``body`` OpenAPI parameter and
    request body objects; ``admin`` operations need the bearer token, ``public`` ones
    never take it (the others take it, and need it with ``api.require_token_for_reads``);
    ``shaped`` maps a
    status that answers with a schema of its own (not the error shape) to it. Raises
    :class:`ValueError` for an unknown schema name or a missing description.
    """
    if isinstance(ok, str):
        if ok not in SCHEMAS:
            raise ValueError(f"doc(ok={ok!r}): no such schema; known: {sorted(SCHEMAS)}")
        ok = ref(ok)
    media = ok.get("x-media-type", "application/json")
    schema = {k: v for k, v in ok.items() if k != "x-media-type"}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {media: {"schema": schema}}}
    }
    for status in sorted({*errors, *COMMON_ERRORS, *(shaped or {})}):
        name = (shaped or {}).get(status, "Error")
        responses[str(status)] = {
            "description": HTTP_STATUS_CODES.get(status, "Error"),
            "content": {"application/json": {"schema": ref(name)}},
        }
    extra: dict[str, Any] = {"tags": [tag], "parameters": list(params), "responses": responses}
    if body is not None:
        extra["requestBody"] = dict(body)
    if admin:
        extra["security"] = [{"bearer": []}]
    elif public:
        extra["security"] = []

    def declare(view: View) -> View:
        text = description or " ".join((inspect.getdoc(view) or "").split("\n\n")[0].split())
        if not text:
            raise ValueError(f"doc({summary!r}): give a description or a docstring")
        setattr(view, _OPERATION, {"summary": summary, "description": text, **extra})
        _declared.append(view)
        return view

    return declare


def spec() -> dict[str, Any]:
    """The OpenAPI document of the current app's routes; :class:`RuntimeError` when a route
    has no :func:`doc` or a declared view (of a module with a blueprint) has no route."""
    paths: dict[str, dict[str, Any]] = {}
    undeclared = []
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = sorted(m.lower() for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
        op = getattr(current_app.view_functions[rule.endpoint], _OPERATION, None)
        if op is None:
            undeclared.append(f"{'/'.join(methods).upper()} {rule.rule} ({rule.endpoint!r})")
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        paths.setdefault(path, {}).update(dict.fromkeys(methods, op))
    routed = set(current_app.view_functions.values())
    modules = {current_app.import_name, *(b.import_name for b in current_app.blueprints.values())}
    unrouted = [
        f"{view.__module__}.{view.__qualname__}"
        for view in _declared
        if view.__module__ in modules and view not in routed
    ]
    problems = []
    if undeclared:
        problems.append(f"routes without a @doc declaration: {', '.join(undeclared)}")
    if unrouted:
        problems.append(f"@doc-declared views that no route serves: {', '.join(unrouted)}")
    if problems:
        raise RuntimeError(f"the OpenAPI document does not match the routes: {'; '.join(problems)}")
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "MONITORING_API_TOKEN (admin operations; reads too "
                    "with api.require_token_for_reads), or MONITORING_FEEDBACK_TOKEN for "
                    "POST /feedback.",
                }
            },
        },
        # Reads take the token too (and need it with api.require_token_for_reads): a
        # client that has it sends it everywhere; admin operations require it.
        "security": [{}, {"bearer": []}],
    }


@bp.get("/openapi.json", endpoint="spec")
@doc("This document", ok="OpenAPI", tag="ops", public=True)
def openapi_json() -> Any:
    """OpenAPI 3.1."""
    return spec()


@bp.get("/docs")
@doc("API documentation (Swagger UI)", ok=text("text/html"), tag="ops", public=True)
def docs() -> Any:
    """Interactive documentation: every operation, tried against this service from the
    page (Try it out, then Execute; the admin token goes under Authorize)."""
    cache = current_app.extensions.setdefault("openapi_html", {})  # rendered once per process
    if "swagger" not in cache:
        cache["swagger"] = render_template("swagger.html", info=INFO)
    return Response(cache["swagger"], mimetype="text/html")


@bp.get("/docs/swagger-ui.css", endpoint="swagger_css")
@doc("Swagger UI's stylesheet", ok=text("text/css"), tag="ops", public=True)
def swagger_css() -> Any:
    """The stylesheet of ``/docs``, from the flask-swagger-ui package."""
    return _asset("swagger-ui.css", "text/css")


@bp.get("/docs/swagger-ui-bundle.js", endpoint="swagger_js")
@doc("Swagger UI's script", ok=text("text/javascript"), tag="ops", public=True)
def swagger_js() -> Any:
    """The script of ``/docs``, from the flask-swagger-ui package."""
    return _asset("swagger-ui-bundle.js", "text/javascript")


@functools.cache  # two fixed files, read once per process
def _asset_bytes(name: str) -> tuple[bytes, str]:
    data = (SWAGGER_UI / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


def _asset(name: str, mimetype: str) -> Any:
    """``name`` from Swagger UI's files, cacheable, 304 to a matching ``If-None-Match``."""
    data, etag = _asset_bytes(name)
    response = Response(data, mimetype=mimetype)
    response.cache_control.public = True
    response.cache_control.max_age = ASSET_MAX_AGE
    response.set_etag(etag)
    return response.make_conditional(request)


@bp.get("/docs/reference", endpoint="reference")
@doc("API reference (plain HTML)", ok=text("text/html"), tag="ops", public=True)
def reference() -> Any:
    """This document as one self-contained HTML page (no script)."""
    cache = current_app.extensions.setdefault("openapi_html", {})  # rendered once per process
    if "page" not in cache:
        document = spec()
        pretty = {n: json.dumps(s, indent=2) for n, s in document["components"]["schemas"].items()}
        cache["page"] = render_template("docs.html", doc=document, schemas=pretty)
    return Response(cache["page"], mimetype="text/html")
