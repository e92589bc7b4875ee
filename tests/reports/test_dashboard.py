"""The dashboard page, the HTML/PDF report, the model card, and a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitoring.config import Settings
from monitoring.reports import dashboard
from monitoring.reports.modelcard import read_model_card
from monitoring.storage.store import Store

PANELS = (
    "model",
    "f1-trend",
    "estimated-f1",
    "drift-share",
    "drift-columns",
    "traffic",
    "latency",
    "ingested",
    "fairness",
    "delivery",
    "versions",
    "drift",
    "missing",
    "confusion",
    "live",
    "runs",
    "modelcard",
)


@pytest.fixture
def api(deployed: dict[str, Any], client: Any) -> Any:
    return client


def page_data(page: str) -> dict[str, Any]:
    """The chart data a page embeds for plotly.js."""
    [data] = re.findall(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page)
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def test_dashboard_shows_every_panel_and_fetches_nothing_elsewhere(
    api: Any, deployed: dict[str, Any]
) -> None:
    response = api.get("/dashboard")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert re.findall(r'<section id="([^"]+)"', page) == list(PANELS)
    assert deployed["model_version"] in page
    assert "Model card: " + deployed["model_version"] in page
    assert "no estimate yet: no captured traffic of the live model" in page
    # The bias audit of number_of_employees in terciles of the 5 test rows, as /fairness.
    assert "test data (5 rows): fail" in page
    assert (
        "<tr><td>test</td><td>number_of_employees</td><td>(15, 74.3333]</td><td>pprev</td>"
        "<td>2</td></tr>"
    ) in page
    assert re.search(r"<td>deployments</td>\s*<td>1 \(0 rollbacks\)</td>", page)
    # Works offline: plotly.js comes from this app, nothing from anywhere else.
    assert re.findall(r'<script src="([^"]+)"', page) == [
        f"/dashboard/plotly.min.js?v={dashboard.plotly_js_version()}"
    ]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    data = page_data(page)
    # F1 (the test score), ingested rows, the confusion matrix; one histogram per feature.
    charts = re.findall(r'<section id="([^"]+)".*?(?=<section|</main>)', page, re.S)
    assert set(charts) == set(PANELS)
    assert len(data["figures"]) == 3
    assert list(data["histograms"]) == [
        "lastmonth_activity",
        "lastyear_activity",
        "number_of_employees",
    ]


def test_plotly_js_is_served_from_the_pinned_package(api: Any) -> None:
    response = api.get("/dashboard/plotly.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.data == dashboard.plotly_js_path().read_bytes()
    assert response.data.startswith(b"/**\n* plotly.js v" + dashboard.plotly_js_version().encode())
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    again = api.get("/dashboard/plotly.min.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


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


def test_histogram_shares_are_exact() -> None:
    reference = np.arange(10, dtype=float)
    current = np.full(10, 5.0)
    assert dashboard.histogram(reference, current, bins=3) == {
        "edges": [0.0, 3.0, 6.0, 9.0],
        "reference": [30.0, 30.0, 40.0],
        "current": [0.0, 100.0, 0.0],
    }
    # Beyond the 0.5 % and 99.5 % quantiles values fall in the end bins.
    wide = np.concatenate([np.zeros(1), np.full(998, 1.0), np.full(1, 1000.0)])
    assert dashboard.histogram(wide, wide, bins=2) == {
        "edges": [0.5, 1.0, 1.5],
        "reference": [0.1, 99.9],
        "current": [0.1, 99.9],
    }


def test_histograms_compare_the_training_and_the_ingested_profiles(
    api: Any, make_settings: Callable[..., Settings], store: Store
) -> None:
    """The current values come from the stored profile of the latest ingestion."""
    from monitoring.data.ingestion import ingest
    from monitoring.readmodels import ReadModels
    from monitoring.storage.files import read_table

    source = make_settings(input_folder_path="data/sourcedata")
    training = read_table(source.finaldata_file)
    ingest(source, store=store)
    ingested = read_table(source.finaldata_file)
    source.finaldata_file.unlink()
    histograms = dashboard.collect_context(ReadModels(source, store))["histograms"]
    assert list(histograms) == ["lastmonth_activity", "lastyear_activity", "number_of_employees"]
    for column, hist in histograms.items():
        expected = dashboard.histogram(
            np.sort(training[column].to_numpy(float)), np.sort(ingested[column].to_numpy(float))
        )
        assert hist == expected
        assert sum(hist["reference"]) == pytest.approx(100) == sum(hist["current"])
    page = api.get("/dashboard").get_data(as_text=True)  # without finaldata.csv
    assert len(page_data(page)["histograms"]) == 3


def test_dashboard_rerenders_after_an_ingestion(
    api: Any, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitoring.data.ingestion import ingest

    calls: list[int] = []
    real = dashboard.collect_context
    monkeypatch.setattr(dashboard, "collect_context", lambda v: calls.append(1) or real(v))
    api.get("/dashboard")
    api.get("/dashboard")
    ingest(settings, store=store)
    api.get("/dashboard")
    assert len(calls) == 2


def test_dashboard_without_a_model(client: Any) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "no model is deployed yet" in page
    assert "no scores recorded yet" in page and "nothing ingested yet" in page


def test_chart_data_cannot_close_the_script_element() -> None:
    panel = dashboard.panel(
        "x", "x", dashboard.figure_block({"data": [{"name": "</script><b>&"}]}, "x")
    )
    panel["blocks"][0]["key"] = "fig0"
    text = dashboard.page_json([panel])
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["figures"]["fig0"]["data"][0]["name"] == "</script><b>&"


def test_deployments_and_rollbacks_are_marked_on_the_time_axis() -> None:
    ctx = {
        "deployment_log": [
            {"deployed_at": "2026-12-01T09:00:00+00:00", "action": "deploy", "model_version": "a"},
            {
                "deployed_at": "2026-12-02T10:00:00+00:00",
                "action": "deploy",
                "model_version": "x-b",
            },
            {
                "deployed_at": "2026-12-02T10:00:30+00:00",
                "action": "rollback",
                "model_version": "a",
            },
            {"deployed_at": "2026-12-02T12:00:00+00:00", "action": "deploy", "model_version": "c"},
        ]
    }
    trace = dashboard.line(["2026-12-02 09:00:00", "2026-12-02 11:00:00"], [0.5, 0.6], "f1")
    figure = dashboard.time_figure(ctx, [trace], y_title="F1 score (0 to 1)")
    layout = figure["layout"]
    # Before the first point: left out; the rollback 30 s after a deploy shares its label.
    assert [(s["x0"], s["line"]["color"]) for s in layout["shapes"]] == [
        ("2026-12-02 10:00:00", "#555"),
        ("2026-12-02 10:00:30", "#b00020"),
        ("2026-12-02 12:00:00", "#555"),
    ]
    assert [a["text"] for a in layout["annotations"]] == ["deploy b, rollback a", "deploy c"]
    assert layout["xaxis"]["title"]["text"] == "time (UTC)" and layout["xaxis"]["type"] == "date"
    assert layout["yaxis"]["title"]["text"] == "F1 score (0 to 1)"


def test_a_panel_is_one_function_of_the_context(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def extra(ctx: dict[str, Any]) -> dict[str, Any]:
        rows = [{"metric": "parity", "value": ctx["min_labelled_rows"]}]
        return dashboard.panel(
            "extra-panel", "An extra panel", dashboard.table_block(rows, ["metric", "value"])
        )

    monkeypatch.setattr(dashboard, "PANELS", [*dashboard.PANELS, extra])
    monkeypatch.setattr(dashboard, "_CACHE", {})
    page = api.get("/dashboard").get_data(as_text=True)
    assert re.findall(r'<section id="([^"]+)"', page)[-1] == "extra-panel"
    assert "<td>parity</td><td>30</td>" in page


def test_report_is_also_html_and_pdf_with_the_model_card(
    settings: Settings, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Chromium the PDF is the plain summary and says why (tests/e2e prints it)."""
    from pypdf import PdfReader

    from monitoring.reports.browser import NO_CHROMIUM
    from monitoring.reports.reporting import generate_report

    monkeypatch.setenv("MONITORING_CHROMIUM", "no-such-chromium")
    result = generate_report(settings)
    folder = settings.output_model_path
    names = {Path(f).name for f in result["files"]}
    assert {"report.html", "report.pdf", "report.md", "report.json"} <= names
    html = (folder / "report.html").read_text()
    assert '<section id="drift"' in html and "Predictions on the test data" in html
    # Self-contained: plotly.js inlined.
    assert dashboard.plotly_js_path().read_text() in html and "<script src=" not in html
    text = " ".join(page.extract_text() for page in PdfReader(folder / "report.pdf").pages)
    assert " ".join(NO_CHROMIUM.split()[:6]) in " ".join(text.split())
    assert deployed["model_version"] in text
    markdown = (folder / "report.md").read_text()
    assert "## Model card" in markdown and "### Known caveats" in markdown


