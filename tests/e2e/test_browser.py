"""The dashboard in a real browser (headless Chromium), and report.pdf printed by it."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.capture.importer import import_journals
from monitoring.config import Settings
from monitoring.pipeline import run_full_process
from monitoring.storage.store import Store
from tests.e2e.conftest import need_browser
from tests.helpers import AUTH
from tests.reports.test_dashboard import PANELS

# Charts that must hold data after a pipeline run and labelled traffic.
CHARTS = (
    "f1-trend",
    "estimated-f1",
    "drift-share",
    "drift-columns",
    "traffic",
    "latency",
    "ingested",
    "confusion",
)
# A time-axis tick as plotly writes it: "10:22:30", "Dec 2, 2026", "10:00", "Dec 2"...
READABLE_TICK = re.compile(r"^(\d{1,2}:\d{2}(:\d{2})?|[A-Z][a-z]{2} \d{1,2}(, \d{4})?|\d{4})$")


@pytest.fixture
def history(deployed: dict[str, Any], settings: Settings, store: Store) -> Settings:
    """A pipeline run on new data, and labelled /prediction traffic, all in the store."""
    for source in sorted((settings.root / "data" / "sourcedata").glob("*.csv")):
        shutil.copy(source, settings.input_folder_path / source.name)
    run_full_process(settings, store=store)
    app = create_app(settings, {"TESTING": True})
    client = app.test_client()
    for _ in range(2):
        answer = client.post("/prediction", json={"dataset_path": "testdata.csv"}).get_json()
        labels = [int(p) for p in answer["predictions"]]
        labels[0] = 1 - labels[0]
        client.post(
            "/feedback", json={"request_id": answer["request_id"], "labels": labels}, headers=AUTH
        )
    import_journals(store, settings)
    app.extensions["latency"].flush()
    return settings


@pytest.fixture
def served(history: Settings) -> Iterator[str]:
    """The app on loopback, werkzeug in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(history, {"TESTING": True}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def open_dashboard(driver: Any, url: str, width: int) -> None:
    """Load the dashboard at ``width`` CSS pixels and wait until every chart is drawn."""
    driver.set_window_size(width, 1000)
    driver.get(url + "/dashboard")
    inner = driver.execute_script("return window.innerWidth")
    if inner != width:  # the window frame: make the page itself that wide
        driver.set_window_size(2 * width - inner, 1000)
        driver.get(url + "/dashboard")
    assert driver.execute_script("return window.innerWidth") == width
    driver.execute_async_script(
        "var done = arguments[0];"
        "(function wait() { document.body.dataset.charts === 'drawn' ? done() :"
        " setTimeout(wait, 50); })();"
    )


def panel_report(driver: Any) -> dict[str, Any]:
    """For each panel: shown, its box, and for its charts the data points drawn and the
    time-axis tick labels."""
    found = driver.execute_script(
        """
        var out = [];
        document.querySelectorAll('section').forEach(function (s) {
          var box = s.getBoundingClientRect();
          var charts = Array.from(s.querySelectorAll('.chart'));
          out.push({
            id: s.id,
            shown: box.width > 0 && box.height > 0 && getComputedStyle(s).visibility === 'visible',
            left: box.left, right: box.right,
            charts: charts.map(function (c) {
              return {
                points: c.querySelectorAll('.scatterlayer .point, .barlayer .point, ' +
                                           '.heatmaplayer image, .hm image').length,
                svg: c.querySelectorAll('svg.main-svg').length,
                width: c.getBoundingClientRect().width,
                right: Math.max.apply(null, Array.from(c.querySelectorAll('svg.main-svg'))
                  .map(function (v) { return v.getBoundingClientRect().right; }).concat([0])),
                xticks: Array.from(c.querySelectorAll('.xaxislayer-above .xtick text'))
                  .map(function (t) {
                    return Array.from(t.querySelectorAll('tspan')).length
                      ? Array.from(t.querySelectorAll('tspan')).map(function (p) {
                          return p.textContent; })
                      : [t.textContent];
                  }),
                date: c.querySelector('.xaxislayer-above') !== null &&
                      (c.dataset.figure || '') !== ''
              };
            })
          });
        });
        return out;
        """
    )
    return {p["id"]: p for p in found}


@pytest.mark.e2e
def test_dashboard_at_desktop_and_phone_widths(served: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_dashboard(browser, served, 1400)
    assert browser.title == "Model monitoring dashboard"
    panels = panel_report(browser)
    assert list(panels) == list(PANELS)
    assert all(p["shown"] for p in panels.values()), panels
    # No horizontal overflow at 1400 px: the page and every panel fit the window.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1400
    assert all(0 <= p["left"] and p["right"] <= 1400 for p in panels.values())
    for name in CHARTS:
        [chart, *_] = panels[name]["charts"]
        assert chart["svg"] >= 1 and chart["points"] >= 1, (name, chart)
        assert chart["right"] <= panels[name]["right"], (name, chart)
    # Readable dates on every time axis (not raw timestamps like "41:07.454000").
    for name in ("f1-trend", "drift-share", "drift-columns", "traffic", "latency", "ingested"):
        ticks = [part for tick in panels[name]["charts"][0]["xticks"] for part in tick]
        assert ticks and all(READABLE_TICK.match(t) for t in ticks), (name, ticks)
    # The bias audit and the delivery metrics are shown.
    assert "test data (5 rows): fail" in browser.find_element(By.ID, "fairness").text
    assert "deployments per week" in browser.find_element(By.ID, "delivery").text
    # Deployments are marked on the time axis.
    f1 = browser.find_element(By.ID, "f1-trend")
    assert re.search(r"deploy [0-9a-f]{8}", f1.text)
    # The histogram picker redraws the chart for the column chosen.
    picker = Select(browser.find_element(By.ID, "histogram-column"))
    picker.select_by_value("number_of_employees")
    title = browser.execute_script(
        "return document.querySelector('#histogram-chart .gtitle').textContent"
    )
    assert title == "number_of_employees"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []

    open_dashboard(browser, served, 390)
    panels = panel_report(browser)
    assert list(panels) == list(PANELS)
    assert all(p["shown"] for p in panels.values())
    for name in CHARTS:
        [chart, *_] = panels[name]["charts"]
        assert chart["points"] >= 1 and chart["width"] <= 390, (name, chart)
        assert chart["right"] <= panels[name]["right"], (name, chart)  # drawn inside its panel
    shot = tmp_path / "phone.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.e2e
def test_report_pdf_is_the_dashboard_printed_by_chromium(history: Settings) -> None:
    need_browser()
    from pypdf import PdfReader

    from monitoring.reports.reporting import generate_report

    store = Store(history.database_url)
    generate_report(history)
    reader = PdfReader(history.output_model_path / "report.pdf")
    assert len(reader.pages) >= 2
    assert reader.pages[0].mediabox.width == pytest.approx(595, abs=1)  # A4
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    for heading in (
        "F1 per model version over time",
        "Dataset drift share per pipeline run",
        "Prediction volume and positive rate per hour",
        "Request latency p95 per hour",
        "Version history",
        "Deployments and rollbacks",
        "Missing data (share of rows)",
        "Recent pipeline runs",
        "Summary statistics of the ingested data",
        "Model card",
    ):
        assert heading in text
    # The tables' cells, and the charts' axis titles (drawn, not left blank).
    assert "column method statistic p_value threshold drifted" in text
    for version in {d["model_version"] for d in store.deployments()}:
        assert version in text.replace(" ", "") or version in text
    assert "time (UTC)" in text and "F1 score (0 to 1)" in text
    assert "Chromium was not found" not in text


# -- the printer: headless Chromium over the DevTools pipe ---------------------------
def browsers_using(folder: Path) -> list[str]:
    """Command lines of live processes whose arguments name ``folder`` (a Chromium's
    scratch folder holds its profile)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if str(folder) in args and state != "Z":
            found.append(args.replace("\0", " "))
    return found


def test_chromium_prints_a_page_once_its_charts_say_drawn() -> None:
    """The page's own script decides when it is ready; the PDF is A4, as its CSS asks,
    and the browser and its scratch folder are gone after close()."""
    need_browser()
    from pypdf import PdfReader

    from monitoring.reports.browser import Chromium, launch

    chromium = launch(preload=[])
    assert isinstance(chromium, Chromium)
    scratch = chromium.root
    assert browsers_using(scratch)
    chromium.load(
        "<!doctype html><html><head><style>@page { size: A4; }</style></head><body>"
        "<p id='p'>waiting</p><script>setTimeout(function () {"
        "document.getElementById('p').textContent = 'drawn late';"
        "document.body.dataset.charts = 'drawn'; }, 300);</script></body></html>"
    )
    data = chromium.pdf()
    chromium.close()
    reader = PdfReader(io.BytesIO(data))
    assert reader.pages[0].mediabox.width == pytest.approx(595, abs=1)
    assert "drawn late" in reader.pages[0].extract_text()
    assert chromium.process.poll() is not None
    assert not scratch.exists()
    assert browsers_using(scratch) == []


def test_chromium_gives_up_on_a_page_that_never_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    need_browser()
    from monitoring.reports import browser

    monkeypatch.setattr(browser, "PRINT_SECONDS", 1.5)
    chromium = browser.launch(preload=[])
    assert isinstance(chromium, browser.Chromium)
    with chromium:
        chromium.load("<html><body>no script sets data-charts</body></html>")
        with pytest.raises(browser.PrintError, match="took over 2 s"):
            chromium.pdf()
    assert chromium.process.poll() is not None


def test_a_crashed_chromium_falls_back_to_the_plain_pdf(
    history: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chromium killed while the report is written: the report still has every file,
    report.pdf is the plain summary saying what happened, and no browser is left."""
    need_browser()
    from pypdf import PdfReader

    from monitoring.reports import browser, reporting

    loaded, started = browser.Chromium.load, []

    def load_then_crash(self: browser.Chromium, html: str) -> None:
        loaded(self, html)
        started.append(self.root)
        os.kill(self.process.pid, signal.SIGKILL)

    monkeypatch.setattr(browser.Chromium, "load", load_then_crash)
    result = reporting.generate_report(history)
    assert len(result["files"]) == 5
    text = " ".join(p.extract_text() for p in PdfReader(result["files"][-1]).pages)
    assert "Chromium could not print the report (chromium stopped" in " ".join(text.split())
    assert not started[0].exists()
    time.sleep(1)  # the renderer notices its browser is gone
    assert browsers_using(started[0]) == []


def test_the_report_command_prints_with_chromium(history: Settings) -> None:
    """``python -m monitoring report`` starts Chromium before its imports and prints
    the dashboard's page, not the plain summary."""
    need_browser()
    from pypdf import PdfReader

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring",
            "--config",
            str(history.root / "config.json"),
            "report",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "MONITORING_CHROMIUM"},
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(
        p.extract_text() for p in PdfReader(history.output_model_path / "report.pdf").pages
    )
    assert "Dataset drift share per pipeline run" in text
    assert "Chromium" not in text
