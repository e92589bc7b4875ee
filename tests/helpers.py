"""Helpers shared by the tests: gunicorn on a free loopback port, test data, assertions."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import create_app
from monitoring.capture import ledger
from monitoring.config import PROJECT_ROOT, Settings
from monitoring.model.artifact import Artifact
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            requests.get(url + "/health", timeout=10)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


@contextlib.contextmanager
def running_gunicorn(settings: Settings, **extra_env: str) -> Iterator[tuple[str, dict[str, str]]]:
    """gunicorn with 2 workers serving ``settings``; yields (base URL, environment)."""
    port = free_port()
    env = {
        **os.environ,
        "MONITORING_CONFIG": str(settings.config_path),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "MONITORING_PYPI_URL": "http://127.0.0.1:9",  # the dependency check sees itself offline
        **extra_env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(PROJECT_ROOT / "gunicorn.conf.py"),
            "--chdir",
            str(PROJECT_ROOT),
            "wsgi:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, env
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- shared test data and assertions ------------------------------------------------
FEATURES = ["lastmonth_activity", "lastyear_activity", "number_of_employees"]
TOKEN = "s3cret-token-for-tests-only"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def error_body(response: Any, status: int, message: str) -> dict[str, Any]:
    """Check a response is the one JSON error shape with ``status`` and ``message`` in it."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == {"error", "message", "status"} and body["status"] == status
    assert message in body["message"], body["message"]
    return dict(body)


def client_with(settings: Settings, token: str | None = TOKEN, **api: Any) -> Any:
    """A test client of an app with the bearer ``token`` and some ``api`` settings changed."""
    changed = (
        settings.with_overrides(api=dataclasses.replace(settings.api, **api)) if api else settings
    )
    return create_app(
        dataclasses.replace(changed, api_token=token), {"TESTING": True}
    ).test_client()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    return metric_samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


class FakeClock:
    """A clock for :class:`~monitoring.readmodels.ResultCache` that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock(client: Any) -> FakeClock:
    """Put the read models of a test client's app on a :class:`FakeClock`; return it."""
    clock = FakeClock()
    client.application.extensions["readmodels"].cache.clock = clock
    return clock


def small_artifact(estimator: Any, rng: np.random.Generator) -> tuple[Artifact, pd.DataFrame]:
    """``estimator`` fitted on 400 random rows of the features, as an artifact."""
    frame = pd.DataFrame(rng.normal(size=(400, 3)) * [300, 2000, 50], columns=FEATURES)
    target = (frame["lastyear_activity"] + rng.normal(size=400) * 900 > 0).astype(int)
    estimator.fit(frame, target)
    metadata = {"version": "v", "features": FEATURES}
    return Artifact(estimator=estimator, metadata=metadata), frame


def assert_plain_json(value: Any) -> None:
    """Only plain Python JSON types, no NaN/inf, anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    elif isinstance(value, float):
        assert type(value) is float and math.isfinite(value)
    else:
        assert value is None or type(value) in (str, int, bool), type(value)


def assert_same_profile(ours: Any, expected: Any) -> None:
    """Two fitted ReferenceProfiles hold the same columns, kinds, counts and values
    (``-0.0`` and ``0.0`` alike, as every drift statistic takes them)."""
    assert (ours.columns_, ours.kinds_, ours.n_rows_) == (
        expected.columns_,
        expected.kinds_,
        expected.n_rows_,
    )
    for name in expected.columns_:
        a, b = ours.profiles_[name], expected.profiles_[name]
        assert (a.kind, a.value_type, a.n_rows, a.n_null) == (
            b.kind,
            b.value_type,
            b.n_rows,
            b.n_null,
        ), name
        parts = (a.numeric is None, a.categorical is None)
        assert parts == (b.numeric is None, b.categorical is None), name
        if b.numeric is not None:
            np.testing.assert_array_equal(a.numeric.sorted_values, b.numeric.sorted_values)
            assert a.numeric.sorted_values.dtype == np.float64
            np.testing.assert_array_equal(a.numeric.psi_edges, b.numeric.psi_edges)
            np.testing.assert_array_equal(a.numeric.psi_props, b.numeric.psi_props)
            for stat in ("mean", "std"):
                x, y = getattr(a.numeric, stat), getattr(b.numeric, stat)
                assert x == y or (math.isnan(x) and math.isnan(y)), (name, stat, x, y)
        if b.categorical is not None:
            if isinstance(b.categorical.values, tuple):
                assert a.categorical.values == b.categorical.values
            else:
                np.testing.assert_array_equal(a.categorical.values, b.categorical.values)
            np.testing.assert_array_equal(a.categorical.counts, b.categorical.counts)


def planted(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drift planted in num_shift (mean), num_scale (spread), cat_reweight."""
    rng = np.random.default_rng(seed)
    cats = np.array(["a", "b", "c"])

    def frame(n: int, drifted: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "num_stable": rng.normal(0.0, 1.0, n),
                "num_shift": rng.normal(0.5 if drifted else 0.0, 1.0, n),
                "num_scale": rng.normal(0.0, 2.0 if drifted else 1.0, n),
                "lognormal_stable": rng.lognormal(0.0, 0.7, n),
                "cat_stable": rng.choice(cats, n, p=[0.5, 0.3, 0.2]),
                "cat_reweight": rng.choice(
                    cats, n, p=[0.2, 0.3, 0.5] if drifted else [0.5, 0.3, 0.2]
                ),
                "int_stable": rng.integers(0, 5, n),
                "bool_stable": rng.random(n) < 0.3,
            }
        )

    return frame(n_ref, False), frame(n_cur, True)


def stored_capture(store: Store) -> tuple[int, int]:
    """(rows, bytes as :func:`ledger.row_bytes` counts them) of the captured rows, in SQL."""
    table = captured_predictions
    size = (
        func.length(table.c.inputs)
        + func.length(table.c.request_id)
        + func.coalesce(func.length(table.c.model_version), 0)
        + ledger.ROW_OVERHEAD
    )
    with store.engine.connect() as conn:
        rows, total = conn.execute(select(func.count(), func.coalesce(func.sum(size), 0))).one()
    return int(rows), int(total)
