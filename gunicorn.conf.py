"""gunicorn settings; every value can be overridden from the environment."""

import os

# Heroku and most PaaS give the port in $PORT; containers set HOST=0.0.0.0.
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threaded workers: a connection that sends nothing waits in the worker's poller, not
# in a thread, and a slow client holds one thread of many, never the whole worker (the
# sync worker was held by two idle sockets until its timeout killed it). Behind a
# buffering proxy (the Compose file's nginx) fewer threads would do.
worker_class = "monitoring.web.worker.HeaderBufferingWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # a stuck worker is restarted
graceful_timeout = 30
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Bounds on request framing; the body size limit is api.max_content_length.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Logs to stdout/stderr for docker logs / heroku logs.
# The app writes one JSON line per request (with its request id) to stdout, so
# gunicorn's plain-text access log is off unless GUNICORN_ACCESSLOG names a target.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# Prometheus metrics across workers (monitoring/web/metrics.py): every worker
# writes its counters to files in PROMETHEUS_MULTIPROC_DIR and /metrics sums them.
# The folder must be empty at each server start, so it is made fresh here (or a
# folder given in the environment is emptied); dead workers are marked so their
# live gauges disappear.

_created_dirs: list[str] = []


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    import shutil
    import tempfile

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)
    else:
        folder = tempfile.mkdtemp(prefix="monitoring-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        _created_dirs.append(folder)  # ours: removed on exit


# Captured predictions (monitoring/capture/): workers append them to host-local journals,
# whatever the store; one importer process, started here beside the workers, moves
# them into the record store (SQLite or PostgreSQL), so no worker spends request time
# on it, and waits while the store is unreachable. If it is not running the workers
# import for themselves.
_importer: list = []


def when_ready(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    import subprocess
    import sys

    command = [sys.executable, "-m", "monitoring", "capture-importer"]
    _importer.append(subprocess.Popen([*command, "--parent-pid", str(os.getpid())]))


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    import shutil
    import subprocess

    for process in _importer:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # starved at idle priority: an import is atomic
            process.kill()
            process.wait()
    for folder in _created_dirs:
        shutil.rmtree(folder, ignore_errors=True)


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
