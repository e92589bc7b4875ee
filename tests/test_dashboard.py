"""The dashboard page, the HTML/PDF report, the model card, and a real browser."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.config import Settings
from monitoring.reports import dashboard
from monitoring.storage.store import Store

SECTIONS = ("model", "versions", "scores", "drift", "missing", "confusion", "live", "runs")


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    return client


def test_dashboard_renders_every_section_self_contained(api: Any, deployed: dict[str, Any]) -> None:
    response = api.get("/dashboard")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for section in (*SECTIONS, "modelcard"):
        assert f'<section id="{section}"' in page
    assert deployed["model_version"] in page
    # Score history, confusion matrix and one histogram per feature, all inline.
    assert page.count('src="data:image/png;base64,') == 5
    assert "Model card: " + deployed["model_version"] in page
    # Works offline: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page


def test_dashboard_is_cached_and_changes_nothing(
    api: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = api.get("/dashboard").get_data(as_text=True)
    counts = (len(store.drift_reports()), len(store.runs()), len(store.scores()))

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("re-rendered although nothing changed")

    monkeypatch.setattr(dashboard, "collect_context", boom)
    assert api.get("/dashboard").get_data(as_text=True) == first
    assert (len(store.drift_reports()), len(store.runs()), len(store.scores())) == counts
    assert api.post("/dashboard").status_code == 405


def test_dashboard_rerenders_after_a_pipeline_run(
    api: Any, settings: Settings, store: Store
) -> None:
    from monitoring.pipeline import run_full_process

    api.get("/dashboard")
    run_full_process(settings, store=store)
    page = api.get("/dashboard").get_data(as_text=True)
    assert "no_new_data" in page


def test_dashboard_without_a_model(client: Any) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert "no model is deployed yet" in response.get_data(as_text=True)


def test_report_is_also_html_and_pdf_with_the_model_card(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    from monitoring.reports.reporting import generate_report

    result = generate_report(settings)
    folder = settings.output_model_path
    names = {Path(f).name for f in result["files"]}
    assert {"report.html", "report.pdf", "report.md", "report.json"} <= names
    html = (folder / "report.html").read_text()
    assert '<section id="drift"' in html and "Predictions on the test data" in html
    assert html.count("data:image/png;base64,") == 5
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 1
    markdown = (folder / "report.md").read_text()
    assert "## Model card" in markdown and "### Known caveats" in markdown


def test_model_card_is_written_on_deploy(settings: Settings, deployed: dict[str, Any]) -> None:
    version = deployed["model_version"]
    card = (settings.prod_deployment_path / "modelcards" / f"{version}.md").read_text()
    for heading in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Metrics",
        "## Metrics per slice",
        "## Known caveats",
    ):
        assert heading in card
    assert "the test set has only 5 rows" in card
    # Default slices: terciles of each feature, on the test and the training data.
    assert card.count("| test | (-inf, ") == 3 and card.count("| training | (-inf, ") == 3


def test_model_card_slices_are_configurable(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    from monitoring.pipeline import bootstrap

    settings = make_settings(model_card={"slices": {"number_of_employees": [10, 100]}})
    version = bootstrap(settings, store)["model_version"]
    card = (settings.prod_deployment_path / "modelcards" / f"{version}.md").read_text()
    assert "| test | (-inf, 10] |" in card and "| training | (100, inf] |" in card


# -- a real browser ----------------------------------------------------------------
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
