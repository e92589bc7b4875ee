"""Two replicas on one PostgreSQL, and a PostgreSQL outage under traffic.

Each replica is gunicorn (2 workers, its own capture importer) serving a project
folder of its own: nothing is shared but the database. One is configured with the
``postgres://`` URL Heroku sets, the other with ``postgresql://``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select

from monitoring.config import PROJECT_ROOT, Settings, load_settings
from monitoring.pipeline import bootstrap
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store
from tests import postgres
from tests.conftest import DATA, write_config
from tests.helpers import AUTH, TOKEN, running_gunicorn

pytestmark = pytest.mark.postgres
ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14, "lastyear_activity": 2145, "number_of_employees": 99},
    {"lastmonth_activity": 0, "lastyear_activity": 0, "number_of_employees": 1},
]


def make_project(folder: Path, database_url: str) -> Settings:
    """A project folder of its own (data, models, journals) on the shared database."""
    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(DATA / name, folder / "data" / name)
    shutil.copy(PROJECT_ROOT / "requirements.txt", folder / "requirements.txt")
    return load_settings(write_config(folder, database_url=database_url), env={})


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` holds; fail after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def served_version(url: str) -> str | None:
    return requests.get(url + "/health", timeout=5).json()["model_version"]


def cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitoring", "--config", str(settings.config_path), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def captured_rows(url: str) -> dict[str, int]:
    """Captured rows per request id, read from the database itself."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(captured_predictions.c.request_id, func.count()).group_by(
                captured_predictions.c.request_id
            )
            return {rid: int(n) for rid, n in conn.execute(query)}
    finally:
        engine.dispose()


@pytest.fixture
def replicas(
    postgres_server: str, tmp_path: Path
) -> Iterator[tuple[str, str, Settings, Settings, str]]:
    """Replica A (``postgresql://``) with the practice model deployed, and replica B
    (``postgres://``, nothing deployed by it), both serving; yields their URLs, settings
    and the database URL."""
    database = postgres.new_database(postgres_server)
    plain = database.replace("postgresql+psycopg://", "postgresql://")
    heroku = database.replace("postgresql+psycopg://", "postgres://")
    a = make_project(tmp_path / "a", plain)
    b = make_project(tmp_path / "b", heroku)
    bootstrap(a, Store(a.database_url))
    env = {"MONITORING_API_TOKEN": TOKEN}
    try:
        with running_gunicorn(a, **env) as (url_a, _), running_gunicorn(b, **env) as (url_b, _):
            yield url_a, url_b, a, b, database
    finally:
        postgres.drop_database(database)


def test_two_replicas_serve_one_state(replicas: tuple[str, str, Settings, Settings, str]) -> None:
    url_a, url_b, a, b, database = replicas
    first = served_version(url_a)
    assert first is not None and served_version(url_b) == first
    assert not (b.output_folder_path / "finaldata.csv").exists()  # B serves from the store
    for path in ("/summarystats", "/scoring"):
        assert requests.get(url_a + path).json() == requests.get(url_b + path).json(), path
    drift_a, drift_b = (requests.get(u + "/drift").json() for u in (url_a, url_b))
    drift_a.pop("computed_at"), drift_b.pop("computed_at")
    assert drift_a == drift_b

    # A deploy made on A is served by B within a second, a rollback made on B by A.
    done = cli(a, "run", "--force")
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    second = served_version(url_a)
    assert second != first
    assert wait_for(lambda: served_version(url_b) == second, 1.0, "the deploy on B") < 1.0
    rolled = requests.post(url_b + "/rollback", headers=AUTH, json={"version": first}, timeout=30)
    assert rolled.status_code == 200, rolled.text
    assert wait_for(lambda: served_version(url_a) == first, 1.0, "the rollback on A") < 1.0


