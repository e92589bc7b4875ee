"""Report rendering: the Markdown documents come from templates with exact text."""

from __future__ import annotations

from monitoring.reports.formatting import TEMPLATES
from monitoring.reports.reporting import render_markdown

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


def test_markdown_templates_ship_in_the_package() -> None:
    assert {"report.md", "modelcard.md", "macros.md"} <= set(TEMPLATES.list_templates())
