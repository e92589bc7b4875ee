"""Hostile input, authentication of the admin endpoints, safe methods, model artifacts
and the debug server. The error table extends the one in test_api.py (no duplicates)."""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gunicorn.http.errors import InvalidChunkSize
from sqlalchemy import update

from app import create_app
from monitoring.config import PROJECT_ROOT, Settings
from monitoring.data.ingestion import ingest
from monitoring.exceptions import ConfigError, IntegrityError, NotFoundError
from monitoring.model.deployment import deploy, load_deployed, rollback
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.readmodels import LIVE_POLL_SECONDS
from monitoring.storage.files import sha256_bytes
from monitoring.storage.schema import live_model, model_versions
from monitoring.storage.store import Store
from tests.helpers import (
    AUTH,
    TOKEN,
    client_with,
    error_body,
    fake_clock,
    metric_samples,
    metric_value,
)

ROW = {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}
HEADER = b"lastmonth_activity,lastyear_activity,number_of_employees\n"


def _json(raw: bytes) -> dict[str, Any]:
    return {"data": raw, "content_type": "application/json"}


def _csv(rows: bytes) -> dict[str, Any]:
    return {"data": HEADER + rows, "content_type": "text/csv"}


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        # wrong content type
        (
            {"data": b"a=1", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported content type 'application/x-www-form-urlencoded'",
        ),
        (
            {"data": b"<p>", "content_type": "text/html"},
            415,
            "unsupported content type 'text/html'",
        ),
        # malformed JSON / CSV / uploads
        (_json(b'{"data": ['), 400, "request body is not valid JSON"),
        (_json(b"\xff\xfe"), 400, "request body is not valid JSON"),
        (
            {"data": b"\xff\xfe\x00garbage", "content_type": "text/csv"},
            400,
            "request body: is not valid CSV: 'utf-8' codec can't decode byte 0xff",
        ),
        (
            {"data": b'"unterminated\n1,2', "content_type": "text/csv"},
            400,
            "request body: is not valid CSV: Error tokenizing data",
        ),
        (
            {
                "data": {"file": (io.BytesIO(b"\x00\x01junk"), "x.parquet")},
                "content_type": "multipart/form-data",
            },
            400,
            "x.parquet: is not a valid Parquet file",
        ),
        (
            {
                "data": {"file": (io.BytesIO(b"{not json"), "x.jsonl")},
                "content_type": "multipart/form-data",
            },
            400,
            "x.jsonl: is not valid JSON lines",
        ),
        # renamed columns
        (
            {"data": b"lastmonth,lastyear,employees\n1,2,3\n", "content_type": "text/csv"},
            422,
            "request body: missing column(s) 'lastmonth_activity', 'lastyear_activity', "
            "'number_of_employees'",
        ),
        (
            {"json": {"data": [{**ROW, "LastMonth_Activity": 1, "lastmonth_activity": None}]}},
            422,
            "column 'lastmonth_activity' has a missing value at row 0",
        ),
        (
            {"json": {"data": [{"LastMonth_Activity": 1, "lastyear_activity": 2, "x": 3}]}},
            422,
            "request body: missing column(s) 'lastmonth_activity', 'number_of_employees'",
        ),
        # shapes
        ({"json": {"data": [[1, 2, 3]]}}, 422, "request body: row 0 must be an object"),
        ({"json": {"data": None}}, 422, "'data' must be a list of row objects"),
        (
            {"json": {"data": {"lastmonth_activity": [1, 2], "lastyear_activity": [1]}}},
            422,
            "the column lists in 'data' differ in length: [1, 2]",
        ),
        # strings, NaN, inf, huge numbers
        (
            _json(
                b'{"data": [{"lastmonth_activity": "Infinity", "lastyear_activity": 1, '
                b'"number_of_employees": 1}]}'
            ),
            422,
            "column 'lastmonth_activity' must be a number; row 0 has 'Infinity'",
        ),
        (
            _json(
                b'{"data": [{"lastmonth_activity": -Infinity, "lastyear_activity": 1, '
                b'"number_of_employees": 1}]}'
            ),
            422,
            "column 'lastmonth_activity' must be finite; row 0 has -inf",
        ),
        (
            _json(
                b'{"data": [{"lastmonth_activity": 1' + b"0" * 400 + b', "lastyear_activity":'
                b' 1, "number_of_employees": 1}]}'
            ),
            422,
            "column 'lastmonth_activity' must be finite; row 0 has an integer of 401 digits, "
            "beyond the float range",
        ),
        (
            _json(
                b'[{"lastmonth_activity": -1' + b"0" * 400 + b', "lastyear_activity":'
                b' 1, "number_of_employees": 1}]'
            ),
            422,
            "must be finite; row 0 has an integer of 401 digits",
        ),
        (  # more digits than Python's int parser allows: not JSON we accept
            _json(b'{"data": [{"lastmonth_activity": 1' + b"0" * 5000 + b"}]}"),
            400,
            "request body is not valid JSON",
        ),
        (_csv(b"nan,1,2\n"), 422, "request body: column 'lastmonth_activity' has a missing value"),
        (_csv(b"1,inf,2\n"), 422, "column 'lastyear_activity' has an infinite value at row 0"),
        (_csv(b"1,2,1e309\n"), 422, "column 'number_of_employees' has an infinite value at row 0"),
        (
            _csv(b"1" + b"0" * 400 + b",1,2\n"),
            422,
            "column 'lastmonth_activity' has an infinite value at row 0",
        ),
        (_csv(b"1,2,ten\n"), 422, "column 'number_of_employees' must be numeric; row 0 has 'ten'"),
        # path traversal and files that are not data
        (
            {"json": {"dataset_path": "data/testdata/../../../../etc/passwd"}},
            403,
            "is outside the data folders",
        ),
        ({"json": {"dataset_path": "~/.ssh/id_rsa"}}, 403, "is outside the data folders"),
        ({"json": {"dataset_path": "file:///etc/passwd"}}, 403, "is outside the data folders"),
        ({"json": {"dataset_path": "data\\..\\..\\config.json"}}, 403, "outside the data folders"),
        ({"json": {"dataset_path": "config.json"}}, 403, "is outside the data folders"),
        (
            {"json": {"dataset_path": "models/production_deployment/trainedmodel.pkl"}},
            403,
            "is outside the data folders",
        ),
        ({"json": {"filepath": "x.csv\u0000.csv"}}, 400, "dataset_path must be a non-empty string"),
        ({"json": {"dataset_path": ["a.csv"]}}, 400, "dataset_path must be a non-empty string"),
        (
            {"json": {"dataset_path": "data/ingesteddata/ingestedfiles.txt"}},
            422,
            "dataset_path 'data/ingesteddata/ingestedfiles.txt' is not a data file",
        ),
        (
            {"json": {"dataset_path": "data/ingesteddata/finaldata.profile.json"}},
            422,
            "finaldata.profile.json: cannot be parsed as json",
        ),
    ],
    ids=[
        "form-urlencoded",
        "text-html",
        "json-truncated",
        "json-not-utf8",
        "csv-not-utf8",
        "csv-unterminated-quote",
        "parquet-junk",
        "jsonl-junk",
        "csv-renamed-columns",
        "json-case-variant-column",
        "json-case-variant-only",
        "json-row-is-a-list",
        "json-data-null",
        "json-columns-differ-in-length",
        "json-infinity-string",
        "json-minus-infinity",
        "json-400-digit-integer",
        "json-list-negative-400-digit-integer",
        "json-5000-digit-integer",
        "csv-nan",
        "csv-inf",
        "csv-1e309",
        "csv-400-digit-integer",
        "csv-text",
        "path-dotdot",
        "path-home",
        "path-file-url",
        "path-backslashes",
        "path-config",
        "path-model-pickle",
        "path-nul-byte",
        "path-list",
        "path-not-a-data-file",
        "path-json-not-rows",
    ],
)
def test_hostile_prediction_input(
    api: Any, kwargs: dict[str, Any], status: int, message: str
) -> None:
    error_body(api.post("/prediction", **kwargs), status, message)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/prediction?dataset_path=%2e%2e/%2e%2e/etc/passwd", 403, "'../../etc/passwd' is outside"),
        ("/prediction?filepath=/etc/passwd", 403, "'/etc/passwd' is outside the data folders"),
        ("/drift?dataset_path=/etc/shadow", 403, "'/etc/shadow' is outside the data folders"),
        (
            "/prediction?dataset_path=" + "a" * 5000,
            400,
            "dataset_path is 5000 characters long; the limit is 1024",
        ),
    ],
    ids=["encoded-dotdot", "filepath-absolute", "drift-absolute", "path-5000-characters"],
)
def test_hostile_query_paths(api: Any, url: str, status: int, message: str) -> None:
    error_body(api.post(url), status, message)


