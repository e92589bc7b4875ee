"""Fault injection: SIGKILL a retrain-and-redeploy at every file operation.

A forked child runs ingest -> train -> score -> deploy on new data and kills itself
(SIGKILL, no cleanup, no ``finally``) right before its N-th ``os.replace``/
``os.rename`` (and ``os.fsync`` with ``FAULT_FULL=1``), for every N; more children
are killed after random delays (so some die inside a store transaction). After each
kill the store's live pointer must name a complete, loadable, checksum-valid model
(old or new) whose deployment is recorded, the exported ``trainedmodel.pkl`` must be
a whole deployed model, ``finaldata.csv`` must equal its old or its new content byte
for byte, the record store must pass SQLite's integrity check with every deployed
version loadable, and a clean retry must succeed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitoring.config import Settings, load_settings
from monitoring.model.artifact import load_artifact
from monitoring.model.deployment import current_version, list_versions, load_deployed
from monitoring.storage.engine import get_engine
from monitoring.storage.store import Store

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

# Kill points: before each rename (the moment a file becomes visible). With
# FAULT_FULL=1 also before each fsync (mid-write) and with a retry after every kill;
# in CI a retry follows every third kill.
FULL = os.environ.get("FAULT_FULL") == "1"
COUNTED = ("replace", "rename", "fsync") if FULL else ("replace", "rename")


def _redeploy(config: Path) -> None:
    from monitoring.data.ingestion import ingest
    from monitoring.model.deployment import deploy
    from monitoring.model.scoring import score
    from monitoring.model.training import train
    from monitoring.storage.store import Store

    settings = load_settings(config, env={}, overrides={"input_folder_path": "data/sourcedata"})
    store = Store(settings.database_url)
    ingest(settings, store=store)
    train(settings, store=store)
    score(settings, store=store)
    deploy(settings, store=store)


def _in_child(work: Callable[[], None], kill_at: int | None, count_file: Path | None) -> int:
    """Run ``work`` in a forked child; return its wait status."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 1
        try:
            calls = 0
            originals = {name: getattr(os, name) for name in COUNTED}

            def counting(name: str) -> Callable[..., Any]:
                def call(*args: Any, **kwargs: Any) -> Any:
                    nonlocal calls
                    calls += 1
                    if calls == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return originals[name](*args, **kwargs)

                return call

            for name in COUNTED:
                setattr(os, name, counting(name))
            work()
            for name, original in originals.items():
                setattr(os, name, original)
            if count_file is not None:
                count_file.write_text(str(calls))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _snapshot(root: Path, into: Path) -> None:
    shutil.copytree(root, into, symlinks=True)


def _restore(snapshot: Path, root: Path) -> None:
    for name in ("data", "models"):
        shutil.rmtree(root / name, ignore_errors=True)
        shutil.copytree(snapshot / name, root / name, symlinks=True)


def _store(settings: Settings) -> Store:
    """The store of ``settings``, its pooled connections dropped (the file was replaced)."""
    get_engine(settings.database_url).dispose()
    return Store(settings.database_url)


def _check_consistent(settings: Settings, baseline: dict[str, Any]) -> str:
    """Assert the invariants; return "old" or "new" for the live model."""
    store = _store(settings)
    live = load_deployed(store)  # raises unless complete and checksum-valid
    # versions are "<timestamp>-<training data hash>": the new data, whenever trained
    kind = "old" if live.version == baseline["old"] else "new"
    assert kind == "old" or live.version.endswith(baseline["new_suffix"]), live.version
    deployed = [entry["version"] for entry in list_versions(store)]
    pickles = set()
    for version in deployed:
        load_artifact(store, version)  # every deployed version loads and is checksum-valid
        pickles.add(store.model_version(version)["artifact"])  # type: ignore[index]
    compat = settings.prod_deployment_path / "trainedmodel.pkl"
    assert compat.read_bytes() in pickles  # the course's copy is a whole deployed model
    assert settings.finaldata_file.read_bytes() in baseline["finaldata"]
    prod = settings.prod_deployment_path
    assert not (prod / "versions").exists() and not (prod / "CURRENT").exists()
    db = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        recorded = [r[0] for r in conn.execute("SELECT model_version FROM deployments")]
    conn.close()
    assert set(recorded) == set(deployed)
    # the pointer moves in the transaction that records the deployment
    assert recorded[-1] == live.version
    return kind


