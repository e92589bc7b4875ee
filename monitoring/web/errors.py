"""One JSON error shape for every response of the API, and JSON OPTIONS answers::

{"error": "<HTTP reason phrase>", "message": "<what was wrong>", "status": <code>}
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from monitoring.exceptions import MonitoringError, StoreUnavailableError
from monitoring.storage.engine import is_corrupt

STORE_DOWN = "the record store cannot be reached; try again shortly"
STORE_CORRUPT = "the record store's database is damaged; it must be restored (see the server log)"


def error_response(status: int, message: str, headers: Any = None) -> Any:
    """The one JSON error shape of the API, with the ``(name, value)`` ``headers``."""
    body = {"error": HTTP_STATUS_CODES.get(status, "Error"), "message": message, "status": status}
    response = jsonify(body)
    response.status_code = status
    for key, value in headers or ():
        if key.lower() not in ("content-type", "content-length"):
            response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    """Map our exceptions and every HTTP error to the JSON error shape; OPTIONS to JSON."""

    @app.after_request
    def _options_json(response: Any) -> Any:
        # Flask answers OPTIONS from the URL map without running the view, so a CORS
        # preflight cannot trigger anything; only the body changes: {"allow": [...]}.
        if request.method == "OPTIONS" and response.status_code == 200 and not response.data:
            response.set_data(json.dumps({"allow": sorted(response.allow)}))
            response.mimetype = "application/json"
        return response

    @app.errorhandler(MonitoringError)
    def _monitoring_error(exc: MonitoringError) -> Any:
        if exc.status_code >= 500:
            app.logger.error("request failed: %s", exc.message)
        if exc.status_code == 500:  # details (server paths, checksums) stay in the log
            return error_response(500, "internal error; see the server log")
        if isinstance(exc, StoreUnavailableError):  # its URL names a server: log only
            return error_response(503, STORE_DOWN)
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = exc.description or HTTP_STATUS_CODES.get(status, "")
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than the limit of {limit} bytes"
        if isinstance(exc, ClientDisconnected):
            message = (
                f"request body ended before its Content-Length ({request.content_length} bytes)"
            )
        if status == 405:
            allowed = exc.get_response().headers.get("Allow", "")
            message = f"method {request.method} is not allowed here; allowed: {allowed}"
        return error_response(status, message, exc.get_response().headers)

    @app.errorhandler(DBAPIError)
    def _store_error(exc: DBAPIError) -> Any:
        # The store went away mid-request, or its file is damaged: say which (the URL
        # and driver detail stay in the log).
        app.logger.error("record store error: %s", (str(exc.orig or exc).splitlines() or [""])[0])
        return error_response(503, STORE_CORRUPT if is_corrupt(exc) else STORE_DOWN)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return error_response(500, "internal error; see the server log")
