"""Flask application factory for the model-monitoring API.

Run it with gunicorn (``gunicorn -c gunicorn.conf.py wsgi:app``); never with the
Flask debug server on a public address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from monitoring.cli import cli
from monitoring.config import Settings, load_settings
from monitoring.readmodels import ReadModels
from monitoring.web import admin, api, errors, openapi, ops
from monitoring.web.bodies import RequestJSONProvider, guard_body


def create_app(
    settings: Settings | None = None, test_config: Mapping[str, Any] | None = None
) -> Flask:
    """Build the app.

    Parameters
    ----------
    settings : Settings, optional
        Service settings; default: :func:`monitoring.config.load_settings` (reads
        ``$MONITORING_CONFIG`` or ``config.json``). An invalid config fails here,
        at start, with a message naming the key.
    test_config : mapping, optional
        Flask config overrides (``TESTING`` and the like).
    """
    settings = settings or load_settings()
    app = Flask(__name__)
    configure_app(app, settings, test_config)
    register_extensions(app, settings)
    # Before the blueprints: its request hook runs before the read-auth check of
    # the admin blueprint, so a refused request gets a request id, a count and a log line.
    ops.init_app(app)
    register_blueprints(app)
    errors.init_app(app)
    # `flask --app app monitoring COMMAND`: the same commands as `python -m monitoring`.
    app.cli.add_command(cli, "monitoring")
    return app


def configure_app(app: Flask, settings: Settings, test_config: Mapping[str, Any] | None) -> None:
    """Request limits and JSON behaviour from the settings."""
    app.config.from_mapping(
        DEBUG=False,  # even with FLASK_DEBUG in the environment: never the debugger in production
        MAX_CONTENT_LENGTH=settings.api.max_content_length,
        MAX_ROWS=settings.api.max_rows,
    )
    # JSON bodies nested too deeply or holding lone surrogates are a 400 naming that;
    # a body that cannot be read at all (a broken chunked encoding) is a 400 too.
    app.json = RequestJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.wsgi_app = guard_body(app.wsgi_app)  # type: ignore[method-assign]
    if test_config:
        app.config.from_mapping(test_config)


def register_extensions(app: Flask, settings: Settings) -> None:
    """One :class:`~monitoring.readmodels.ReadModels` per process (per gunicorn worker)."""
    app.extensions["readmodels"] = ReadModels(settings)


def register_blueprints(app: Flask) -> None:
    """The API routes."""
    for blueprint in (api.bp, admin.bp, openapi.bp):
        app.register_blueprint(blueprint)
