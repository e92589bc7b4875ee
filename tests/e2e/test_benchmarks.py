"""The benchmark suite runs end to end in its quick mode (no wrk needed)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitoring.config import PROJECT_ROOT

BENCHMARKS = PROJECT_ROOT / "benchmarks"

pytestmark = pytest.mark.e2e


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


GOALS = [
    "/prediction 10 rows >= 0.45x ceiling (capture off)",
    "/prediction p99 <= 2 ms, 4 conns (capture off)",
    "/prediction 10 rows >= 0.45x ceiling (capture on)",
    "/prediction p99 <= 2 ms, 4 conns (capture on)",
    "/prediction capture on PostgreSQL >= 0.8x SQLite req/s",
    "/scoring >= 0.7x ceiling",
    "/summarystats >= 0.7x ceiling",
    "/diagnostics >= 0.5x ceiling",
    "redeploy served within 1 s, no restart",
    "model loaded once per process",
    "/prediction 5 rows JSON rows >= 0.35x ceiling",
    "/prediction 5 rows CSV body >= 0.35x ceiling",
    "/prediction 5 rows dataset path >= 0.35x ceiling",
    "/prediction 10k rows CSV body >= 0.5x in-process limit",
    "/prediction 10k rows dataset path >= 0.5x in-process limit",
    "/prediction 10k rows JSON rows >= 0.3x in-process limit",
    "/prediction JSON rows >= 3x naive, every size",
    "/prediction CSV body >= 3x naive, every size",
    "/prediction dataset path >= 3x naive, every size",
    "/prediction 10 rows JSON rows p99 <= 2x ceiling p99",
    "/prediction 10 rows CSV body p99 <= 2x ceiling p99",
    "/prediction 10 rows dataset path p99 <= 2x ceiling p99",
    "ingestion <= 1.5x polars (20,000 rows)",
    "ingestion peak memory < 3x data (20,000 rows)",
    "every contender keeps the same rows (20,000)",
    "batch probabilities == sklearn's",
    "drift: 10k-row column < 1 ms",
    "drift: KS statistics within the sketch's bound of scipy's",
    "CLI --help < 1 s",
    "CLI versions < 1 s",
    "/scoring p99 <= 2x ceiling p99 (20,000 captured)",
    "first /dashboard after a deploy <= 1 s",
    "later /dashboard <= 50 ms",
    "monitoring report <= 5 s",
    "whole benchmark < 5 minutes",
]


def test_run_all_quick_measures_every_goal(tmp_path: Path) -> None:
    run_all = _load("run_all")
    out = tmp_path / "goals.json"
    assert run_all.main(["--quick", "--no-wrk", "--json", str(out)]) == 0
    goals = {g["name"]: g for g in json.loads(out.read_text())}
    assert list(goals) == GOALS  # the same goals, in the same order
    # What must hold at any size: answers, not speed.
    answers = (
        "model loaded once per process",
        "every contender keeps the same rows (20,000)",
        "batch probabilities == sklearn's",
        "drift: KS statistics within the sketch's bound of scipy's",
    )
    for name in answers:
        assert goals[name]["verdict"] == "PASS", goals[name]
    for goal in goals.values():  # the others: a measured number, or a skip saying why
        if goal["verdict"] == "SKIP":
            assert goal["measured"].startswith("skipped: "), goal
        elif goal["name"] not in answers:
            assert re.search(r"\d", goal["measured"]), goal


def test_bench_scripts_are_not_collected_as_tests() -> None:
    assert Path(BENCHMARKS / "bench_http.py").is_file()
    assert not any(p.name.startswith("test_") for p in BENCHMARKS.iterdir())


def test_live_performance_benchmark_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_live = _load("bench_live")
    assert bench_live.main(["--quick"]) == 0  # 0: both computations gave the same result
    assert "same result: yes" in capsys.readouterr().out


def test_fast_paths_give_the_library_answers() -> None:
    # The timings of --quick are not measurements; the answers must agree all the same.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_fastpaths.py"), "--quick", "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    differ = [f"{r['name']} ({r['size']})" for r in report["results"] if not r["same"]]
    assert not differ, differ
    assert done.returncode == 0, done.stderr[-2000:]
    names = {r["name"] for r in report["results"]}
    assert len(names) == 14, names  # every fast path was measured


def test_benchmark_quick_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = PROJECT_ROOT / "benchmarks" / "bench_drift.py"
    spec = importlib.util.spec_from_file_location("bench_drift", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_drift", module)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--sizes", "3000", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "10k-row column" in out and "evidently: skipped" in out
    assert " NO" not in out and "bound of scipy's" in out  # the KS statistics equal scipy's
    assert "sketch's bound of scipy's: 0.0e+00 (bound 0.0e+00) PASS" in out  # 3k: exact


def test_capture_benchmark_stores_the_same_rows_either_way() -> None:
    """Both journal routes store the same rows (the script exits on a difference);
    the quick run's timings are not measurements, so its goal is not asserted."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_capture.py"), "--quick"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "stored different rows" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line.split()[:2] for line in done.stdout.splitlines()[3:7]] == [
        ["5", "arrow"],
        ["5", "json"],
        ["64", "arrow"],
        ["64", "json"],
    ]
