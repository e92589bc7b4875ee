"""The live model follows the store: any app sharing it serves a deploy or rollback made
through any other within a second, and keeps serving while the store cannot be reached."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from monitoring import readmodels
from monitoring.config import Settings, load_settings
from monitoring.data.ingestion import ingest
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.pipeline import bootstrap
from monitoring.readmodels import LIVE_POLL_SECONDS, LiveModel, ReadModels, ResultCache
from monitoring.storage.engine import safe_url
from monitoring.storage.store import Store
from tests import postgres
from tests.conftest import DATA, write_config
from tests.helpers import AUTH, FakeClock, client_with, error_body, fake_clock

ROWS = [{"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}]


def _project(root: Path, database_url: str, **overrides: Any) -> Settings:
    """A project folder of its own at ``root`` on the store at ``database_url``."""
    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(DATA / name, root / "data" / name)
    config = write_config(root, database_url=database_url)
    return load_settings(config, env={}, overrides=overrides)


def _served(client: Any) -> str:
    response = client.post("/prediction", json={"data": ROWS})
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["model_version"])


def _seconds_until_served(client: Any, version: str, *, limit: float = 1.0) -> float:
    """Seconds until ``client`` serves ``version`` (real time; fails after ``limit``)."""
    started = time.monotonic()
    while _served(client) != version:
        assert time.monotonic() - started < limit, f"{version} not served within {limit} s"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def shared_url(database_url: str | None, tmp_path: Path) -> str:
    """A store two project folders share: an absolute SQLite URL, or PostgreSQL."""
    return database_url or f"sqlite:///{tmp_path / 'shared' / 'monitoring.db'}"


def test_two_apps_on_one_store_follow_each_others_deploys_and_rollbacks(
    shared_url: str, tmp_path: Path
) -> None:
    one = _project(tmp_path / "one", shared_url)
    two = _project(tmp_path / "two", shared_url)
    store = Store(shared_url)
    first = bootstrap(one, store)["model_version"]
    app_one, app_two = client_with(one), client_with(two)
    assert _served(app_one) == _served(app_two) == first  # two never trained anything

    source = dataclasses.replace(one, input_folder_path=one.root / "data" / "sourcedata")
    ingest(source, store=store)
    second = train(source, store=store)["version"]
    score(source, store=store)
    deployed = app_one.post("/deploy", headers=AUTH)
    assert deployed.status_code == 200, deployed.get_json()
    assert _served(app_one) == second  # the deploying worker at once
    assert _seconds_until_served(app_two, second) < 1.0

    back = app_two.post("/rollback", headers=AUTH)
    assert back.get_json()["model_version"] == first
    assert _served(app_two) == first
    assert _seconds_until_served(app_one, first) < 1.0
    versions = app_one.get("/versions").get_json()
    assert [(v["version"], v["live"]) for v in versions["versions"]] == [
        (first, True),
        (second, False),
    ]
    # each host exports the course's files of what it deployed or rolled back to
    live_pickle = store.model_version(first)["artifact"]  # type: ignore[index]
    assert (two.prod_deployment_path / "trainedmodel.pkl").read_bytes() == live_pickle
    assert not (two.output_model_path / "trainedmodel.pkl").exists()


def _failing_engine(tmp_path: Path) -> Any:
    """An engine whose every connection fails (its folder does not exist)."""
    return create_engine(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'db.sqlite'}")


def test_a_store_lost_after_loading_still_answers_predictions(
    settings: Settings,
    deployed: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    no_capture = dataclasses.replace(settings.capture, enabled=False)  # capture: its own tests
    client = client_with(dataclasses.replace(settings, capture=no_capture))
    clock = fake_clock(client)
    version = deployed["model_version"]
    assert _served(client) == version

    if settings.database_url.startswith("postgresql"):
        postgres.drop_database(settings.database_url)  # the database is gone
    else:
        monkeypatch.setattr(Store, "engine", property(lambda self: _failing_engine(tmp_path)))
    caplog.set_level(logging.WARNING, logger="monitoring.readmodels")
    for _ in range(3):  # three polls, one outage
        clock.now += LIVE_POLL_SECONDS
        assert _served(client) == version
    assert client.get("/health").get_json()["status"] == "ok"
    lost = [r.getMessage() for r in caplog.records if r.name == "monitoring.readmodels"]
    assert len(lost) == 1 and lost[0].startswith("cannot reach the record store at ")
    assert lost[0].endswith(f"; serving model {version} until it is back")

    # a fresh worker without a model has nothing to serve: 503, and /health stays 200
    fresh = client_with(dataclasses.replace(settings, capture=no_capture))
    error_body(
        fresh.post("/prediction", json={"data": ROWS}),
        503,
        "the record store cannot be reached; try again shortly",
    )
    body = fresh.get("/health")
    assert body.status_code == 200 and body.get_json()["status"] == "unavailable"


def test_the_store_comes_back(
    deployed: dict[str, Any],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monitoring.readmodels")
    clock = FakeClock()
    model = LiveModel(store, ResultCache(clock))
    version = deployed["model_version"]
    assert model.artifact().version == version
    for _ in range(2):
        monkeypatch.setattr(Store, "engine", property(lambda self: _failing_engine(tmp_path)))
        clock.now += LIVE_POLL_SECONDS
        assert model.artifact().version == version
        monkeypatch.undo()
        clock.now += LIVE_POLL_SECONDS
        assert model.artifact().version == version
    lost = (
        f"cannot reach the record store at {safe_url(store.url)}: unable to open database "
        f"file; serving model {version} until it is back"
    )
    back = "the record store is reachable again"
    assert [r.getMessage() for r in caplog.records] == [lost, back, lost, back]


def test_the_pointer_is_read_at_most_every_poll_interval_and_versions_load_once(
    settings: Settings,
    make_settings: Any,
    store: Store,
    deployed: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str | None] = []
    loads: list[str] = []
    real_read, real_load = Store.live_version, readmodels.load_artifact
    monkeypatch.setattr(Store, "live_version", lambda self: reads.append(1) or real_read(self))  # type: ignore[func-returns-value]
    monkeypatch.setattr(
        readmodels, "load_artifact", lambda s, v: loads.append(v) or real_load(s, v)
    )
    clock = FakeClock()
    views = ReadModels(settings, store)
    views.cache.clock = clock
    model = views.model
    first = deployed["model_version"]
    for _ in range(50):
        assert model.artifact().version == first
    clock.now += LIVE_POLL_SECONDS - 0.001
    model.artifact()
    assert (len(reads), loads) == (1, [first])
    clock.now += 0.001
    model.artifact()
    assert (len(reads), loads) == (2, [first])

    source = make_settings(input_folder_path="data/sourcedata")
    ingest(source, store=store)
    second = train(source, store=store)["version"]
    score(source, store=store)
    store.publish(second, "record")
    clock.now += LIVE_POLL_SECONDS
    assert model.artifact().version == second
    store.set_live(first)
    clock.now += LIVE_POLL_SECONDS
    assert model.artifact().version == first
    store.set_live(second)
    clock.now += LIVE_POLL_SECONDS
    assert model.artifact().version == second
    assert (len(reads), loads) == (5, [first, second])  # a rollback and back loads nothing
