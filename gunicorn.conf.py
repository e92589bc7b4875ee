"""gunicorn settings; every value can be overridden from the environment."""

import os

# Heroku and most PaaS give the port in $PORT; containers set HOST=0.0.0.0.
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # a stuck request is killed
graceful_timeout = 30
keepalive = 5
# Bounds on request framing; the body size limit is api.max_content_length.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Logs to stdout/stderr for docker logs / heroku logs.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
