"""Config loading: paths, environment overrides and validation messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitoring.config import Thresholds, load_settings
from monitoring.exceptions import ConfigError
from tests.conftest import write_config


def test_paths_resolve_from_the_config_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    settings = load_settings(project / "config.json", env={})
    assert settings.input_folder_path == project / "data" / "practicedata"
    assert settings.finaldata_file == project / "data" / "ingesteddata" / "finaldata.csv"
    assert settings.database_url == f"sqlite:///{project / 'models' / 'monitoring.db'}"


def test_environment_picks_the_file_and_overrides_keys(project: Path) -> None:
    env = {
        "MONITORING_CONFIG": str(project / "config.json"),
        "MONITORING_INPUT_FOLDER_PATH": "data/sourcedata",
        "MONITORING_THRESHOLDS": '{"gate_margin": 0.1}',
        "DATABASE_URL": "sqlite:////tmp/elsewhere.db",
        "MONITORING_API_TOKEN": "s3cret",
    }
    settings = load_settings(env=env)
    assert settings.input_folder_path == project / "data" / "sourcedata"
    assert settings.thresholds == Thresholds(model_drift_tolerance=0.05, gate_margin=0.1)
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"
    assert settings.api_token == "s3cret"
    assert "s3cret" not in repr(settings)


def test_the_shipped_config_keeps_the_starter_keys_and_model() -> None:
    settings = load_settings(env={})
    raw = json.loads(settings.config_path.read_text())  # type: ignore[union-attr]
    for key in (
        "input_folder_path",
        "output_folder_path",
        "test_data_path",
        "output_model_path",
        "prod_deployment_path",
    ):
        assert key in raw
    params = settings.model.params
    assert (params["C"], params["solver"], params["random_state"]) == (1.0, "liblinear", 0)
    assert "multi_class" not in params


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_folder_path": ""}, "config key 'input_folder_path' must be a non-empty path"),
        ({"inputfolder": "x"}, "unknown config key 'inputfolder'"),
        ({"features": []}, "config key 'features' must name at least one column"),
        ({"features": ["a", "a"]}, "config key 'features' lists a column twice"),
        ({"target": 3}, "config key 'target' must be a column name"),
        ({"id_columns": ["exited"]}, "overlap on ['exited']"),
        ({"database_url": "models.db"}, "config key 'database_url' must be an SQLAlchemy URL"),
        ({"model": {"estimator": "svm"}}, "config key 'model.estimator' must be one of"),
        (
            {"model": {"params": {"multi_class": "auto"}}},
            "config key 'model.params.multi_class' is not a parameter of LogisticRegression",
        ),
        ({"thresholds": {"gate_margin": 2}}, "config key 'thresholds.gate_margin' must be between"),
        ({"thresholds": {"gate": 0.1}}, "unknown config key 'thresholds.gate'"),
        (
            {"policy": {"retrain_on_data_drift": "yes"}},
            "config key 'policy.retrain_on_data_drift' must be bool",
        ),
        ({"diagnostics": {"timing_runs": 0}}, "config key 'diagnostics.timing_runs' must be at"),
        ({"api": {"max_rows": -1}}, "config key 'api.max_rows' must be a positive integer"),
        ({"drift": {"method": "magic"}}, "drift.method"),
    ],
)
def test_invalid_config_names_the_key(project: Path, overrides: dict, message: str) -> None:
    path = write_config(project, **overrides)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert message in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; set MONITORING_CONFIG"):
        load_settings(tmp_path / "nope.json", env={})
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_settings(bad, env={})
