"""The dashboard page, the HTML/PDF report, the model card, and a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitoring.config import Settings
from monitoring.reports import dashboard
from monitoring.reports.modelcard import read_model_card
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
    for column, (reference, current) in histograms.items():
        assert reference.tolist() == sorted(training[column].astype(float))
        assert current.tolist() == sorted(ingested[column].astype(float))
    page = api.get("/dashboard").get_data(as_text=True)  # without finaldata.csv
    assert page.count('src="data:image/png;base64,') == 5


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
