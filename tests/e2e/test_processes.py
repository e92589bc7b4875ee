"""Capture across processes: killed writers, concurrent writers and importers, a store
that goes away under gunicorn, the importer's priority."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from sqlalchemy import func, select

from monitoring import capture
from monitoring.capture import importer, journal
from monitoring.config import PROJECT_ROOT, Settings, load_settings
from monitoring.pipeline import bootstrap
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store
from tests import postgres
from tests.conftest import write_config
from tests.helpers import AUTH, client_with, error_body, running_gunicorn


@pytest.fixture
def settings(make_settings: Callable[..., Settings], project: Path) -> Settings:
    """The test's settings, its store also written into the config file processes read."""
    settings = make_settings()
    write_config(project, database_url=settings.database_url)
    return settings


CAPTURE_IN_A_PROCESS = """
import json, os, signal, sys
import pandas as pd
from monitoring import capture
from monitoring.capture import importer, writer
from monitoring.config import load_settings
from monitoring.storage.store import Store
importer.IMPORT_EVERY = float(os.environ.get("TEST_IMPORT_EVERY", importer.IMPORT_EVERY))
writer.ID_BLOCK = int(os.environ.get("TEST_ID_BLOCK", writer.ID_BLOCK))
settings = load_settings(sys.argv[1], env={})
store = Store(settings.database_url)
store.engine  # as a worker has it: opened by the app
frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
result = {"predictions": [0, 1, 0], "probabilities": [0.1, 0.9, 0.2]}
ids = {}
for i in range(int(sys.argv[3])):
    rid = f"{sys.argv[2]}-{i}"
    ids[rid] = capture.record(
        store, settings, request_id=rid, model_version="v", rows=frame, result=result
    )
print(json.dumps(ids), flush=True)
if sys.argv[4] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def capture_in_processes(settings: Settings, runs: list[tuple[str, int, str]], **env: str) -> dict:
    """Run ``record`` in separate processes at once; their request ids -> row ids."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CAPTURE_IN_A_PROCESS, str(settings.config_path), *map(str, run)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
        )
        for run in runs
    ]
    ids: dict = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        ids.update(json.loads(out.strip().splitlines()[-1]))
    return ids


def row_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(captured_predictions)).scalar())


