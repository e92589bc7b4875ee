"""Bounded load test: mixed traffic on every endpoint under gunicorn (2 workers),
with a pipeline run and redeploys in the middle. Loopback only; stops by itself.

Usage::

    .venv/bin/python benchmarks/load_test.py --seconds 60 [--threads 8] [--json out.json]

It builds a private copy of the project data in a temporary folder, deploys the
practice model, starts gunicorn on 127.0.0.1 with ``MONITORING_API_TOKEN`` set,
and sends weighted traffic from ``--threads`` clients to every GET endpoint in
``/openapi.json`` plus ``POST /prediction`` (JSON rows, CSV, dataset path) and
``POST /drift``. At 25 % of the run it drops new data into the input folder and
calls ``POST /run`` with ``force``; then ``POST /rollback`` and ``POST /deploy`` (a redeploy each).
It samples the RSS of the gunicorn workers every second.

Exit status 0 when every request succeeded (HTTP 200), the run deployed the new
model, predictions were served by both versions, and worker RSS stayed flat
(the mean of the last quarter within ``--rss-tolerance-mb`` of the first sample after
the admin calls); 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "load-test-token"
ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
]
CSV = (
    "lastmonth_activity,lastyear_activity,number_of_employees\n"
    + "".join(f"{i * 7 % 500},{i * 13 % 3000},{i % 120}\n" for i in range(50))
).encode()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_project(folder: Path) -> Path:
    """Copy the shipped data and config into ``folder``; deploy the practice model."""
    from monitoring.config import load_settings
    from monitoring.pipeline import bootstrap
    from monitoring.storage.store import Store

    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(ROOT / "data" / name, folder / "data" / name)
    shutil.copy(ROOT / "config.json", folder / "config.json")
    shutil.copy(ROOT / "requirements.txt", folder / "requirements.txt")
    settings = load_settings(folder / "config.json", env={})
    bootstrap(settings, Store(settings.database_url))
    return folder / "config.json"


def start_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """gunicorn with 2 workers on 127.0.0.1:port."""
    env = {
        **os.environ,
        "MONITORING_CONFIG": str(config),
        "MONITORING_API_TOKEN": TOKEN,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "MONITORING_PYPI_URL": "http://127.0.0.1:9",
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "--chdir",
                str(ROOT),
                "wsgi:app",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


def worker_rss_mb(master: int) -> dict[int, float]:
    """RSS in MB of each child of the gunicorn master (Linux /proc)."""
    out: dict[int, float] = {}
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return out
    for pid in map(int, children):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return out


def requests_mix(url: str, get_paths: list[str]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(weight, method, path, kwargs) of the traffic mix."""
    mix: list[tuple[int, str, str, dict[str, Any]]] = [
        (30, "POST", "/prediction", {"json": {"data": ROWS}}),
        (10, "POST", "/prediction", {"data": CSV, "headers": {"Content-Type": "text/csv"}}),
        (10, "POST", "/prediction", {"json": {"dataset_path": "testdata.csv"}}),
        (5, "POST", "/drift", {"data": CSV, "headers": {"Content-Type": "text/csv"}}),
    ]
    mix += [(3, "GET", path, {}) for path in get_paths]
    return mix


class Load:
    """Client threads sending the mix until ``stop`` is set, recording every outcome."""

    def __init__(self, url: str, mix: list[tuple[int, str, str, dict[str, Any]]]) -> None:
        self.url = url
        self.mix = mix
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self.latencies: dict[str, list[float]] = {}
        self.versions: Counter[str] = Counter()

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        weights = [w for w, *_ in self.mix]
        session = requests.Session()
        while not self.stop.is_set():
            _, method, path, kwargs = rng.choices(self.mix, weights)[0]
            started = time.perf_counter()
            try:
                response = session.request(method, self.url + path, timeout=60, **kwargs)
                status = response.status_code
            except requests.RequestException as exc:
                status, response = 0, None
                detail = f"{method} {path}: {type(exc).__name__}"
            elapsed = time.perf_counter() - started
            key = f"{method} {path}"
            with self.lock:
                self.statuses[f"{key} {status}"] += 1
                self.latencies.setdefault(key, []).append(elapsed)
                if status != 200:
                    detail = (
                        f"{key} -> {status}: {response.text[:200]}"
                        if response is not None
                        else detail
                    )
                    self.failures.append(detail)
                elif path == "/prediction" and response is not None:
                    self.versions[response.json()["model_version"]] += 1
        session.close()


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(
        url + path, json=body or {}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300
    )
    return {"status": response.status_code, "body": response.json()}


