"""MLflow tracking and registry against a local tracking store (a temporary folder).

Importing MLflow takes seconds, so its tests are kept here, few. They need
``requirements-mlflow.txt``: skipped where it is not installed, failed in CI (which sets
``MONITORING_REQUIRE_MLFLOW``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitoring.config import Settings
from monitoring.model import tracking
from monitoring.model.artifact import load_artifact
from monitoring.model.deployment import rollback
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.pipeline import bootstrap, publish, run_full_process
from monitoring.storage.store import Store

# MLflow's own warnings (its ORM on SQLAlchemy 2.1, the pickle-format notices of its
# dependencies) are not ours to fix; the suite's "error" filter would fail its store.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def test_without_a_tracking_uri_nothing_is_logged_and_mlflow_is_not_imported(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    monkeypatch.delenv(tracking.TRACKING_ENV, raising=False)
    imported_before = "mlflow" in sys.modules
    metadata = train(settings, store=store)
    metrics = score(settings, store=store)
    deployed_now = publish(settings, store)
    assert "mlflow" not in metadata and "mlflow" not in metrics and "mlflow" not in deployed_now
    if not imported_before:  # this module imports it first in a run of the suite
        assert "mlflow" not in sys.modules
    assert tracking.log_scoring(settings, "v", {}) is None


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """MLflow on a fresh SQLite tracking store, its artifacts in the test's folder."""
    if not tracking.installed():
        if os.environ.get("MONITORING_REQUIRE_MLFLOW"):
            pytest.fail("MLflow is required here: pip install -r requirements-mlflow.txt")
        pytest.skip("MLflow is not installed (pip install -r requirements-mlflow.txt)")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.chdir(tmp_path)  # the default artifact root (./mlartifacts) lands here
    # A folder store: no database to create (an SQLite one runs ~50 migrations first).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv(tracking.TRACKING_ENV, (tmp_path / "mlruns").as_uri())
    import mlflow as module

    module.set_tracking_uri(os.environ[tracking.TRACKING_ENV])
    return module


def _runs(mlflow: Any, settings: Settings) -> pd.DataFrame:
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    return mlflow.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


@pytest.mark.slow  # MLflow's import and three logged models: seconds
def test_training_scoring_deployment_and_rollback_are_logged_and_move_the_aliases(
    mlflow: Any, make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings()
    first = bootstrap(settings, store)
    name = settings.mlflow.registered_model
    client = mlflow.MlflowClient()
    runs = _runs(mlflow, settings)
    version = first["model_version"]
    assert runs["tags.mlflow.runName"].tolist() == [
        f"train {version}",
        f"score {version}",
        f"deploy {version}",
    ]
    assert set(runs["tags.monitoring.version"]) == {version}
    train_run = runs.iloc[0]
    assert train_run["params.estimator"] == "LogisticRegression"
    assert train_run["params.model.solver"] == "liblinear"
    metadata = store.model_version(version, with_bytes=False)["metadata"]
    assert train_run["metrics.cv_f1"] == pytest.approx(metadata["cv_score"]["f1"])
    assert runs.iloc[1]["metrics.test_f1"] == pytest.approx(first["score"]["f1"])
    matrix = mlflow.artifacts.load_dict(f"runs:/{train_run['run_id']}/confusion_matrix.json")
    assert matrix["cross_validated"] == metadata["cv_score"]["confusion_matrix"]
    test_matrix = mlflow.artifacts.load_dict(
        f"runs:/{runs.iloc[1]['run_id']}/confusion_matrix.json"
    )
    assert test_matrix["test"] == first["score"]["confusion_matrix"]
    card = mlflow.artifacts.load_text(f"runs:/{runs.iloc[2]['run_id']}/model_card.md")
    assert card == store.model_card(version)["markdown"]

    # Registered as version 1, champion once deployed; the logged model predicts as ours.
    champion = client.get_model_version_by_alias(name, "champion")
    assert (str(champion.version), champion.tags["monitoring.version"]) == ("1", version)
    assert "challenger" not in champion.aliases
    logged = mlflow.sklearn.load_model(f"models:/{name}@champion")
    ours = load_artifact(store, version)
    test = pd.read_csv(settings.test_data_file)[ours.features]
    assert logged.predict_proba(test)[:, 1].tolist() == pytest.approx(
        ours.predict(test)["probabilities"], abs=1e-6
    )

    # A retrain is the challenger until the gate lets it through; rollback moves champion back.
    forced = run_full_process(settings, store=store, force=True)
    second = forced["evidence"]["challenger"]
    assert forced["evidence"]["mlflow_gate"] == {"registered_version": "2", "gate": "accepted"}
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    aliases = client.get_registered_model(name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"champion": "2"}
    back = rollback(settings, store=store)
    assert back["model_version"] == version and back["mlflow"]["registered_version"] == "1"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert _runs(mlflow, settings)["tags.mlflow.runName"].tolist()[-1] == f"rollback {version}"
    assert client.get_model_version(name, "2").tags["monitoring.version"] == second

    # A challenger the gate rejects keeps its alias; the champion does not move.
    strict = make_settings(thresholds={"gate_margin": 0.0})
    train(strict, store=store)  # trained outside a run: registered as challenger
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "3"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


@pytest.mark.slow  # MLflow's import
def test_a_failing_tracking_server_never_fails_training_or_deployment(
    mlflow: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(tracking.TRACKING_ENV, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri(os.environ[tracking.TRACKING_ENV])
    with caplog.at_level(logging.WARNING, logger="monitoring.model.tracking"):
        result = bootstrap(settings, store)
    assert store.live_version() == result["model_version"]
    for step in (result["score"], result["deployment"]):
        assert step["mlflow"]["error"]
    assert any("MLflow: could not log the training of" in r.message for r in caplog.records)
