"""One settings object for the whole service (keys: README, *Configuration*).

``config.json`` (or ``$MONITORING_CONFIG``) is read once into a frozen
:class:`Settings` of frozen sections, paths resolved against the config file's
folder, never the working directory. ``MONITORING_<KEY>`` replaces a top-level key
(as JSON if it parses), ``DATABASE_URL`` replaces ``database_url``, and
``MONITORING_API_TOKEN`` comes only from the environment. An invalid value fails at
start with a :class:`~monitoring.exceptions.ConfigError` naming the key and value.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

from monitoring.exceptions import ConfigError
from monitoring.storage.engine import normalize_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The estimators ``model.estimator`` names: (module, class), imported on first use, so
# reading the config (every CLI command) does not pay for importing scikit-learn.
ESTIMATORS: dict[str, tuple[str, str]] = {
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression"),
    "random_forest": ("sklearn.ensemble", "RandomForestClassifier"),
    "gradient_boosting": ("sklearn.ensemble", "GradientBoostingClassifier"),
}
# Each estimator's parameter names (``get_params()``) in the scikit-learn release named
# here; tests/test_config.py holds them to scikit-learn's answer. With another release
# installed, the check asks scikit-learn itself.
PARAMS_READ_FROM = "1.9.1"
ESTIMATOR_PARAMS: dict[str, frozenset[str]] = {
    "logistic_regression": frozenset(
        "C class_weight dual fit_intercept intercept_scaling l1_ratio max_iter n_jobs "
        "penalty random_state solver tol verbose warm_start".split()
    ),
    "random_forest": frozenset(
        "bootstrap ccp_alpha class_weight criterion max_depth max_features max_leaf_nodes "
        "max_samples min_impurity_decrease min_samples_leaf min_samples_split "
        "min_weight_fraction_leaf monotonic_cst n_estimators n_jobs oob_score random_state "
        "verbose warm_start".split()
    ),
    "gradient_boosting": frozenset(
        "ccp_alpha criterion init learning_rate loss max_depth max_features max_leaf_nodes "
        "min_impurity_decrease min_samples_leaf min_samples_split min_weight_fraction_leaf "
        "n_estimators n_iter_no_change random_state subsample tol validation_fraction "
        "verbose warm_start".split()
    ),
}


def estimator_class(name: str) -> type[Any]:
    """The scikit-learn class of the estimator ``name`` (a key of :data:`ESTIMATORS`)."""
    module, attribute = ESTIMATORS[name]
    cls: type[Any] = getattr(importlib.import_module(module), attribute)
    return cls


def sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it."""
    return version("scikit-learn")


def estimator_params(name: str) -> frozenset[str]:
    """The parameter names of the estimator ``name`` in the installed scikit-learn."""
    if sklearn_version() == PARAMS_READ_FROM:
        return ESTIMATOR_PARAMS[name]
    return frozenset(estimator_class(name)().get_params())


# The parameters an estimator gets when ``model.params`` is not given: scikit-learn's
# defaults, seeded, and liblinear for the course's logistic regression.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "solver": "liblinear", "random_state": 0},
    "random_forest": {"random_state": 0},
    "gradient_boosting": {"random_state": 0},
}


class _NotGiven(dict[str, Any]):
    """The empty ``model.params`` of a config that does not give them."""


# Drift methods, globally and per column; which need numbers, which compare category
# frequencies, and which decide on a p-value (p < threshold; the others: >=).
METHODS = ("auto", "ks", "wasserstein", "psi", "chisquare", "jensenshannon")
NUMERIC_METHODS = frozenset({"ks", "wasserstein", "psi"})
CATEGORICAL_METHODS = frozenset({"chisquare", "jensenshannon"})
P_VALUE_METHODS = frozenset({"ks", "chisquare"})
KINDS = ("numeric", "categorical")


