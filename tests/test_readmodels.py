"""Read models: cached results follow the files and the store they come from."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.helpers import FakeClock


def test_cached_diagnostics_and_scoring_follow_the_store(
    deployed: dict[str, Any], client: Any, settings: Any, store: Any
) -> None:
    from monitoring.data.ingestion import ingest

    first = client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"]
    assert client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"] == first
    ingest(settings, store=store)
    assert client.get("/diagnostics").get_json()["execution_time"]["ingestion"]["runs"] == first + 1
    assert client.get("/scoring").status_code == 200


def test_result_cache_recomputes_when_the_key_changes() -> None:
    from monitoring.readmodels import ResultCache

    cache, calls = ResultCache(FakeClock()), []
    assert cache.get("a", 1, lambda: calls.append(1) or len(calls)) == 1
    assert cache.get("a", 1, lambda: calls.append(1) or len(calls)) == 1
    assert cache.get("a", 2, lambda: calls.append(1) or len(calls)) == 2
    assert cache.get("b", 2, lambda: calls.append(1) or len(calls)) == 3  # names are apart
    cache.forget("a")
    assert cache.get("a", 2, lambda: calls.append(1) or len(calls)) == 4


def test_a_min_age_keeps_a_result_through_key_changes_and_longer_when_costly() -> None:
    from monitoring.readmodels import REFRESH_COST_FACTOR, ResultCache

    clock = FakeClock()
    cache, calls = ResultCache(clock), []

    def compute(seconds: float) -> int:
        clock.now += seconds  # the computation takes this long on the fake clock
        calls.append(1)
        return len(calls)

    assert cache.get("s", "k1", lambda: compute(0.0), min_age=1.0) == 1
    clock.now += 0.9
    assert cache.get("s", "k2", lambda: compute(0.0), min_age=1.0) == 1  # young enough
    clock.now += 0.2
    assert cache.get("s", "k2", lambda: compute(0.5), min_age=1.0) == 2  # took 0.5 s
    clock.now += REFRESH_COST_FACTOR * 0.5 - 0.5 - 0.1
    assert cache.get("s", "k3", lambda: compute(0.0), min_age=1.0) == 2  # kept 20 x 0.5 s
    clock.now += 0.2
    assert cache.get("s", "k3", lambda: compute(0.0), min_age=1.0) == 3


def test_a_costly_refresh_runs_off_the_caller_and_the_previous_value_is_served() -> None:
    """Once a refresh took longer than REFRESH_WAIT_SECONDS, callers get the previous
    value at once while one thread computes the next; cheap refreshes stay inline."""
    import sys
    import threading

    from monitoring.readmodels import REFRESH_SWITCH_SECONDS, REFRESH_WAIT_SECONDS, ResultCache

    before = sys.getswitchinterval()
    clock = FakeClock()
    cache = ResultCache(clock)
    release, started = threading.Event(), []

    intervals: list[float] = []

    def slow() -> str:
        started.append(threading.current_thread().name)
        intervals.append(sys.getswitchinterval())
        clock.now += 1.0  # took a second on the fake clock
        if len(started) > 1:
            assert release.wait(10)
        return f"value{len(started)}"

    assert cache.get_stale("live", "k1", slow, min_age=1.0) == ("value1", 1000.0)
    assert started == ["MainThread"]  # the first value of a process: computed by its caller
    clock.now += 30.0  # older than min_age and 20 x its cost
    assert cache.get_stale("live", "k2", slow, min_age=1.0) == ("value1", 1000.0)
    assert cache.get_stale("live", "k3", slow, min_age=1.0) == ("value1", 1000.0)
    release.set()
    for _ in range(1000):
        if cache.get_stale("live", "k3", slow, min_age=1.0)[0] == "value2":
            break
        threading.Event().wait(0.01)
    assert started == ["MainThread", "refresh-live"]  # one refresh, on its thread
    # the GIL changes hands more often only while the refresh runs
    assert intervals == [before, pytest.approx(REFRESH_SWITCH_SECONDS, abs=1e-9)]
    for _ in range(1000):
        if not cache._refreshing:
            break
        threading.Event().wait(0.01)
    assert sys.getswitchinterval() == before
    assert cache.get_stale("live", "k3", slow, min_age=1.0) == ("value2", 1031.0)

    cheap = ResultCache(clock)
    assert cheap.get_stale("c", 1, lambda: "a", min_age=0.0) == ("a", clock.now)
    clock.now += REFRESH_WAIT_SECONDS / 2
    assert cheap.get_stale("c", 2, lambda: "b", min_age=0.0) == ("b", clock.now)  # inline


def test_a_failed_background_refresh_keeps_the_previous_value() -> None:
    import threading

    from monitoring.readmodels import ResultCache

    clock = FakeClock()
    cache, done = ResultCache(clock), threading.Event()

    def first() -> int:
        clock.now += 1.0
        return 1

    def broken() -> int:
        done.set()
        raise RuntimeError("store down")

    assert cache.get_stale("x", "k1", first, min_age=1.0)[0] == 1
    clock.now += 30.0
    assert cache.get_stale("x", "k2", broken, min_age=1.0)[0] == 1
    assert done.wait(10)
    for _ in range(1000):  # the thread has left the refreshing set
        if not cache._refreshing:
            break
        threading.Event().wait(0.01)
    assert cache.get_stale("x", "k2", broken, min_age=1.0)[0] == 1  # retried after min_age only


def test_captured_predictions_change_the_store_but_not_its_records(
    deployed: dict[str, Any], settings: Any, store: Any
) -> None:
    """The capture importer writes all the time; what is derived from records stays cached."""
    from monitoring import capture

    records, everything = store.change_key(records_only=True), store.change_key()
    frame = pd.DataFrame({"x": [1.0]})
    result = {"predictions": [1], "probabilities": [0.9]}
    capture.record(store, settings, request_id="r", model_version="v", rows=frame, result=result)
    capture.import_journals(store, settings)  # captured_predictions changed
    assert store.change_key(records_only=True) == records
    assert store.change_key() != everything
    store.add_timing("ingestion", 0.5, 10)  # a record
    assert store.change_key(records_only=True) != records


def test_scoring_is_computed_once_until_a_record_changes(
    deployed: dict[str, Any], settings: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitoring import readmodels

    calls: list[str] = []
    real = readmodels.model_drift_status
    monkeypatch.setattr(readmodels, "model_drift_status", lambda *a: calls.append("x") or real(*a))
    views = readmodels.ReadModels(settings, store)
    first = views.scoring.current()
    assert views.scoring.current() == first and calls == ["x"]
    store.add_score({**store.scores(limit=1)[-1], "id": None, "f1": 0.1})
    views.scoring.current()
    assert calls == ["x", "x"]


def test_the_profile_is_read_once_per_stored_profile(
    deployed: dict[str, Any], settings: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitoring import readmodels
    from monitoring.data.ingestion import ingest

    views = readmodels.ReadModels(settings, store)
    reads: list[int | None] = []
    real = store.data_profile
    monkeypatch.setattr(store, "data_profile", lambda i=None: reads.append(i) or real(i))
    first_id = store.latest_data_profile_id()
    summary = views.profile.summary()
    assert views.profile.summary() == summary and views.profile.missing() != []
    store.add_timing("training", 1.0)  # a record, not a profile: the id is looked up again
    assert views.profile.summary() == summary and reads == [first_id]
    ingest(settings, store=store)
    assert views.profile.summary()["computed_at"] > summary["computed_at"]
    second_id = store.latest_data_profile_id()
    assert second_id != first_id and reads == [first_id, second_id]
