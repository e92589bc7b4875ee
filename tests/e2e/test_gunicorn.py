"""End to end: the real app under gunicorn on loopback, driven by apicalls.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from monitoring.config import PROJECT_ROOT, Settings
from tests.helpers import free_port, metric_value, running_gunicorn

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(settings: Settings, deployed: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """gunicorn with 2 workers serving the deployed practice model."""
    with running_gunicorn(settings) as running:
        yield running


def test_apicalls_against_gunicorn(
    server: tuple[str, dict[str, str]], settings: Settings, deployed: dict[str, Any]
) -> None:
    url, env = server
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "apicalls.py"), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    report = json.loads((settings.output_model_path / "apireturns.json").read_text())
    calls = {c["endpoint"]: c for c in report["calls"]}
    assert set(calls) == {
        "/prediction",
        "/scoring",
        "/summarystats",
        "/diagnostics",
        "/drift",
        "/health",
    }
    assert all(c["status"] == 200 for c in calls.values())
    assert calls["/prediction"]["response"]["predictions"] == [0, 1, 1, 1, 1]
    assert calls["/scoring"]["response"]["model_score"] == pytest.approx(4 / 7)
    assert calls["/scoring"]["response"]["model_version"] == deployed["model_version"]
    assert calls["/summarystats"]["response"]["rows"] == 26
    assert calls["/health"]["response"]["model_version"] == deployed["model_version"]

    text = (settings.output_model_path / "apireturns.txt").read_text()
    assert f"API returns from {url}" in text
    assert "== POST /prediction -> 200 ==" in text
    assert "== GET /scoring -> 200 ==" in text
    assert '"model_score": 0.5714285714285714' in text


def test_gunicorn_runs_one_capture_importer_and_workers_only_journal(
    server: tuple[str, dict[str, str]], settings: Settings, store: Any
) -> None:
    """Captured predictions reach the database through the importer process."""
    import sqlite3
    import time
    import urllib.request

    url, _ = server
    body = json.dumps(
        {"data": [{"lastmonth_activity": 1, "lastyear_activity": 2, "number_of_employees": 3}] * 4}
    ).encode()
    row_ids = []
    for _ in range(20):
        request = urllib.request.Request(
            f"{url}/prediction", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            row_ids += json.loads(response.read())["row_ids"]
    ours = f"MONITORING_CONFIG={settings.config_path}".encode()
    importers = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and b"capture-importer" in _read(p / "cmdline")
        and ours in _read(p / "environ").split(b"\0")
    ]
    assert len(importers) == 1
    database = store.engine.url.database
    deadline = time.monotonic() + 10
    while True:  # read the table directly: nothing here imports
        with sqlite3.connect(database) as connection:
            stored = [
                r[0] for r in connection.execute("SELECT id FROM captured_predictions ORDER BY id")
            ]
        if stored == sorted(row_ids):
            break
        assert time.monotonic() < deadline, f"{len(stored)} of {len(row_ids)} rows imported"
        time.sleep(0.05)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def test_apicalls_fails_when_the_api_is_down(settings: Settings, deployed: dict[str, Any]) -> None:
    env = {**os.environ, "MONITORING_CONFIG": str(settings.config_path)}
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "apicalls.py"), f"http://127.0.0.1:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "failed: POST /prediction (None)" in done.stderr
    assert (settings.output_model_path / "apireturns.txt").is_file()


ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]


@pytest.fixture
def gunicorn_server(
    settings: Settings, deployed: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """gunicorn with 2 workers and a given PROMETHEUS_MULTIPROC_DIR (stale file in it)."""
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_99999999.db").write_bytes(b"stale")  # emptied at server start
    # One open connection per worker: a worker holding one takes no other, so the
    # requests below reach both workers (threaded workers would otherwise let one
    # worker take them all, and there would be nothing to add up).
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom), "GUNICORN_WORKER_CONNECTIONS": "1"}
    with running_gunicorn(settings, **env) as (url, _):
        yield url, prom


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields.get("PPid", "0").strip()) == pid:
            out.append((int(status.parent.name), cmdline))
    return out


def gunicorn_workers() -> set[str]:
    """Pids of the workers of the gunicorn this test process started."""
    masters = [pid for pid, cmd in _children(os.getpid()) if "gunicorn" in cmd]
    return {str(pid) for m in masters for pid, cmd in _children(m) if "gunicorn" in cmd}


@pytest.mark.e2e
def test_metrics_add_up_across_gunicorn_workers(
    gunicorn_server: tuple[str, Path], deployed: dict[str, Any]
) -> None:
    (url, prom), version = gunicorn_server, deployed["model_version"]

    def writers() -> set[str]:
        """The gunicorn workers that wrote counters (the capture importer writes some too)."""
        files = {p.stem.split("_")[-1] for p in prom.glob("counter_*.db")}
        return files & gunicorn_workers()

    def health(_: int) -> int:
        response = requests.get(url + "/health", headers={"Connection": "close"}, timeout=30)
        return response.status_code

    # The second worker may still be importing the app: poke until both have counted.
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=4) as pool:
        while len(writers()) < 2 and time.monotonic() < deadline:
            list(pool.map(health, range(4)))
    assert len(writers()) == 2, writers()
    before = requests.get(url + "/metrics", timeout=10).text
    pids = set()

    def predict(_: int) -> int:
        # A new connection each time, from 4 threads at once: while one worker holds
        # its one connection the other accepts, so both workers count.
        response = requests.post(
            url + "/prediction", json={"data": ROWS}, headers={"Connection": "close"}, timeout=30
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(predict, range(12))) == [200] * 12
    for _ in range(4):
        health = requests.get(url + "/health", headers={"Connection": "close"}, timeout=10)
        pids.add(health.headers.get("X-Request-ID"))
    text = requests.get(url + "/metrics", timeout=10).text
    ok = {"endpoint": "/prediction", "method": "POST", "status": "200"}
    assert metric_value(text, "monitoring_http_requests_total", **ok) == 12
    assert metric_value(text, "monitoring_http_request_duration_seconds_count", **ok) == 12
    assert metric_value(text, "monitoring_predictions_total", model_version=version) == 24
    assert metric_value(text, "monitoring_predicted_positive_total", model_version=version) == 12
    health_ok = {"endpoint": "/health", "method": "GET", "status": "200"}
    health_delta = metric_value(text, "monitoring_http_requests_total", **health_ok) - metric_value(
        before, "monitoring_http_requests_total", **health_ok
    )
    assert health_delta == 4
    assert metric_value(text, "monitoring_model_info", model_version=version) == 1
    assert len(pids) == 4  # every response carried its own request id
    # Both workers counted (one file per worker pid), the stale file is gone, and
    # the sums above are across them.
    assert len(writers()) == 2 and not (prom / "counter_99999999.db").exists()
