"""Shared fixtures: settings on a private copy of the shipped data, app, client.

The tests of the store, capture, the pipeline and the API run twice: on SQLite and
on a real PostgreSQL (marked ``postgres``; skipped only where PostgreSQL is not
installed, never in CI, which sets ``MONITORING_REQUIRE_POSTGRES``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import create_app
from monitoring.config import PROJECT_ROOT, Settings, load_settings
from monitoring.storage.engine import normalize_url
from monitoring.storage.store import Store
from tests import postgres

DATA = PROJECT_ROOT / "data"


def write_config(root: Path, **overrides: Any) -> Path:
    """Copy the project's config.json into ``root`` with some keys replaced."""
    config = json.loads((PROJECT_ROOT / "config.json").read_text())
    config.update(overrides)
    path = root / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a copy of the shipped data and config."""
    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(DATA / name, tmp_path / "data" / name)
    shutil.copy(PROJECT_ROOT / "requirements.txt", tmp_path / "requirements.txt")
    write_config(tmp_path)
    return tmp_path


BOTH_STORES = (
    "tests/storage/",
    "tests/capture/",
    "tests/e2e/test_processes.py",
    "tests/test_pipeline.py",
    "tests/web/test_api.py",
    "tests/web/test_live_model.py",
    "tests/model/test_deployment.py",
    "tests/diagnostics/test_delivery.py",
    "tests/reports/test_fairness.py::test_labelled_traffic",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.nodeid.startswith(
        BOTH_STORES
    ):
        stores = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
        metafunc.parametrize("database_url", stores, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the session (a throwaway cluster)."""
    given = os.environ.get("MONITORING_TEST_POSTGRES_URL")
    if given:
        yield normalize_url(given)
        return
    if postgres.binaries() is None:
        if os.environ.get("MONITORING_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here but not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="monitoring-pg-"))  # the postgres user must reach it
    cluster = postgres.Cluster(folder)
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The store of a test: None for the config's SQLite file, else a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url = postgres.new_database(request.getfixturevalue("postgres_server"))
    request.addfinalizer(lambda: postgres.drop_database(url))
    return url


@pytest.fixture
def make_settings(project: Path, database_url: str | None) -> Callable[..., Settings]:
    """Build settings for ``project`` (on the test's store) with top-level keys overridden."""

    def make(**overrides: Any) -> Settings:
        if database_url is not None:
            overrides.setdefault("database_url", database_url)
        return load_settings(project / "config.json", env={}, overrides=overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store(settings.database_url)


@pytest.fixture(scope="session")
def _bootstraps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """First deployments already made this session, by settings (see ``deployed``)."""
    return {}


@pytest.fixture
def deployed(
    settings: Settings,
    store: Store,
    _bootstraps: dict[str, tuple[Path, Any]],
    project: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Practice data ingested, a model trained, scored and deployed.

    On SQLite the first deployment for given settings is made once per session and
    copied into each test's project (the store holds no absolute path), which is
    what makes the fast layer fast; on PostgreSQL it is made for every test.
    """
    from monitoring.pipeline import bootstrap

    if not settings.database_url.startswith("sqlite:"):
        return bootstrap(settings, store)
    key = repr(settings).replace(str(project), "<project>")
    if key not in _bootstraps:
        result = bootstrap(settings, store)
        template = tmp_path_factory.mktemp("bootstrap")
        shutil.copytree(project, template, dirs_exist_ok=True)
        _bootstraps[key] = (template, copy.deepcopy(result))
        return result
    template, result = _bootstraps[key]
    shutil.copytree(template, project, dirs_exist_ok=True)
    return copy.deepcopy(result)


@pytest.fixture
def app(settings: Settings) -> Any:
    return create_app(settings, {"TESTING": True})


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture(autouse=True)
def _no_pypi(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach PyPI: the dependency check sees itself offline."""
    from monitoring.diagnostics import dependencies as depcheck

    if request.module.__name__.endswith("test_dependencies"):
        return  # those tests fake the network themselves

    monkeypatch.setattr(depcheck, "fetch_latest_pypi", lambda name, **kw: None)


@pytest.fixture(autouse=True)
def _plain_report_pdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """report.pdf is printed by headless Chromium (seconds) only in the e2e tests; the
    others get the plain PDF, so every setup and pipeline run stays quick."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setenv("MONITORING_CHROMIUM", "")


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    """A test client of the app with the practice model deployed."""
    return client


@pytest.fixture(autouse=True)
def _release_stores() -> Iterator[None]:
    """Release what a test opened on its stores once it is done: the engines (their
    pooled connections and SQLite files) and the capture writers (their threads).

    A session of a thousand tests would otherwise keep them all; one ran out of file
    descriptors and threads ("can't start new thread", SQLite "disk I/O error").
    """
    from monitoring.capture import writer
    from monitoring.storage import engine as engines

    engines_before, writers_before = set(engines._engines), set(writer._writers)
    yield
    for key in set(writer._writers) - writers_before:
        capture_writer = writer._writers.get(key)
        if capture_writer is not None:
            with writer._writers_lock, capture_writer.mutex:
                capture_writer.last_write = float("-inf")  # idle: its thread retires
            capture_writer.wake.set()
    for key in set(engines._engines) - engines_before:
        with engines._engines_lock:
            made = engines._engines.pop(key, None)
            engines._upgraded.discard(key)
        if made is not None:
            made.dispose()