def test_rows_journalled_by_a_killed_process_are_imported_once(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = capture_in_processes(settings, [("killed", 5, "kill")])
    folder = journal.journal_folder(settings)
    assert len(list(folder.glob("*.jsonl"))) == 1  # nothing removed it yet
    for rid, row_ids in ids.items():
        assert [r["id"] for r in capture.captured(store, settings, request_id=rid)] == row_ids
    # Another process's background thread imports and removes the dead journal.
    monkeypatch.setattr(importer, "IMPORT_EVERY", 0.02)
    frame = pd.DataFrame({"x": [1.0]})
    capture.record(
        store,
        settings,
        request_id="later",
        model_version="v",
        rows=frame,
        result={"predictions": [1], "probabilities": [0.7]},
    )
    deadline = time.monotonic() + 10
    while [p for p in folder.glob("*.jsonl") if f"_{os.getpid()}_" not in p.name]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    capture.import_journals(store, settings)
    total = sum(len(capture.captured(store, settings, request_id=rid)) for rid in ids)
    assert total == 15  # each row exactly once
    assert row_count(store) == 16


def test_a_finished_journal_longer_than_a_batch_is_imported_whole_before_removal(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process never imports: its whole journal is left.
    ids = capture_in_processes(settings, [("dead", 12, "kill")], TEST_IMPORT_EVERY="3600")
    [journal_file] = journal.journal_folder(settings).glob("*.jsonl")
    monkeypatch.setattr(journal, "IMPORT_BATCH", 250)
    assert journal_file.stat().st_size > 3 * 250  # several batches
    folders = journal.journal_folders(settings)
    the_importer = importer.Importer(store, folders)
    try:
        assert the_importer.cycle(block=False)
    finally:
        the_importer.close()
    assert not journal_file.exists()
    with store.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(select(captured_predictions.c.id))]
    assert sorted(stored) == sorted(i for row_ids in ids.values() for i in row_ids)


def test_concurrent_processes_get_unique_consecutive_row_ids(
    settings: Settings, store: Store
) -> None:
    # Blocks of 64 ids: each process reserves about 8 of them, racing the other.
    runs = [("a", 150, "exit"), ("b", 150, "exit")]
    ids = capture_in_processes(settings, runs, TEST_ID_BLOCK="64")
    flat = [i for row_ids in ids.values() for i in row_ids]
    assert len(flat) == len(set(flat)) == 900
    for rid, row_ids in ids.items():
        assert row_ids == list(range(row_ids[0], row_ids[0] + 3))
        assert [r["id"] for r in capture.captured(store, settings, request_id=rid)] == row_ids


IMPORT_AT_ONCE = """
import sys, time
from pathlib import Path
from monitoring import capture
from monitoring.capture import journal
from monitoring.config import load_settings
from monitoring.storage.store import Store
journal.IMPORT_BATCH = 300  # a transaction every line or two: many chances to collide
settings = load_settings(sys.argv[1], env={})
store = Store(settings.database_url)
store.engine
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
capture.import_journals(store, settings)
"""


def test_two_importers_at_once_import_each_line_exactly_once(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    """Lines without row ids: a line imported twice would be two sets of rows."""
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for j in range(3):
        lines = []
        for i in range(120):
            rid = f"j{j}-{i}"
            n = 1 + (i % 3)
            expected[rid] = n
            request = [rid, "2026-12-01T00:00:00+00:00", "v", ["x"], [[float(i)]] * n]
            lines.append(journal.encode_line(None, [*request, [i % 2] * n, [0.5] * n]))
        (folder / f"host_{j}_{j:012x}.jsonl").write_bytes(b"".join(lines))  # finished journals
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", IMPORT_AT_ONCE, str(settings.config_path), str(go)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    capture.import_journals(store, settings)  # nothing is left to import
    assert row_count(store) == sum(expected.values())
    with store.engine.connect() as conn:
        table = captured_predictions
        query = select(table.c.request_id, table.c.row_index, table.c.id).order_by(table.c.id)
        rows = conn.execute(query).all()
    assert len({r.id for r in rows}) == len(rows)
    by_request: dict[str, list[Any]] = {}
    for row in rows:
        by_request.setdefault(row.request_id, []).append(row)
    assert {rid: len(r) for rid, r in by_request.items()} == expected
    for request_rows in by_request.values():  # a line's rows: consecutive ids, in row order
        assert [r.row_index for r in request_rows] == list(range(len(request_rows)))
        first = request_rows[0].id
        assert [r.id for r in request_rows] == list(range(first, first + len(request_rows)))


PREDICT = {"data": [{"lastmonth_activity": 1, "lastyear_activity": 2, "number_of_employees": 3}]}


def _importer_processes(config: Path) -> list[Path]:
    """The ``capture-importer`` processes started for ``config`` (by gunicorn)."""
    ours = f"MONITORING_CONFIG={config}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if b"capture-importer" in command and ours in environ.split(b"\0"):
            found.append(proc)
    return found


@pytest.mark.postgres
def test_captures_while_postgresql_is_down_are_imported_once_it_is_back(project: Path) -> None:
    """gunicorn (one worker and the importer process) on a PostgreSQL cluster that stops
    and starts again: /prediction answers 200 throughout, the rows journalled without
    ids get ids from the store, and each is imported once."""
    if postgres.binaries() is None:
        if os.environ.get("MONITORING_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here but not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="monitoring-pg-"))  # the postgres user must reach it
    cluster = postgres.Cluster(folder)
    try:
        url = postgres.new_database(cluster.url)
        settings = load_settings(write_config(project, database_url=url), env={})
        store = Store(settings.database_url)
        bootstrap(settings, store)
        with running_gunicorn(settings, WEB_CONCURRENCY="1") as (base, _):

            def predict(k: int) -> requests.Response:
                body = {"data": PREDICT["data"] * k}
                return requests.post(base + "/prediction", json=body, timeout=30)

            cluster.stop()
            down = [predict(k) for k in (1, 2, 3) * 4]
            assert [r.status_code for r in down] == [200] * 12
            assert [r.json()["row_ids"] for r in down] == [None] * 12  # no ids to be had
            assert [len(r.json()["predictions"]) for r in down] == [1, 2, 3] * 4
            cluster.start()
            bodies = [r.json() for r in down]
            deadline = time.monotonic() + 30
            while (later := predict(2).json())["row_ids"] is None:  # ids again, in seconds
                assert time.monotonic() < deadline, "no ids after the store came back"
                bodies.append(later)
                time.sleep(0.2)
            bodies.append(later)
            expected = sum(len(b["predictions"]) for b in bodies)
            table = captured_predictions
            rids = [b["request_id"] for b in bodies]
            query = (
                select(table.c.request_id, table.c.row_index, table.c.id)
                .where(table.c.request_id.in_(rids))
                .order_by(table.c.id)
            )

            def imported() -> list[Any]:
                with store.engine.connect() as conn:
                    return conn.execute(query).all()

            deadline = time.monotonic() + 30
            while len(rows := imported()) < expected:
                assert time.monotonic() < deadline, f"{len(rows)} of {expected} rows imported"
                time.sleep(0.1)  # imported by the importer process: nothing here imports
            assert len(_importer_processes(settings.config_path)) == 1  # it outlived the outage
            feedback = {"request_id": rids[2], "labels": [1, 0, 1]}
            response = requests.post(base + "/feedback", json=feedback, timeout=30)
            assert response.json()["labelled_rows"] == 3
        assert row_count(store) == expected  # each row once, and nothing else
        assert len({r.id for r in rows}) == expected
        for body in bodies:
            mine = [r for r in rows if r.request_id == body["request_id"]]
            assert [r.row_index for r in mine] == list(range(len(body["predictions"])))
            ids = [r.id for r in mine]
            assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert [r.id for r in rows if r.request_id == later["request_id"]] == later["row_ids"]
    finally:
        with contextlib.suppress(RuntimeError):  # stopped already
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_importer_runs_at_idle_priority_and_writes_at_normal_priority() -> None:
    code = """
import os
from monitoring.capture import importer
importer.use_idle_priority()
if importer._idle_priority:
    assert os.sched_getscheduler(0) == os.SCHED_IDLE
    with importer._write_priority():
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_IDLE
    print("idle")
else:
    assert os.nice(0) == 19
    print("nice")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # The documented rule: idle priority where the process may return to nice 0 for its
    # writes (root, or RLIMIT_NICE allowing it), else nice 19.
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    may_return = os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20
    assert done.stdout.strip() == ("idle" if may_return else "nice")


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from monitoring.config import load_settings
    from monitoring.pipeline import pipeline_lock
    with pipeline_lock(load_settings(sys.argv[1], env={})):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_a_second_run_is_refused_while_another_process_runs(
    deployed: dict[str, Any], settings: Settings
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(settings.config_path)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        client = client_with(settings)
        for path, body in (("/run", {"force": True}), ("/deploy", None), ("/rollback", None)):
            error_body(client.post(path, headers=AUTH, json=body), 409, "is already running")
        cli = subprocess.run(
            [sys.executable, "-m", "monitoring", "--config", str(settings.config_path), "run"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 75 and "already running" in cli.stderr
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert client.post("/ingest", headers=AUTH).status_code == 200  # the lock died with it


# -- model artifacts ---------------------------------------------------------------
