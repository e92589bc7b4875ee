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
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from monitoring.config import Settings
from monitoring.model.scoring import evaluate, read_test_data
from monitoring.readmodels import ReadModels
from monitoring.reports.dashboard import collect_context, plotly_js_path, render_page
from monitoring.reports.formatting import render
from monitoring.reports.modelcard import read_model_card
from monitoring.reports.plots import confusion_matrix_figure, new_figure, png, score_history_figure
from monitoring.storage.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

log = logging.getLogger(__name__)
PRINT_SECONDS = 60  # Chromium gets this long to print the PDF
NO_CHROMIUM = (
    "Chromium was not found, so this PDF is a plain summary; install chromium (or set "
    "MONITORING_CHROMIUM) for the full report with its charts and tables."
)

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


def find_chromium() -> str | None:
    """The Chromium to print with: ``$MONITORING_CHROMIUM``, else one on ``PATH``."""
    named = os.environ.get("MONITORING_CHROMIUM")
    if named is not None:  # empty: print no PDF with Chromium
        return shutil.which(named) if named else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class PdfPrint:
    """``html`` being printed to PDF by headless ``chromium`` in ``folder`` (scripts run
    first): started on creation, so the rest of the report is written meanwhile;
    :meth:`result` waits for it."""

    def __init__(self, chromium: str, html: str, folder: Path) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="report-print-", dir=folder)
        root = Path(self.scratch.name)
        page, self.pdf = root / "report-print.html", root / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--allow-file-access-from-files",
            f"--user-data-dir={root / 'profile'}",
            "--no-pdf-header-footer",
            "--virtual-time-budget=20000",
            f"--print-to-pdf={self.pdf}",
            page.as_uri(),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def cancel(self) -> None:
        """Stop printing and remove the scratch folder."""
        self.process.kill()
        self.process.communicate()
        self.scratch.cleanup()

    def result(self) -> bytes:
        """The PDF; :class:`RuntimeError` with Chromium's last words if it printed none."""
        try:
            try:
                _, stderr = self.process.communicate(timeout=PRINT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
                raise RuntimeError(f"chromium took over {PRINT_SECONDS} s") from None
            if not self.pdf.is_file() or self.pdf.stat().st_size == 0:
                tail = (stderr or "").strip().splitlines()[-1:] or [
                    f"exit {self.process.returncode}"
                ]
                raise RuntimeError(f"chromium did not print the report: {tail[0]}")
            return self.pdf.read_bytes()
        finally:
            self.scratch.cleanup()


def start_print(ctx: dict[str, Any], *, title: str, report: Any, folder: Path) -> PdfPrint | str:
    """The report page being printed by Chromium, or why it is not (the PDF's note)."""
    chromium = find_chromium()
    if chromium is None:
        return NO_CHROMIUM
    html = render_page(
        ctx, title=title, report=report, plotly_src=plotly_js_path().as_uri(), printing=True
    )
    try:
        return PdfPrint(chromium, html, folder)
    except OSError as exc:
        log.warning("report.pdf falls back to a plain summary: %s", exc)
        return f"Chromium could not be started ({exc}), so this PDF is a plain summary."


def plain_pdf(ctx: dict[str, Any], figures: dict[str, Figure], *, title: str, note: str) -> bytes:
    """The fallback PDF: a text summary page (``templates/pdf-summary.txt``) and ``figures``."""
    summary = render("pdf-summary.txt", ctx=ctx, title=title, note=note)
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        page = new_figure(8.27, 11.69)  # A4
        page.text(0.06, 0.95, summary, va="top", family="monospace", fontsize=8, wrap=True)
        pdf.savefig(page)
        for fig in figures.values():
            pdf.savefig(fig)
    return buffer.getvalue()


def write_pdf(path: Path, printing: PdfPrint | str, ctx: dict[str, Any], *, title: str) -> Path:
    """Write ``report.pdf``: what Chromium printed, else :func:`plain_pdf` with the
    confusion matrix and the score history (``printing`` then says why)."""
    data = None
    note = printing if isinstance(printing, str) else ""
    if isinstance(printing, PdfPrint):
        try:
            data = printing.result()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
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
    views.drift.keep_latest()  # read back by the dashboard and later reports
    report = collect_report(views)
    ctx = collect_context(views)
    title = f"Model monitoring report ({report['generated_at'][:19].replace('T', ' ')} UTC)"
    folder = settings.output_model_path
    printing = start_print(ctx, title=title, report=report, folder=folder)
    try:
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
    except BaseException:
        if isinstance(printing, PdfPrint):
            printing.cancel()
        raise
    return {"model_version": artifact.version, "files": [str(p) for p in paths]}
