"""Request ids and structured JSON logs (outside tests: one JSON object per line, stdout).

Every request gets an id (its ``X-Request-ID`` when sane, else a new one), returned in the
``X-Request-ID`` header and put on every log line written while it is handled.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import sys
import time
from typing import Any

from flask import g, has_request_context, request

log = logging.getLogger("monitoring.request")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # the same header in the WSGI environ
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")  # whole value (fullmatch)


def request_id() -> str | None:
    """The current request's id, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


class _RequestIds:
    """Request ids of this process: a random 64-bit prefix (the UUID version nibble in
    it) and a counter from a random start (the RFC 4122 variant bits on it), drawn anew
    in a forked child; about a microsecond less than ``os.urandom`` per id."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        raw = bytearray(os.urandom(16))
        raw[6] = raw[6] & 0x0F | 0x40  # version 4
        self.prefix = raw[:8].hex()
        self.counter = itertools.count(int.from_bytes(raw[8:], "big") & _COUNTER_MASK)

    def new(self) -> str:
        return self.prefix + "%016x" % (_VARIANT | next(self.counter) & _COUNTER_MASK)


_COUNTER_MASK = (1 << 62) - 1
_VARIANT = 0b10 << 62  # RFC 4122
_IDS = _RequestIds()


def new_request_id() -> str:
    """A fresh request id, formatted as ``uuid.uuid4().hex`` (32 hex digits, version 4,
    RFC 4122 variant), unique within the process and, by its random prefix, across
    processes."""
    return _IDS.new()


def response_id() -> str:
    """An id of this response made by the server: the request's id when the server made
    it, else (the client sent ``X-Request-ID``) a new one, so that no client can take
    another's id. ``/prediction`` captures under it; the client's id stays theirs for logs."""
    current = request_id()
    if current is None or current == request.environ.get(_REQUEST_ID_ENVIRON):
        return new_request_id()
    return current


def incoming_request_id() -> str:
    """The request's sane ``X-Request-ID``, or a new id."""
    given = request.environ.get(_REQUEST_ID_ENVIRON)
    if given and _SANE_ID.fullmatch(given):
        return given
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Put ``request_id`` on every record (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
_ENCODER = json.JSONEncoder(default=str)  # json.dumps(..., default=str), built once


def _utc_time(created: float) -> str:
    """``created`` (seconds since the epoch) as ``2024-05-01T12:00:00.123Z``."""
    seconds = int(created)
    return f"{_utc_second(seconds)}.{int((created - seconds) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # Formatted once per second, not once per line.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(out)


class JsonLogHandler(logging.StreamHandler):
    """A stream handler with a :class:`JsonFormatter` and a :class:`RequestIdFilter`."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def write_fields(self, fields: dict[str, Any]) -> None:
        """Write a line built without a record (the access line) the way :meth:`emit` would:
        ``fields`` holds what :class:`JsonFormatter` would write, in its order."""
        self.acquire()
        try:
            self.stream.write(_ENCODER.encode(fields) + self.terminator)
            self.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": fields.get("message")}))
        finally:
            self.release()


def sole_json_handler(logger: logging.Logger, level: int) -> JsonLogHandler | None:
    """The one handler a ``level`` record of ``logger`` would reach, if a plain JSON one.

    Writing with its :meth:`JsonLogHandler.write_fields` then gives the same line as
    logging. Any other set-up (another handler, as tests and embedding applications
    add, a custom formatter or filter) gives None: log through ``logger`` then. The
    caller checks ``logger.isEnabledFor(level)``.
    """
    if logger.filters:
        return None
    found: JsonLogHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or type(handler) is not JsonLogHandler:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (
        found is None
        or level < found.level
        or type(found.formatter) is not JsonFormatter
        or any(type(f) is not RequestIdFilter for f in found.filters)
    ):
        return None
    return found


def configure_json_logging(level: int = logging.INFO) -> logging.Handler:
    """Send the root logger to stdout as JSON lines (idempotent); return the handler."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, JsonLogHandler):
            return handler
    handler = JsonLogHandler(sys.stdout)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def access_log(rid: str | None, method: str, path: str, status: int, seconds: float) -> None:
    """Log the access line ``"GET /health 200"`` with the fields as extras.

    Written straight to the JSON handler when that is the only place the line goes
    (production), otherwise through :data:`log`.
    """
    duration_ms = round(seconds * 1000, 3)
    handler = sole_json_handler(log, logging.INFO)
    if handler is None:
        extra = {"method": method, "path": path, "status": status, "duration_ms": duration_ms}
        log.info("%s %s %s", method, path, str(status), extra=extra)
        return
    handler.write_fields(
        {
            "time": _utc_time(time.time()),
            "level": "INFO",
            "logger": log.name,
            "message": f"{method} {path} {status}",
            "request_id": rid,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        }
    )
