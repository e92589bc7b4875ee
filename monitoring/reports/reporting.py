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
from monitoring.readmodels import Monitor
from monitoring.reports.dashboard import write_report_documents
from monitoring.reports.formatting import render
from monitoring.reports.modelcard import read_model_card
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

CONFUSION_MATRIX_FILE = "confusionmatrix.png"


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
    """The combined report (:func:`collect_report`) as Markdown (``templates/report.md``)."""
    return render("report.md", report=report)


def write_report(folder: Path, report: dict[str, Any], *, stem: str = "report") -> list[Path]:
    """Write the combined report as JSON and Markdown; return the paths."""
    return [
        atomic_write_json(folder / f"{stem}.json", report),
        atomic_write_text(folder / f"{stem}.md", render_markdown(report)),
    ]


def collect_report(settings: Settings) -> dict[str, Any]:
    """Gather what the API shows, in-process: score, stats, diagnostics, drift, predictions."""

    monitor = Monitor(settings)
    report: dict[str, Any] = {"generated_at": utcnow()}
    report["scoring"] = monitor.scoring()
    report["predictions"] = monitor.predict(
        read_test_data(settings), input_name=settings.test_data_file.name
    )
    report["summarystats"] = monitor.summarystats()
    report["diagnostics"] = monitor.diagnostics()
    report["drift"] = monitor.drift(record=False)

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
