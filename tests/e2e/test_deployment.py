"""The deployment's processes for real: the image's command on a fresh store, the scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from monitoring.config import PROJECT_ROOT, Settings
from monitoring.storage.engine import head_revision, schema_revision
from tests.helpers import free_port, wait_until_up
from tests.test_deployment_files import instruction


@pytest.mark.e2e
def test_the_image_command_migrates_sets_up_and_serves_a_fresh_store(settings: Settings) -> None:
    [_, _, script] = json.loads(instruction("CMD")[0])  # sh -c SCRIPT
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # our python
        "MONITORING_CONFIG": str(settings.config_path),
        "DATABASE_URL": settings.database_url,
        "HOST": "127.0.0.1",  # the image's 0.0.0.0, kept on loopback here
        "PORT": str(port),
        "MONITORING_PYPI_URL": "http://127.0.0.1:9",  # the dependency check sees itself offline
    }
    process = subprocess.Popen(
        ["sh", "-c", script], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, timeout=120)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "ok"
        assert schema_revision(settings.database_url) == head_revision()
    finally:
        process.terminate()  # gunicorn itself: the script execs it
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "upgraded from revision none to " in err
    assert f"ready: model {health['model_version']} deployed" in err


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
