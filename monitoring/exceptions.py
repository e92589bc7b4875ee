"""Exceptions raised by the monitoring package.

Every exception carries the HTTP status it maps to (``status_code``, given as a class
keyword), so the API turns any of them into one JSON error shape without a table.
"""

from __future__ import annotations

from typing import Any


class MonitoringError(Exception):
    """Base class of every error this package raises on purpose."""

    status_code = 500

    def __init_subclass__(cls, *, status_code: int, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status_code = status_code

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(MonitoringError, ValueError, status_code=500):
    """The configuration file or an environment override is invalid."""


class DataValidationError(MonitoringError, ValueError, status_code=422):
    """Input data has missing/extra columns, wrong types or non-finite values."""


class BadRequestError(MonitoringError, ValueError, status_code=400):
    """A request body or parameter cannot be parsed."""


class UnsupportedMediaTypeError(MonitoringError, ValueError, status_code=415):
    """A request body has a content type the endpoint does not accept."""


class ForbiddenPathError(MonitoringError, PermissionError, status_code=403):
    """A path points outside the configured data folders."""


class NotFoundError(MonitoringError, LookupError, status_code=404):
    """A file, version or record that was asked for does not exist."""


class MissingArtifactError(MonitoringError, FileNotFoundError, status_code=503):
    """A pipeline step needs an artifact an earlier step has not produced yet."""


class NotDeployedError(MissingArtifactError, status_code=503):
    """No model is deployed yet."""


class IntegrityError(MonitoringError, RuntimeError, status_code=500):
    """An artifact failed its checksum or could not be loaded."""


class ModelUnavailableError(MonitoringError, status_code=503):
    """The live model cannot be served: its artifact failed its checks (and no earlier
    good version is loaded to serve instead)."""


class AlreadyRunningError(MonitoringError, RuntimeError, status_code=409):
    """Another pipeline run holds the lock."""


class NotFittedError(MonitoringError, ValueError, AttributeError, status_code=500):
    """A :class:`~monitoring.drift.ReferenceProfile` was used before it was fitted."""


class UnknownIdsError(MonitoringError, status_code=404):
    """Feedback names request ids or row ids that were never captured."""


class RowLimitError(MonitoringError, status_code=413):
    """A request has more rows than ``api.max_rows``."""


class ColumnLimitError(MonitoringError, status_code=413):
    """A request has more columns than ``api.max_columns``."""


class StoreUnavailableError(MonitoringError, ConnectionError, status_code=503):
    """The record store cannot be reached."""