def run(seconds: float, threads: int, rss_tolerance_mb: float) -> dict[str, Any]:
    """Run the load test; return the summary."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        folder = Path(tmp)
        config = make_project(folder)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(config, port, folder / "gunicorn.log")
        try:
            wait_until_up(url, server)
            spec = requests.get(url + "/openapi.json", timeout=10).json()
            get_paths = [p for p, ops in spec["paths"].items() if "get" in ops and "{" not in p]
            load = Load(url, requests_mix(url, get_paths))
            clients = [
                threading.Thread(target=load.client, args=(i,), daemon=True) for i in range(threads)
            ]
            started = time.monotonic()
            for thread in clients:
                thread.start()
            rss: list[tuple[float, float]] = []
            events: list[dict[str, Any]] = []
            pipeline_done = False
            settled = seconds  # when the admin calls are over (+1 s)
            while (now := time.monotonic() - started) < seconds:
                sizes = worker_rss_mb(server.pid)
                if sizes:
                    rss.append((now, sum(sizes.values())))
                if not pipeline_done and now >= 0.25 * seconds:
                    pipeline_done = True
                    for source in (folder / "data" / "sourcedata").iterdir():
                        shutil.copy(source, folder / "data" / "practicedata" / source.name)
                    for path, body in (
                        ("/run", {"force": True}),
                        ("/rollback", {}),
                        ("/deploy", {}),
                    ):
                        t0 = time.monotonic()
                        result = admin(url, path, body)
                        events.append(
                            {
                                "at_s": round(t0 - started, 1),
                                "call": f"POST {path}",
                                "status": result["status"],
                                "seconds": round(time.monotonic() - t0, 2),
                                "outcome": result["body"].get("outcome")
                                or result["body"].get("model_version")
                                or result["body"].get("message"),
                            }
                        )
                    settled = time.monotonic() - started + 1.0
                time.sleep(1.0)
            load.stop.set()
            for thread in clients:
                thread.join(timeout=90)
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=60)
    total = sum(load.statuses.values())
    # Flat memory: after the pipeline run and redeploys (which load a second model and
    # the report libraries once), the last quarter stays within tolerance of the
    # first sample taken once they are over.
    after = [r for t, r in rss if t >= settled]
    last = [r for t, r in rss if t >= 0.75 * elapsed]
    growth = (statistics.mean(last) - after[0]) if after and last else 0.0
    all_latency = sorted(x for xs in load.latencies.values() for x in xs)

    def pct(q: float) -> float:
        return round(1000 * all_latency[min(len(all_latency) - 1, int(q * len(all_latency)))], 1)

    ok_events = (
        len(events) == 3
        and all(e["status"] == 200 for e in events)
        and events[0]["outcome"] == "deployed"
    )
    summary = {
        "seconds": round(elapsed, 1),
        "threads": threads,
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "errors": len(load.failures),
        "first_errors": load.failures[:10],
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)}
        if all_latency
        else {},
        "by_endpoint": {
            k: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 1)}
            for k, v in sorted(load.latencies.items())
        },
        "admin_events": events,
        "prediction_versions": dict(load.versions),
        "worker_rss_mb": {
            "first": round(rss[0][1], 1) if rss else None,
            "after_redeploys": round(after[0], 1) if after else None,
            "last_quarter_mean": round(statistics.mean(last), 1) if last else None,
            "max": round(max(r for _, r in rss), 1) if rss else None,
            "growth": round(growth, 1),
            "tolerance": rss_tolerance_mb,
        },
    }
    summary["passed"] = bool(
        total > 0
        and not load.failures
        and ok_events
        and len(load.versions) >= 2
        and growth <= rss_tolerance_mb
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rss-tolerance-mb", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    summary = run(args.seconds, args.threads, args.rss_tolerance_mb)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