def test_huge_but_finite_numbers_are_served(api: Any) -> None:
    row = {**ROW, "lastmonth_activity": 1e308, "number_of_employees": -(10**19)}
    body = api.post("/prediction", json={"data": [row]}).get_json()
    assert body["predictions"] in ([0], [1])
    drift = api.post(
        "/drift", data=HEADER + b"1e308,-1e308,1.7e308\n1,2,3\n", content_type="text/csv"
    )
    assert drift.status_code == 200 and drift.get_json()["n_columns"] == 3
    error_body(  # as for /prediction
        api.post("/drift", data=HEADER + b"1" + b"0" * 400 + b",1,2\n", content_type="text/csv"),
        422,
        "request body: column 'lastmonth_activity' has an infinite value at row 0",
    )


def test_a_symlinked_folder_out_of_the_data_folders_is_refused(
    api: Any, settings: Settings, tmp_path_factory: Any
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_text(settings.test_data_file.read_text())
    os.symlink(outside, settings.input_folder_path / "escape")
    error_body(
        api.post("/prediction", json={"dataset_path": "data/practicedata/escape/secret.csv"}),
        403,
        "is outside the data folders",
    )
    # an absolute path that resolves inside a data folder is fine
    inside = api.post("/prediction", json={"dataset_path": str(settings.test_data_file)})
    assert inside.status_code == 200


def test_a_million_rows_over_the_size_limit_is_413(api: Any, settings: Settings) -> None:
    body = HEADER + b"1234567,1234567,12345678\n" * 1_000_000
    assert len(body) > settings.api.max_content_length
    error_body(
        api.post("/prediction", data=body, content_type="text/csv"),
        413,
        f"request body is larger than the limit of {settings.api.max_content_length} bytes",
    )


def test_a_million_rows_under_the_size_limit_hit_the_row_limit(api: Any) -> None:
    body = HEADER + b"1,2,3\n" * 1_000_000
    error_body(
        api.post("/prediction", data=body, content_type="text/csv"),
        413,
        "request has 1000000 rows; the limit is 100000",
    )


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/prediction", {"POST"}),
        ("delete", "/versions", {"GET"}),
        ("patch", "/health", {"GET"}),
        ("get", "/rollback", {"POST"}),
        ("get", "/run", {"POST"}),
        ("get", "/deploy", {"POST"}),
        ("delete", "/drift", {"GET", "POST"}),
        ("post", "/openapi.json", {"GET"}),
    ],
    ids=[
        "put-prediction",
        "delete-versions",
        "patch-health",
        "get-rollback",
        "get-run",
        "get-deploy",
        "delete-drift",
        "post-openapi",
    ],
)
def test_wrong_methods_are_405_with_allow(
    api: Any, method: str, path: str, allow: set[str]
) -> None:
    response = getattr(api, method)(path)
    error_body(response, 405, f"method {method.upper()} is not allowed here")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allow <= allowed and allowed <= allow | {"HEAD", "OPTIONS"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "query parameter 'limit' must be between 1 and 1000"),
        ("limit=-1", "query parameter 'limit' must be between 1 and 1000"),
        ("limit=1" + "0" * 400, "query parameter 'limit' must be between 1 and 1000"),
        ("limit=1.5", "query parameter 'limit' must be an integer, got '1.5'"),
        ("limit=%00", "query parameter 'limit' must be an integer"),
    ],
    ids=[
        "zero",
        "negative",
        "401-digits",
        "fraction",
        "nul-byte",
    ],
)
def test_bad_query_parameters(api: Any, query: str, message: str) -> None:
    error_body(api.get(f"/runs?{query}"), 422, message)
    error_body(api.get(f"/drift/history?{query}"), 422, message)


