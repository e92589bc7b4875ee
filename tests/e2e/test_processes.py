"""Capture across processes: killed writers, concurrent writers, the importer's priority."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import Any

import pandas as pd
import pytest

from monitoring import capture
from monitoring.capture import journal
from monitoring.config import PROJECT_ROOT, Settings
from monitoring.storage.store import Store
from tests.helpers import AUTH, client_with, error_body

CAPTURE_IN_A_PROCESS = """
import json, os, signal, sys
import pandas as pd
from monitoring import capture
from monitoring.capture import journal
from monitoring.config import load_settings
from monitoring.storage.store import Store
journal.IMPORT_EVERY = float(os.environ.get("TEST_IMPORT_EVERY", journal.IMPORT_EVERY))
settings = load_settings(sys.argv[1], env={})
store = Store(settings.database_url)
frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
result = {"predictions": [0, 1, 0], "probabilities": [0.1, 0.9, 0.2]}
ids = {}
for i in range(int(sys.argv[3])):
    rid = f"{sys.argv[2]}-{i}"
    ids[rid] = capture.record(
        store, settings, request_id=rid, model_version="v", frame=frame, result=result
    )
print(json.dumps(ids), flush=True)
if sys.argv[4] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def capture_in_processes(settings: Settings, runs: list[tuple[str, int, str]], **env: str) -> dict:
    """Run ``record`` in separate processes at once; their request ids -> row ids."""
    import subprocess
    import sys

    from monitoring.config import PROJECT_ROOT

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


def test_rows_journalled_by_a_killed_process_are_imported_once(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = capture_in_processes(settings, [("killed", 5, "kill")])
    folder = journal.journal_folder(store.engine.url.database)
    assert len(list(folder.glob("*.jsonl"))) == 1  # nothing imported it yet
    for rid, row_ids in ids.items():
        assert [r["id"] for r in capture.captured(store, request_id=rid)] == row_ids
    # Another process's background thread imports and removes the dead journal.
    monkeypatch.setattr(journal, "IMPORT_EVERY", 0.02)
    frame = pd.DataFrame({"x": [1.0]})
    capture.record(
        store,
        settings,
        request_id="later",
        model_version="v",
        frame=frame,
        result={"predictions": [1], "probabilities": [0.7]},
    )
    deadline = time.monotonic() + 10
    while [p for p in folder.glob("*.jsonl") if not p.name.startswith(f"{os.getpid()}-")]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    capture.import_journals(store)
    total = sum(len(capture.captured(store, request_id=rid)) for rid in ids)
    assert total == 15  # each row exactly once


def test_a_finished_journal_longer_than_a_batch_is_imported_whole_before_removal(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process never imports: its whole journal is left.
    ids = capture_in_processes(settings, [("dead", 12, "kill")], TEST_IMPORT_EVERY="3600")
    database = str(store.file)
    [journal_file] = journal.journal_folder(database).glob("*.jsonl")
    monkeypatch.setattr(journal, "IMPORT_BATCH", 250)
    assert journal_file.stat().st_size > 3 * 250  # several batches
    importer = journal._Importer(database)
    try:
        assert importer.cycle(block=False)
    finally:
        importer.close()
    assert not journal_file.exists()
    with sqlite3.connect(database) as connection:
        stored = {r[0] for r in connection.execute("SELECT id FROM captured_predictions")}
    assert stored >= {i for row_ids in ids.values() for i in row_ids}


def test_concurrent_processes_get_unique_consecutive_row_ids(
    settings: Settings, store: Store
) -> None:
    ids = capture_in_processes(settings, [("a", 150, "exit"), ("b", 150, "exit")])
    flat = [i for row_ids in ids.values() for i in row_ids]
    assert len(flat) == len(set(flat)) == 900
    for rid, row_ids in ids.items():
        assert row_ids == list(range(row_ids[0], row_ids[0] + 3))
        assert [r["id"] for r in capture.captured(store, request_id=rid)] == row_ids


def test_the_importer_runs_at_idle_priority_and_writes_at_normal_priority() -> None:
    import subprocess
    import sys

    from monitoring.config import PROJECT_ROOT

    code = """
import os
from monitoring.capture import journal
journal.use_idle_priority()
if journal._idle_priority:
    assert os.sched_getscheduler(0) == os.SCHED_IDLE
    with journal._write_priority():
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
