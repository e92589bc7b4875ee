"""One settings object for the whole service.

``config.json`` is read once into a frozen :class:`Settings`. Every path in it is
resolved against the folder that holds the config file, never against the current
working directory, so cron, gunicorn and the tests all see the same folders.

Precedence, lowest first: defaults in code, the config file, environment variables.

- ``MONITORING_CONFIG`` picks the config file (default: ``config.json`` next to the
  project root).
- ``MONITORING_<KEY>`` overrides the top-level key ``<key>`` (for example
  ``MONITORING_INPUT_FOLDER_PATH=data/sourcedata``). Values are parsed as JSON when
  they parse (numbers, lists, objects), otherwise taken as strings.
- ``DATABASE_URL`` overrides ``database_url``.
- ``MONITORING_API_TOKEN`` (never in the file) is the bearer token required by
  state-changing endpoints.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import sklearn
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from monitoring.exceptions import ConfigError

# -- the drift section ---------------------------------------------------------
# Drift methods accepted by DriftOptions (globally and per column).
METHODS: Final[tuple[str, ...]] = (
    "auto",
    "ks",
    "wasserstein",
    "psi",
    "chisquare",
    "jensenshannon",
)
# Methods that need numeric values.
NUMERIC_METHODS: Final[frozenset[str]] = frozenset({"ks", "wasserstein", "psi"})
# Methods that compare category frequencies.
CATEGORICAL_METHODS: Final[frozenset[str]] = frozenset({"chisquare", "jensenshannon"})
# Methods whose verdict is p_value < threshold (the others: >=).
P_VALUE_METHODS: Final[frozenset[str]] = frozenset({"ks", "chisquare"})
# Column kinds.
KINDS: Final[tuple[str, ...]] = ("numeric", "categorical")
_OPTION_KEYS: Final[tuple[str, ...]] = (
    "method",
    "p_value_threshold",
    "distance_threshold",
    "psi_threshold",
    "large_reference_rows",
    "categorical_max_unique",
    "drift_share",
    "fdr",
    "fdr_alpha",
    "psi_bins",
    "columns",
)
_COLUMN_OPTION_KEYS: Final[tuple[str, ...]] = ("method", "threshold", "kind")


@dataclass(frozen=True)
class ColumnOptions:
    """Per-column overrides of :class:`DriftOptions`.

    Attributes
    ----------
    method : str or None
        One of :data:`METHODS`; ``None`` keeps the global choice.
    threshold : float or None
        The method's threshold: a p-value (``ks``, ``chisquare``, drift when
        ``p < threshold``), a distance (``wasserstein``, ``jensenshannon``) or a
        PSI (drift when ``>= threshold``).
    kind : str or None
        ``"numeric"`` or ``"categorical"`` instead of the dtype rule.
    """

    method: str | None = None
    threshold: float | None = None
    kind: str | None = None


def _check_number(
    value: object, key: str, *, low: float, high: float, low_open: bool, high_open: bool
) -> float:
    """Validate a finite number within an interval or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    out = float(value)
    too_low = out <= low if low_open else out < low
    too_high = out >= high if high_open else out > high
    if not math.isfinite(out) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        shown_high = "inf" if math.isinf(high) else f"{high:g}"
        raise ConfigError(f"{key} must be in {left}{low:g}, {shown_high}{right}, got {value!r}")
    return out


def _check_int(value: object, key: str, *, low: int) -> int:
    """Validate an integer ``>= low`` or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value!r}")
    return int(value)


def _check_choice(value: object, key: str, choices: Sequence[str]) -> str:
    """Validate one of ``choices`` or raise ConfigError."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_keys(mapping: Mapping[Any, Any], prefix: str, known: Sequence[str]) -> None:
    """Reject keys not in ``known``, naming the first unknown one."""
    for key in mapping:
        if key not in known:
            raise ConfigError(f"{prefix}.{key} is not a known option (known: {', '.join(known)})")