# -- admin endpoints and tokens ---------------------------------------------------


ADMIN = ["/ingest", "/retrain", "/deploy", "/rollback", "/run"]


BAD_AUTH = [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"{TOKEN}"]


def test_admin_is_disabled_without_a_configured_token(
    deployed: dict[str, Any], settings: Settings
) -> None:
    client = client_with(settings, token=None)
    for path in ADMIN:
        error_body(
            client.post(path, headers=AUTH),
            403,
            "admin endpoints are disabled: set MONITORING_API_TOKEN",
        )


def test_admin_needs_the_right_bearer_token(deployed: dict[str, Any], settings: Settings) -> None:
    client = client_with(settings)
    before = _state(settings)
    for path in ADMIN:
        for header in BAD_AUTH:
            headers = {"Authorization": header} if header else {}
            response = client.post(path, headers=headers, json={"force": True})
            body = error_body(response, 401, "admin endpoints need 'Authorization: Bearer <token>'")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in json.dumps(body)
    assert _state(settings) == before


def _state(settings: Settings) -> dict[str, Any]:
    files = [settings.prod_deployment_path / "trainedmodel.pkl", settings.finaldata_file]
    files += sorted(settings.output_model_path.glob("trainedmodel*"))
    store = Store(settings.database_url)
    state: dict[str, Any] = {str(p): p.read_bytes() for p in files if p.is_file()}
    return {
        **state,
        "live": store.live_version(),
        "versions": store.newest_model(),
        "deployments": store.deployments(),
    }


