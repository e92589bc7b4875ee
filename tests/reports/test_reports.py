"""Report rendering: Markdown text, HTML escaping, and the one confusion-matrix figure."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from monitoring.config import Settings
from monitoring.reports.formatting import TEMPLATES
from monitoring.reports.plots import confusion_matrix_figure
from monitoring.reports.reporting import generate_report, render_markdown
from monitoring.storage.store import Store

SCORING = {
    "model_version": "v1",
    "f1": 0.5714285714285714,
    "precision": 0.5,
    "recall": None,
    "accuracy": True,
    "roc_auc": 0.0,
    "n_rows": 5,
}


def test_markdown_report_text_is_exact() -> None:
    report = {
        "generated_at": "2026-01-02T03:04:05+00:00",
        "scoring": {**SCORING, "model_drift": {"drift": True, "reason": "F1 < 0.6 & falling"}},
        "predictions": {"predictions": [0, 1]},
        "diagnostics": {
            "missing_data": [{"column": "a", "missing_share": 0.25, "missing_count": 1}],
            "execution_time": {"training": {"runs": 2, "mean": 0.5, "std": None}},
        },
        "model_card": "# Model card: v1\n\n## Caveats\n\n- <small> data\n",
    }
    assert render_markdown(report) == (
        "# Model monitoring report\n"
        "\n"
        "Generated 2026-01-02T03:04:05+00:00 for model `v1`.\n"
        "\n"
        "## Score of the deployed model on the test data\n"
        "\n"
        "| f1 | precision | recall | accuracy | roc_auc | n_rows |\n"
        "|---|---|---|---|---|---|\n"
        "| 0.5714 | 0.5 | n/a | yes | 0 | 5 |\n"
        "\n"
        "Model drift: **yes** (F1 < 0.6 & falling)\n"
        "\n"
        "## Predictions on the test data\n"
        "\n"
        "`[0, 1]`\n"
        "\n"
        "## Missing data (share of rows)\n"
        "\n"
        "| column | missing_share | missing_count |\n"
        "|---|---|---|\n"
        "| a | 0.25 | 1 |\n"
        "\n"
        "## Execution time (seconds)\n"
        "\n"
        "| step | runs | mean | std | min | max |\n"
        "|---|---|---|---|---|---|\n"
        "| training | 2 | 0.5 | n/a | n/a | n/a |\n"
        "\n"
        "## Model card\n"
        "\n"
        "# Model card: v1\n\n### Caveats\n\n- <small> data\n"
        "\n"
    )


def test_markdown_report_of_nothing() -> None:
    assert render_markdown({}) == (
        "# Model monitoring report\n\nGenerated None for model `n/a`.\n\n"
        "## Score of the deployed model on the test data\n\n"
        "| f1 | precision | recall | accuracy | roc_auc | n_rows |\n"
        "|---|---|---|---|---|---|\n"
        "| n/a | n/a | n/a | n/a | n/a | n/a |\n"
    )


def test_html_tables_escape_cells() -> None:
    # Markdown is not escaped: see "F1 < 0.6 & falling" above.
    page = "{% from 'macros.html' import table %}{{ table(rows, ['reason']) }}"
    html = TEMPLATES.from_string(page).render(rows=[{"reason": "<b>&'\""}])
    assert "<td>&lt;b&gt;&amp;&#39;&#34;</td>" in html


def test_a_stored_script_is_escaped_on_the_dashboard(
    deployed: dict[str, Any], store: Store, client: Any
) -> None:
    run_id = store.start_run()
    store.finish_run(
        run_id,
        status="completed",
        outcome="no_new_data",
        reason="<script>alert('x')</script>",
        evidence={},
    )
    page = client.get("/dashboard").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    # Only the page's own three: plotly.js, the chart data, the code drawing them.
    assert page.count("<script") == 3


def test_confusion_matrix_is_drawn_by_scikit_learn() -> None:
    score = {"confusion_matrix": [[0, 2], [1, 2]], "f1": 0.5714285714285714, "n_rows": 5}
    fig = confusion_matrix_figure(score, "v1")
    [ax, _colorbar] = fig.axes
    assert [t.get_text() for t in ax.texts] == ["0", "2", "1", "2"]
    assert ax.get_xlabel() == "Predicted label" and ax.get_ylabel() == "True label"
    assert ax.get_title() == "model v1\nF1 0.5714 on 5 test rows"
    assert np.array_equal(ax.images[0].get_array(), [[0, 2], [1, 2]])


def test_report_draws_the_test_confusion_matrix(
    settings: Settings, deployed: dict[str, Any], store: Store
) -> None:
    generate_report(settings)
    folder = settings.output_model_path
    assert (folder / "confusionmatrix.png").read_bytes().startswith(b"\x89PNG")
    html = (folder / "report.html").read_text()
    [data] = re.findall(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html)
    heatmaps = [
        trace["z"]
        for figure in json.loads(data)["figures"].values()
        for trace in figure["data"]
        if trace["type"] == "heatmap" and figure["layout"]["xaxis"].get("type") == "category"
    ]
    row = store.model_version(deployed["model_version"], with_bytes=False)
    assert row is not None
    assert heatmaps == [row["score"]["confusion_matrix"]]


@pytest.mark.parametrize("name", ["page.html", "report.md", "modelcard.md", "pdf-summary.txt"])
def test_templates_ship_in_the_package(name: str) -> None:
    assert name in TEMPLATES.list_templates()
