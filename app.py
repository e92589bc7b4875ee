"""Flask application factory for the model-monitoring API.

Run it with gunicorn (``gunicorn -c gunicorn.conf.py wsgi:app``); never with the
Flask debug server on a public address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from monitoring.config import Settings, load_settings


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
    # monitoring.admin, so a refused request gets a request id, a count and a log line.
    register_observability(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_options_json(app)
    configure_logger(app)
    return app


def configure_app(app: Flask, settings: Settings, test_config: Mapping[str, Any] | None) -> None:
    """Request limits and JSON behaviour from the settings."""
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.api["max_content_length"],
        MAX_ROWS=settings.api["max_rows"],
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.from_mapping(test_config)


def register_extensions(app: Flask, settings: Settings) -> None:
    """One :class:`~monitoring.service.Monitor` per process (per gunicorn worker)."""
    from monitoring.service import Monitor

    app.extensions["monitor"] = Monitor(settings)


def register_blueprints(app: Flask) -> None:
    """The API routes."""
    from monitoring.api import bp

    app.register_blueprint(bp)
    from monitoring import admin, openapi

    app.register_blueprint(admin.bp)
    app.register_blueprint(openapi.bp)


def register_options_json(app: Flask) -> None:
    """OPTIONS answers are JSON like everything else."""
    from monitoring.api import register_options_json as register

    register(app)


def register_errorhandlers(app: Flask) -> None:
    """JSON errors for everything."""
    from monitoring.api import register_errorhandlers as register

    register(app)


def register_observability(app: Flask) -> None:
    """Request ids, JSON logs, Prometheus metrics, /metrics, /feedback, /dashboard."""
    from monitoring.observability import init_app

    init_app(app)


def configure_logger(app: Flask) -> None:
    """Log to stderr (gunicorn collects it) at INFO unless testing."""
    if not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
