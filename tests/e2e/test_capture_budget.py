"""Bounded capture under gunicorn: a 60 s flood of maximum-size rows keeps the captured
rows within ``capture.max_bytes`` while every ``/prediction`` answers 2xx."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from monitoring.capture import ledger
from monitoring.config import load_settings
from monitoring.storage.store import Store
from tests.conftest import write_config
from tests.helpers import metric_value, running_gunicorn, stored_capture

pytestmark = pytest.mark.e2e

BUDGET = 4 << 20  # capture.max_bytes of the test: 4 MiB
FLOOD_SECONDS = 60.0
CLIENTS = 4
FEATURES = {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10}
# A row just under capture.max_row_bytes (64 KiB) as captured: 240 columns of 250-char names.
WIDE = {**FEATURES, **{f"c{i:03d}" + "w" * 246: 1 for i in range(240)}}
# Hostile extras in the same flood: a 1 MB id cell (cut) and a row over the bound (a marker).
LONG_ID = {"corporation": "x" * 1_000_000, **FEATURES}
OVERSIZE = {**FEATURES, **{f"o{i:03d}" + "v" * 246: 1 for i in range(300)}}


def csv_body(row: dict[str, Any]) -> bytes:
    return (",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n").encode()


def test_capture_stays_within_its_budget_under_a_flood_of_maximum_size_rows(
    project: Path, deployed: dict[str, Any]
) -> None:
    assert len(json.dumps(WIDE, separators=(",", ":"))) in range(60_000, 65_536)
    config = json.loads((project / "config.json").read_text())
    capture = {**config["capture"], "max_bytes": BUDGET, "max_row_bytes": 65536}
    settings = load_settings(write_config(project, capture=capture), env={})
    store = Store(settings.database_url)
    bodies = [csv_body(WIDE)] * 18 + [csv_body(LONG_ID), csv_body(OVERSIZE)]
    statuses: dict[int, int] = {}
    samples: list[int] = []
    stop = threading.Event()
    assert store.file is not None
    files = [store.file, Path(f"{store.file}-wal")]
    size_before = sum(f.stat().st_size for f in files if f.exists())

    with running_gunicorn(settings) as (url, _):

        def flood(worker: int) -> None:
            session = requests.Session()
            n = worker
            deadline = time.monotonic() + FLOOD_SECONDS
            while time.monotonic() < deadline:
                response = session.post(
                    f"{url}/prediction",
                    data=bodies[n % len(bodies)],
                    headers={"Content-Type": "text/csv"},
                    timeout=30,
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                n += CLIENTS

        def sample() -> None:
            while not stop.wait(0.25):
                samples.append(stored_capture(store)[1])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(flood, range(CLIENTS)))
        answered = sum(statuses.values())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the importer catches up
            if stored_capture(store)[0] + ledger.counter_values(store)[ledger.EVICTED] >= answered:
                break
            time.sleep(0.2)
        stop.set()
        sampler.join()
        text = requests.get(f"{url}/metrics", timeout=30).text

    rows, total = stored_capture(store)
    evicted = metric_value(text, "monitoring_capture_evicted_total")
    size_after = sum(f.stat().st_size for f in files if f.exists())
    print(
        f"\n{answered} predictions in {FLOOD_SECONDS:.0f} s ({statuses}); stored {rows} rows, "
        f"{total} bytes; largest of {len(samples)} samples {max(samples)}; evicted "
        f"{evicted:.0f}; database and log {size_before} -> {size_after} bytes"
    )
    assert set(statuses) == {200}
    assert answered * 61_000 > 3 * BUDGET  # the flood was several budgets' worth
    assert max(samples) <= BUDGET and total <= BUDGET
    assert total == ledger.counter_values(store)[ledger.BYTES]
    assert metric_value(text, "monitoring_capture_bytes") == total
    assert evicted > 0 and rows + evicted == answered  # each capture stored, kept or evicted
    # Freed pages are reused: the file grows by about the budget, not by the flood.
    assert size_after - size_before < 4 * BUDGET < answered * 61_000 / 4