def test_admin_operations_with_the_token(
    deployed: dict[str, Any], make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(input_folder_path="data/sourcedata")
    client = client_with(settings)
    first = deployed["model_version"]

    ingested = client.post("/ingest", headers=AUTH)
    assert ingested.status_code == 200 and ingested.get_json()["rows_kept"] > 0
    retrained = client.post("/retrain", headers=AUTH).get_json()
    second = retrained["model_version"]
    assert second != first and 0 <= retrained["score"]["f1"] <= 1
    deployed_now = client.post("/deploy", headers=AUTH).get_json()
    assert (deployed_now["model_version"], deployed_now["previous_version"]) == (second, first)
    assert client.get("/health").get_json()["model_version"] == second

    error_body(
        client.post("/rollback", headers=AUTH, json={"version": "20000101T000000Z-nothing"}),
        404,
        "model version '20000101T000000Z-nothing' is not deployed",
    )
    error_body(
        client.post("/rollback", headers=AUTH, json={"version": "../../etc"}),
        404,
        f"model version '../../etc' is not deployed; known: {[first, second]}",
    )
    error_body(
        client.post("/rollback", headers=AUTH, json={"version": 3}),
        400,
        "field 'version' must be str",
    )
    error_body(
        client.post("/rollback", headers=AUTH, json={"to": first}), 400, "unknown field(s) ['to']"
    )
    error_body(client.post("/rollback", headers=AUTH, json=[first]), 400, "must be a JSON object")
    error_body(
        client.post("/rollback", headers=AUTH, data=b"version=x", content_type="text/plain"),
        415,
        "unsupported content type 'text/plain'",
    )
    back = client.post("/rollback", headers=AUTH, json={"version": first}).get_json()
    assert (back["model_version"], back["previous_version"]) == (first, second)
    assert client.get("/health").get_json()["model_version"] == first
    error_body(client.post("/rollback", headers=AUTH), 404, "no version older than")

    run = client.post("/run", headers=AUTH, json={"force": False})
    assert run.status_code == 200, run.get_json()
    assert run.get_json()["status"] == "completed"
    error_body(
        client.post("/run", headers=AUTH, json={"force": "yes"}), 400, "field 'force' must be bool"
    )
    assert TOKEN not in caplog.text


def test_reads_can_require_the_token(deployed: dict[str, Any], settings: Settings) -> None:
    client = client_with(settings, require_token_for_reads=True)
    for path in ("/scoring", "/versions", "/runs", "/summarystats"):
        error_body(client.get(path), 401, "this service needs 'Authorization: Bearer <token>'")
        assert client.get(path, headers=AUTH).status_code == 200
    error_body(client.post("/prediction", json={"data": [ROW]}), 401, "needs 'Authorization")
    for path in ("/health", "/openapi.json", "/docs", "/docs/reference") + (
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
    ):
        assert client.get(path).status_code == 200
    closed = client_with(settings, token=None, require_token_for_reads=True)
    error_body(closed.get("/scoring"), 403, "reads require a token")


def test_open_reads_by_default(deployed: dict[str, Any], settings: Settings) -> None:
    assert client_with(settings).get("/scoring").status_code == 200


def test_unauthenticated_admin_only_when_allowed(
    deployed: dict[str, Any], settings: Settings
) -> None:
    client = client_with(settings, token=None, allow_unauthenticated_admin=True)
    assert client.post("/ingest").status_code == 200


def test_api_config_keys_are_checked(make_settings: Any, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="config key 'api.require_token_for_reads' must be bool"):
        make_settings(api={"require_token_for_reads": "yes"})
    with pytest.raises(ConfigError, match="unknown config key 'api.token'"):
        make_settings(api={"token": "x"})
    assert settings.api.allow_unauthenticated_admin is False
    assert "api_token" not in repr(settings) or TOKEN not in repr(settings)


def test_options_and_head_change_nothing_and_need_no_token(
    deployed: dict[str, Any], settings: Settings
) -> None:
    client = client_with(settings)
    before = _state(settings)
    for path in ADMIN:
        response = client.options(path)
        assert response.status_code == 200 and "POST" in response.headers["Allow"]
        assert client.head(path).status_code == 405
    assert _state(settings) == before


def test_a_tampered_model_is_never_loaded(deployed: dict[str, Any], settings: Settings) -> None:
    store = Store(settings.database_url)
    version = deployed["model_version"]
    assert load_deployed(store).version == version
    row = store.model_version(version)
    assert row is not None
    with store.engine.begin() as conn:  # the bytes changed in the store, not their checksum
        conn.execute(
            update(model_versions)
            .where(model_versions.c.version == version)
            .values(artifact=row["artifact"] + b"\x00")
        )
    with pytest.raises(IntegrityError, match="does not match its recorded checksum"):
        load_deployed(store)
    client = client_with(settings)
    error_body(
        client.post("/prediction", json={"data": [ROW]}),
        503,
        f"the live model (version {version}) is not served: model artifact failed its "
        "checksum; see the server log",
    )
    error_body(client.get("/scoring"), 503, "model artifact failed its checksum")
    body = client.get("/health").get_json()
    assert (body["status"], body["model_version"]) == ("unavailable", None)
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["model"] == {
        "status": "unavailable",
        "reason": "model artifact failed its checksum",
    }


def test_a_live_pointer_naming_an_unknown_version_is_a_clear_503(
    deployed: dict[str, Any], settings: Settings
) -> None:
    store = Store(settings.database_url)
    with store.engine.begin() as conn:
        conn.execute(update(live_model).values(version="../../../tmp/evil"))
    with pytest.raises(NotFoundError, match="'../../../tmp/evil' is not in the record store"):
        load_deployed(store)
    error_body(
        client_with(settings).post("/prediction", json={"data": [ROW]}),
        503,
        "the live model is version '../../../tmp/evil', which is not in the record store",
    )


# -- no debug server, bounded requests --------------------------------------------


def test_the_debug_server_is_never_exposed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")  # only `flask run` reads it; we never use it
    assert create_app(settings).debug is False
    procfile = (PROJECT_ROOT / "Procfile").read_text()
    assert "gunicorn" in procfile and "flask run" not in procfile
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "exec gunicorn" in dockerfile and "flask run" not in dockerfile


def test_gunicorn_bounds_requests() -> None:
    namespace: dict[str, Any] = {}
    exec((PROJECT_ROOT / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102
    assert 0 < namespace["timeout"] <= 120
    assert namespace["bind"].startswith("127.0.0.1:")  # loopback unless HOST is set
    assert namespace["limit_request_line"] <= 8190
    assert namespace["limit_request_field_size"] <= 8190


# -- wide, deep, mistyped and malformed bodies (checked before parsing or predicting) --

FEATURE_NAMES = list(ROW)


def _names(count: int) -> list[str]:
    return [*FEATURE_NAMES, *(f"c{i}" for i in range(count - len(FEATURE_NAMES)))]


def _wide_csv(count: int) -> bytes:
    return (",".join(_names(count)) + "\n" + ",".join(["1"] * count) + "\n").encode()


def _upload(name: str, data: bytes) -> dict[str, Any]:
    """A multipart upload; the bytes are wrapped in a fresh stream for each call."""
    return {"data": {"file": (data, name)}, "content_type": "multipart/form-data"}


def _parquet(**columns: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _parquet_features(**changed: Any) -> bytes:
    """A one-row Parquet file of the features, some columns replaced by Arrow arrays."""
    columns: dict[str, Any] = {name: [value] for name, value in ROW.items()}
    return _parquet(**{**columns, **changed})


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WIDE_ROW = {**ROW, **{f"c{i}": 1 for i in range(998)}}  # 1,001 columns
DUPLICATE_PARQUET = io.BytesIO()
pq.write_table(
    pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["lastmonth_activity"] * 2),
    DUPLICATE_PARQUET,
)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        pytest.param(
            {"data": _wide_csv(100_000), "content_type": "text/csv"},
            413,
            "request body: has 100000 columns; the limit is 1000 (api.max_columns)",
            id="csv-100000-columns",
        ),
        pytest.param(
            {"data": _wide_csv(1001), "content_type": "text/csv"},
            413,
            "request body: has 1001 columns; the limit is 1000 (api.max_columns)",
            id="csv-1001-columns",
        ),
        pytest.param(
            _upload("wide.csv", _wide_csv(1001)),
            413,
            "wide.csv: has 1001 columns; the limit is 1000",
            id="upload-csv-1001-columns",
        ),
        pytest.param(
            {"json": {"data": [WIDE_ROW]}},
            413,
            "request body: has 1001 columns; the limit is 1000",
            id="json-rows-1001-columns",
        ),
        pytest.param(
            {
                "json": {
                    "data": [
                        {**ROW, **{f"a{i}": 1 for i in range(600)}},
                        {**ROW, **{f"b{i}": 1 for i in range(600)}},
                    ]
                }
            },
            413,
            "request body: has 1203 columns; the limit is 1000",
            id="json-rows-columns-spread-over-rows",
        ),
        pytest.param(
            {"json": {"data": {name: [1] for name in _names(1001)}}},
            413,
            "request body: has 1001 columns; the limit is 1000",
            id="json-column-lists-1001-columns",
        ),
        pytest.param(
            _upload("wide.jsonl", json.dumps(WIDE_ROW).encode()),
            413,
            "wide.jsonl: has 1001 columns; the limit is 1000",
            id="jsonl-1001-columns",
        ),
        pytest.param(
            _upload("wide.parquet", _parquet(**{name: [1] for name in _names(1001)})),
            413,
            "wide.parquet: has 1001 columns; the limit is 1000",
            id="parquet-1001-columns",
        ),
        pytest.param(
            {
                "data": HEADER.rstrip() + b",lastmonth_activity\n1,2,3,4\n",
                "content_type": "text/csv",
            },
            422,
            "request body: duplicated column(s) 'lastmonth_activity'",
            id="csv-duplicate-column",
        ),
        pytest.param(
            _upload("x.parquet", DUPLICATE_PARQUET.getvalue()),
            422,
            "x.parquet: duplicated column(s) 'lastmonth_activity'",
            id="parquet-duplicate-column",
        ),
        pytest.param(
            _csv(b"1,2,3,4\n5,6,7,8\n"),
            400,
            "request body: is not valid CSV: row 0 has 4 fields; the header has 3",
            id="csv-rows-longer-than-the-header",
        ),
        pytest.param(
            _csv(b"true,1,2\n"),
            422,
            "request body: column 'lastmonth_activity' must be numeric; row 0 has True",
            id="csv-true",
        ),
        pytest.param(
            _csv(b"1,false,2\n"),
            422,
            "request body: column 'lastyear_activity' must be numeric; row 0 has False",
            id="csv-false",
        ),
        pytest.param(
            _csv(b"1,2,3\ntrue,1,2\n"),
            422,
            "request body: column 'lastmonth_activity' must be numeric; row 1 has 'true'",
            id="csv-true-among-numbers",
        ),
        pytest.param(
            _upload("x.parquet", _parquet_features(lastmonth_activity=pa.array([True]))),
            422,
            "x.parquet: column 'lastmonth_activity' must be numeric; row 0 has True",
            id="parquet-bool",
        ),
        pytest.param(
            _upload(
                "x.parquet",
                _parquet_features(lastmonth_activity=pa.array([0], pa.timestamp("ms"))),
            ),
            422,
            "x.parquet: column 'lastmonth_activity' must be numeric; it holds datetime64[ms] "
            "values",
            id="parquet-timestamp",
        ),
        pytest.param(
            _upload(
                "x.parquet", _parquet_features(lastyear_activity=pa.array([5], pa.duration("s")))
            ),
            422,
            "x.parquet: column 'lastyear_activity' must be numeric; it holds timedelta64[s] values",
            id="parquet-duration",
        ),
        pytest.param(
            _upload("x.parquet", _parquet_features(lastmonth_activity=pa.array([b"12"]))),
            422,
            "x.parquet: column 'lastmonth_activity' holds binary data (binary); columns must "
            "hold numbers or text",
            id="parquet-binary-feature",
        ),
        pytest.param(
            _upload("x.parquet", _parquet_features(blob=pa.array([b"\x00\xff"]))),
            422,
            "x.parquet: column 'blob' holds binary data (binary)",
            id="parquet-binary-extra-column",
        ),
        pytest.param(
            _upload("x.parquet", _parquet_features(tags=pa.array([[1, 2]]))),
            422,
            "x.parquet: column 'tags' holds nested values (list<element: int64>)",
            id="parquet-list-column",
        ),
        pytest.param(
            {"json": {"data": [{**ROW, "note": {"a": [1]}}]}},
            422,
            "request body: column 'note' must hold a number, a string or null; row 0 has "
            "{'a': [1]}",
            id="json-nested-extra-value",
        ),
        pytest.param(
            _upload("x.jsonl", json.dumps({**ROW, "lastmonth_activity": "3"}).encode()),
            422,
            "x.jsonl: column 'lastmonth_activity' must be a number; row 0 has '3'",
            id="jsonl-string-number",
        ),
        pytest.param(
            _upload("x.jsonl", json.dumps({**ROW, "lastyear_activity": True}).encode()),
            422,
            "x.jsonl: column 'lastyear_activity' must be a number; row 0 has True",
            id="jsonl-true",
        ),
        pytest.param(
            _json(_deep(100_000)),
            400,
            "request body: JSON nested too deeply",
            id="json-nested-100000-deep",
        ),
        pytest.param(
            _json(b'{"data": [{"lastmonth_activity": ' + _deep(5000) + b"}]}"),
            400,
            "request body: JSON nested too deeply",
            id="json-value-nested-5000-deep",
        ),
        pytest.param(
            _upload("x.jsonl", json.dumps(ROW).encode() + b"\n" + _deep(100_000)),
            400,
            "x.jsonl line 2: JSON nested too deeply",
            id="jsonl-nested-too-deep",
        ),
        pytest.param(
            _json(
                b'{"data": [{"lastmonth_activity": "\\ud800", "lastyear_activity": 1, '
                b'"number_of_employees": 1}]}'
            ),
            400,
            "request body: the string at /data/0/lastmonth_activity is not valid Unicode (a "
            "lone surrogate escape such as \\ud800); send UTF-8 text",
            id="json-lone-surrogate-feature",
        ),
        pytest.param(
            _json(
                b'[{"lastmonth_activity": 1, "lastyear_activity": 1, "number_of_employees": 1},'
                b' {"lastmonth_activity": 1, "lastyear_activity": 1, "number_of_employees": 1,'
                b' "corporation": "ab\\uDFFFc"}]'
            ),
            400,
            "request body: the string at /1/corporation is not valid Unicode",
            id="json-lone-surrogate-id-column",
        ),
        pytest.param(
            _json(b'{"data": [{"\\ud800x": 1}]}'),
            400,
            "request body: the key \\ud800x in /data/0 is not valid Unicode",
            id="json-lone-surrogate-key",
        ),
        pytest.param(
            _json(b'{"dataset_path": "\\udbff.csv"}'),
            400,
            "request body: the string at /dataset_path is not valid Unicode",
            id="json-lone-surrogate-path",
        ),
        pytest.param(
            _upload("x.jsonl", json.dumps(ROW).encode() + b'\n{"corporation": "\\ud800"}'),
            400,
            "x.jsonl line 2: the string at /corporation is not valid Unicode",
            id="jsonl-lone-surrogate",
        ),
        pytest.param(
            {"json": {"dataset_path": "a" * 5000}},
            400,
            "dataset_path is 5000 characters long; the limit is 1024",
            id="path-5000-characters",
        ),
        pytest.param(
            {"json": {"dataset_path": "data/testdata/" + "a" * 300 + ".csv"}},
            404,
            "dataset_path 'data/testdata/aaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaaaaaaaa.csv' "
            "does not exist in the data folders",
            id="path-name-too-long-for-the-file-system",
        ),
        pytest.param(
            _upload("a" * 500 + ".pkl", b"x"),
            415,
            "a" * 60 + "..." + "a" * 13 + ".pkl: unsupported file type '.pkl'",
            id="upload-500-character-file-name",
        ),
    ],
)
def test_hostile_bodies(api: Any, kwargs: dict[str, Any], status: int, message: str) -> None:
    data = kwargs.get("data")
    if isinstance(data, dict) and isinstance(data.get("file"), tuple):
        content, name = data["file"]
        kwargs = {**kwargs, "data": {"file": (io.BytesIO(content), name)}}
    body = error_body(api.post("/prediction", **kwargs), status, message)
    assert len(body["message"]) <= 300  # a client's value is echoed cut short


@pytest.mark.parametrize(
    "path", ["/prediction", "/drift", "/feedback", "/ingest", "/rollback", "/run"]
)
def test_json_nested_100000_deep_is_a_400_everywhere(
    deployed: dict[str, Any], settings: Settings, path: str
) -> None:
    client = client_with(settings)
    before = _state(settings)
    response = client.post(path, data=_deep(100_000), content_type="application/json", headers=AUTH)
    error_body(response, 400, "request body: JSON nested too deeply")
    assert _state(settings) == before


def test_a_lone_surrogate_request_id_in_feedback_is_a_400(api: Any) -> None:
    error_body(
        api.post(
            "/feedback",
            data=b'{"request_id": "\\ud800", "labels": [1]}',
            content_type="application/json",
            headers=AUTH,
        ),
        400,
        "request body: the string at /request_id is not valid Unicode",
    )


def test_a_surrogate_pair_is_text_and_served(api: Any) -> None:
    body = (
        b'{"data": [{"lastmonth_activity": 1, "lastyear_activity": 2, '
        b'"number_of_employees": 3, "corporation": "\\ud83d\\ude00 inc"}]}'
    )
    response = api.post("/prediction", data=body, content_type="application/json")
    assert response.status_code == 200 and response.get_json()["n_rows"] == 1


def _predicted_rows(client: Any) -> float:
    samples = metric_samples(client.get("/metrics").get_data(as_text=True))
    return sum(v for (name, _), v in samples.items() if name == "monitoring_predictions_total")


def test_a_refused_upload_is_neither_predicted_nor_counted(api: Any) -> None:
    before = _predicted_rows(api)
    api.post("/prediction", json={"data": [ROW, ROW]})
    assert _predicted_rows(api) == before + 2  # the counter counts predicted rows
    before += 2
    for blob in (b"\x00\xff", b"\x01"):
        upload = _parquet_features(corporation=pa.array([blob]))
        error_body(
            api.post(
                "/prediction",
                data={"file": (io.BytesIO(upload), "x.parquet")},
                content_type="multipart/form-data",
            ),
            422,
            "x.parquet: column 'corporation' holds binary data",
        )
    assert _predicted_rows(api) == before


class _BrokenChunks:
    """A WSGI input as gunicorn's chunked reader is when the chunk size is ``zz``."""

    def read(self, *args: Any) -> bytes:
        raise InvalidChunkSize(b"zz")

    readline = read


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {"wsgi.input": _BrokenChunks(), "wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
            "request body could not be read: Invalid chunk size: b'zz'",
            id="chunk-size-zz",
        ),
        pytest.param(
            {"wsgi.input": io.BytesIO(b"lastmonth_activity"), "CONTENT_LENGTH": "1000"},
            "request body ended before its Content-Length (1000 bytes)",
            id="body-shorter-than-content-length",
        ),
    ],
)
def test_an_unreadable_body_is_a_400(api: Any, environ: dict[str, Any], message: str) -> None:
    response = api.post("/prediction", content_type="text/csv", environ_overrides=environ)
    error_body(response, 400, message)


