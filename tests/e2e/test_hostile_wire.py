"""Hostile bodies on the wire, against gunicorn: what the Flask test client cannot send
(a broken chunked encoding, a body cut short) and what needs a real worker's stack
(JSON nested 100,000 deep). Each answer is the service's JSON error shape."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from monitoring.config import Settings
from tests.conftest import write_config
from tests.helpers import running_gunicorn

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings: Callable[..., Settings], project: Path) -> Settings:
    """The test's settings, its store also written into the config file gunicorn reads."""
    settings = make_settings()
    write_config(project, database_url=settings.database_url)
    return settings


def _exchange(url: str, raw: bytes, *, half_close: bool = False) -> tuple[int, dict[str, Any]]:
    """Send ``raw`` on a new connection; the status and JSON body of the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(raw)
        if half_close:  # the client sends no more: the body ends short
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def _request(body: bytes, *headers: str) -> bytes:
    lines = ["POST /prediction HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("raw", "half_close", "message"),
    [
        pytest.param(
            _request(
                b"zz\r\nabc\r\n0\r\n\r\n", "Content-Type: text/csv", "Transfer-Encoding: chunked"
            ),
            False,
            "request body could not be read: Invalid chunk size",
            id="chunk-size-zz",
        ),
        pytest.param(
            _request(b"lastmonth_activity,", "Content-Type: text/csv", "Content-Length: 1000"),
            True,
            "request body ended before its Content-Length (1000 bytes)",
            id="body-shorter-than-content-length",
        ),
        pytest.param(
            _request(
                b"[" * 100_000 + b"]" * 100_000,
                "Content-Type: application/json",
                "Content-Length: 200000",
            ),
            False,
            "request body: JSON nested too deeply",
            id="json-nested-100000-deep",
        ),
    ],
)
def test_hostile_bodies_under_gunicorn_are_json_400s(
    settings: Settings, deployed: dict[str, Any], raw: bytes, half_close: bool, message: str
) -> None:
    with running_gunicorn(settings) as (url, _env):
        status, body = _exchange(url, raw, half_close=half_close)
        assert (status, body["status"], body["error"]) == (400, 400, "Bad Request"), body
        assert message in body["message"], body
        # the worker that answered is fine: the next request is served
        csv = b"lastmonth_activity,lastyear_activity,number_of_employees\n1,2,3\n"
        ok, answer = _exchange(
            url, _request(csv, "Content-Type: text/csv", f"Content-Length: {len(csv)}")
        )
        assert ok == 200 and answer["n_rows"] == 1
