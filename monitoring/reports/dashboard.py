"""The one HTML renderer: the ``/dashboard`` page and the HTML/PDF report.

:func:`collect_context` gathers what a person wants to look at (deployed model and
its version history, score history, latest drift table with per-column
histograms reference vs current, missing data, confusion matrix, live
performance on captured traffic, recent pipeline runs, model card);
:func:`build_figures` draws the plots with matplotlib's object API on Agg
canvases; :func:`render_html` writes one self-contained page (inline CSS, plots
as base64 PNG, no script, nothing fetched from the network). The PDF report
(:func:`write_pdf`) holds the same figures.

Nothing here writes state; the drift table is computed with ``record=False``.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monitoring.capture.feedback import labelled_count, live_performance
from monitoring.exceptions import MonitoringError
from monitoring.model.deployment import current_version, list_versions
from monitoring.model.scoring import read_score
from monitoring.model.training import artifact_reference
from monitoring.readmodels import ReadModels
from monitoring.reports.formatting import format_value as fmt
from monitoring.reports.modelcard import read_model_card
from monitoring.storage.files import (
    atomic_write_bytes,
    atomic_write_text,
    file_identity,
    read_json,
    read_table,
)

_CACHE: dict[str, tuple[Any, str]] = {}


# -- data ------------------------------------------------------------------------
def collect_context(monitor: Any, *, runs: int = 10) -> dict[str, Any]:
    """Everything the page shows, as plain data (plus arrays for the histograms).

    Parameters
    ----------
    monitor : monitoring.readmodels.ReadModels
    runs : int
        How many recent pipeline runs to show.
    """

    settings, store = monitor.settings, monitor.store
    ctx: dict[str, Any] = {
        "versions": list_versions(settings),
        "deployments": store.deployments(),
        "scores": store.scores(),
        "runs": store.runs(limit=runs),
        "live": live_performance(store),
        "missing": (read_json(settings.profile_file) or {}).get("missing", []),
        "model": None,
        "drift": None,
        "histograms": {},
        "confusion_matrix": None,
        "test_score": None,
        "model_card": None,
        "errors": [],
    }
    try:
        artifact = monitor.model.artifact()
    except MonitoringError as exc:
        ctx["errors"].append(exc.message)
        return ctx
    meta = artifact.metadata
    ctx["model"] = {
        "version": artifact.version,
        "estimator": meta.get("estimator"),
        "trained_at": meta.get("trained_at"),
        "features": artifact.features,
        "training_data_sha256": (meta.get("training_data") or {}).get("sha256"),
        "training_rows": (meta.get("training_data") or {}).get("rows"),
    }
    score = read_score(artifact.folder) or {}
    ctx["test_score"] = score
    ctx["confusion_matrix"] = score.get("confusion_matrix")
    ctx["model_card"] = read_model_card(settings, artifact.version)
    try:
        ctx["drift"] = monitor.drift.latest()
    except MonitoringError as exc:
        ctx["errors"].append(f"data drift: {exc.message}")
        return ctx
    current = read_table(settings.finaldata_file)
    profile = artifact_reference(artifact)
    for column in artifact.features:
        col = profile.profiles_.get(column)
        if col is None or col.numeric is None or column not in current:
            continue
        cur = np.asarray(current[column].to_numpy(dtype=float, na_value=np.nan))
        ctx["histograms"][column] = (col.numeric.sorted_values, cur[np.isfinite(cur)])
    return ctx


def cache_key(monitor: Any) -> Any:
    """Identity of what the page shows: model, ingested data, latest run, labels."""

    settings, store = monitor.settings, monitor.store
    latest_run = store.runs(limit=1)
    latest_score = store.scores(limit=1)
    return (
        current_version(settings),
        file_identity(settings.finaldata_file),
        latest_run[0]["id"] if latest_run else None,
        latest_run[0]["status"] if latest_run else None,
        latest_score[-1]["id"] if latest_score else None,
        len(store.deployments()),
        labelled_count(store),
    )


def dashboard_html(monitor: Any) -> str:
    """The dashboard page, re-rendered only when :func:`cache_key` changes."""
    key = cache_key(monitor)
    slot = str(monitor.settings.prod_deployment_path)
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] == key:
        return hit[1]
    ctx = collect_context(monitor)
    page = render_html(ctx, figures_png(build_figures(ctx)), title="Model monitoring dashboard")
    _CACHE[slot] = (key, page)
    return page


# -- figures ---------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def score_history_figure(scores: Sequence[dict[str, Any]]) -> Figure | None:
    """F1 over time, one line per dataset kind (test, training, ingested)."""
    from datetime import datetime

    rows = [r for r in scores if r.get("f1") is not None]
    if not rows:
        return None
    fig = _figure(6.4, 3.0)
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


def histogram_figure(column: str, reference: np.ndarray, current: np.ndarray) -> Figure:
    """Density histograms of one column, reference (training data) vs current."""
    fig = _figure(3.6, 2.6)
    ax = fig.add_subplot()
    both = np.concatenate([reference, current]) if current.size else reference
    edges = list(np.histogram_bin_edges(both, bins=20) if both.size else np.linspace(0, 1, 21))
    ax.hist(reference, bins=edges, density=True, alpha=0.5, label=f"reference ({reference.size})")
    if current.size:
        ax.hist(current, bins=edges, density=True, alpha=0.5, label=f"current ({current.size})")
    ax.set_title(column, fontsize=10)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], title: str) -> Figure:
    """The 2x2 confusion matrix (rows: actual, columns: predicted)."""
    fig = _figure(3.6, 3.2)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            color = "white" if value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=14)
    ax.set_xticks([0, 1], labels=["0", "1"])
    ax.set_yticks([0, 1], labels=["0", "1"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def build_figures(ctx: dict[str, Any]) -> dict[str, Figure]:
    """The page's figures by name: ``scores``, ``confusion``, ``hist:<column>``."""
    figures: dict[str, Figure] = {}
    history = score_history_figure(ctx["scores"])
    if history is not None:
        figures["scores"] = history
    if ctx.get("confusion_matrix"):
        score = ctx.get("test_score") or {}
        figures["confusion"] = confusion_figure(
            ctx["confusion_matrix"],
            f"test data, {score.get('n_rows')} rows, F1 {fmt(score.get('f1'))}",
        )
    for column, (reference, current) in ctx["histograms"].items():
        figures[f"hist:{column}"] = histogram_figure(column, reference, current)
    return figures