@dataclass(frozen=True)
class DriftOptions:
    """Validated data-drift settings (the ``drift`` section of the config).

    Build it with :meth:`from_mapping`; the defaults follow Evidently.

    Attributes
    ----------
    method : str
        ``"auto"`` or a method of :data:`METHODS` for every column of the matching
        kind (a numeric method applies to numeric columns only and a categorical
        one to categorical columns only; the other kind keeps ``"auto"``).
    p_value_threshold : float
        Drift when ``p < p_value_threshold`` (KS, chi-square).
    distance_threshold : float
        Drift when ``distance >= distance_threshold`` (normed Wasserstein,
        Jensen-Shannon).
    psi_threshold : float
        Drift when ``psi >= psi_threshold``.
    large_reference_rows : int
        ``"auto"`` uses p-value tests up to this many reference rows, distances
        above.
    categorical_max_unique : int
        Integer-valued numeric columns with at most this many distinct reference
        values are categorical.
    drift_share : float
        The dataset drifts when ``drifted columns / columns >= drift_share``.
    fdr : bool
        Apply Benjamini-Hochberg to the p-value tests across columns and decide on
        the adjusted p-values.
    fdr_alpha : float
        Threshold of the adjusted p-values (unless a column sets its own).
    psi_bins : int
        Number of PSI quantile bins.
    columns : Mapping[str, ColumnOptions]
        Per-column overrides.
    """

    method: str = "auto"
    p_value_threshold: float = 0.05
    distance_threshold: float = 0.1
    psi_threshold: float = 0.2
    large_reference_rows: int = 1000
    categorical_max_unique: int = 10
    drift_share: float = 0.5
    fdr: bool = False
    fdr_alpha: float = 0.05
    psi_bins: int = 10
    columns: Mapping[str, ColumnOptions] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> DriftOptions:
        """Validate a config mapping and build the options.

        Parameters
        ----------
        data : Mapping or None
            The ``drift`` section; missing keys take their defaults, ``None`` gives
            all defaults.

        Returns
        -------
        DriftOptions

        Raises
        ------
        ConfigError
            Naming the offending key, e.g. ``drift.columns.x.method must be one of
            auto, ks, ..., got 'foo'``.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"drift must be a mapping, got {type(data).__name__}")
        _check_keys(data, "drift", _OPTION_KEYS)
        kwargs: dict[str, Any] = {}
        if "method" in data:
            kwargs["method"] = _check_choice(data["method"], "drift.method", METHODS)
        for key, low, high in (
            ("p_value_threshold", 0.0, 1.0),
            ("fdr_alpha", 0.0, 1.0),
        ):
            if key in data:
                kwargs[key] = _check_number(
                    data[key],
                    f"drift.{key}",
                    low=low,
                    high=high,
                    low_open=True,
                    high_open=True,
                )
        for key in ("distance_threshold", "psi_threshold"):
            if key in data:
                kwargs[key] = _check_number(
                    data[key],
                    f"drift.{key}",
                    low=0.0,
                    high=math.inf,
                    low_open=True,
                    high_open=True,
                )
        if "drift_share" in data:
            kwargs["drift_share"] = _check_number(
                data["drift_share"],
                "drift.drift_share",
                low=0.0,
                high=1.0,
                low_open=True,
                high_open=False,
            )
        for key, low in (
            ("large_reference_rows", 0),
            ("categorical_max_unique", 0),
            ("psi_bins", 2),
        ):
            if key in data:
                kwargs[key] = _check_int(data[key], f"drift.{key}", low=low)
        if "fdr" in data:
            if not isinstance(data["fdr"], bool):
                raise ConfigError(f"drift.fdr must be true or false, got {data['fdr']!r}")
            kwargs["fdr"] = data["fdr"]
        if "columns" in data:
            kwargs["columns"] = MappingProxyType(_parse_columns(data["columns"]))
        return cls(**kwargs)

    def column(self, name: str) -> ColumnOptions:
        """Overrides of column ``name`` (all ``None`` when it has none)."""
        return self.columns.get(name, _NO_OVERRIDE)


_NO_OVERRIDE: Final[ColumnOptions] = ColumnOptions()


def _parse_columns(raw: object) -> dict[str, ColumnOptions]:
    """Validate the ``drift.columns`` mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"drift.columns must be a mapping, got {type(raw).__name__}")
    out: dict[str, ColumnOptions] = {}
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"drift.columns keys must be column names, got {name!r}")
        prefix = f"drift.columns.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{prefix} must be a mapping, got {type(spec).__name__}")
        _check_keys(spec, prefix, _COLUMN_OPTION_KEYS)
        method = spec.get("method")
        if method is not None:
            method = _check_choice(method, f"{prefix}.method", METHODS)
        kind = spec.get("kind")
        if kind is not None:
            kind = _check_choice(kind, f"{prefix}.kind", KINDS)
        threshold = spec.get("threshold")
        if threshold is not None:
            p_test = method in P_VALUE_METHODS
            threshold = _check_number(
                threshold,
                f"{prefix}.threshold",
                low=0.0,
                high=1.0 if p_test else math.inf,
                low_open=True,
                high_open=True,
            )
        out[name] = ColumnOptions(method=method, threshold=threshold, kind=kind)
    return out


