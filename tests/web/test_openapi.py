"""The OpenAPI document covers every route, and a property-based fuzz of every
documented operation never gets a 5xx nor an undocumented response.

Fuzz size: ``FUZZ_EXAMPLES`` (default 300 requests in all, a few seconds), e.g.
``FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/test_openapi.py -k fuzz``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import flask_swagger_ui
import jsonschema
import pytest
from flask import Blueprint
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import create_app
from monitoring.config import PROJECT_ROOT, Settings
from monitoring.web import openapi
from monitoring.web.admin import ALWAYS_OPEN
from monitoring.web.openapi import doc, spec

TOKEN = "fuzz-token-0123456789"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))


def _flask_routes(app: Any) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(path, set()).update(methods)
    return routes


def _document(app: Any) -> dict[str, Any]:
    with app.app_context():
        return spec()


@pytest.fixture
def document(app: Any) -> dict[str, Any]:
    """The OpenAPI document of the test app."""
    return _document(app)


def _response_schema(
    document: dict[str, Any], path: str, method: str, status: int
) -> tuple[str, dict[str, Any]] | None:
    """Media type and schema documented for a response, or None if undocumented."""
    entry = document["paths"][path][method]["responses"].get(str(status))
    if entry is None:
        return None
    media, content = next(iter(entry["content"].items()))
    return media, content["schema"]


def _refs(node: Any) -> set[str]:
    """Names of the component schemas referenced anywhere in ``node``."""
    if isinstance(node, dict):
        found = {node["$ref"].rpartition("/")[2]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _readme_operations() -> set[tuple[str, str]]:
    """(method, path) of every row of the README's REST API table."""
    found: set[tuple[str, str]] = set()
    for line in (PROJECT_ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            pairs = re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/\S*)`", first_cell)
            found |= {(method.lower(), path) for method, path in pairs}
    return found


def test_every_route_is_documented_with_its_methods(app: Any, document: dict[str, Any]) -> None:
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert documented == _flask_routes(app)  # the same paths, each with the same methods
    operations = {(method, path) for path, ops in documented.items() for method in ops}
    assert operations == _readme_operations(), "the routes and the README's REST API table differ"
    assert len(operations) == 27


def test_a_route_without_a_declaration_makes_spec_fail(app: Any) -> None:
    app.add_url_rule("/undeclared", "undeclared", lambda: "", methods=["GET", "POST"])
    with pytest.raises(
        RuntimeError, match=r"without a @doc declaration: GET/POST /undeclared \('undeclared'\)$"
    ):
        _document(app)


def test_a_declared_view_without_a_route_makes_spec_fail(settings: Settings) -> None:
    stray = Blueprint("stray", __name__)

    @stray.get("/stray")
    @doc("Routed", "Routed and declared.", ok="Health")
    def routed() -> Any:
        return {}

    @doc("Orphan", "Declared, never routed.", ok="Health")
    def orphan() -> Any:
        return {}

    app = create_app(settings, {"TESTING": True})
    app.register_blueprint(stray)
    with pytest.raises(RuntimeError, match=r"views that no route serves: \S+\.<locals>\.orphan$"):
        _document(app)


def test_an_unknown_schema_name_fails_at_declaration() -> None:
    with pytest.raises(ValueError, match=r"ok='Helth'\): no such schema"):
        doc("Typo", "A schema name that does not exist.", ok="Helth")


def test_the_description_defaults_to_the_docstrings_first_paragraph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openapi, "_declared", [])  # no stray view for the other tests

    @doc("Described", ok="Health")
    def view() -> Any:
        """First sentence,
        wrapped.

        Notes for developers only.
        """

    assert view.openapi_operation["description"] == "First sentence, wrapped."
    with pytest.raises(ValueError, match=r"doc\('Bare'\): give a description or a docstring"):
        doc("Bare", ok="Health")(lambda: None)


def test_every_operation_documents_200_and_the_error_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message", "status"]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if status != "200" and (method, path, status) != ("get", "/ready", "503"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
    # /ready's 503 is the readiness report itself, each check with its status
    ready = document["paths"]["/ready"]["get"]["responses"]["503"]
    assert ready["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Ready"}
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    # every reference resolves, and every declared schema is used
    assert _refs(document) == set(document["components"]["schemas"])


def test_openapi_json_is_served_and_json_serialisable(
    client: Any, document: dict[str, Any]
) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["openapi"].startswith("3.")
    assert body == json.loads(json.dumps(document))


def test_reference_page_is_self_contained_and_lists_every_operation(
    client: Any, document: dict[str, Any]
) -> None:
    response = client.get("/docs/reference")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page), "external resource"
    for path, ops in document["paths"].items():
        for method in ops:
            assert f"id='{method}{path}'" in page, (method, path)
    for name in document["components"]["schemas"]:
        assert f"id='schema-{name}'" in page, name
    assert client.get("/docs/reference").get_data(as_text=True) == page  # rendered once
    assert "href='../openapi.json'" in page and "href='../docs'" in page


def test_docs_is_swagger_ui_served_from_the_package(client: Any) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page), "external resource"
    assert '<link rel="stylesheet" href="docs/swagger-ui.css">' in page
    assert '<script src="docs/swagger-ui-bundle.js"></script>' in page
    assert 'new URL("openapi.json", document.baseURI)' in page
    dist = Path(flask_swagger_ui.__file__).parent / "dist"
    for path, name, mimetype in (
        ("/docs/swagger-ui.css", "swagger-ui.css", "text/css"),
        ("/docs/swagger-ui-bundle.js", "swagger-ui-bundle.js", "text/javascript"),
    ):
        asset = client.get(path)
        assert (asset.status_code, asset.mimetype) == (200, mimetype)
        assert asset.get_data() == (dist / name).read_bytes()
        assert asset.headers["Cache-Control"] == "public, max-age=86400"
        again = client.get(path, headers={"If-None-Match": asset.headers["ETag"]})
        assert (again.status_code, again.get_data()) == (304, b"")
    assert client.get("/docs/nothing.js").status_code == 404
    # Swagger UI 5 reads OpenAPI 3.1; the version ships in the package's files
    assert (dist / "VERSION").read_text().startswith("v5.")


def test_the_token_is_declared_for_swagger_ui(document: dict[str, Any]) -> None:
    bearer = document["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")  # Authorization: Bearer
    assert document["security"] == [{}, {"bearer": []}]  # optional for reads
    assert document["paths"]["/ingest"]["post"]["security"] == [{"bearer": []}]  # admin
    assert "security" not in document["paths"]["/prediction"]["post"]  # optional, as reads


def test_the_always_open_endpoints_are_documented_without_the_token(app: Any) -> None:
    document = _document(app)
    public = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ALWAYS_OPEN and rule.endpoint != "static":
            public.add(rule.rule)
    assert public == {"/health", "/ready", "/openapi.json", "/docs", "/docs/reference"} | {
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
    }
    for path, ops in document["paths"].items():
        for op in ops.values():
            assert (op.get("security") == []) == (path in public), path


# -- fuzz -------------------------------------------------------------------------

FEATURES = ["lastmonth_activity", "lastyear_activity", "number_of_employees"]
KEYS = [*FEATURES, "data", "dataset_path", "filepath", "version", "force", "corporation", "x"]
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e308, -1e308, 5e-324, 10**19]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=12,
)
rows = st.lists(
    st.fixed_dictionaries({}, optional={f: st.one_of(numbers, scalars) for f in FEATURES}),
    max_size=5,
)
paths = st.one_of(
    st.sampled_from(
        [
            "testdata.csv",
            "data/testdata/testdata.csv",
            "../config.json",
            "/etc/passwd",
            "data/ingesteddata/finaldata.csv",
            "data/ingesteddata/ingestedfiles.txt",
            "data/testdata/../../models",
            "data",
            "",
        ]
    ),
    st.text(max_size=30),
)
json_bodies = st.one_of(
    json_values,
    st.builds(lambda r: {"data": r}, rows),
    rows,
    st.builds(lambda p: {"dataset_path": p}, paths),
    st.builds(lambda v: {"version": v}, st.one_of(st.none(), st.text(max_size=12), numbers)),
    st.builds(lambda f: {"force": f}, st.one_of(st.booleans(), scalars)),
)


def _csv(table: list[dict[str, Any]]) -> bytes:
    header = ",".join(FEATURES)
    lines = [",".join(str(r.get(f, "")) for f in FEATURES) for r in table]
    return ("\n".join([header, *lines]) + "\n").encode()


content_types = st.sampled_from(
    ["text/csv", "application/json", "text/plain", "application/xml", "", "image/png"]
)


@st.composite
def requests_(draw: Any, operations: list[tuple[str, str]]) -> dict[str, Any]:
    path, method = draw(st.sampled_from(operations))
    kind = draw(st.sampled_from(["none", "json", "csv", "raw", "multipart", "bad_json"]))
    kwargs: dict[str, Any] = {}
    if kind == "json":
        kwargs["data"] = json.dumps(draw(json_bodies))  # NaN/Infinity as JSON extensions
        kwargs["content_type"] = "application/json"
    elif kind == "csv":
        kwargs["data"] = _csv(draw(rows))
        kwargs["content_type"] = "text/csv"
    elif kind == "raw":
        kwargs["data"] = draw(st.binary(max_size=64))
        kwargs["content_type"] = draw(content_types)
    elif kind == "bad_json":
        kwargs["data"] = draw(st.sampled_from([b"{", b'{"data": [', b"\xff", b"[1,", b"nul"]))
        kwargs["content_type"] = "application/json"
    elif kind == "multipart":
        name = draw(st.sampled_from(["a.csv", "a.jsonl", "a.parquet", "a.pkl", "../a.csv", ""]))
        kwargs["data"] = {"file": (io.BytesIO(draw(st.binary(max_size=64))), name)}
        kwargs["content_type"] = "multipart/form-data"
    query = draw(
        st.dictionaries(
            st.sampled_from(["limit", "full", "dataset_path", "x"]),
            st.one_of(st.text(max_size=10), st.integers().map(str), paths),
            max_size=2,
        )
    )
    auth = draw(st.sampled_from([None, f"Bearer {TOKEN}", "Bearer wrong", "Basic eDp5", "Bearer"]))
    headers = {"Authorization": auth} if auth else {}
    return {"path": path, "method": method, "query": query, "headers": headers, **kwargs}


def _validate(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    documented = _response_schema(document, path, method, response.status_code)
    assert documented is not None, (
        f"{method.upper()} {path} answered undocumented {response.status_code}: "
        f"{response.get_data(as_text=True)[:300]}"
    )
    media, schema = documented
    assert response.mimetype == media, (method, path, response.status_code, response.mimetype)
    if media == "application/json":
        body = response.get_json()
        jsonschema.validate(body, {**schema, "components": document["components"]})


# /run with a valid token retrains and writes the report: covered in test_security.
SLOW = {("/run", "post")}


def _fuzz_app(settings: Settings) -> Any:
    fuzz_settings = dataclasses.replace(settings, api_token=TOKEN)
    return create_app(fuzz_settings, {"TESTING": True})


@pytest.mark.parametrize("state", ["deployed", "empty"])
def test_fuzz_every_operation(
    state: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    if state == "deployed":
        request.getfixturevalue("deployed")
    app = _fuzz_app(settings)
    client = app.test_client()
    document = _document(app)
    operations = [(p, m) for p, ops in document["paths"].items() for m in ops]
    examples = FUZZ_EXAMPLES if state == "deployed" else max(FUZZ_EXAMPLES // 4, 20)
    allowed_5xx = {503} if state == "empty" else set()  # 503: nothing deployed yet

    @hsettings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests_(operations))
    def check(req: dict[str, Any]) -> None:
        path, method = req.pop("path"), req.pop("method")
        if (path, method) in SLOW:
            req["headers"] = {}
        response = client.open(path, method=method.upper(), query_string=req.pop("query"), **req)
        assert response.status_code < 500 or response.status_code in allowed_5xx, (
            method,
            path,
            response.status_code,
            response.get_data(as_text=True)[:300],
        )
        _validate(document, path, method, response)

    check()
