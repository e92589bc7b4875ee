"""``/docs`` in headless Chromium: Swagger UI renders every operation at 1400 and 390
px, without horizontal overflow at 1400 px, and "Try it out" sends a prediction and,
with the admin token entered under Authorize, an admin operation."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.config import Settings
from monitoring.web.openapi import spec

TOKEN = "docs-token-0123456789"
WAIT = 30  # seconds for the page or a response to appear

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(deployed: dict[str, Any], settings: Settings) -> Iterator[tuple[str, int]]:
    """The app (with an admin token) on loopback, werkzeug in a thread; (URL, operations)."""
    from werkzeug.serving import make_server

    app = create_app(dataclasses.replace(settings, api_token=TOKEN), {"TESTING": True})
    with app.app_context():
        operations = sum(len(methods) for methods in spec()["paths"].values())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}", operations
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _open(driver: Any, url: str, width: int) -> list[Any]:
    """Load /docs at ``width`` CSS pixels; the operation blocks once rendered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(width, 1000)
    inner = driver.execute_script("return window.innerWidth")
    driver.set_window_size(width + (width - inner), 1000)  # the viewport, not the window
    driver.get(url + "/docs")
    WebDriverWait(driver, WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock .opblock-summary-path"))
    )
    assert driver.execute_script("return window.innerWidth") == width
    return driver.find_elements(By.CSS_SELECTOR, ".opblock")


def _operation(driver: Any, method: str, path: str) -> Any:
    """The expanded block of one operation, "Try it out" pressed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    block = driver.find_element(
        By.XPATH,
        f"//div[contains(@class, 'opblock-{method}')]"
        f"[.//*[contains(@class, 'opblock-summary-path') and @data-path='{path}']]",
    )
    summary = block.find_element(By.CSS_SELECTOR, ".opblock-summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    button = WebDriverWait(driver, WAIT).until(
        lambda d: block.find_element(By.CSS_SELECTOR, ".try-out__btn")
    )
    button.click()
    return block


def _execute(driver: Any, block: Any) -> tuple[str, str]:
    """Press Execute; the (status, body) the page shows for the live response."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    live = ".live-responses-table .response"
    if block.find_elements(By.CSS_SELECTOR, live):  # an earlier Execute's answer: Clear it
        block.find_element(By.CSS_SELECTOR, "button.btn-clear").click()
        WebDriverWait(driver, WAIT).until(lambda d: not block.find_elements(By.CSS_SELECTOR, live))
    execute = block.find_element(By.CSS_SELECTOR, "button.execute")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", execute)
    execute.click()
    row = WebDriverWait(driver, WAIT).until(
        lambda d: block.find_element(By.CSS_SELECTOR, ".live-responses-table .response")
    )
    status = row.find_element(By.CSS_SELECTOR, ".response-col_status").text.strip()
    body = row.find_element(By.CSS_SELECTOR, ".response-col_description pre").text
    return status, body


def test_docs_renders_every_operation_without_overflow(
    served: tuple[str, int], browser: Any, tmp_path: Path
) -> None:
    url, operations = served
    for width in (1400, 390):
        blocks = _open(browser, url, width)
        assert len(blocks) == operations
        assert all(block.is_displayed() and block.size["height"] > 0 for block in blocks)
        if width == 1400:
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0
        browser.save_screenshot(str(tmp_path / f"docs-{width}.png"))
        shutil.copy(tmp_path / f"docs-{width}.png", f"/tmp/docsb/docs-{width}.png")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_try_it_out_sends_a_prediction_and_an_admin_call_with_the_token(
    served: tuple[str, int], browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = served
    _open(browser, url, 1400)
    block = _operation(browser, "post", "/prediction")
    status, body = _execute(browser, block)  # the example body: the shipped test data
    assert status == "200", body
    assert '"n_rows": 5' in body and '"predictions": [' in body

    block = _operation(browser, "post", "/ingest")
    status, body = _execute(browser, block)
    assert status == "401", body  # no token yet

    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    field = WebDriverWait(browser, WAIT).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".auth-container input")
    )
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .modal-btn.authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()
    status, body = _execute(browser, block)
    curl = block.find_element(By.CSS_SELECTOR, ".curl-command").text
    assert f"-H 'Authorization: Bearer {TOKEN}'" in curl
    assert status == "200", body
    assert '"rows_read": 36' in body