# -- checking one value ----------------------------------------------------------
_TYPE_NAMES = {bool: "bool (true or false)", int: "an integer", float: "a number", str: "a string"}


def check_value(
    key: str, value: Any, kind: Any, test: Callable[[Any], bool] | None = None, rule: str = ""
) -> Any:
    """Return ``value`` as ``kind`` if it is one and passes ``test``.

    ``kind`` is ``bool``, ``int``, ``float`` (finite; ints accepted), ``str`` or a
    tuple of the allowed strings; ``rule`` says what ``test`` asks. Otherwise raise
    ``ConfigError("config key '<key>' must be <rule>, got <value>")``.
    """
    if isinstance(kind, tuple):
        ok = isinstance(value, str) and value in kind
        rule = rule or f"one of {list(kind)}"
    else:
        types = (int, float) if kind is float else kind
        ok = isinstance(value, types) and (kind is bool or not isinstance(value, bool))
        if ok and kind is float:
            value = float(value)
            ok = math.isfinite(value)
    if not ok or (test is not None and not test(value)):
        expected = rule if ok or isinstance(kind, tuple) else _TYPE_NAMES[kind]
        raise ConfigError(f"config key '{key}' must be {expected}, got {value!r}")
    return value


def _check_object(key: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key '{key}' must be an object, got {value!r}")


def _spec(
    default: Any,
    test: Callable[[Any], bool] | None = None,
    rule: str = "",
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A section field: its default and what its value must be."""
    metadata = {"test": test, "rule": rule, "choices": choices}
    if default == {}:  # a mapping: read-only, and left out of the hash
        return field(default_factory=lambda: MappingProxyType({}), hash=False, metadata=metadata)
    return field(default=default, metadata=metadata)


def _section(cls: type[Any], raw: Any, name: str) -> Any:
    """Build section ``cls`` from the mapping ``raw`` at config key ``name``.

    Mapping fields are parsed by ``cls._parse_<field>`` if there is one, the others
    by :func:`check_value` with the field's type and :func:`_spec`."""
    if isinstance(raw, cls):
        return raw
    _check_object(name, raw)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown config key '{name}.{key}'; expected one of {list(fields)}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in raw:
            continue
        value, kind, dotted = raw[key], hints[key], f"{name}.{key}"
        if get_origin(kind) is tuple:  # a list in JSON: column names unless parsed otherwise
            parse = getattr(cls, f"_parse_{key}", None)
            if parse is None:
                values[key] = _str_list(raw, key, allow_empty=True, name=dotted)
            else:
                values[key] = parse(dotted, value)
        elif get_origin(kind) is Mapping:
            _check_object(dotted, value)
            parse = getattr(cls, f"_parse_{key}", None)
            values[key] = dict(value) if parse is None else parse(dotted, value)
        elif value is None and type(None) in get_args(kind):
            values[key] = None
        else:
            types = [t for t in get_args(kind) or (kind,) if t is not type(None)]
            expected = f.metadata["choices"] or types[0]
            values[key] = check_value(
                dotted, value, expected, f.metadata["test"], f.metadata["rule"]
            )
    return cls(**values)


# -- the sections ----------------------------------------------------------------
@dataclass(frozen=True)
class ModelSettings:
    """``model``: the estimator and its parameters, checked against scikit-learn."""

    estimator: str = _spec("logistic_regression", choices=tuple(ESTIMATORS))
    # Without ``params``: the defaults of the chosen estimator (DEFAULT_PARAMS), never
    # another estimator's.
    params: Mapping[str, Any] = field(default_factory=_NotGiven, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.params, _NotGiven):
            object.__setattr__(self, "params", dict(DEFAULT_PARAMS[self.estimator]))
        unknown = sorted(set(self.params) - estimator_params(self.estimator))
        if unknown:
            raise ConfigError(
                f"config key 'model.params.{unknown[0]}' is not a parameter of "
                f"{ESTIMATORS[self.estimator][1]} in scikit-learn {sklearn_version()}"
            )


@dataclass(frozen=True)
class Thresholds:
    """``thresholds``: the model-drift tolerance and the champion/challenger gate."""

    model_drift_tolerance: float = _spec(0.05, lambda v: 0 <= v <= 1, "between 0 and 1")
    gate_margin: float = _spec(0.0, lambda v: 0 <= v <= 1, "between 0 and 1")
    # How far the estimated F1 (CBPE, no labels) may fall below the baseline F1.
    estimated_f1_tolerance: float = _spec(0.05, lambda v: 0 <= v <= 1, "between 0 and 1")


@dataclass(frozen=True)
class Policy:
    """``policy``: what makes the pipeline retrain."""

    retrain_on_model_drift: bool = _spec(True)
    retrain_on_data_drift: bool = _spec(True)
    retrain_every_hours: float | None = _spec(None, lambda v: v > 0, "positive or null")
    # Features whose drift alone is data drift (with retrain_on_data_drift): those
    # named, and the model's `key_features_top` most important ones.
    key_features: tuple[str, ...] = field(default=())
    key_features_top: int = _spec(0, lambda v: v >= 0, "zero or more")
    # Retrain when the newest chunk's estimated F1 (CBPE) is below the baseline by more
    # than thresholds.estimated_f1_tolerance, before any label of it has arrived.
    retrain_on_estimated_f1_drop: bool = _spec(False)


@dataclass(frozen=True)
class DiagnosticsSettings:
    """``diagnostics``: timing runs and the dependency check's cache and deadline."""

    timing_runs: int = _spec(3, lambda v: v >= 1, "at least 1")
    dependency_cache_seconds: float = _spec(86400.0, lambda v: v >= 0, "zero or more")
    dependency_deadline_seconds: float = _spec(3.0, lambda v: v > 0, "positive")


@dataclass(frozen=True)
class ApiSettings:
    """``api``: request limits and who may call what."""

    max_content_length: int = _spec(16 * 1024 * 1024, lambda v: v > 0, "a positive integer")
    max_rows: int = _spec(100_000, lambda v: v > 0, "a positive integer")
    # Columns per request (a CSV header, JSON rows, an upload): checked before parsing.
    max_columns: int = _spec(1_000, lambda v: v > 0, "a positive integer")
    # Parsed dataset files (``?dataset_path=``) kept per process, in bytes; 0: none.
    dataset_cache_bytes: int = _spec(64 * 1024 * 1024, lambda v: v >= 0, "zero or more")
    require_token_for_reads: bool = _spec(False)
    allow_unauthenticated_admin: bool = _spec(False)


@dataclass(frozen=True)
class CaptureSettings:
    """``capture``: which predictions are recorded, for how long, and when labels count."""

    enabled: bool = _spec(True)
    sample_rate: float = _spec(1.0, lambda v: 0 <= v <= 1, "between 0 and 1")
    retention_days: float = _spec(30.0, lambda v: v > 0, "positive")
    # A row's captured inputs (JSON) above this many bytes are stored as a marker.
    max_row_bytes: int = _spec(64 * 1024, lambda v: v >= 256, "an integer of at least 256")
    # Bytes of captured rows the store keeps; the oldest rows are evicted beyond it.
    max_bytes: int = _spec(1 << 30, lambda v: v >= 1 << 20, "an integer of at least 1048576")
    min_labelled_rows: int = _spec(30, lambda v: v >= 0, "zero or more")
    # Host-local folder of the capture journals (resolved against the config folder).
    journal_path: str = _spec("models/capture-journal", lambda v: bool(v.strip()), "not empty")


CHUNK_BY = ("rows", "period")
CHUNK_PERIODS = ("hour", "day", "week", "month")


@dataclass(frozen=True)
class PerformanceEstimationSettings:
    """``performance_estimation``: the chunks of captured traffic whose F1, precision and
    recall are estimated without labels (CBPE): every ``chunk_rows`` rows of the live
    model in capture order, or every ``chunk_period`` (UTC); the newest ``max_chunks``
    are shown, and only chunks of at least ``min_chunk_rows`` rows are acted on."""

    chunk_by: str = _spec("rows", choices=CHUNK_BY)
    chunk_rows: int = _spec(500, lambda v: v >= 1, "a positive integer")
    chunk_period: str = _spec("day", choices=CHUNK_PERIODS)
    max_chunks: int = _spec(10, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000")
    min_chunk_rows: int = _spec(100, lambda v: v >= 1, "a positive integer")


@dataclass(frozen=True)
class MlflowSettings:
    """``mlflow``: where runs and model versions go when ``MLFLOW_TRACKING_URI`` is set
    and MLflow is installed (``requirements-mlflow.txt``); ignored otherwise."""

    experiment: str = _spec("risk-monitoring", lambda v: bool(v.strip()), "not empty")
    registered_model: str = _spec("churn-risk", lambda v: bool(v.strip()), "not empty")


@dataclass(frozen=True)
class ModelCardSettings:
    """``model_card``: how the model card slices the data."""

    quantile_buckets: int = _spec(3, lambda v: v >= 1, "at least 1")
    slices: Mapping[str, tuple[float, ...]] = _spec({})

    @staticmethod
    def _parse_slices(key: str, value: Mapping[str, Any]) -> Mapping[str, tuple[float, ...]]:
        out = {}
        for column, edges in value.items():
            if not isinstance(edges, list):
                raise ConfigError(f"config key '{key}.{column}' must be a list, got {edges!r}")
            out[column] = tuple(check_value(f"{key}.{column}", e, float) for e in edges)
        return MappingProxyType(out)


@dataclass(frozen=True)
class ColumnOptions:
    """``drift.columns.<name>``: a column's own method, threshold (a p-value for
    ``ks`` and ``chisquare``, else a distance or PSI) or kind."""

    method: str | None = _spec(None, choices=METHODS)
    threshold: float | None = _spec(None, lambda v: v > 0, "positive")
    kind: str | None = _spec(None, choices=KINDS)


@dataclass(frozen=True)
class DriftOptions:
    """``drift``: the data-drift tests (README, *Data drift*: rule, units, measured quality)."""

    method: str = _spec("auto", choices=METHODS)
    p_value_threshold: float = _spec(0.05, lambda v: 0 < v < 1, "in (0, 1)")
    distance_threshold: float = _spec(0.1, lambda v: v > 0, "positive")
    psi_threshold: float = _spec(0.2, lambda v: v > 0, "positive")
    large_reference_rows: int = _spec(1000, lambda v: v >= 0, "zero or more")
    categorical_max_unique: int = _spec(10, lambda v: v >= 0, "zero or more")
    drift_share: float = _spec(0.5, lambda v: 0 < v <= 1, "in (0, 1]")
    fdr: bool = _spec(False)
    fdr_alpha: float = _spec(0.05, lambda v: 0 < v < 1, "in (0, 1)")
    psi_bins: int = _spec(10, lambda v: v >= 2, "at least 2")
    # Ad-hoc reports (POST /drift) kept: the newest this many, none older than this.
    max_adhoc_reports: int = _spec(1000, lambda v: v >= 1, "at least 1")
    adhoc_retention_days: float = _spec(7.0, lambda v: v > 0, "positive")
    columns: Mapping[str, ColumnOptions] = _spec({})

    @staticmethod
    def _parse_columns(key: str, value: Mapping[str, Any]) -> Mapping[str, ColumnOptions]:
        out = {}
        for name, raw in value.items():
            options = _section(ColumnOptions, raw, f"{key}.{name}")
            if options.method in P_VALUE_METHODS and options.threshold is not None:
                check_value(
                    f"{key}.{name}.threshold",
                    options.threshold,
                    float,
                    lambda v: 0 < v < 1,
                    "in (0, 1) for a p-value test",
                )
            out[str(name)] = options
        return MappingProxyType(out)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> DriftOptions:
        """The options of a ``drift`` mapping (``None``: every default)."""
        return cls() if data is None else _section(cls, data, "drift")

    def column(self, name: str) -> ColumnOptions:
        """Overrides of column ``name`` (all ``None`` when it has none)."""
        return self.columns.get(name, ColumnOptions())


# The strings that read as a missing value in a feature or the target (besides an
# empty cell, a JSON null and a Parquet null, which always do): pandas' default
# tokens, written out so they are documented (README, *Ingestion*) and configurable.
DEFAULT_NA_VALUES = (
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
BAD_ROWS = ("reject_file", "quarantine")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return not math.isnan(float(text))


@dataclass(frozen=True)
class IngestionSettings:
    """``ingestion``: which strings read as missing, and what a bad row does to its file
    (``reject_file``: the file is rejected; ``quarantine``: the row goes to a rejects
    file and the rest of the file is ingested)."""

    bad_rows: str = _spec("reject_file", choices=BAD_ROWS)
    na_values: tuple[str, ...] = _spec(DEFAULT_NA_VALUES)

    @staticmethod
    def _parse_na_values(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config key '{key}' must be a list of strings, got {value!r}")
        for token in value:
            if _is_number(token):
                raise ConfigError(
                    f"config key '{key}' must not list a number (it would read as missing "
                    f"only where written exactly so), got {token!r}"
                )
        return tuple(dict.fromkeys(v for v in value if v))


TRAINING_WINDOWS = ("all", "new", "rows", "days")


@dataclass(frozen=True)
class TrainingSettings:
    """``training``: the rows a model is trained on (``window``).

    ``all``: every row ingested so far, de-duplicated; ``new``: the newest ingestion
    only (the course's behaviour); ``rows``: the ``window_size`` most recently ingested
    distinct rows; ``days``: the rows of the ingestions within ``window_size`` days of
    the newest one.
    """

    window: str = _spec("all", choices=TRAINING_WINDOWS)
    window_size: float | None = _spec(None, lambda v: v > 0, "positive or null")

    def __post_init__(self) -> None:
        size = self.window_size
        if self.window in ("rows", "days") and size is None:
            raise ConfigError(
                f"config key 'training.window_size' must be given for window '{self.window}'"
            )
        if self.window == "rows" and size is not None and not float(size).is_integer():
            raise ConfigError(
                "config key 'training.window_size' must be a whole number of rows for "
                f"window 'rows', got {size!r}"
            )


FAIRNESS_KINDS = ("categorical", "numeric")
DEFAULT_BUCKETS = 3  # a numeric group attribute without cuts: terciles
# The group metrics a disparity is judged on (Aequitas' names; README, *Bias audit*).
FAIRNESS_METRICS = ("pprev", "ppr", "precision", "fdr", "for", "fpr", "fnr", "tpr", "tnr")
CATEGORICAL_MAX_VALUES = 10  # an attribute of no given kind with more numeric values is numeric


@dataclass(frozen=True)
class GroupAttribute:
    """``fairness.attributes.<column>``: how a column splits rows into groups.

    Categorical: one group per value. Numeric: ``cuts`` (inner cut points, groups
    ``(-inf, c1], (c1, c2], ..., (ck, inf)``) or ``buckets`` quantile buckets of the
    audited data (default 3, terciles). Without ``kind``, ``cuts`` or ``buckets`` the
    data decides: a numeric column with more than :data:`CATEGORICAL_MAX_VALUES`
    distinct values is cut in terciles, any other is categorical. ``reference``: the
    group the others are compared with (its label, e.g. ``"north"`` or ``"(10, 99]"``);
    null: the largest group.
    """

    kind: str | None = _spec(None, choices=FAIRNESS_KINDS)
    buckets: int | None = _spec(None, lambda v: v >= 2, "an integer of at least 2 or null")
    cuts: tuple[float, ...] = field(default=())
    reference: str | None = _spec(None, lambda v: bool(v), "a non-empty group label or null")

    @staticmethod
    def _parse_cuts(key: str, value: Any) -> tuple[float, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list of numbers, got {value!r}")
        cuts = tuple(check_value(key, v, float) for v in value)
        if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
            raise ConfigError(f"config key '{key}' must be strictly increasing, got {list(cuts)}")
        return cuts

    def __post_init__(self) -> None:
        numeric = bool(self.cuts) or self.buckets is not None
        if self.kind == "categorical" and numeric:
            raise ConfigError(
                "a categorical fairness attribute takes no 'cuts' or 'buckets' "
                f"(got cuts {list(self.cuts)}, buckets {self.buckets})"
            )
        if self.cuts and self.buckets is not None:
            raise ConfigError("a fairness attribute takes 'cuts' or 'buckets', not both")
        if numeric:
            object.__setattr__(self, "kind", "numeric")
        elif self.kind == "numeric":
            object.__setattr__(self, "buckets", DEFAULT_BUCKETS)


@dataclass(frozen=True)
class FairnessSettings:
    """``fairness``: the bias audit (README, *Bias audit*): group attributes, the
    fairness threshold tau (a disparity passes within [tau, 1/tau]) and the gate."""

    attributes: Mapping[str, GroupAttribute] = _spec({})
    tau: float = _spec(0.8, lambda v: 0 < v <= 1, "in (0, 1]")
    # The metrics whose disparities get a verdict (all are reported).
    metrics: tuple[str, ...] = field(default=FAIRNESS_METRICS)
    # Labelled captured rows of the live model needed before traffic is audited too,
    # and the newest this many read for it.
    min_labelled_rows: int = _spec(100, lambda v: v >= 1, "at least 1")
    max_traffic_rows: int = _spec(100_000, lambda v: v >= 1, "at least 1")
    # Reject a challenger whose audit on the test data fails a disparity the champion's passes.
    gate: bool = _spec(False)

    @staticmethod
    def _parse_metrics(key: str, value: Any) -> tuple[str, ...]:
        if (
            not isinstance(value, list)
            or not value
            or any(v not in FAIRNESS_METRICS for v in value)
            or len(set(value)) != len(value)
        ):
            raise ConfigError(
                f"config key '{key}' must be a non-empty list of distinct metrics "
                f"from {list(FAIRNESS_METRICS)}, got {value!r}"
            )
        return tuple(value)

    @staticmethod
    def _parse_attributes(key: str, value: Mapping[str, Any]) -> Mapping[str, GroupAttribute]:
        out = {}
        for name, raw in value.items():
            try:
                out[str(name)] = _section(GroupAttribute, raw, f"{key}.{name}")
            except ConfigError as exc:
                message = str(exc)
                if not message.startswith(("config key", "unknown config key")):
                    message = f"config key '{key}.{name}': {message}"
                raise ConfigError(message) from None
        return MappingProxyType(out)


@dataclass(frozen=True)
class DeliverySettings:
    """``delivery``: the delivery metrics (README, *Delivery metrics*)."""

    window_days: float = _spec(28.0, lambda v: v > 0, "positive")
    # A deployment followed by a failed pipeline run within this many hours failed.
    failure_window_hours: float = _spec(24.0, lambda v: v >= 0, "zero or more")


PATH_DEFAULTS = {
    "input_folder_path": "data/practicedata",
    "output_folder_path": "data/ingesteddata",
    "test_data_path": "data/testdata",
    "output_model_path": "models/practicemodels",
    "prod_deployment_path": "models/production_deployment",
}
PATH_KEYS = tuple(PATH_DEFAULTS)


@dataclass(frozen=True)
class Settings:
    """Validated configuration: the keys of ``config.json``, paths made absolute."""

    root: Path
    config_path: Path | None
    input_folder_path: Path
    output_folder_path: Path
    test_data_path: Path
    output_model_path: Path
    prod_deployment_path: Path
    database_url: str
    features: tuple[str, ...]
    target: str
    id_columns: tuple[str, ...]
    model: ModelSettings = field(default_factory=ModelSettings)
    thresholds: Thresholds = field(default_factory=Thresholds)
    policy: Policy = field(default_factory=Policy)
    drift: DriftOptions = field(default_factory=DriftOptions)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    performance_estimation: PerformanceEstimationSettings = field(
        default_factory=PerformanceEstimationSettings
    )
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    model_card: ModelCardSettings = field(default_factory=ModelCardSettings)
    ingestion: IngestionSettings = field(default_factory=IngestionSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    fairness: FairnessSettings = field(default_factory=FairnessSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    api_token: str | None = field(default=None, repr=False)
    feedback_token: str | None = field(default=None, repr=False)

    # -- derived file locations, one place for every file name ---------------------
    @property
    def columns(self) -> tuple[str, ...]:
        """Every column an input file must have, in order."""
        return (*self.id_columns, *self.features, self.target)

    @property
    def finaldata_file(self) -> Path:
        return self.output_folder_path / "finaldata.csv"

    @property
    def ingested_record_file(self) -> Path:
        return self.output_folder_path / "ingestedfiles.txt"

    @property
    def profile_file(self) -> Path:
        return self.output_folder_path / "finaldata.profile.json"

    @property
    def rejects_folder(self) -> Path:
        """Where quarantined rows go (``ingestion.bad_rows: "quarantine"``)."""
        return self.output_folder_path / "rejects"

    @property
    def test_data_file(self) -> Path:
        return self.test_data_path / "testdata.csv"

    @property
    def requirements_file(self) -> Path:
        """The ``requirements.txt`` the dependency check reads: the one beside the config
        file, else the service's own (a config kept outside the project has none)."""
        beside = self.root / "requirements.txt"
        return beside if beside.is_file() else PROJECT_ROOT / "requirements.txt"

    @property
    def data_folders(self) -> tuple[Path, ...]:
        """Folders an API client may name a dataset in."""
        return (self.input_folder_path, self.output_folder_path, self.test_data_path)

    def relative(self, path: Path) -> str:
        """``path`` relative to ``root`` if it is inside it, else as it is."""
        return str(path.relative_to(self.root) if path.is_relative_to(self.root) else path)

    def public(self, path: Path) -> str:
        """``path`` as an API answer may name it: relative to ``root`` if it is inside it,
        else only its name (no answer names an absolute server path)."""
        path = Path(path)
        if not path.is_absolute() or path.is_relative_to(self.root):
            return str(path.relative_to(self.root) if path.is_absolute() else path)
        return path.name

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a validated copy with some top-level keys replaced."""
        raw = {key: getattr(self, key) for key in DEFAULTS}
        for key in PATH_KEYS:
            raw[key] = str(raw[key])
        raw["features"], raw["id_columns"] = list(self.features), list(self.id_columns)
        raw.update(changes)
        return settings_from_mapping(
            raw,
            root=self.root,
            config_path=self.config_path,
            api_token=self.api_token,
            feedback_token=self.feedback_token,
        )


SECTIONS: dict[str, type[Any]] = {  # the fields of Settings that are dataclasses
    name: kind
    for name, kind in get_type_hints(Settings).items()
    if isinstance(kind, type) and dataclasses.is_dataclass(kind)
}
DEFAULTS: dict[str, Any] = {
    **PATH_DEFAULTS,
    "database_url": "sqlite:///models/monitoring.db",
    "features": ["lastmonth_activity", "lastyear_activity", "number_of_employees"],
    "target": "exited",
    "id_columns": ["corporation"],
    **{name: {} for name in SECTIONS},
}


def _str_list(
    raw: Mapping[str, Any], key: str, *, allow_empty: bool, name: str | None = None
) -> tuple[str, ...]:
    value, name = raw[key], name or key
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config key '{name}' must be a list of column names, got {value!r}")
    if not value and not allow_empty:
        raise ConfigError(f"config key '{name}' must name at least one column")
    if len(set(value)) != len(value):
        raise ConfigError(f"config key '{name}' lists a column twice: {value!r}")
    return tuple(value)


def _database_url(value: Any, root: Path) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(
            f"config key 'database_url' must be an SQLAlchemy URL such as "
            f"'sqlite:///models/monitoring.db', got {value!r}"
        )
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        relative = value[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return "sqlite:///" + str((root / relative).resolve())
    return normalize_url(value)  # postgres:// (Heroku) and postgresql:// use psycopg 3


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    root: Path,
    config_path: Path | None,
    api_token: str | None,
    feedback_token: str | None = None,
) -> Settings:
    """Validate a mapping of config keys (missing ones take their defaults).

    Relative paths are resolved against ``root``; :class:`ConfigError` names the
    first invalid key and its value.
    """
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'; expected one of {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **raw}
    root = root.resolve()
    paths: dict[str, Any] = {}
    for key in PATH_KEYS:
        value = merged[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"config key '{key}' must be a non-empty path string, got {value!r}")
        paths[key] = (root / value).resolve()
    features = _str_list(merged, "features", allow_empty=False)
    id_columns = _str_list(merged, "id_columns", allow_empty=True)
    target = merged["target"]
    if not isinstance(target, str) or not target:
        raise ConfigError(f"config key 'target' must be a column name, got {target!r}")
    overlap = (set(features) & set(id_columns)) | ({target} & (set(features) | set(id_columns)))
    if overlap:
        raise ConfigError(
            f"config keys 'features', 'id_columns' and 'target' overlap on {sorted(overlap)}"
        )
    sections: dict[str, Any] = {
        name: _section(cls, merged[name], name) for name, cls in SECTIONS.items()
    }
    unknown = [name for name in sections["policy"].key_features if name not in features]
    if unknown:
        raise ConfigError(
            f"config key 'policy.key_features' names columns that are not features: {unknown}"
        )
    journals = str((root / sections["capture"].journal_path).resolve())
    sections["capture"] = dataclasses.replace(sections["capture"], journal_path=journals)
    return Settings(
        root=root,
        config_path=config_path,
        database_url=_database_url(merged["database_url"], root),
        features=features,
        target=target,
        id_columns=id_columns,
        api_token=api_token,
        feedback_token=feedback_token,
        **paths,
        **sections,
    )


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in DEFAULTS:
        text = env.get(f"MONITORING_{key.upper()}")
        if text is None:
            continue
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
        if key in PATH_KEYS or key == "database_url":
            out[key] = text
    if env.get("DATABASE_URL"):
        out["database_url"] = env["DATABASE_URL"]
    return out


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the config file, apply the overrides of ``env`` (default ``os.environ``)
    and then ``overrides``, and validate; :class:`ConfigError` if the file is
    missing, not JSON, or a key is invalid.
    """
    env = os.environ if env is None else env
    if path is None:
        path = env.get("MONITORING_CONFIG") or PROJECT_ROOT / "config.json"
    config_path = Path(path).expanduser().resolve()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {config_path} does not exist; set MONITORING_CONFIG to a JSON config file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file {config_path} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path} must hold a JSON object")
    raw.update(_env_overrides(env))
    if overrides:
        raw.update(overrides)
    return settings_from_mapping(
        raw,
        root=config_path.parent,
        config_path=config_path,
        api_token=env.get("MONITORING_API_TOKEN") or None,
        feedback_token=env.get("MONITORING_FEEDBACK_TOKEN") or None,
    )
