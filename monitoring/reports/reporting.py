"""The combined report of the deployed model: :func:`generate_report` writes every file.

In ``output_model_path``: ``confusionmatrix.png`` (the deployed model on the test data),
``report.json`` (what the API shows), ``report.md``, ``report.html`` (the dashboard page,
plotly.js inlined, plus predictions and summary statistics) and ``report.pdf``: the same
page laid out for A4 pages, printed by headless Chromium (found on ``PATH`` as
``chromium``, ``chromium-browser`` or ``google-chrome``, or named by
``$MONITORING_CHROMIUM``; set empty, Chromium is not used). Without Chromium the PDF
is a plain text summary and the confusion matrix and score history figures, and says
so on its first page.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.config import Settings
from monitoring.model.scoring import evaluate, read_test_data
from monitoring.readmodels import ReadModels
from monitoring.reports.browser import Chromium, PrintError, launch, plotly_js_path
from monitoring.reports.dashboard import collect_context, render_page
from monitoring.reports.formatting import render
from monitoring.reports.modelcard import read_model_card
from monitoring.reports.plots import confusion_matrix_figure, new_figure, png, score_history_figure
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

CONFUSION_MATRIX_FILE = "confusionmatrix.png"


def collect_report(views: ReadModels, test: pd.DataFrame) -> dict[str, Any]:
    """What the API shows, in-process: score, predictions on the ``test`` data, stats,
    diagnostics, drift, card."""
    settings, generated_at = views.settings, utcnow()
    scoring = views.scoring.current()
    return {
        "generated_at": generated_at,
        "scoring": scoring,
        "predictions": views.model.predict(test, input_name=settings.test_data_file.name),
        "summarystats": views.profile.summary(),
        "diagnostics": views.diagnostics.current(),
        "drift": views.drift.latest(),
        "model_card": read_model_card(views.store, scoring["model_version"]),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The combined report (:func:`collect_report`) as Markdown."""
    return render("report.md", report=report)


def start_print(
    chromium: Chromium | str, ctx: dict[str, Any], *, title: str, report: Any
) -> Chromium | str:
    """``chromium`` loading the report page (drawing while the other files are
    written), or why there is no such page (the plain PDF's note)."""
    if isinstance(chromium, str):
        return chromium
    html = render_page(
        ctx, title=title, report=report, plotly_src=plotly_js_path().as_uri(), printing=True
    )
    try:
        chromium.load(html)
    except (OSError, PrintError) as exc:
        log.warning("report.pdf falls back to a plain summary: %s", exc)
        return f"Chromium could not print the report ({exc}), so this PDF is a plain summary."
    return chromium


def plain_pdf(ctx: dict[str, Any], figures: dict[str, Figure], *, title: str, note: str) -> bytes:
    """The fallback PDF: a text summary page (``templates/pdf-summary.txt``) and ``figures``."""
    from matplotlib.backends.backend_pdf import PdfPages  # 0.5 s of imports, only here

    summary = render("pdf-summary.txt", ctx=ctx, title=title, note=note)
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        page = new_figure(8.27, 11.69)  # A4
        page.text(0.06, 0.95, summary, va="top", family="monospace", fontsize=8, wrap=True)
        pdf.savefig(page)
        for fig in figures.values():
            pdf.savefig(fig)
    return buffer.getvalue()


def write_pdf(path: Path, printing: Chromium | str, ctx: dict[str, Any], *, title: str) -> Path:
    """Write ``report.pdf``: the page ``printing`` loaded, else :func:`plain_pdf` with
    the confusion matrix and the score history (``printing`` then says why)."""
    data = None
    note = printing if isinstance(printing, str) else ""
    if isinstance(printing, Chromium):
        try:
            data = printing.pdf()
        except (OSError, PrintError) as exc:
            log.warning("report.pdf falls back to a plain summary: %s", exc)
            note = f"Chromium could not print the report ({exc}), so this PDF is a plain summary."
    if data is None:
        figures: dict[str, Figure] = {}
        if ctx["test_score"] and ctx["test_score"].get("confusion_matrix"):
            figures["confusion"] = confusion_matrix_figure(
                ctx["test_score"], ctx["model"]["version"]
            )
        history = score_history_figure(ctx["scores"])
        if history is not None:
            figures["scores"] = history
        data = plain_pdf(ctx, figures, title=title, note=note)
    return atomic_write_bytes(path, data)


def generate_report(settings: Settings, chromium: Chromium | str | None = None) -> dict[str, Any]:
    """Write the confusion matrix and the combined report of the deployed model.

    ``chromium`` prints ``report.pdf``: one started early by
    :func:`~monitoring.reports.browser.launch` (as the ``report`` command does, so it
    starts while the libraries load), a note on why there is none, or ``None`` to start
    one here. It is closed before returning.

    Returns ``model_version`` and the ``files`` written; :class:`NotDeployedError` if
    nothing is deployed.
    """
    if chromium is None:
        chromium = launch()
    try:
        views = ReadModels(settings)
        artifact = views.model.artifact()
        views.drift.keep_latest()  # read back by the dashboard and later reports
        test = read_test_data(settings)
        report = collect_report(views, test)
        ctx = collect_context(views)
        title = f"Model monitoring report ({report['generated_at'][:19].replace('T', ' ')} UTC)"
        folder = settings.output_model_path
        printing = start_print(chromium, ctx, title=title, report=report)
        # The rest runs while Chromium draws the page, matplotlib's imports (half a
        # second, for the confusion matrix PNG) included.
        metrics = evaluate(artifact, test, settings.target, input_name=settings.test_data_file.name)
        paths = [
            atomic_write_bytes(
                folder / CONFUSION_MATRIX_FILE,
                png(confusion_matrix_figure(metrics, artifact.version)),
            ),
            atomic_write_json(folder / "report.json", report),
            atomic_write_text(folder / "report.md", render_markdown(report)),
            atomic_write_text(folder / "report.html", render_page(ctx, title=title, report=report)),
            write_pdf(folder / "report.pdf", printing, ctx, title=title),
        ]
    finally:
        if isinstance(chromium, Chromium):
            chromium.close()
    return {"model_version": artifact.version, "files": [str(p) for p in paths]}
