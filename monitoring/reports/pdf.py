"""``report.pdf``: a summary page (``templates/pdf-summary.txt``), then every figure."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from monitoring.reports.formatting import render
from monitoring.reports.plots import new_figure
from monitoring.storage.files import atomic_write_bytes


def write_pdf(path: Path, ctx: dict[str, Any], figures: dict[str, Figure], *, title: str) -> Path:
    """Write the PDF of a page context and its figures (one per page) atomically."""
    summary = render("pdf-summary.txt", ctx=ctx, title=title)
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        page = new_figure(8.27, 11.69)  # A4
        page.text(0.06, 0.95, summary, va="top", family="monospace", fontsize=9)
        pdf.savefig(page)
        for fig in figures.values():
            pdf.savefig(fig)
    return atomic_write_bytes(path, buffer.getvalue())
