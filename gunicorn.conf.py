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
# import for themselves. A thread of the master supervises it: when it dies (killed,
# crashed) it is started again, after 1 s doubling to 30 s while it keeps dying
# (back to 1 s once it ran a minute). It prints {"stopped": true} when it stops on
# purpose (told to, or capture is off): then it is left stopped. Its exit status is not
# used, as gunicorn's master reaps every child of its own.
import threading  # noqa: E402 - with what it is for

_importer: list = []  # the importer process in use
_importer_lock = threading.Lock()
_importer_stop = threading.Event()
IMPORTER_BACKOFF = (1.0, 30.0, 60.0)  # first wait, longest wait, a run that resets it


def _start_importer():  # noqa: ANN202
    import subprocess
    import sys

    command = [sys.executable, "-m", "monitoring", "--json", "capture-importer"]
    return subprocess.Popen([*command, "--parent-pid", str(os.getpid())], stdout=subprocess.PIPE)


def _importer_stopped_on_purpose(process) -> bool:  # noqa: ANN001
    """Wait until ``process`` ends; whether it said it stopped on purpose."""
    import select

    said = b""
    fd = process.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the end of its output: it ended
            said = (said + chunk)[-4096:]
        elif process.poll() is not None:  # ended (a worker forked meanwhile may hold the pipe)
            break
    process.stdout.close()
    process.poll()
    return b'"stopped": true' in said


def _supervise_importer(server):  # noqa: ANN001, ANN202
    import time

    first, longest, reset = IMPORTER_BACKOFF
    wait = first
    while True:
        with _importer_lock:
            process = _importer[-1]
        started = time.monotonic()
        on_purpose = _importer_stopped_on_purpose(process)
        if _importer_stop.is_set():
            return
        if on_purpose:
            server.log.info("capture importer (pid %s) stopped; not restarted", process.pid)
            return
        wait = first if time.monotonic() - started > reset else wait
        server.log.error(
            "capture importer (pid %s) died; starting it again in %.0f s (the workers "
            "import meanwhile)",
            process.pid,
            wait,
        )
        while True:
            if _importer_stop.wait(wait):
                return
            wait = min(wait * 2, longest)
            try:
                with _importer_lock:
                    if _importer_stop.is_set():
                        return
                    _importer[-1] = _start_importer()
            except OSError as exc:  # no process can be made now (EAGAIN, ENOMEM)
                server.log.error("capture importer cannot be started: %s; trying again", exc)
                continue
            server.log.info("capture importer started again (pid %s)", _importer[-1].pid)
            break


def when_ready(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    with _importer_lock:
        _importer.append(_start_importer())
    threading.Thread(
        target=_supervise_importer, args=(server,), name="importer-supervisor", daemon=True
    ).start()


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn hook signature
    import shutil
    import subprocess

    with _importer_lock:
        _importer_stop.set()  # the supervisor starts no other
        processes = list(_importer)
    for process in processes:
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
