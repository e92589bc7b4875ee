"""Short bounded load test under gunicorn (2 workers) with a pipeline run and two
redeploys in the middle: zero failed requests, flat worker memory.

The long version: ``.venv/bin/python benchmarks/load_test.py --seconds 60``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.config import PROJECT_ROOT

pytestmark = pytest.mark.e2e

SECONDS = os.environ.get("LOAD_SECONDS", "10")


def test_mixed_load_with_a_pipeline_run_and_redeploys(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks" / "load_test.py"),
            "--seconds",
            SECONDS,
            "--threads",
            "6",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(out.read_text())
    assert summary["errors"] == 0, summary["first_errors"]
    assert [e["status"] for e in summary["admin_events"]] == [200, 200, 200], summary
    assert summary["admin_events"][0]["outcome"] == "deployed"
    assert len(summary["prediction_versions"]) == 2  # served before and after the redeploy
    assert summary["worker_rss_mb"]["growth"] <= summary["worker_rss_mb"]["tolerance"], summary
    assert summary["passed"] and done.returncode == 0, done.stderr[-2000:]