@pytest.fixture
def baseline(settings: Settings, deployed: dict[str, Any], tmp_path_factory: Any) -> dict[str, Any]:
    """The deployed practice model, a snapshot of it, and the clean outcome of a redeploy."""
    snapshot = tmp_path_factory.mktemp("snapshot") / "root"
    _snapshot(settings.root, snapshot)
    old_final = settings.finaldata_file.read_bytes()
    count_file = settings.root / "calls.txt"
    status = _in_child(lambda: _redeploy(settings.config_path), None, count_file)
    assert os.waitstatus_to_exitcode(status) == 0
    new_final = settings.finaldata_file.read_bytes()
    new_version = current_version(_store(settings))
    assert new_version != deployed["model_version"] and new_final != old_final
    calls = int(count_file.read_text())
    _restore(snapshot, settings.root)
    return {
        "snapshot": snapshot,
        "calls": calls,
        "finaldata": {old_final, new_final},
        "old": deployed["model_version"],
        "new_suffix": "-" + str(new_version).rsplit("-", 1)[-1],
    }


def test_sigkill_at_every_file_operation_leaves_a_consistent_deployment(
    settings: Settings, baseline: dict[str, Any]
) -> None:
    seen: dict[str, int] = {}
    assert baseline["calls"] > 10
    for kill_at in range(1, baseline["calls"] + 1):
        status = _in_child(lambda: _redeploy(settings.config_path), kill_at, None)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, kill_at
        live = _check_consistent(settings, baseline)
        seen[live] = seen.get(live, 0) + 1
        if not FULL and kill_at % 3:
            _restore(baseline["snapshot"], settings.root)
            continue
        # a clean retry after the crash always succeeds and deploys the new model
        retry = _in_child(lambda: _redeploy(settings.config_path), None, None)
        assert os.waitstatus_to_exitcode(retry) == 0, kill_at
        assert _check_consistent(settings, baseline) == "new"
        _restore(baseline["snapshot"], settings.root)
    assert set(seen) == {"old", "new"}, seen  # kills fell before and after the switch


def test_sigkill_after_random_delays(settings: Settings, baseline: dict[str, Any]) -> None:
    rng = random.Random(20261123)
    started = time.monotonic()
    _in_child(lambda: _redeploy(settings.config_path), None, None)
    duration = time.monotonic() - started
    _restore(baseline["snapshot"], settings.root)
    for _ in range(int(os.environ.get("FAULT_RANDOM_KILLS", "6"))):
        pid = os.fork()
        if pid == 0:
            try:
                _redeploy(settings.config_path)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _check_consistent(settings, baseline)
        _restore(baseline["snapshot"], settings.root)


OPEN_A_NEW_DATABASE = """
import sys, time
from pathlib import Path
from monitoring.storage.store import Store
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
Store(sys.argv[1]).engine  # creates the schema of a new database
"""


def test_processes_opening_a_new_database_at_once_all_start(tmp_path: Path) -> None:
    """gunicorn workers and the capture importer open a fresh store together."""
    import subprocess
    import sys

    from monitoring.config import PROJECT_ROOT

    for attempt in range(3):
        database, go = tmp_path / f"new{attempt}.db", tmp_path / f"go{attempt}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_A_NEW_DATABASE, f"sqlite:///{database}", str(go)],
                cwd=PROJECT_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        time.sleep(1.5)  # every process has imported and waits for the signal
        go.touch()
        errors = [p.communicate(timeout=60)[1] for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
