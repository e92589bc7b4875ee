"""Exceptions raised by the monitoring package.

Every exception carries the HTTP status it maps to, so the API turns any of them
into one JSON error shape without a lookup table of its own.
"""

from __future__ import annotations


class MonitoringError(Exception):
    """Base class of every error this package raises on purpose."""

    status_code = 500

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(MonitoringError, ValueError):
    """The configuration file or an environment override is invalid."""

    status_code = 500


class DataValidationError(MonitoringError, ValueError):
    """Input data has missing/extra columns, wrong types or non-finite values."""

    status_code = 422


class BadRequestError(MonitoringError, ValueError):
    """A request body or parameter cannot be parsed."""

    status_code = 400


class UnsupportedMediaTypeError(MonitoringError, ValueError):
    """A request body has a content type the endpoint does not accept."""

    status_code = 415


class ForbiddenPathError(MonitoringError, PermissionError):
    """A path points outside the configured data folders."""

    status_code = 403


class NotFoundError(MonitoringError, LookupError):
    """A file, version or record that was asked for does not exist."""

    status_code = 404


class MissingArtifactError(MonitoringError, FileNotFoundError):
    """A pipeline step needs an artifact an earlier step has not produced yet."""

    status_code = 503


class NotDeployedError(MissingArtifactError):
    """No model is deployed yet."""

    status_code = 503


class IntegrityError(MonitoringError, RuntimeError):
    """An artifact failed its checksum or could not be loaded."""

    status_code = 500


class AlreadyRunningError(MonitoringError, RuntimeError):
    """Another pipeline run holds the lock."""

    status_code = 409


class NotFittedError(MonitoringError, ValueError, AttributeError):
    """A :class:`~monitoring.drift.ReferenceProfile` was used before it was fitted."""

    status_code = 500


class UnknownIdsError(MonitoringError):
    """Feedback names request ids or row ids that were never captured."""

    status_code = 404


class RowLimitError(MonitoringError):
    """A request has more rows than ``api.max_rows``."""

    status_code = 413