# -- the settings --------------------------------------------------------------
ESTIMATOR_CLASSES: dict[str, type[Any]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
}


def check_estimator(model_config: dict[str, Any]) -> None:
    """Check ``model.estimator`` and ``model.params`` against scikit-learn.

    Raises
    ------
    ConfigError
        If the estimator is unknown or ``model.params`` has a parameter it does
        not take (for example ``multi_class``, removed from ``LogisticRegression``
        in scikit-learn 1.8).
    """
    name = model_config.get("estimator", "logistic_regression")
    try:
        cls = ESTIMATOR_CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"config key 'model.estimator' must be one of {sorted(ESTIMATOR_CLASSES)}, got {name!r}"
        ) from None
    valid = set(cls().get_params())
    unknown = sorted(set(model_config.get("params") or {}) - valid)
    if unknown:
        raise ConfigError(
            f"config key 'model.params.{unknown[0]}' is not a parameter of "
            f"{cls.__name__} in scikit-learn {sklearn.__version__}"
        )


PROJECT_ROOT = Path(__file__).resolve().parent.parent

PATH_KEYS = (
    "input_folder_path",
    "output_folder_path",
    "test_data_path",
    "output_model_path",
    "prod_deployment_path",
)

DEFAULTS: dict[str, Any] = {
    "input_folder_path": "data/practicedata",
    "output_folder_path": "data/ingesteddata",
    "test_data_path": "data/testdata",
    "output_model_path": "models/practicemodels",
    "prod_deployment_path": "models/production_deployment",
    "database_url": "sqlite:///models/monitoring.db",
    "features": ["lastmonth_activity", "lastyear_activity", "number_of_employees"],
    "target": "exited",
    "id_columns": ["corporation"],
    "model": {
        "estimator": "logistic_regression",
        "params": {"C": 1.0, "solver": "liblinear", "random_state": 0},
    },
    "thresholds": {"model_drift_tolerance": 0.05, "gate_margin": 0.0},
    "policy": {
        "retrain_on_model_drift": True,
        "retrain_on_data_drift": True,
        "retrain_every_hours": None,
    },
    "drift": {},
    "diagnostics": {
        "timing_runs": 3,
        "dependency_cache_seconds": 86400,
        "dependency_deadline_seconds": 3.0,
    },
    "api": {
        "max_content_length": 16 * 1024 * 1024,
        "max_rows": 100_000,
        "require_token_for_reads": False,
        "allow_unauthenticated_admin": False,
    },
    "capture": {
        "enabled": True,
        "sample_rate": 1.0,
        "retention_days": 30,
        "min_labelled_rows": 30,
    },
    "model_card": {"quantile_buckets": 3, "slices": {}},
}

