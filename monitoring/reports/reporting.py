"""Reporting: the confusion-matrix plot and the combined report.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot global
state, no display needed), written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitoring.config import Settings
from monitoring.model.deployment import load_deployed
from monitoring.model.scoring import evaluate, read_test_data
from monitoring.readmodels import ReadModels
from monitoring.reports.dashboard import write_report_documents
from monitoring.reports.formatting import markdown_table
from monitoring.reports.modelcard import read_model_card
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

CONFUSION_MATRIX_FILE = "confusionmatrix.png"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]], *, title: str, labels: Sequence[str] = ("0", "1")
) -> bytes:
    """Render a 2x2 confusion matrix (rows: true class, columns: predicted) as PNG."""
    fig = Figure(figsize=(4.2, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            color = "white" if value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=14)
    ax.set_xticks(range(len(labels)), labels=list(labels))
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_confusion_matrix(
    settings: Settings, *, name: str = CONFUSION_MATRIX_FILE
) -> dict[str, Any]:
    """Plot the deployed model's confusion matrix on the test data.

    Returns
    -------
    dict
        ``path``, ``model_version`` and the metrics it was drawn from.
    """

    artifact = load_deployed(settings)
    metrics = evaluate(
        artifact,
        read_test_data(settings),
        settings.target,
        input_name=settings.test_data_file.name,
    )
    png = confusion_matrix_png(
        metrics["confusion_matrix"],
        title=f"model {artifact.version}\nF1 {metrics['f1']:.3f} on {metrics['n_rows']} test rows",
    )
    path = atomic_write_bytes(settings.output_model_path / name, png)
    return {"path": str(path), "model_version": artifact.version, "metrics": metrics}


def render_markdown(report: dict[str, Any]) -> str:
    """A readable Markdown version of the combined report."""
    scoring = report.get("scoring") or {}
    parts = [
        "# Model monitoring report",
        "",
        f"Generated {report.get('generated_at')} for model "
        f"`{scoring.get('model_version', 'n/a')}`.",
        "",
        "## Score of the deployed model on the test data",
        "",
        markdown_table([scoring], ["f1", "precision", "recall", "accuracy", "roc_auc", "n_rows"]),
    ]
    drift = scoring.get("model_drift") or {}
    if drift:
        parts += [
            "",
            f"Model drift: **{'yes' if drift.get('drift') else 'no'}** ({drift.get('reason', '')})",
        ]
    if report.get("predictions") is not None:
        parts += [
            "",
            "## Predictions on the test data",
            "",
            f"`{report['predictions'].get('predictions')}`",
        ]
    summary = report.get("summarystats") or {}
    if summary.get("summary"):
        parts += [
            "",
            f"## Summary statistics ({summary.get('rows')} ingested rows)",
            "",
            markdown_table(
                summary["summary"], ["column", "mean", "median", "std", "min", "q25", "q75", "max"]
            ),
        ]
    diagnostics = report.get("diagnostics") or {}
    if diagnostics.get("missing_data"):
        parts += [
            "",
            "## Missing data (share of rows)",
            "",
            markdown_table(
                diagnostics["missing_data"], ["column", "missing_share", "missing_count"]
            ),
        ]
    timing = diagnostics.get("execution_time") or {}
    if timing:
        rows = [{"step": k, **v} for k, v in timing.items()]
        parts += [
            "",
            "## Execution time (seconds)",
            "",
            markdown_table(rows, ["step", "runs", "mean", "std", "min", "max"]),
        ]
    deps = (diagnostics.get("dependencies") or {}).get("packages") or []
    if deps:
        parts += [
            "",
            "## Dependencies",
            "",
            markdown_table(deps, ["package", "required", "installed", "latest", "status"]),
        ]
    drift_report = report.get("drift") or {}
    if drift_report.get("columns"):
        parts += [
            "",
            "## Data drift of the ingested data against the training data",
            "",
            f"Dataset drift: **{'yes' if drift_report.get('dataset_drift') else 'no'}** "
            f"({drift_report.get('n_drifted')} of {drift_report.get('n_columns')} columns)",
            "",
            markdown_table(
                drift_report["columns"],
                ["column", "method", "statistic", "p_value", "threshold", "drifted"],
            ),
        ]
    if report.get("model_card"):
        # The card's own headings move one level down inside the report.
        parts += ["", "## Model card", "", report["model_card"].replace("\n#", "\n##")]
    return "\n".join(parts) + "\n"


def write_report(folder: Path, report: dict[str, Any], *, stem: str = "report") -> list[Path]:
    """Write the combined report as JSON and Markdown; return the paths."""
    return [
        atomic_write_json(folder / f"{stem}.json", report),
        atomic_write_text(folder / f"{stem}.md", render_markdown(report)),
    ]


def collect_report(settings: Settings) -> dict[str, Any]:
    """Gather what the API shows, in-process: score, stats, diagnostics, drift, predictions."""

    views = ReadModels(settings)
    report: dict[str, Any] = {"generated_at": utcnow()}
    report["scoring"] = views.scoring.current()
    report["predictions"] = views.model.predict(
        read_test_data(settings), input_name=settings.test_data_file.name
    )
    report["summarystats"] = views.profile.summary()
    report["diagnostics"] = views.diagnostics.current()
    report["drift"] = views.drift.latest()

    report["model_card"] = read_model_card(settings, report["scoring"]["model_version"])
    return report


def generate_report(settings: Settings) -> dict[str, Any]:
    """Write the confusion matrix and the combined report for the deployed model.

    The report is written as JSON, Markdown, self-contained HTML (the dashboard's
    renderer) and PDF (the same plots).

    Returns
    -------
    dict
        ``model_version`` and the ``files`` written.
    """
    plot = write_confusion_matrix(settings)
    report = collect_report(settings)
    paths = write_report(settings.output_model_path, report)

    paths += write_report_documents(settings, report)  # report.html, report.pdf
    return {
        "model_version": plot["model_version"],
        "files": [plot["path"], *(str(p) for p in paths)],
    }
