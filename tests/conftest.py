"""Shared fixtures: settings on a private copy of the shipped data, app, client."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import create_app
from monitoring.config import PROJECT_ROOT, Settings, load_settings
from monitoring.storage.store import Store

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


@pytest.fixture
def make_settings(project: Path) -> Callable[..., Settings]:
    """Build settings for ``project`` with top-level keys overridden."""

    def make(**overrides: Any) -> Settings:
        return load_settings(project / "config.json", env={}, overrides=overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store(settings.database_url)


@pytest.fixture
def deployed(settings: Settings, store: Store) -> dict[str, Any]:
    """Practice data ingested, a model trained, scored and deployed."""
    from monitoring.pipeline import bootstrap

    return bootstrap(settings, store)


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


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    """A test client of the app with the practice model deployed."""
    return client