def test_rollback_to_a_5000_character_version_is_refused_unread(
    deployed: dict[str, Any], settings: Settings
) -> None:
    client = client_with(settings)
    before = _state(settings)
    error_body(
        client.post("/rollback", headers=AUTH, json={"version": "v" * 5000}),
        422,
        "field 'version' must be at most 64 characters, got 5000",
    )
    error_body(
        client.post("/rollback", headers=AUTH, json={"version": "v" * 65}),
        422,
        "field 'version' must be at most 64 characters, got 65",
    )
    assert _state(settings) == before


# -- corrupt state: a tampered model, a damaged database file -----------------------


def _tamper(store: Store, version: str, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(model_versions).where(model_versions.c.version == version).values(**values)
        )


def test_a_model_that_cannot_be_unpickled_is_a_503_naming_that(
    deployed: dict[str, Any], settings: Settings
) -> None:
    store = Store(settings.database_url)
    garbage = b"not a pickle"
    _tamper(store, deployed["model_version"], artifact=garbage, sha256=sha256_bytes(garbage))
    client = client_with(settings)
    error_body(
        client.post("/prediction", json={"data": [ROW]}),
        503,
        f"the live model (version {deployed['model_version']}) is not served: model artifact "
        "cannot be unpickled; see the server log",
    )
    assert client.get("/ready").get_json()["checks"]["model"] == {
        "status": "unavailable",
        "reason": "model artifact cannot be unpickled",
    }