def figures_png(figures: dict[str, Figure]) -> dict[str, bytes]:
    """Each figure rendered as PNG bytes."""
    out = {}
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        out[name] = buffer.getvalue()
    return out


# -- HTML ------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(fmt(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, cls: str = "") -> str:
    if not rows:
        return '<p class="empty">none yet</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return '<p class="empty">no data to plot</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#222}
header{background:#243447;color:#fff;padding:12px 24px}
header h1{margin:0;font-size:20px}
main{padding:16px 24px;display:grid;gap:16px;
 grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}
section{background:#fff;border-radius:6px;padding:12px 16px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/-1}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
img{max-width:100%}
.empty{color:#888;font-style:italic}
.flag-yes{color:#b00020;font-weight:bold}.flag-no{color:#1b7f3b}
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:8px;max-height:480px;overflow:auto}
.hists{display:flex;flex-wrap:wrap;gap:8px}
"""


def render_html(
    ctx: dict[str, Any],
    png: dict[str, bytes],
    *,
    title: str,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> str:
    """One self-contained HTML page from :func:`collect_context` and its figures.

    Parameters
    ----------
    ctx : dict
    png : dict
        Figures by name (:func:`build_figures` names) as PNG bytes.
    title : str
    extra_sections : sequence of (title, HTML)
        More sections at the end (the report adds predictions and statistics).
    """
    model = ctx.get("model") or {}
    sections: list[tuple[str, str, str]] = []

    errors = "".join(f"<li>{html.escape(e)}</li>" for e in ctx.get("errors", []))
    overview = _table(
        [model] if model else [],
        ["version", "estimator", "trained_at", "training_rows", "training_data_sha256"],
    )
    if errors:
        overview += f"<ul>{errors}</ul>"
    sections.append(("model", "Deployed model", overview))
    sections.append(
        (
            "versions",
            "Version history",
            _table(ctx["versions"], ["version", "trained_at", "estimator", "f1", "live"])
            + "<h3>Deployments</h3>"
            + _table(
                list(reversed(ctx["deployments"]))[:20],
                ["deployed_at", "action", "model_version", "previous_version", "f1"],
            ),
        )
    )
    sections.append(("scores", "Score history", _img(png.get("scores"), "score history")))

    drift = ctx.get("drift")
    if drift:
        flag = "yes" if drift.get("dataset_drift") else "no"
        hists = "".join(
            _img(png[name], f"histogram {name[5:]}") for name in png if name.startswith("hist:")
        )
        body = (
            f'<p>Dataset drift: <span class="flag-{flag}">{flag}</span> '
            f"({_e(drift.get('n_drifted'))} of {_e(drift.get('n_columns'))} columns; "
            f"{_e(drift.get('n_current'))} current rows vs {_e(drift.get('n_reference'))} "
            "reference rows)</p>"
            + _table(
                drift.get("columns", []),
                ["column", "method", "statistic", "p_value", "threshold", "drifted"],
                cls="drift",
            )
            + f'<div class="hists">{hists}</div>'
        )
    else:
        body = '<p class="empty">no drift report: nothing deployed or ingested yet</p>'
    sections.append(("drift", "Data drift: latest ingested data vs training data", body))
    sections.append(
        (
            "missing",
            "Missing data (share of rows)",
            _table(ctx["missing"], ["column", "missing_share", "missing_count"]),
        )
    )
    sections.append(
        ("confusion", "Confusion matrix (test data)", _img(png.get("confusion"), "confusion"))
    )
    live_rows = [{"model_version": v, **m} for v, m in ctx["live"].items()]
    sections.append(
        (
            "live",
            "Live performance on captured, labelled traffic",
            _table(
                live_rows,
                ["model_version", "n_captured", "n_labelled", "f1", "precision", "recall"],
            ),
        )
    )
    run_rows = [
        {
            **r,
            "new_files": len(((r.get("evidence") or {}).get("new_files")) or []),
        }
        for r in ctx["runs"]
    ]
    sections.append(
        (
            "runs",
            "Recent pipeline runs",
            _table(run_rows, ["started_at", "status", "outcome", "new_files", "reason"]),
        )
    )
    card = ctx.get("model_card")
    sections.append(
        (
            "modelcard",
            "Model card",
            f"<pre>{html.escape(card)}</pre>" if card else '<p class="empty">no model card</p>',
        )
    )
    for i, (name, content) in enumerate(extra_sections):
        sections.append((f"extra{i}", name, content))

    wide = {"model", "versions", "drift", "runs", "modelcard", "live"}
    body_html = "\n".join(
        f'<section id="{sid}" class="{"wide" if sid in wide else ""}">'
        f"<h2>{html.escape(name)}</h2>{content}</section>"
        for sid, name, content in sections
    )
    subtitle = html.escape(f"model {model.get('version', 'n/a')}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{html.escape(title)}</h1><div>{subtitle}</div></header>"
        f"<main>{body_html}</main></body></html>\n"
    )


# -- report documents ------------------------------------------------------------
def report_sections(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Report-only sections (predictions, summary statistics) as HTML."""
    out = []
    preds = (report.get("predictions") or {}).get("predictions")
    if preds is not None:
        out.append(("Predictions on the test data", f"<p><code>{_e(preds)}</code></p>"))
    summary = (report.get("summarystats") or {}).get("summary")
    if summary:
        out.append(
            (
                "Summary statistics of the ingested data",
                _table(summary, ["column", "mean", "median", "std", "min", "q25", "q75", "max"]),
            )
        )
    return out


def write_pdf(path: Path, ctx: dict[str, Any], figures: dict[str, Figure], *, title: str) -> Path:
    """A PDF report: a summary page, then every figure on its own page."""
    from matplotlib.backends.backend_pdf import PdfPages

    model = ctx.get("model") or {}
    score = ctx.get("test_score") or {}
    drift = ctx.get("drift") or {}
    lines = [
        title,
        "",
        f"model version: {model.get('version', 'n/a')}",
        f"estimator: {model.get('estimator', 'n/a')}, trained at {model.get('trained_at')}",
        f"test F1: {fmt(score.get('f1'))} on {fmt(score.get('n_rows'))} rows",
        f"data drift: {fmt(drift.get('dataset_drift'))} "
        f"({fmt(drift.get('n_drifted'))} of {fmt(drift.get('n_columns'))} columns)",
        "",
        "recent pipeline runs:",
    ]
    for run in ctx["runs"][:10]:
        lines.append(f"  {run['started_at'][:19]}  {run['outcome'] or run['status']}")
    for version, perf in ctx["live"].items():
        lines.append(
            f"live F1 of {version}: {fmt(perf.get('f1'))} on {perf['n_labelled']} labelled rows"
        )
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        page = _figure(8.27, 11.69)
        page.text(0.06, 0.95, "\n".join(lines), va="top", family="monospace", fontsize=9)
        pdf.savefig(page)
        for fig in figures.values():
            pdf.savefig(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def write_report_documents(settings: Any, report: dict[str, Any]) -> list[Path]:
    """``report.html`` and ``report.pdf`` in ``output_model_path`` for the live model."""

    ctx = collect_context(ReadModels(settings))
    figures = build_figures(ctx)
    title = f"Model monitoring report ({report.get('generated_at', '')[:19]})"
    page = render_html(
        ctx, figures_png(figures), title=title, extra_sections=report_sections(report)
    )
    folder = settings.output_model_path
    return [
        atomic_write_text(folder / "report.html", page),
        write_pdf(folder / "report.pdf", ctx, figures, title=title),
    ]