# Keys of the nested sections, with the Python types their values may take.
_NUMBER = (int, float)
_SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "model": {"estimator": (str,), "params": (dict,)},
    "thresholds": {"model_drift_tolerance": _NUMBER, "gate_margin": _NUMBER},
    "policy": {
        "retrain_on_model_drift": (bool,),
        "retrain_on_data_drift": (bool,),
        "retrain_every_hours": (*_NUMBER, type(None)),
    },
    "diagnostics": {
        "timing_runs": (int,),
        "dependency_cache_seconds": _NUMBER,
        "dependency_deadline_seconds": _NUMBER,
    },
    "api": {
        "max_content_length": (int,),
        "max_rows": (int,),
        "require_token_for_reads": (bool,),
        "allow_unauthenticated_admin": (bool,),
    },
    "capture": {
        "enabled": (bool,),
        "sample_rate": _NUMBER,
        "retention_days": _NUMBER,
        "min_labelled_rows": (int,),
    },
    "model_card": {"quantile_buckets": (int,), "slices": (dict,)},
}


@dataclass(frozen=True)
class Settings:
    """Validated configuration with every path made absolute.

    Attributes mirror the keys of ``config.json``; the five starter path keys are
    :class:`~pathlib.Path` objects resolved against ``root``.
    """

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
    model: dict[str, Any]
    thresholds: dict[str, float]
    policy: dict[str, Any]
    drift: dict[str, Any]
    diagnostics: dict[str, Any]
    api: dict[str, Any]
    api_token: str | None = field(default=None, repr=False)
    capture: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS["capture"]))
    model_card: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS["model_card"]))

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
    def test_data_file(self) -> Path:
        return self.test_data_path / "testdata.csv"

    @property
    def data_folders(self) -> tuple[Path, ...]:
        """Folders an API client may name a dataset in."""
        return (self.input_folder_path, self.output_folder_path, self.test_data_path)

    @cached_property
    def drift_options(self) -> DriftOptions:
        """The validated ``drift`` section (parsed once per settings object)."""
        return DriftOptions.from_mapping(self.drift)

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a validated copy with some top-level keys replaced."""
        raw = self.to_dict()
        raw.update(changes)
        return settings_from_mapping(
            raw, root=self.root, config_path=self.config_path, api_token=self.api_token
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able view of the settings (paths relative to ``root``)."""
        out: dict[str, Any] = {}
        for key in PATH_KEYS:
            path: Path = getattr(self, key)
            try:
                out[key] = str(path.relative_to(self.root))
            except ValueError:
                out[key] = str(path)
        for key in DEFAULTS:
            if key in PATH_KEYS:
                continue
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else copy.deepcopy(value)
        return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key != "params":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _str_list(raw: Mapping[str, Any], key: str, *, allow_empty: bool) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config key '{key}' must be a list of column names, got {value!r}")
    if not value and not allow_empty:
        raise ConfigError(f"config key '{key}' must name at least one column")
    if len(set(value)) != len(value):
        raise ConfigError(f"config key '{key}' lists a column twice: {value!r}")
    return tuple(value)


