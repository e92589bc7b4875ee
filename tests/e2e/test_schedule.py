"""``python -m monitoring schedule`` as a process: real time, a real SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from monitoring.config import PROJECT_ROOT, Settings


@pytest.mark.e2e
def test_schedule_process_stops_between_runs_on_sigterm(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "monitoring", "--config", str(settings.config_path),
         "schedule", "--every", "0.5"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": settings.database_url},
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines = [process.stderr.readline() for _ in range(3)]  # the start line and two runs
    assert lines[1].startswith("[monitoring] run 1: no_new_data in ")
    assert lines[2].startswith("[monitoring] run 2: no_new_data in ")
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=30)[1]
    assert process.returncode == 0
    assert time.monotonic() - sent < 5  # within a run and a 1 s slice of the wait
    assert rest.splitlines()[-1].startswith("[monitoring] stopped by SIGTERM after ")
