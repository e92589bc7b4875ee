"""The shipped nginx configuration (deploy/nginx.conf) in front of gunicorn, as in Compose."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from monitoring.config import PROJECT_ROOT, Settings
from tests.helpers import free_port, running_gunicorn

pytestmark = pytest.mark.e2e

ROWS = [{"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}]


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        if os.environ.get("MONITORING_REQUIRE_NGINX"):
            pytest.fail("nginx is required here but not installed")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


@contextlib.contextmanager
def nginx(upstream: str, folder: Path) -> Iterator[str]:
    """nginx with the shipped configuration, proxying to ``upstream`` (host:port); its URL."""
    binary = nginx_binary()
    port = free_port()
    conf = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server web:8000;", f"server {upstream};")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/tmp/nginx", str(folder / "nginx"))
    (folder / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
def proxied(settings: Settings, deployed: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """gunicorn, and nginx with the shipped configuration in front of it: the proxy's URL."""
    with running_gunicorn(settings) as (upstream, _env):
        with nginx(upstream.removeprefix("http://"), tmp_path) as url:
            yield url


def test_requests_pass_through_and_its_own_errors_are_json(proxied: str) -> None:
    url = proxied
    response = requests.post(url + "/prediction", json={"data": ROWS}, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1
    assert response.headers["X-Request-ID"]

    too_large = requests.post(
        url + "/prediction",
        data=b"a" * (16 * 1024 * 1024 + 1),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert too_large.status_code == 413
    assert too_large.json() == {
        "error": "Request Entity Too Large",
        "message": "the body is larger than 16 MiB",
        "status": 413,
    }

    long_uri = requests.get(url + "/" + "a" * 40_000, timeout=10)
    assert (long_uri.status_code, long_uri.json()["error"]) == (414, "URI Too Long")
    big_header = requests.get(url + "/health", headers={"X-Big": "a" * 9000}, timeout=10)
    assert big_header.status_code == 400
    assert big_header.json() == {
        "error": "Bad Request",
        "message": "a header field is longer than 8 KiB",
        "status": 400,
    }


def test_a_slow_client_is_held_by_nginx_and_cut_after_the_header_timeout(proxied: str) -> None:
    url = proxied
    port = int(url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        assert requests.get(url + "/health", timeout=5).status_code == 200  # others unaffected
        answer = slow.recv(65536)  # nginx closes it after client_header_timeout
    assert 9 <= time.monotonic() - started < 20
    assert answer == b""  # a header timeout is closed without an answer (nginx's 408)


def test_an_unreachable_service_is_a_json_502(tmp_path: Path) -> None:
    with nginx(f"127.0.0.1:{free_port()}", tmp_path) as url:  # nothing listens there
        response = requests.get(url + "/health", timeout=10)
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "error": "Bad Gateway",
        "message": "the service is not answering; try again shortly",
        "status": 502,
    }