def test_a_tampered_new_version_leaves_the_previous_one_serving(
    deployed: dict[str, Any],
    make_settings: Any,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = client_with(settings)
    clock = fake_clock(client)
    old = deployed["model_version"]
    assert client.post("/prediction", json={"data": [ROW]}).get_json()["model_version"] == old
    refused_before = _refused(client)
    source = make_settings(input_folder_path="data/sourcedata")
    store = Store(source.database_url)
    ingest(source, store=store)
    new = train(source, store=store)["version"]
    score(source, store=store)
    deploy(source, store=store)  # by another process; then its bytes rot in the store
    row = store.model_version(new)
    assert row is not None
    _tamper(store, new, artifact=row["artifact"][:-1])
    clock.now += LIVE_POLL_SECONDS
    for _ in range(3):  # refused once, logged once, counted once
        answer = client.post("/prediction", json={"data": [ROW]})
        assert answer.status_code == 200 and answer.get_json()["model_version"] == old
        clock.now += LIVE_POLL_SECONDS
    assert client.get("/health").get_json()["model_version"] == old
    ready = client.get("/ready")
    assert ready.status_code == 200  # still serving: a load balancer keeps it
    assert ready.get_json()["checks"]["model"] == {
        "status": "fallback",
        "version": old,
        "reason": f"live version {new}: model artifact failed its checksum; serving {old}",
    }
    assert _refused(client) == refused_before + 1
    errors = [r.getMessage() for r in caplog.records if r.name == "monitoring.readmodels"]
    assert len(errors) == 1 and errors[0].endswith(f"serving version {old} instead")
    # a good version made live again ends the fallback
    rollback(source, to_version=old, store=store)
    clock.now += LIVE_POLL_SECONDS
    assert client.get("/ready").get_json()["checks"]["model"] == {"status": "ok", "version": old}


def _refused(client: Any) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return metric_value(text, "monitoring_live_model_refused_total")


def test_a_damaged_database_file_is_not_ready_and_reads_are_503(
    api: Any, settings: Settings
) -> None:
    clock = fake_clock(api)
    version = api.post("/prediction", json={"data": [ROW]}).get_json()["model_version"]
    store = Store(settings.database_url)
    assert store.file is not None
    # Overwritten in place, never truncated: SQLite maps its -shm file, and a worker's
    # capture thread may be committing (a truncated mapping is a SIGBUS, not damage).
    for path in [store.file, *store.file.parent.glob(f"{store.file.name}-*")]:
        with open(path, "r+b") as handle:
            handle.write(b"garbage!" * (path.stat().st_size // 8 + 1))
    clock.now += LIVE_POLL_SECONDS
    ready = api.get("/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {
        "model": {"status": "ok", "version": version},  # loaded before: still served
        "store": {"status": "corrupt"},
    }
    for path in ("/scoring", "/versions", "/runs", "/summarystats", "/drift/history"):
        error_body(api.get(path), 503, "the record store's database is damaged")
    served = api.post("/prediction", json={"data": [ROW]})
    assert served.status_code == 200 and served.get_json()["model_version"] == version
    assert api.get("/health").get_json()["status"] == "ok"  # liveness is not readiness


# -- no absolute server path in any answer -------------------------------------------


def test_no_answer_names_an_absolute_server_path(
    deployed: dict[str, Any], make_settings: Any, tmp_path_factory: Any
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "incoming"  # outside the project
    outside.mkdir()
    settings = make_settings(input_folder_path=str(outside))
    client = client_with(settings)
    answers = [client.get(path) for path in ("/health", "/ready", "/versions", "/scoring")]
    answers += [client.get(path) for path in ("/diagnostics", "/summarystats", "/runs")]
    outside_path = client.post("/prediction", json={"dataset_path": "/etc/passwd"})
    error_body(outside_path, 403, "one of ['incoming', 'data/ingesteddata', 'data/testdata']")
    answers.append(outside_path)
    # an empty input folder; then a file that is not rows; then one that ingests
    answers.append(error_body(client.post("/ingest", headers=AUTH), 503, "input folder incoming "))
    (outside / "broken.parquet").write_bytes(b"PAR1 not really")
    answers.append(error_body(client.post("/ingest", headers=AUTH), 422, "no file in incoming "))
    (outside / "broken.parquet").unlink()
    (outside / "more.csv").write_text(settings.test_data_file.read_text())
    ingested = client.post("/ingest", headers=AUTH)
    assert [f["source_path"] for f in ingested.get_json()["files"]] == ["more.csv"]
    answers.append(ingested)
    answers.append(client.post("/retrain", headers=AUTH))
    deployed_now = client.post("/deploy", headers=AUTH)
    assert deployed_now.status_code == 200
    answers.append(deployed_now)
    settings.test_data_file.unlink()
    answers.append(
        error_body(
            client.post("/retrain", headers=AUTH), 503, "test data data/testdata/testdata.csv"
        )
    )
    (settings.test_data_path / "bad.parquet").write_bytes(b"PAR1 junk")
    answers.append(
        error_body(
            client.post("/prediction", json={"dataset_path": "data/testdata/bad.parquet"}),
            422,
            "bad.parquet: cannot be parsed as parquet",
        )
    )
    for answer in answers:
        text = json.dumps(answer if isinstance(answer, dict) else answer.get_json())
        assert str(settings.root) not in text and str(outside) not in text, text
        assert "/tmp/" not in text and "/pytest-" not in text, text


def test_the_column_cap_is_the_configured_one_and_never_below_the_features(
    deployed: dict[str, Any], settings: Settings
) -> None:
    five = client_with(settings, max_columns=5)
    error_body(
        five.post("/prediction", data=_wide_csv(6), content_type="text/csv"),
        413,
        "request body: has 6 columns; the limit is 5 (api.max_columns)",
    )
    assert five.post("/prediction", data=_wide_csv(5), content_type="text/csv").status_code == 200
    one = client_with(settings, max_columns=1)  # below the model's 3 features: 3 it is
    assert one.post("/prediction", json={"data": [ROW]}).status_code == 200
    error_body(
        one.post("/prediction", json={"data": [{**ROW, "corporation": "x"}]}),
        413,
        "request body: has 4 columns; the limit is 3 (api.max_columns)",
    )


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        pytest.param(
            _csv(b"true,1,2\n"),
            422,
            "request body: column 'lastmonth_activity' must be numeric; row 0 has True",
            id="csv-true",
        ),
        pytest.param(
            _csv(b"1,2,ten\n"),
            422,
            "request body: column 'number_of_employees' must be numeric; row 0 has 'ten'",
            id="csv-text",
        ),
        pytest.param(
            _upload(
                "x.parquet",
                _parquet_features(lastmonth_activity=pa.array([0], pa.timestamp("ms"))),
            ),
            422,
            "x.parquet: column 'lastmonth_activity' must be numeric; it holds datetime64[ms] "
            "values",
            id="parquet-timestamp",
        ),
        pytest.param(
            {"data": _wide_csv(1001), "content_type": "text/csv"},
            413,
            "request body: has 1001 columns; the limit is 1000 (api.max_columns)",
            id="csv-1001-columns",
        ),
        pytest.param(
            _json(_deep(100_000)), 400, "request body: JSON nested too deeply", id="json-deep"
        ),
    ],
)
def test_drift_batches_follow_the_rules_of_prediction(
    api: Any, kwargs: dict[str, Any], status: int, message: str
) -> None:
    for path in ("/prediction", "/drift"):
        call = dict(kwargs)
        data = call.get("data")
        if isinstance(data, dict) and isinstance(data.get("file"), tuple):
            content, name = data["file"]
            call["data"] = {"file": (io.BytesIO(content), name)}
        body = error_body(api.post(path, **call), status, message)
        assert body["message"] == message or body["message"].startswith(message)
    assert api.get("/drift/history").get_json()["reports"] == []  # nothing recorded
