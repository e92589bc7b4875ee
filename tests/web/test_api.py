"""The REST API: responses, error contract, no side effects on GET."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from monitoring.config import Settings
from monitoring.pipeline import bootstrap
from monitoring.readmodels import LIVE_POLL_SECONDS
from monitoring.storage.store import Store
from tests.helpers import error_body, fake_clock

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]
TEST_CSV_PREDICTIONS = [0, 1, 1, 1, 1]


def test_prediction_on_a_dataset_path(api: Any, deployed: dict[str, Any]) -> None:
    response = api.post("/prediction", json={"dataset_path": "data/testdata/testdata.csv"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["predictions"] == TEST_CSV_PREDICTIONS
    assert body["n_rows"] == 5
    assert body["model_version"] == deployed["model_version"]
    assert len(body["probabilities"]) == 5


@pytest.mark.parametrize("key", ["dataset_path", "filepath", "data_file"])
def test_prediction_accepts_the_course_repos_keys(api: Any, key: str) -> None:
    response = api.post("/prediction", json={key: "testdata.csv"})
    assert response.get_json()["predictions"] == TEST_CSV_PREDICTIONS


def test_prediction_query_parameter(api: Any) -> None:
    response = api.post("/prediction?dataset_path=data/testdata/testdata.csv")
    assert response.get_json()["predictions"] == TEST_CSV_PREDICTIONS


def test_prediction_on_json_records_csv_and_upload(api: Any, settings: Settings) -> None:
    by_records = api.post("/prediction", json={"data": ROWS}).get_json()
    assert by_records["predictions"] == [0, 1]
    by_list = api.post("/prediction", json=ROWS).get_json()
    assert by_list["predictions"] == [0, 1]
    columns = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    assert api.post("/prediction", json={"data": columns}).get_json()["predictions"] == [0, 1]

    csv_bytes = settings.test_data_file.read_bytes()
    by_csv = api.post("/prediction", data=csv_bytes, content_type="text/csv").get_json()
    assert by_csv["predictions"] == TEST_CSV_PREDICTIONS
    upload = api.post(
        "/prediction",
        data={"file": (io.BytesIO(csv_bytes), "t.csv")},
        content_type="multipart/form-data",
    ).get_json()
    assert upload["predictions"] == TEST_CSV_PREDICTIONS


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({}, 400, "request has no data"),
        (
            {"data": "{oops", "content_type": "application/json"},
            400,
            "request body is not valid JSON",
        ),
        (
            {"json": {"nothing": 1}},
            400,
            "request body must have a 'data' list of rows or a 'dataset_path'; "
            "got keys ['nothing']",
        ),
        (
            {"json": {"data": ROWS, "dataset_path": "x.csv"}},
            400,
            "send either 'data' or 'dataset_path', not both",
        ),
        ({"json": {"dataset_path": ""}}, 400, "dataset_path must be a non-empty string"),
        ({"json": {"dataset_path": 5}}, 400, "dataset_path must be a non-empty string"),
        ({"json": "text"}, 400, "request body must be a JSON object"),
        ({"data": b"", "content_type": "text/csv"}, 400, "request body: is empty"),
        (
            {"data": b"a,b\n1,2\n3,4,5,6\n", "content_type": "text/csv"},
            400,
            "request body: is not valid CSV",
        ),
        (
            {"data": b"<xml/>", "content_type": "application/xml"},
            415,
            "unsupported content type 'application/xml'",
        ),
        ({"json": {"data": []}}, 422, "request body: 'data' contains no rows"),
        (
            {"json": {"data": [{"lastmonth_activity": 1, "lastyear_activity": 2}]}},
            422,
            "request body: missing column(s) 'number_of_employees'",
        ),
        (
            {"json": {"data": [{**ROWS[0], "lastyear_activity": "many"}]}},
            422,
            "request body: column 'lastyear_activity' must be a number; row 0 has 'many'",
        ),
        (
            {"json": {"data": [ROWS[0], {**ROWS[0], "number_of_employees": True}]}},
            422,
            "column 'number_of_employees' must be a number; row 1 has True",
        ),
        (
            {"json": {"data": [{**ROWS[0], "number_of_employees": None}]}},
            422,
            "request body: column 'number_of_employees' has a missing value at row 0",
        ),
        (
            {
                "data": b'{"data": [{"lastmonth_activity": NaN, "lastyear_activity": 1, '
                b'"number_of_employees": 1}]}',
                "content_type": "application/json",
            },
            422,
            "column 'lastmonth_activity' must be finite; row 0 has nan",
        ),
        (
            {
                "data": b'{"data": [{"lastmonth_activity": 1e999, "lastyear_activity": 1, '
                b'"number_of_employees": 1}]}',
                "content_type": "application/json",
            },
            422,
            "column 'lastmonth_activity' must be finite; row 0 has inf",
        ),
        (
            {
                "data": b"lastmonth_activity,lastyear_activity,number_of_employees\n1,x,3\n",
                "content_type": "text/csv",
            },
            422,
            "request body: column 'lastyear_activity' must be numeric; row 0 has 'x'",
        ),
        ({"json": {"dataset_path": "../../etc/passwd"}}, 403, "is outside the data folders"),
        ({"json": {"dataset_path": "/etc/passwd"}}, 403, "is outside the data folders"),
        (
            {"json": {"dataset_path": "data/testdata/../../config.json"}},
            403,
            "is outside the data folders",
        ),
        (
            {"json": {"dataset_path": "data/testdata/missing.csv"}},
            404,
            "dataset_path 'data/testdata/missing.csv' does not exist",
        ),
        (
            {
                "data": {"file": (b"x", "model.pkl")},  # bytes: a fresh upload per call
                "content_type": "multipart/form-data",
            },
            415,
            "model.pkl: unsupported file type '.pkl'",
        ),
        (
            {"data": {"other": "1"}, "content_type": "multipart/form-data"},
            400,
            "multipart request must carry the data in a 'file' field",
        ),
    ],
    ids=[
        "no-data",
        "json-invalid",
        "json-no-data-key",
        "json-data-and-path",
        "path-empty",
        "path-number",
        "json-string-body",
        "csv-empty",
        "csv-ragged",
        "xml",
        "json-no-rows",
        "json-missing-column",
        "json-string-value",
        "json-true",
        "json-null-value",
        "json-nan",
        "json-1e999",
        "csv-text-value",
        "path-dotdot",
        "path-absolute",
        "path-dotdot-inside",
        "path-missing",
        "upload-pkl",
        "multipart-no-file",
    ],
)
def test_prediction_bad_input(api: Any, kwargs: dict[str, Any], status: int, message: str) -> None:
    data = kwargs.get("data")
    if isinstance(data, dict) and isinstance(data.get("file"), tuple):
        content, name = data["file"]
        kwargs = {**kwargs, "data": {"file": (io.BytesIO(content), name)}}
    error_body(api.post("/prediction", **kwargs), status, message)


def test_a_symlink_out_of_the_data_folder_is_refused(
    api: Any, settings: Settings, tmp_path_factory: Any
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text(settings.test_data_file.read_text())
    os.symlink(outside, settings.test_data_path / "link.csv")
    error_body(
        api.post("/prediction", json={"dataset_path": "data/testdata/link.csv"}),
        403,
        "is outside the data folders",
    )


def test_too_many_rows_and_too_large_a_body(deployed: dict[str, Any], settings: Settings) -> None:
    from app import create_app

    client = create_app(
        settings, {"TESTING": True, "MAX_ROWS": 3, "MAX_CONTENT_LENGTH": 2000}
    ).test_client()
    error_body(
        client.post("/prediction", json={"data": ROWS * 2}),
        413,
        "request has 4 rows; the limit is 3",
    )
    error_body(
        client.post("/prediction", data=b"x" * 5000, content_type="text/csv"),
        413,
        "request body is larger than the limit of 2000 bytes",
    )


def test_wrong_methods_get_405_with_allow(api: Any) -> None:
    response = api.get("/prediction")
    error_body(response, 405, "method GET is not allowed here")
    assert "POST" in response.headers["Allow"]
    response = api.post("/scoring")
    error_body(response, 405, "method POST is not allowed here")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/prediction", "/scoring", "/diagnostics", "/drift"])
def test_options_lists_methods_as_json(api: Any, path: str) -> None:
    response = api.options(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"allow": sorted(response.headers["Allow"].split(", "))}


def test_unknown_route_is_a_json_404(api: Any) -> None:
    error_body(api.get("/nope"), 404, "not found")


def test_scoring_returns_the_deployed_score_without_side_effects(
    api: Any, settings: Settings, deployed: dict[str, Any]
) -> None:
    before = _snapshot(settings.root)
    body = api.get("/scoring").get_json()
    assert body["model_score"] == pytest.approx(4 / 7)
    assert body["f1"] == pytest.approx(4 / 7)
    assert body["model_version"] == deployed["model_version"]
    assert body["confusion_matrix"] == [[0, 2], [1, 2]]
    for method in ("get", "options", "head"):
        for path in ("/scoring", "/summarystats", "/diagnostics", "/drift", "/prediction"):
            getattr(api, method)(path)
    assert _snapshot(settings.root) == before


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file except the database (reads do not touch it)."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".db" not in p.name and "dependency" not in p.name
    }


def test_summarystats(api: Any) -> None:
    body = api.get("/summarystats").get_json()
    assert body["rows"] == 26
    stats = {row["column"]: row for row in body["summary"]}
    assert list(stats) == ["lastmonth_activity", "lastyear_activity", "number_of_employees"]
    assert stats["lastmonth_activity"]["mean"] == pytest.approx(165.6538461538)
    assert stats["lastmonth_activity"]["median"] == 73.0
    assert stats["lastmonth_activity"]["std"] == pytest.approx(284.033229, rel=1e-8)
    assert stats["number_of_employees"]["median"] == 14.0


def test_diagnostics(api: Any) -> None:
    body = api.get("/diagnostics").get_json()
    assert [m["missing_share"] for m in body["missing_data"]] == [0.0] * 5
    timing = body["execution_time"]
    assert timing["ingestion"]["runs"] == 1 and timing["training"]["runs"] == 1
    assert timing["ingestion"]["mean"] > 0
    packages = {p["package"]: p for p in body["dependencies"]["packages"]}
    assert packages["pandas"]["installed"] and packages["pandas"]["latest"] == "unknown"


def test_summarystats_and_missing_data_come_from_the_store(
    api: Any, settings: Settings, store: Any
) -> None:
    """Served from the latest profile in the store: the files are only exports."""
    from monitoring.data.ingestion import ingest

    header = "corporation,lastmonth_activity,lastyear_activity,number_of_employees,exited\n"
    (settings.input_folder_path / "gaps.csv").write_text(
        header + "gap1,,5,6,1\ngap2,,,7,0\ngap3,4,5,,1\n"  # (a missing target: rejected)
    )
    ingest(settings, store=store)
    settings.finaldata_file.unlink()
    settings.profile_file.unlink()
    summary = api.get("/summarystats").get_json()
    assert summary["rows"] == 29
    stats = {row["column"]: row for row in summary["summary"]}
    assert stats["lastmonth_activity"]["count"] == 27 and stats["lastyear_activity"]["count"] == 28
    missing = {m["column"]: m for m in api.get("/diagnostics").get_json()["missing_data"]}
    assert {c: m["missing_count"] for c, m in missing.items()} == {
        "corporation": 0,
        "lastmonth_activity": 2,
        "lastyear_activity": 1,
        "number_of_employees": 1,
        "exited": 0,
    }
    assert missing["lastmonth_activity"]["missing_share"] == 2 / 29


def test_summarystats_before_any_ingestion(client: Any) -> None:
    error_body(client.get("/summarystats"), 503, "no data has been ingested yet")
    assert client.get("/diagnostics").get_json()["missing_data"] == []


def test_a_second_app_sharing_the_store_serves_the_same_state(
    api: Any, settings: Settings, tmp_path: Path
) -> None:
    """Another host (its own project folder, no ingested files) on the same store."""
    from app import create_app
    from monitoring.config import load_settings
    from tests.conftest import write_config

    other = tmp_path / "other-host"
    other.mkdir()
    config = write_config(other, database_url=settings.database_url)
    second = create_app(load_settings(config, env={}), {"TESTING": True}).test_client()
    assert not (other / "data").exists()
    summary = api.get("/summarystats").get_json()
    assert second.get("/summarystats").get_json() == summary and summary["rows"] == 26
    drift = api.get("/drift").get_json()
    theirs = second.get("/drift").get_json()
    assert theirs.pop("computed_at") >= drift.pop("computed_at")  # when each was checked
    assert theirs == drift and drift["n_current"] == 26
    assert not (other / "data").exists()


def test_health_before_and_after_deploy(client: Any, settings: Settings) -> None:
    clock = fake_clock(client)
    assert client.get("/health").get_json()["status"] == "no_model"
    error_body(client.get("/scoring"), 503, "no model is deployed yet")
    error_body(client.post("/prediction", json={"data": ROWS}), 503, "no model is deployed yet")
    from monitoring.pipeline import bootstrap
    from monitoring.storage.store import Store

    version = bootstrap(settings, Store(settings.database_url))["model_version"]
    clock.now += LIVE_POLL_SECONDS  # when this worker next reads the live pointer
    body = client.get("/health").get_json()
    assert (body["status"], body["model_version"]) == ("ok", version)


def test_a_redeploy_is_served_without_restart(
    api: Any, make_settings: Any, deployed: dict[str, Any]
) -> None:
    from monitoring.data.ingestion import ingest
    from monitoring.model.deployment import deploy
    from monitoring.model.scoring import score
    from monitoring.model.training import train
    from monitoring.storage.store import Store

    clock = fake_clock(api)
    old = deployed["model_version"]
    assert api.post("/prediction", json={"data": ROWS}).get_json()["model_version"] == old
    source = make_settings(input_folder_path="data/sourcedata")
    store = Store(source.database_url)
    ingest(source, store=store)
    new = train(source, store=store)["version"]
    score(source, store=store)
    deploy(source, store=store)  # by another process, as far as this app knows
    clock.now += LIVE_POLL_SECONDS - 0.01
    assert api.post("/prediction", json={"data": ROWS}).get_json()["model_version"] == old
    clock.now += 0.01
    assert api.post("/prediction", json={"data": ROWS}).get_json()["model_version"] == new
    assert api.get("/scoring").get_json()["model_version"] == new


def test_a_store_error_during_a_read_is_a_json_503(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from monitoring.storage.store import Store

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Store, "scores", down)
    monkeypatch.setattr(Store, "change_key", lambda self, **kw: None)  # no cached key either
    body = error_body(api.get("/scoring"), 503, "the record store cannot be reached")
    assert "server closed" not in body["message"]


def test_ready_says_what_is_missing(client: Any, settings: Settings) -> None:
    clock = fake_clock(client)
    body = client.get("/ready")
    assert body.status_code == 503
    assert body.get_json()["status"] == "not_ready"
    assert body.get_json()["checks"]["model"]["status"] == "no_model"
    assert body.get_json()["checks"]["store"] == {"status": "ok"}
    version = bootstrap(settings, Store(settings.database_url))["model_version"]
    clock.now += LIVE_POLL_SECONDS  # the next request reads the live pointer again
    ready = client.get("/ready").get_json()
    assert ready == {
        "status": "ready",
        "checks": {
            "model": {"status": "ok", "version": version},
            "store": {"status": "ok"},
        },
    }


def test_ready_when_the_store_cannot_be_reached(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from monitoring.storage.store import Store

    assert api.get("/ready").status_code == 200  # the model is loaded

    def down(self: Any) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(Store, "ping", down)
    answer = api.get("/ready")
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["store"] == {"status": "unreachable"}
    assert answer.get_json()["checks"]["model"]["status"] == "ok"
    assert api.get("/health").status_code == 200  # liveness is not readiness
