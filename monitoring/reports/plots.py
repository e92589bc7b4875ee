"""The matplotlib figures of the reports: the confusion matrix PNG, and the plain PDF's figures.

Figures are drawn with matplotlib's object API on Agg canvases (no pyplot global
state, no display needed); :func:`png` renders one as PNG bytes. matplotlib loads on
the first figure (half a second): the report draws while Chromium prints its page.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.reports.formatting import format_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: on first use
    from matplotlib.figure import Figure  # heavy: on first use

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """``fig`` rendered as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_figure(score: dict[str, Any], version: str) -> Figure:
    """The ``confusion_matrix`` of a score (with its ``f1`` and ``n_rows``) of model ``version``."""
    from sklearn.metrics import ConfusionMatrixDisplay  # imports matplotlib: on first use

    fig = new_figure(4.2, 3.8)
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(np.asarray(score["confusion_matrix"])).plot(
        ax=ax, cmap="Blues", values_format="d", text_kw={"fontsize": 14}
    )
    f1 = format_value(score.get("f1"))
    ax.set_title(f"model {version}\nF1 {f1} on {score.get('n_rows')} test rows", fontsize=9)
    fig.tight_layout()
    return fig


def score_history_figure(scores: Sequence[dict[str, Any]]) -> Figure | None:
    """F1 over time, one line per dataset kind (test, training, ingested); None if no F1."""
    rows = [r for r in scores if r.get("f1") is not None]
    if not rows:
        return None
    fig = new_figure(6.4, 3.0)
    ax = fig.add_subplot()
    for dataset in sorted({r["dataset"] for r in rows}):
        sel = [r for r in rows if r["dataset"] == dataset]
        times = np.array([datetime.fromisoformat(r["scored_at"]) for r in sel])
        ax.plot(times, [r["f1"] for r in sel], marker="o", label=dataset)
    ax.set_ylabel("F1")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Score history", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
