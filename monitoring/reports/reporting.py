"""The combined report of the deployed model: :func:`generate_report` writes every file.

In ``output_model_path``: ``confusionmatrix.png`` (the deployed model on the test data),
``report.json`` (what the API shows), ``report.md``, ``report.html`` (the dashboard page
plus predictions and summary statistics) and ``report.pdf`` (the same figures). The
confusion matrix is drawn once for the PNG, the HTML and the PDF.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from monitoring.config import Settings
from monitoring.model.scoring import evaluate, read_test_data
from monitoring.readmodels import ReadModels
from monitoring.reports.dashboard import collect_context, render_page
from monitoring.reports.formatting import render
from monitoring.reports.modelcard import read_model_card
from monitoring.reports.plots import build_figures, confusion_matrix_figure, new_figure, png
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

CONFUSION_MATRIX_FILE = "confusionmatrix.png"


def collect_report(views: ReadModels) -> dict[str, Any]:
    """What the API shows, in-process: score, predictions, stats, diagnostics, drift, card."""
    settings, generated_at = views.settings, utcnow()
    scoring = views.scoring.current()
    return {
        "generated_at": generated_at,
        "scoring": scoring,
        "predictions": views.model.predict(
            read_test_data(settings), input_name=settings.test_data_file.name
        ),
        "summarystats": views.profile.summary(),
        "diagnostics": views.diagnostics.current(),
        "drift": views.drift.latest(),
        "model_card": read_model_card(views.store, scoring["model_version"]),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The combined report (:func:`collect_report`) as Markdown."""
    return render("report.md", report=report)


def write_pdf(path: Path, ctx: dict[str, Any], figures: dict[str, Figure], *, title: str) -> Path:
    """Write ``report.pdf``: a summary page (``templates/pdf-summary.txt``), then each figure."""
    summary = render("pdf-summary.txt", ctx=ctx, title=title)
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        page = new_figure(8.27, 11.69)  # A4
        page.text(0.06, 0.95, summary, va="top", family="monospace", fontsize=9)
        pdf.savefig(page)
        for fig in figures.values():
            pdf.savefig(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def generate_report(settings: Settings) -> dict[str, Any]:
    """Write the confusion matrix and the combined report of the deployed model.

    Returns ``model_version`` and the ``files`` written; :class:`NotDeployedError` if
    nothing is deployed.
    """
    views = ReadModels(settings)
    artifact = views.model.artifact()
    metrics = evaluate(
        artifact, read_test_data(settings), settings.target, input_name=settings.test_data_file.name
    )
    report = collect_report(views)
    ctx = collect_context(views)
    figures = build_figures(ctx)
    figures["confusion"] = confusion_matrix_figure(metrics, artifact.version)
    images = {name: png(fig) for name, fig in figures.items()}
    title = f"Model monitoring report ({report['generated_at'][:19]})"
    folder = settings.output_model_path
    paths = [
        atomic_write_bytes(folder / CONFUSION_MATRIX_FILE, images["confusion"]),
        atomic_write_json(folder / "report.json", report),
        atomic_write_text(folder / "report.md", render_markdown(report)),
        atomic_write_text(
            folder / "report.html", render_page(ctx, images, title=title, report=report)
        ),
        write_pdf(folder / "report.pdf", ctx, figures, title=title),
    ]
    return {"model_version": artifact.version, "files": [str(p) for p in paths]}