def _check_section(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{name}' must be an object, got {value!r}")
    allowed = _SECTIONS[name]
    for key, item in value.items():
        if key not in allowed:
            raise ConfigError(
                f"unknown config key '{name}.{key}'; expected one of {sorted(allowed)}"
            )
        types = allowed[key]
        if isinstance(item, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(item, types)
        if not ok:
            names = "/".join(t.__name__ for t in types)
            raise ConfigError(f"config key '{name}.{key}' must be {names}, got {item!r}")
    return value


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    root: Path,
    config_path: Path | None = None,
    api_token: str | None = None,
) -> Settings:
    """Validate a mapping of config keys and build :class:`Settings`.

    Parameters
    ----------
    raw : mapping
        Keys of ``config.json``; missing keys take their defaults.
    root : Path
        Folder relative paths are resolved against.
    config_path : Path, optional
        The file the mapping came from, for messages.
    api_token : str, optional
        Bearer token for state-changing endpoints.

    Raises
    ------
    ConfigError
        Naming the first invalid key.
    """
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'; expected one of {sorted(DEFAULTS)}")
    merged = _merge(DEFAULTS, raw)
    root = root.resolve()

    paths: dict[str, Path] = {}
    for key in PATH_KEYS:
        value = merged[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"config key '{key}' must be a non-empty path string, got {value!r}")
        paths[key] = (root / value).resolve()

    database_url = merged["database_url"]
    if not isinstance(database_url, str) or "://" not in database_url:
        raise ConfigError(
            f"config key 'database_url' must be an SQLAlchemy URL such as "
            f"'sqlite:///models/monitoring.db', got {database_url!r}"
        )
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        relative = database_url[len("sqlite:///") :]
        if relative and relative != ":memory:":
            database_url = "sqlite:///" + str((root / relative).resolve())

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

    sections = {name: _check_section(name, merged[name]) for name in _SECTIONS}

    check_estimator(sections["model"])
    for key in ("model_drift_tolerance", "gate_margin"):
        if not 0 <= sections["thresholds"][key] <= 1:
            raise ConfigError(f"config key 'thresholds.{key}' must be between 0 and 1")
    if sections["diagnostics"]["timing_runs"] < 1:
        raise ConfigError("config key 'diagnostics.timing_runs' must be at least 1")
    for key in ("max_content_length", "max_rows"):
        if sections["api"][key] < 1:
            raise ConfigError(f"config key 'api.{key}' must be a positive integer")
    if not 0 <= sections["capture"]["sample_rate"] <= 1:
        raise ConfigError("config key 'capture.sample_rate' must be between 0 and 1")
    if sections["capture"]["retention_days"] <= 0:
        raise ConfigError("config key 'capture.retention_days' must be positive")
    if sections["model_card"]["quantile_buckets"] < 1:
        raise ConfigError("config key 'model_card.quantile_buckets' must be at least 1")
    hours = sections["policy"]["retrain_every_hours"]
    if hours is not None and hours <= 0:
        raise ConfigError("config key 'policy.retrain_every_hours' must be positive or null")

    drift = merged["drift"]
    if not isinstance(drift, dict):
        raise ConfigError(f"config key 'drift' must be an object, got {drift!r}")
    DriftOptions.from_mapping(drift)

    return Settings(
        root=root,
        config_path=config_path,
        **paths,
        database_url=database_url,
        features=features,
        target=target,
        id_columns=id_columns,
        model=sections["model"],
        thresholds={k: float(v) for k, v in sections["thresholds"].items()},
        policy=sections["policy"],
        drift=drift,
        diagnostics=sections["diagnostics"],
        api=sections["api"],
        api_token=api_token,
        capture=sections["capture"],
        model_card=sections["model_card"],
    )


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in DEFAULTS:
        name = f"MONITORING_{key.upper()}"
        if name in env:
            text = env[name]
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
    """Read the config file, apply environment overrides and validate.

    Parameters
    ----------
    path : path-like, optional
        Config file. Defaults to ``$MONITORING_CONFIG`` or the project's
        ``config.json``.
    env : mapping, optional
        Environment to read overrides from (default ``os.environ``).
    overrides : mapping, optional
        Keys applied last (used by tests and the CLI).

    Raises
    ------
    ConfigError
        If the file is missing, is not JSON, or a key is invalid.
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
    token = env.get("MONITORING_API_TOKEN") or None
    return settings_from_mapping(
        raw, root=config_path.parent, config_path=config_path, api_token=token
    )