def test_model_card_is_written_on_deploy(
    settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    version = deployed["model_version"]
    card = read_model_card(store, version)
    assert card is not None
    exported = settings.prod_deployment_path / "modelcards"
    assert (exported / f"{version}.md").read_text() == card
    assert (settings.output_model_path / "modelcard.md").read_text() == card
    stored = store.model_card(version)
    assert stored is not None and stored["markdown"] == card
    assert stored["card"] == json.loads((exported / f"{version}.json").read_text())
    assert stored["card"]["model"]["version"] == version
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
    card = read_model_card(store, version)
    assert card is not None
    assert "| test | (-inf, 10] |" in card and "| training | (100, inf] |" in card


# -- a real browser ----------------------------------------------------------------


def test_the_report_records_the_drift_the_dashboard_reads_back(
    settings: Settings,
    make_settings: Callable[..., Settings],
    deployed: dict[str, Any],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Computed once after a deploy (by the report), never by the first dashboard."""
    from monitoring import readmodels
    from monitoring.reports.reporting import generate_report

    generate_report(settings)
    generate_report(settings)  # the same model and data: recorded once
    [recorded] = store.drift_reports(source="ingested", full=True)
    assert recorded["model_version"] == deployed["model_version"]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("drift computed again")

    monkeypatch.setattr(readmodels, "detect_data_drift", boom)
    latest = readmodels.ReadModels(settings, store).drift.latest()
    assert latest == {
        k: v for k, v in recorded["report"].items() if k not in ("adhoc", "recorded_for")
    }
    # Other drift options: the recorded report does not answer for them.
    other = make_settings(drift={"p_value_threshold": 0.01})
    with pytest.raises(AssertionError, match="drift computed again"):
        readmodels.ReadModels(other, store).drift.latest()
