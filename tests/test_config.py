"""Config loading: paths, environment overrides and validation messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitoring import config
from monitoring.config import ColumnOptions, DriftOptions, GroupAttribute, Thresholds, load_settings
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
        (
            {"capture": {"max_row_bytes": 255}},
            "config key 'capture.max_row_bytes' must be an integer of at least 256, got 255",
        ),
        (
            {"capture": {"max_bytes": 1048575}},
            "config key 'capture.max_bytes' must be an integer of at least 1048576, got 1048575",
        ),
        (
            {"capture": {"max_bytes": 1.5e9}},
            "config key 'capture.max_bytes' must be an integer, got 1500000000.0",
        ),
        (
            {"drift": {"max_adhoc_reports": 0}},
            "config key 'drift.max_adhoc_reports' must be at least 1, got 0",
        ),
        (
            {"drift": {"adhoc_retention_days": 0}},
            "config key 'drift.adhoc_retention_days' must be positive, got 0.0",
        ),
        ({"api": {"max_columns": 0}}, "config key 'api.max_columns' must be a positive integer"),
        ({"api": {"max_columns": 1.5}}, "config key 'api.max_columns' must be an integer"),
        ({"drift": {"method": "magic"}}, "drift.method"),
        ({"fairness": {"tau": 0}}, "config key 'fairness.tau' must be in (0, 1], got 0.0"),
        ({"fairness": {"tau": 1.25}}, "config key 'fairness.tau' must be in (0, 1], got 1.25"),
        (
            {"fairness": {"attributes": {"size": {"cuts": [10, 5]}}}},
            "config key 'fairness.attributes.size.cuts' must be strictly increasing, "
            "got [10.0, 5.0]",
        ),
        (
            {"fairness": {"attributes": {"size": {"cuts": [10], "buckets": 3}}}},
            "config key 'fairness.attributes.size': a fairness attribute takes 'cuts' or "
            "'buckets', not both",
        ),
        (
            {"fairness": {"attributes": {"region": {"kind": "categorical", "buckets": 3}}}},
            "config key 'fairness.attributes.region': a categorical fairness attribute takes "
            "no 'cuts' or 'buckets'",
        ),
        (
            {"fairness": {"attributes": {"size": {"buckets": 1}}}},
            "config key 'fairness.attributes.size.buckets' must be an integer of at least 2 "
            "or null, got 1",
        ),
        (
            {"fairness": {"attributes": {"size": {"bins": 3}}}},
            "unknown config key 'fairness.attributes.size.bins'",
        ),
        (
            {"fairness": {"attributes": ["size"]}},
            "config key 'fairness.attributes' must be an object",
        ),
        (
            {"fairness": {"metrics": ["fpr", "auc"]}},
            "config key 'fairness.metrics' must be a non-empty list of distinct metrics",
        ),
        ({"fairness": {"gate": "yes"}}, "config key 'fairness.gate' must be bool"),
        (
            {"delivery": {"window_days": 0}},
            "config key 'delivery.window_days' must be positive, got 0.0",
        ),
        (
            {"delivery": {"failure_window_hours": -1}},
            "config key 'delivery.failure_window_hours' must be zero or more, got -1.0",
        ),
        (
            {"performance_estimation": {"chunk_by": "minutes"}},
            "config key 'performance_estimation.chunk_by' must be one of ['rows', 'period'], "
            "got 'minutes'",
        ),
        (
            {"performance_estimation": {"chunk_rows": 0}},
            "config key 'performance_estimation.chunk_rows' must be a positive integer, got 0",
        ),
        (
            {"performance_estimation": {"chunk_period": "year"}},
            "config key 'performance_estimation.chunk_period' must be one of ['hour', 'day', "
            "'week', 'month'], got 'year'",
        ),
        (
            {"performance_estimation": {"max_chunks": 1001}},
            "config key 'performance_estimation.max_chunks' must be an integer from 1 to 1000",
        ),
        (
            {"thresholds": {"estimated_f1_tolerance": -0.1}},
            "config key 'thresholds.estimated_f1_tolerance' must be between 0 and 1, got -0.1",
        ),
        (
            {"policy": {"retrain_on_estimated_f1_drop": 1}},
            "config key 'policy.retrain_on_estimated_f1_drop' must be bool",
        ),
        ({"mlflow": {"experiment": " "}}, "config key 'mlflow.experiment' must be not empty"),
    ],
)
def test_invalid_config_names_the_key(project: Path, overrides: dict, message: str) -> None:
    path = write_config(project, **overrides)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ({"estimator": "random_forest"}, {"random_state": 0}),
        ({"estimator": "gradient_boosting"}, {"random_state": 0}),
        ({}, {"C": 1.0, "solver": "liblinear", "random_state": 0}),
        ({"estimator": "random_forest", "params": {}}, {}),  # scikit-learn's own defaults
        ({"estimator": "random_forest", "params": {"n_estimators": 50}}, {"n_estimators": 50}),
    ],
)
def test_parameters_default_per_estimator(project: Path, model: dict, params: dict) -> None:
    # "random_forest" alone used to fail on logistic regression's default "C".
    settings = load_settings(write_config(project, model=model), env={})
    assert dict(settings.model.params) == params


def test_the_parameter_table_is_scikit_learns_answer() -> None:
    import sklearn

    assert sklearn.__version__ == config.PARAMS_READ_FROM == config.sklearn_version()
    for name in config.ESTIMATORS:
        cls = config.estimator_class(name)
        assert cls.__name__ == config.ESTIMATORS[name][1]
        assert config.ESTIMATOR_PARAMS[name] == set(cls().get_params()), name


def test_another_scikit_learn_release_is_asked_itself(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "sklearn_version", lambda: "0.0.1")
    monkeypatch.setitem(config.ESTIMATOR_PARAMS, "random_forest", frozenset())  # a stale table
    model = {"estimator": "random_forest", "params": {"n_estimators": 50}}
    settings = load_settings(write_config(project, model=model), env={})
    assert dict(settings.model.params) == {"n_estimators": 50}
    model["params"] = {"C": 1.0}
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(project, model=model), env={})
    assert str(info.value) == (
        "config key 'model.params.C' is not a parameter of RandomForestClassifier "
        "in scikit-learn 0.0.1"
    )


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; set MONITORING_CONFIG"):
        load_settings(tmp_path / "nope.json", env={})
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_settings(bad, env={})


def test_default_options() -> None:
    opts = DriftOptions.from_mapping(None)
    assert opts == DriftOptions.from_mapping({})
    assert (opts.method, opts.p_value_threshold, opts.distance_threshold) == (
        "auto",
        0.05,
        0.1,
    )
    assert (opts.psi_threshold, opts.large_reference_rows, opts.drift_share) == (
        0.2,
        1000,
        0.5,
    )
    assert (opts.fdr, opts.fdr_alpha, opts.psi_bins, opts.categorical_max_unique) == (
        False,
        0.05,
        10,
        10,
    )
    assert dict(opts.columns) == {}
    hash(opts)
    config = json.loads((Path(__file__).parents[1] / "config.json").read_text())
    assert DriftOptions.from_mapping(config.get("drift")).method == "auto"


def test_column_options_are_parsed() -> None:
    opts = DriftOptions.from_mapping(
        {"columns": {"x": {"method": "ks", "threshold": 0.01, "kind": "numeric"}}}
    )
    assert opts.column("x") == ColumnOptions("ks", 0.01, "numeric")
    assert opts.column("y") == ColumnOptions()


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"method": "foo"}, "config key 'drift.method' must be one of ['auto', 'ks'"),
        ({"p_value_threshold": 1.5}, "drift.p_value_threshold"),
        (
            {"p_value_threshold": True},
            "config key 'drift.p_value_threshold' must be a number, got True",
        ),
        ({"distance_threshold": -1}, "drift.distance_threshold"),
        ({"psi_threshold": float("nan")}, "drift.psi_threshold"),
        (
            {"large_reference_rows": 1.5},
            "config key 'drift.large_reference_rows' must be an integer, got 1.5",
        ),
        (
            {"categorical_max_unique": -1},
            "config key 'drift.categorical_max_unique' must be zero or more, got -1",
        ),
        ({"drift_share": 0}, "drift.drift_share"),
        ({"fdr": "yes"}, "config key 'drift.fdr' must be bool (true or false), got 'yes'"),
        ({"fdr_alpha": 0}, "drift.fdr_alpha"),
        ({"psi_bins": 1}, "config key 'drift.psi_bins' must be at least 2, got 1"),
        ({"bogus": 1}, "unknown config key 'drift.bogus'; expected one of"),
        ({"columns": []}, "config key 'drift.columns' must be an object, got []"),
        ({"columns": {"x": 1}}, "config key 'drift.columns.x' must be an object, got 1"),
        (
            {"columns": {"x": {"method": "foo"}}},
            "config key 'drift.columns.x.method' must be one of ['auto', 'ks', 'wasserstein', "
            "'psi', 'chisquare', 'jensenshannon'], got 'foo'",
        ),
        ({"columns": {"x": {"kind": "text"}}}, "drift.columns.x.kind"),
        ({"columns": {"x": {"threshold": 0}}}, "drift.columns.x.threshold"),
        (
            {"columns": {"x": {"method": "ks", "threshold": 2}}},
            "drift.columns.x.threshold",
        ),
        ({"columns": {"x": {"bogus": 1}}}, "drift.columns.x.bogus"),
    ],
)
def test_invalid_options_name_the_key(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DriftOptions.from_mapping(mapping)
    assert message in str(info.value)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="config key 'drift' must be an object"):
        DriftOptions.from_mapping(["method"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p@db:5432/prod", "postgresql+psycopg://u:p@db:5432/prod"),  # Heroku
        ("postgresql://u@db/prod", "postgresql+psycopg://u@db/prod"),
        ("postgresql+psycopg://u@db/prod", "postgresql+psycopg://u@db/prod"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_of_every_form_use_psycopg(project: Path, given: str, used: str) -> None:
    settings = load_settings(project / "config.json", env={"DATABASE_URL": given})
    assert settings.database_url == used


def test_the_dependency_check_reads_the_requirements_beside_the_config_else_the_services(
    tmp_path: Path,
) -> None:
    from monitoring.config import PROJECT_ROOT

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    path = write_config(outside)  # a config kept outside the project, no requirements.txt
    assert load_settings(path, env={}).requirements_file == PROJECT_ROOT / "requirements.txt"
    (outside / "requirements.txt").write_text("pandas\n")
    assert load_settings(path, env={}).requirements_file == outside / "requirements.txt"


def test_fairness_attributes_resolve_their_kind(project: Path) -> None:
    path = write_config(
        project,
        fairness={
            "attributes": {
                "region": {"reference": "north"},
                "size": {"cuts": [10, 100]},
                "employees": {"kind": "numeric"},
                "activity": {"buckets": 4},
            },
            "metrics": ["fpr", "tpr"],
        },
    )
    fairness = load_settings(path, env={}).fairness
    assert dict(fairness.attributes) == {
        "region": GroupAttribute(reference="north"),  # kind decided by the data
        "size": GroupAttribute(kind="numeric", cuts=(10.0, 100.0)),
        "employees": GroupAttribute(kind="numeric", buckets=3),
        "activity": GroupAttribute(kind="numeric", buckets=4),
    }
    assert (fairness.tau, fairness.metrics, fairness.gate) == (0.8, ("fpr", "tpr"), False)
