"""The dashboard in a real browser: headless Chromium under gunicorn."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.config import Settings

SECTIONS = ("model", "versions", "scores", "drift", "missing", "confusion", "live", "runs")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def served(deployed: dict[str, Any], settings: Settings) -> Iterator[str]:
    """The app on loopback, werkzeug in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(settings, {"TESTING": True}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.e2e
def test_dashboard_in_headless_chromium(served: str, tmp_path: Path) -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        message = "chromium and chromium-driver are not installed (apt-get install them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(served + "/dashboard")
        assert driver.title == "Model monitoring dashboard"
        for section in SECTIONS:
            element = driver.find_element(By.ID, section)
            assert element.is_displayed() and element.size["height"] > 0
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == 5
        for image in images:
            loaded = driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", image
            )
            assert loaded and loaded > 100
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        shutil.copy(shot, "/tmp/dashboard.png")
        assert shot.read_bytes().startswith(b"\x89PNG")
    finally:
        driver.quit()
