"""Hostile input, authentication of the admin endpoints, safe methods, model artifacts
and the debug server. The error table extends the one in test_api.py (no duplicates)."""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any

import pytest
from sqlalchemy import update

from app import create_app
from monitoring.config import PROJECT_ROOT, Settings
from monitoring.exceptions import ConfigError, IntegrityError, NotFoundError
from monitoring.model.deployment import load_deployed
from monitoring.storage.schema import live_model, model_versions
from monitoring.storage.store import Store
from tests.helpers import AUTH, TOKEN, client_with, error_body

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
    ],
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
    error_body(
        api.post("/drift", data=HEADER + b"1" + b"0" * 400 + b",1,2\n", content_type="text/csv"),
        422,
        "column 'lastmonth_activity' has an integer beyond the float range",
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
    for path in ("/health", "/openapi.json", "/docs"):
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
