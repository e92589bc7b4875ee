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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.exceptions import ConfigError

if TYPE_CHECKING:
    from monitoring.drift import DriftOptions

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
        from monitoring.drift import DriftOptions

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
    from monitoring.model import build_estimator  # checks estimator name and params

    build_estimator(sections["model"])
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
    from monitoring.drift import DriftOptions  # validates every drift key

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
