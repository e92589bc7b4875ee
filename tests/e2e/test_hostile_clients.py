"""Hostile clients against gunicorn as shipped: idle and slow connections, label floods."""

from __future__ import annotations

import json
import random
import socket
import statistics
import string
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from monitoring.config import Settings
from tests.helpers import running_gunicorn

pytestmark = pytest.mark.e2e

ROWS = [{"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}]
IDLE_CONNECTIONS = 100
SLOW_CLIENTS = 20
SECONDS = 30.0


@pytest.fixture
def server(settings: Settings, deployed: dict[str, Any]) -> Iterator[str]:
    with running_gunicorn(settings) as (url, _env):
        yield url


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _slow_client(port: int, stop: threading.Event, sent: list[int], cut: list[int]) -> None:
    """Send request headers one byte a second until ``stop``; reconnect when cut off."""
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for byte in head:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    cut.append(1)  # the server closed the connection: start again
                    break
                sent.append(1)
                if stop.wait(1.0):
                    return


def _warm_up(url: str) -> None:
    """Load the model in both workers (each loads it on its first request)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: requests.get(url + "/health", timeout=30), range(16)))


def test_idle_and_slow_clients_do_not_hold_up_other_requests(server: str) -> None:
    port = _port(server)
    _warm_up(server)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE_CONNECTIONS)]
    stop, sent, cut = threading.Event(), [], []
    slow = [
        threading.Thread(target=_slow_client, args=(port, stop, sent, cut), daemon=True)
        for _ in range(SLOW_CLIENTS)
    ]
    for thread in slow:
        thread.start()
    latencies: dict[str, list[float]] = {"/health": [], "/prediction": []}
    statuses: list[int] = []
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline:
            for path in latencies:
                started = time.perf_counter()
                if path == "/health":
                    response = requests.get(server + path, timeout=30)
                else:
                    response = requests.post(server + path, json={"data": ROWS}, timeout=30)
                latencies[path].append(time.perf_counter() - started)
                statuses.append(response.status_code)
            time.sleep(0.02)
    finally:
        stop.set()
        for sock in idle:
            sock.close()
    assert set(statuses) == {200}
    assert len(sent) >= SLOW_CLIENTS * 25  # the slow clients kept sending meanwhile
    assert len(cut) >= SLOW_CLIENTS  # cut off once GUNICORN_HEADER_TIMEOUT (10 s) had passed
    for path, seconds in latencies.items():
        assert len(seconds) > 100, path
        p99 = statistics.quantiles(seconds, n=100)[98]
        assert p99 < 0.1, (path, p99, max(seconds))


def test_metrics_stay_small_after_requests_with_random_methods_and_paths(server: str) -> None:
    rng = random.Random(13)
    port = _port(server)
    letters = string.ascii_letters + string.digits
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        for _ in range(10_000):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 16)))
            path = "/" + "".join(rng.choices(letters + "/", k=rng.randint(1, 40)))
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            status = reader.readline()
            assert status.split()[1] in (b"404", b"405"), status
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
    text = requests.get(server + "/metrics", timeout=10).content
    assert len(text) < 100_000, len(text)
    assert b'method="other"' in text


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


# What gunicorn refuses before the app sees a request: (request, status, reason).
GUNICORN_ERRORS = [
    (b"GARBAGE\r\n\r\n", 400, "Bad Request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long"),
    (
        b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
        431,
        "Request Header Fields Too Large",
    ),
    (
        b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "Request Header Fields Too Large",
    ),
    (b"GET /health HTTP/9.9\r\n\r\n", 400, "Bad Request"),
]


def test_errors_gunicorn_answers_itself_are_json(server: str) -> None:
    port = _port(server)
    for request_bytes, status, reason in GUNICORN_ERRORS:
        code, headers, body = _raw(port, request_bytes)
        assert (code, headers["Content-Type"]) == (status, "application/json"), request_bytes[:40]
        answer = json.loads(body)
        assert (answer["status"], answer["error"]) == (status, reason)
        assert answer["message"]