def test_captures_and_feedback_across_replicas(
    replicas: tuple[str, str, Settings, Settings, str],
) -> None:
    url_a, url_b, _, _, database = replicas
    sent: dict[str, tuple[str, list[int]]] = {}  # request id: (where it was served, predictions)
    for i in range(40):
        url = (url_a, url_b)[i % 2]
        body = requests.post(url + "/prediction", json={"data": ROWS}, timeout=10).json()
        sent[body["request_id"]] = (url, body["predictions"])
    stored = lambda: captured_rows(database) == {rid: len(ROWS) for rid in sent}  # noqa: E731
    wait_for(stored, 10.0, "every captured row in the store")
    # The feedback for each request goes to the other replica.
    for rid, (url, predictions) in sent.items():
        other = url_b if url == url_a else url_a
        labels = [1 - p for p in predictions]
        labelled = {"request_id": rid, "labels": labels}  # the admin token labels too
        answer = requests.post(other + "/feedback", json=labelled, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
    assert captured_rows(database) == {rid: len(ROWS) for rid in sent}  # each row once

    def live(url: str) -> dict[str, Any]:
        return requests.get(url + "/scoring", timeout=10).json()["live_performance"]

    wait_for(lambda: live(url_a) == live(url_b) != {}, 5.0, "equal live performance")
    [version] = live(url_a)
    assert live(url_a)[version]["n_labelled"] == len(sent) * len(ROWS)
    assert live(url_a)[version]["f1"] == 0.0  # every label the opposite of the prediction


def test_two_runs_at_once_on_two_replicas(
    replicas: tuple[str, str, Settings, Settings, str],
) -> None:
    _, _, a, b, _ = replicas
    runs = [cli(a, "run", "--force"), cli(b, "run", "--force")]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert sorted(run.returncode for run in runs) == [0, 75], errors


def test_a_postgresql_outage_under_traffic(tmp_path: Path) -> None:
    """Ten seconds without the database: every prediction answered 2xx, /ready says not
    ready meanwhile, and every capture is in the store once it is back."""
    folder = Path(tempfile.mkdtemp(prefix="monitoring-pg-"))  # the postgres user must reach it
    cluster = postgres.Cluster(folder)
    try:
        database = postgres.new_database(cluster.url)
        settings = make_project(tmp_path / "p", database)
        bootstrap(settings, Store(settings.database_url))
        with running_gunicorn(settings) as (url, _):
            statuses: list[int] = []
            sent: dict[str, int] = {}
            stop = threading.Event()

            def traffic() -> None:
                while not stop.is_set():
                    response = requests.post(url + "/prediction", json={"data": ROWS}, timeout=10)
                    statuses.append(response.status_code)
                    if response.ok:
                        sent[response.json()["request_id"]] = len(ROWS)
                    time.sleep(0.01)

            worker = threading.Thread(target=traffic)
            worker.start()
            try:
                time.sleep(3)
                assert requests.get(url + "/ready", timeout=5).status_code == 200
                cluster.stop()
                outage_started = time.monotonic()
                ready = []
                while time.monotonic() - outage_started < 10:
                    ready.append(requests.get(url + "/ready", timeout=10).status_code)
                    time.sleep(0.5)
                cluster.start()
                time.sleep(3)
            finally:
                stop.set()
                worker.join(timeout=30)
            assert statuses and all(200 <= s < 300 for s in statuses), sorted(set(statuses))
            assert 503 in ready and ready[-1] == 503  # not ready while the store was down
            wait_for(lambda: captured_rows(database) == sent, 30.0, "every capture stored")
            wait_for(
                lambda: requests.get(url + "/ready", timeout=5).status_code == 200, 10.0, "ready"
            )
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_ready_reports_each_check(replicas: tuple[str, str, Settings, Settings, str]) -> None:
    url_a, *_ = replicas
    body = requests.get(url_a + "/ready", timeout=5).json()
    assert body["status"] == "ready"
    assert body["checks"]["store"]["status"] == "ok"
    assert body["checks"]["model"] == {"status": "ok", "version": served_version(url_a)}
