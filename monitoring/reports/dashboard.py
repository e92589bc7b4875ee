"""The ``/dashboard`` page, also written as ``report.html`` and printed as ``report.pdf``.

:func:`collect_context` gathers what the page shows from the read models and the
record store (:mod:`monitoring.reports.trends`) as plain data; :func:`build_panels` turns
it into panels; :func:`render_page` fills ``templates/page.html`` with them. Charts are
drawn in the browser by plotly.js, shipped inside the pinned ``plotly`` package and
served by the app itself (:func:`plotly_js_path`; ``report.html`` inlines it): the page
needs no network, and no plot is drawn on the server. :func:`dashboard_html` keeps the
page until :func:`cache_key` changes: the records (store stamp), the served model, and
the traffic part, which is re-read at most every :data:`TRAFFIC_SECONDS`.

Adding a panel
--------------
A panel is one function ``ctx -> dict | None`` appended to :data:`PANELS` (``None``
leaves it out). It reads what it needs from ``ctx`` (add a key in
:func:`collect_context`, or have another module put one there) and returns
:func:`panel` ``(id, title, *blocks, wide=False)``, where each block is one of:

* :func:`figure_block` ``(figure, alt, empty=...)``: a plotly figure as a dict
  (``{"data": [traces], "layout": {...}}``; :func:`time_figure` makes a time-axis one
  with readable dates, axis titles and the deployments marked), or ``None`` to show
  the ``empty`` text instead;
* :func:`table_block` ``(rows, columns)``: rows of dicts, values shown with
  ``format_value``;
* :func:`text_block` ``(text, cls="")`` and :func:`pre_block` ``(text)``.

For example, a panel showing the estimate of another model::

    def my_panel(ctx):
        points = ctx.get("my_estimate") or []
        fig = time_figure(ctx, [line([p["time"] for p in points],
                                     [p["value"] for p in points], "estimate")],
                          y_title="F1 (0 to 1)") if points else None
        return panel("my-estimate", "My estimate", figure_block(fig, "my estimate",
                     empty="no estimate yet"))

    PANELS.append(my_panel)

The template renders every block kind; the browser tests look panels up by ``id``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from monitoring.capture.feedback import labelled_count, live_performance
from monitoring.diagnostics.delivery import delivery_metrics
from monitoring.exceptions import MonitoringError
from monitoring.model.deployment import list_versions
from monitoring.readmodels import ReadModels, store_key
from monitoring.reports import trends
from monitoring.reports.browser import plotly_js_path
from monitoring.reports.fairness import live_audit
from monitoring.reports.formatting import format_value, render
from monitoring.reports.modelcard import read_model_card

Panel = dict[str, Any]
Block = dict[str, Any]

TRAFFIC_SECONDS = (
    30.0  # the traffic part (captures, latency, live F1) is re-read at most this often
)
HIST_BINS = 30
MIN_SPAN_SECONDS = 120  # a time axis spans at least 2 minutes
TIME_AXIS = "time (UTC)"
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")

# One rendered page per production folder: (cache_key, page).
_CACHE: dict[str, tuple[Any, str]] = {}
_LOCK = threading.Lock()


# -- plotly.js ---------------------------------------------------------------------
@functools.cache
def plotly_js() -> bytes:
    """The bytes of :func:`plotly_js_path`, read once per process (about 5 MB)."""
    return plotly_js_path().read_bytes()


@functools.cache
def plotly_js_version() -> str:
    """The version of the bundled plotly.js, from its header (``v4.1.1``)."""
    with plotly_js_path().open(encoding="utf-8") as f:
        head = f.read(200)
    found = re.search(r"plotly\.js v([\w.\-]+)", head)
    return found.group(1) if found else "unknown"


# -- panels and blocks -------------------------------------------------------------
def panel(id: str, title: str, *blocks: Block, wide: bool = False) -> Panel:
    """A panel: a section with ``id`` and ``title`` showing ``blocks`` in order."""
    return {"id": id, "title": title, "wide": wide, "blocks": list(blocks)}


def figure_block(
    figure: dict[str, Any] | None,
    alt: str,
    *,
    empty: str = "no data to plot yet",
    height: int = 320,
) -> Block:
    """A plotly chart (``figure`` None: the ``empty`` text)."""
    return {"kind": "figure", "figure": figure, "alt": alt, "empty": empty, "height": height}


def table_block(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str = ""
) -> Block:
    return {"kind": "table", "rows": list(rows), "columns": list(columns), "title": title}


def text_block(text: str, *, cls: str = "") -> Block:
    return {"kind": "text", "text": text, "cls": cls}


def pre_block(text: str) -> Block:
    return {"kind": "pre", "text": text}


# -- figures -----------------------------------------------------------------------
def short(version: Any) -> str:
    """A model version as charts label it: its hash suffix (``...Z-fe8a51e8``: ``fe8a51e8``).

    Examples
    --------
    >>> short("20261202T102207488627Z-fe8a51e8"), short("v2"), short(None)
    ('fe8a51e8', 'v2', 'none')
    """
    if version is None:
        return "none"
    text = str(version)
    head, _, tail = text.rpartition("-")
    return tail if head and tail else text


def when(iso: str | None) -> str | None:
    """An ISO UTC time (or ``YYYY-MM-DD[THH]``) as plotly reads dates: ``YYYY-MM-DD HH:MM:SS``.

    Examples
    --------
    >>> when("2026-12-02T10:41:07.454000+00:00"), when("2026-12-02T10"), when("2026-12-02")
    ('2026-12-02 10:41:07', '2026-12-02 10:00:00', '2026-12-02 00:00:00')
    """
    if not iso:
        return None
    text = iso.replace("T", " ")
    if len(text) == 10:
        text += " 00"
    if len(text) == 13:
        text += ":00"
    if len(text) == 16:
        text += ":00"
    return text[:19]


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python ones (JSON)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def line(
    x: Sequence[Any], y: Sequence[Any], name: str, *, colour: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A lines-and-markers trace."""
    trace: dict[str, Any] = {"type": "scatter", "mode": "lines+markers", "x": list(x), "y": list(y)}
    trace["name"] = name
    if colour:
        trace["line"] = {"color": colour}
        trace["marker"] = {"color": colour}
    return trace | extra


def hour_range(hours: Sequence[str]) -> list[str]:
    """An x range from an hour before the first of ``hours`` (``YYYY-MM-DDTHH``) to two
    after the last, so a single hour shows as an hour, not as milliseconds.

    Examples
    --------
    >>> hour_range(["2026-12-02T10"])
    ['2026-12-02 09:00:00', '2026-12-02 12:00:00']
    """
    first = datetime.strptime(min(hours), "%Y-%m-%dT%H")
    last = datetime.strptime(max(hours), "%Y-%m-%dT%H")
    return [
        (first - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        (last + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
    ]


def _seconds(text: str) -> float:
    """Seconds since the epoch of a plotly date string (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def deployment_marks(
    ctx: dict[str, Any], start: str, end: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Vertical lines (shapes) and labels (annotations) for the deployments and rollbacks
    from ``start`` (a plotly date string) on. Labels closer than 4 % of the span (to
    ``end`` or the last mark) share one annotation, alternately at two heights."""
    marks = [
        (at, d)
        for d in ctx.get("deployment_log", [])
        if (at := when(d["deployed_at"])) is not None and at >= start
    ]
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    if not marks:
        return shapes, notes
    span = max(_seconds(max(end, marks[-1][0])) - _seconds(start), 1.0)
    last = -math.inf
    for at, d in marks:
        colour = "#b00020" if d["action"] == "rollback" else "#555"
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "width": 1, "dash": "dot"},
            }
        )
        label = f"{d['action']} {short(d['model_version'])}"
        hover = f"{d['action']} of {d['model_version']} at {at} UTC"
        if notes and (_seconds(at) - last) / span < 0.04:
            notes[-1]["text"] += f", {label}"
            notes[-1]["hovertext"] += f"<br>{hover}"
            continue
        last = _seconds(at)
        notes.append(
            {
                "x": at,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "yshift": 12 * (len(notes) % 2),
                "showarrow": False,
                "font": {"size": 10, "color": colour},
                "text": label,
                "hovertext": hover,
            }
        )
    return shapes, notes


def time_figure(
    ctx: dict[str, Any],
    traces: list[dict[str, Any]],
    *,
    y_title: str,
    y_range: Sequence[float] | None = None,
    **layout: Any,
) -> dict[str, Any]:
    """A figure over time: readable date ticks, axis titles with units, hover showing the
    time to the second, the legend below, and deployments and rollbacks marked."""
    xs = sorted(str(x) for t in traces for x in t.get("x", []) if x is not None)
    x_range = (layout.get("xaxis") or {}).get("range") or []
    if xs and not x_range and _seconds(xs[-1]) - _seconds(xs[0]) < MIN_SPAN_SECONDS:
        # Points within seconds: show them on a 2-minute axis, not one in milliseconds.
        middle = datetime.fromtimestamp((_seconds(xs[0]) + _seconds(xs[-1])) / 2, UTC)
        half = timedelta(seconds=MIN_SPAN_SECONDS / 2)
        x_range = [f"{middle - half:%Y-%m-%d %H:%M:%S}", f"{middle + half:%Y-%m-%d %H:%M:%S}"]
        layout["xaxis"] = {**(layout.get("xaxis") or {}), "range": x_range}
    if xs:
        start, end = min([xs[0], *x_range[:1]]), max([xs[-1], *x_range[1:]])
        shapes, notes = deployment_marks(ctx, start, end)
    else:
        shapes, notes = [], []
    yaxis: dict[str, Any] = {"title": {"text": y_title}, "zeroline": False}
    if y_range is not None:
        yaxis["range"] = list(y_range)
    base: dict[str, Any] = {
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "xaxis": {
            "title": {"text": TIME_AXIS},
            "type": "date",
            "hoverformat": "%Y-%m-%d %H:%M:%S",
            "automargin": True,
        },
        "yaxis": yaxis,
        "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"},
        "hovermode": "closest",
        "shapes": shapes,
        "annotations": notes,
    }
    for key, value in layout.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return {"data": traces, "layout": base}


# -- the panels --------------------------------------------------------------------
def model_panel(ctx: dict[str, Any]) -> Panel:
    model = ctx.get("model")
    blocks = [
        table_block(
            [model] if model else [],
            ["version", "estimator", "trained_at", "training_rows", "training_data_sha256"],
        )
    ]
    if ctx["errors"]:
        blocks += [text_block(error, cls="error") for error in ctx["errors"]]
    return panel("model", "Deployed model", *blocks, wide=True)


def f1_panel(ctx: dict[str, Any]) -> Panel:
    """Test F1 and F1 on newly ingested data per version (pipeline scores), and live F1
    per version and day (labelled captured rows)."""
    traces = []
    colour = {v: COLOURS[i % len(COLOURS)] for i, v in enumerate(ctx["version_order"])}
    by_version = trends.group_by(ctx["scores"], "model_version")
    for version, rows in by_version.items():
        for dataset, symbol, dash in (("test", "circle", "solid"), ("ingested", "square", "dot")):
            points = [r for r in rows if r["dataset"] == dataset and r.get("f1") is not None]
            if points:
                traces.append(
                    line(
                        [when(r["scored_at"]) for r in points],
                        [r["f1"] for r in points],
                        f"{short(version)}: {dataset} F1",
                        colour=colour.get(version),
                        marker={"symbol": symbol, "color": colour.get(version), "size": 8},
                        line={"dash": dash, "color": colour.get(version)},
                        hovertemplate="%{x} UTC<br>F1 %{y:.3f}<extra>%{fullData.name}</extra>",
                    )
                )
    for version, rows in trends.group_by(ctx["live_daily"], "model_version").items():
        traces.append(
            line(
                [when(r["last_at"]) for r in rows],
                [r["f1"] for r in rows],
                f"{short(version)}: live F1 (per day)",
                colour=colour.get(version),
                marker={"symbol": "diamond", "size": 9, "color": colour.get(version)},
                customdata=[r["n_labelled"] for r in rows],
                hovertemplate="%{x|%Y-%m-%d} UTC (the day until %{x|%H:%M})<br>live F1 "
                "%{y:.3f} on %{customdata} labelled rows<extra>%{fullData.name}</extra>",
            )
        )
    figure = time_figure(ctx, traces, y_title="F1 score (0 to 1)", y_range=(0, 1.05))
    note = (
        "Live F1: each day's labelled captured rows (UTC), drawn at the day's latest one; "
        f"days with fewer than {ctx['min_labelled_rows']} labelled rows are left out. "
        "Dotted lines: deployments; red: rollbacks."
    )
    return panel(
        "f1-trend",
        "F1 per model version over time",
        figure_block(figure if traces else None, "F1 over time", empty="no scores recorded yet"),
        text_block(note, cls="note"),
        wide=True,
    )


def estimated_f1_panel(ctx: dict[str, Any]) -> Panel:
    """The F1 of the live model estimated without labels (CBPE) per chunk of captured
    traffic, with its band (``ctx["estimated_f1"]``: rows of ``time`` (the chunk's end),
    ``model_version``, ``f1``, optional ``lower``/``upper``)."""
    points = ctx.get("estimated_f1") or []
    traces = [
        line(
            [when(r["time"]) for r in rows],
            [r["f1"] for r in rows],
            f"{short(version)}: estimated F1",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(r.get("upper") or r["f1"]) - r["f1"] for r in rows],
                "arrayminus": [r["f1"] - (r.get("lower") or r["f1"]) for r in rows],
            },
        )
        for version, rows in trends.group_by(points, "model_version").items()
    ]
    figure = time_figure(ctx, traces, y_title="estimated F1 (0 to 1)", y_range=(0, 1.05))
    return panel(
        "estimated-f1",
        "Estimated F1 (without labels)",
        figure_block(
            figure if traces else None,
            "estimated F1",
            empty="no estimate yet: no captured traffic of the live model",
        ),
    )


def fairness_panel(ctx: dict[str, Any]) -> Panel | None:
    """The bias audit of the live model (``ctx["fairness"]``, :func:`live_audit`): each
    audited dataset's verdict and its failing disparities."""
    audit = ctx.get("fairness")
    if audit is None:
        return None
    blocks = []
    failing = []
    for name in ("test", "traffic"):
        found = audit.get(name) or {}
        verdict = found.get("verdict", "undefined")
        why = f": {found['error']}" if found.get("error") else ""
        rows = f" ({found['n_rows']} rows)" if found.get("n_rows") else ""
        blocks.append(text_block(f"{found.get('dataset', name)}{rows}: {verdict}{why}"))
        for attribute, result in (found.get("attributes") or {}).items():
            failing += [
                {"dataset": name, "attribute": attribute, **f} for f in result.get("failing") or []
            ]
    tau = audit.get("tau", 0.8)
    if failing:
        blocks.append(
            table_block(
                failing,
                ["dataset", "attribute", "group", "metric", "ratio"],
                title=f"disparities outside [{tau:g}, {1 / tau:g}]",
            )
        )
    elif audit.get("test", {}).get("attributes"):
        blocks.append(text_block(f"every judged disparity lies within [{tau:g}, {1 / tau:g}]"))
    else:
        blocks.append(text_block("no group attribute is configured (fairness.attributes)"))
    return panel("fairness", "Bias audit", *blocks)


def delivery_panel(ctx: dict[str, Any]) -> Panel | None:
    """The delivery metrics (DORA, adapted; ``ctx["delivery"]``)."""
    found = ctx.get("delivery")
    if found is None:
        return None
    lead, restore = found["lead_time_seconds"], found["time_to_restore_seconds"]
    rate = found["change_failure_rate"]
    rows = [
        {
            "metric": "deployments",
            "value": f"{found['deployments']} ({found['rollbacks']} rollbacks)",
        },
        {"metric": "deployments per week", "value": found["deployment_frequency_per_week"]},
        {"metric": "lead time, median (s)", "value": lead["median"]},
        {"metric": "change failure rate", "value": rate},
        {"metric": "time to restore, median (s)", "value": restore["median"]},
    ]
    return panel(
        "delivery",
        f"Delivery over the last {found['window_days']:g} days",
        table_block(rows, ["metric", "value"]),
    )


def drift_share_panel(ctx: dict[str, Any]) -> Panel:
    runs = ctx["drift_runs"]
    x = [when(r["created_at"]) for r in runs]
    traces = []
    if runs:
        traces.append(
            line(
                x,
                [r["drift_share"] for r in runs],
                "share of columns drifted",
                colour="#1f77b4",
                marker={
                    "size": 9,
                    "color": ["#b00020" if r["dataset_drift"] else "#1b7f3b" for r in runs],
                },
                customdata=["yes" if r["dataset_drift"] else "no" for r in runs],
                hovertemplate="%{x} UTC<br>%{y:.0%} of columns drifted<br>dataset drift: "
                "%{customdata}<extra></extra>",
            )
        )
        threshold = runs[-1].get("share_threshold")
        if threshold is not None:
            traces.append(
                line(
                    [x[0], x[-1]],
                    [threshold, threshold],
                    "dataset drift threshold",
                    colour="#b00020",
                    mode="lines",
                    line={"dash": "dash", "color": "#b00020"},
                )
            )
    figure = time_figure(
        ctx,
        traces,
        y_title="columns drifted (share)",
        y_range=(0, 1.05),
        yaxis={"tickformat": ".0%"},
    )
    return panel(
        "drift-share",
        "Dataset drift share per pipeline run",
        figure_block(
            figure if runs else None, "drift share", empty="no pipeline run has checked drift yet"
        ),
    )


def drift_columns_panel(ctx: dict[str, Any]) -> Panel:
    """Heat map of each column's drift statistic (rows) over the pipeline runs (x)."""
    runs = ctx["drift_runs"]
    columns = sorted({c for r in runs for c in r["columns"]})
    if ctx.get("model"):
        order = [c for c in ctx["model"]["features"] if c in columns]
        columns = order + [c for c in columns if c not in order]
    figure = None
    if runs and columns:
        z, text = [], []
        for column in columns:
            cells = [r["columns"].get(column) or {} for r in runs]
            z.append([c.get("statistic") for c in cells])
            text.append(
                [
                    f"{c.get('method')}, p = {c['p_value']:.3g}"
                    + (" (drifted)" if c.get("drifted") else "")
                    if c.get("p_value") is not None
                    else str(c.get("method"))
                    for c in cells
                ]
            )
        trace = {
            "type": "heatmap",
            "x": [when(r["created_at"]) for r in runs],
            "y": columns,
            "z": z,
            "text": text,
            "colorscale": "YlOrRd",
            "reversescale": True,
            "colorbar": {"title": {"text": "statistic"}},
            "hovertemplate": "%{y}<br>%{x} UTC<br>statistic %{z:.3g}<br>%{text}<extra></extra>",
        }
        height = max(260, min(2400, 90 + 18 * len(columns)))
        figure = time_figure(
            ctx,
            [trace],
            y_title="column",
            yaxis={"automargin": True, "type": "category"},
            height=height,
        )
    return panel(
        "drift-columns",
        "Drift statistic per column over pipeline runs",
        figure_block(
            figure,
            "drift statistic per column",
            empty="no pipeline run has checked drift yet",
            height=figure["layout"]["height"] if figure else 320,
        ),
        text_block(
            "Each column's test statistic against the training data (the method and p-value "
            "show on hover); darker is further from the training data.",
            cls="note",
        ),
        wide=True,
    )


def traffic_panel(ctx: dict[str, Any]) -> Panel:
    hours = ctx["traffic"]
    x = [when(h["hour"] + ":30") for h in hours]  # the middle of each hour
    traces = [
        {
            "type": "bar",
            "x": x,
            "y": [h["rows"] for h in hours],
            "width": [3_300_000] * len(hours),  # ms: 55 minutes of the hour
            "name": "rows predicted per hour",
            "marker": {"color": "#7aa6d6"},
            "customdata": [when(h["hour"]) for h in hours],
            "hovertemplate": "%{customdata|%Y-%m-%d %H:00} to %{customdata|%H:59} UTC<br>"
            "%{y} rows<extra></extra>",
        },
        line(
            x,
            [None if h["positive_rate"] is None else 100 * h["positive_rate"] for h in hours],
            "predicted positive (%)",
            colour="#d62728",
            yaxis="y2",
            hovertemplate="%{x|%Y-%m-%d %H}:00 to %{x|%H}:59 UTC<br>%{y:.1f}% predicted "
            "positive<extra></extra>",
        ),
    ]
    figure = time_figure(
        ctx,
        traces,
        y_title="predicted rows per hour",
        yaxis={"rangemode": "tozero"},
        yaxis2={
            "title": {"text": "predicted positive (%)"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 105],
            "tickmode": "linear",
            "tick0": 0,
            "dtick": 20,
            "showgrid": False,
        },
        xaxis={"range": hour_range([h["hour"] for h in hours]) if hours else None},
        margin={"r": 60},
    )
    note = "From captured /prediction rows"
    rate = ctx.get("sample_rate")
    if rate is not None and rate < 1:
        note += f" (capture.sample_rate is {rate:g}: about that share of rows is counted)"
    return panel(
        "traffic",
        "Prediction volume and positive rate per hour",
        figure_block(
            figure if hours else None, "predictions per hour", empty="no captured predictions yet"
        ),
        text_block(note + ".", cls="note"),
    )


def latency_panel(ctx: dict[str, Any]) -> Panel:
    rows = ctx["latency"]
    traces = [
        line(
            [when(r["hour"] + ":30") for r in group],
            [None if r["seconds"] is None else 1000 * r["seconds"] for r in group],
            "all requests" if endpoint == "all" else endpoint,
            colour="#555" if endpoint == "all" else "#2ca02c",
            customdata=[r["requests"] for r in group],
            hovertemplate="%{x|%Y-%m-%d %H}:00 to %{x|%H}:59 UTC<br>p95 %{y:.1f} ms over "
            "%{customdata} requests"
            "<extra>%{fullData.name}</extra>",
        )
        for endpoint, group in trends.group_by(rows, "endpoint").items()
    ]
    figure = time_figure(
        ctx,
        traces,
        y_title="p95 latency (ms)",
        yaxis={"rangemode": "tozero"},
        xaxis={"range": hour_range([r["hour"] for r in rows]) if rows else None},
    )
    return panel(
        "latency",
        "Request latency p95 per hour",
        figure_block(figure if rows else None, "latency p95", empty="no requests recorded yet"),
        text_block(
            "Server time per request, from when the app receives it to its response "
            "(within 20 %: counted in buckets 1.2x apart).",
            cls="note",
        ),
    )


def ingested_panel(ctx: dict[str, Any]) -> Panel:
    batches = ctx["ingested"]
    traces = [
        {
            "type": "bar",
            "x": [when(b["ingested_at"]) for b in batches],
            "y": [b["rows_kept"] for b in batches],
            "name": "rows kept",
            "marker": {"color": "#2ca02c"},
            "customdata": [[b["rows_read"], b["files"], b["rejected"]] for b in batches],
            "hovertemplate": "%{x} UTC<br>%{y} rows kept of %{customdata[0]} read<br>"
            "%{customdata[1]} files, %{customdata[2]} rejected<extra></extra>",
        }
    ]
    figure = time_figure(
        ctx, traces, y_title="rows kept per ingestion", yaxis={"rangemode": "tozero"}
    )
    return panel(
        "ingested",
        "Ingested rows",
        figure_block(figure if batches else None, "ingested rows", empty="nothing ingested yet"),
    )


def versions_panel(ctx: dict[str, Any]) -> Panel:
    return panel(
        "versions",
        "Version history",
        table_block(ctx["versions"], ["version", "trained_at", "estimator", "f1", "live"]),
        table_block(
            ctx["deployments"],
            ["deployed_at", "action", "model_version", "previous_version", "f1"],
            title="Deployments and rollbacks",
        ),
        wide=True,
    )


def drift_panel(ctx: dict[str, Any]) -> Panel:
    drift = ctx["drift"]
    title = "Data drift: latest ingested data vs training data"
    if not drift:
        return panel(
            "drift",
            title,
            text_block("no drift report: nothing deployed or ingested yet", cls="empty"),
            wide=True,
        )
    flag = "yes" if drift.get("dataset_drift") else "no"
    fmt = ctx["format"]
    summary = (
        f"Dataset drift: {flag} ({fmt(drift.get('n_drifted'))} of {fmt(drift.get('n_columns'))} "
        f"columns; {fmt(drift.get('n_current'))} current rows vs "
        f"{fmt(drift.get('n_reference'))} reference rows)"
    )
    return panel(
        "drift",
        title,
        text_block(summary, cls=f"flag-{flag}"),
        table_block(
            drift.get("columns", []),
            ["column", "method", "statistic", "p_value", "threshold", "drifted"],
        ),
        {"kind": "histograms", "figures": ctx["histogram_figures"]},
        wide=True,
    )


def missing_panel(ctx: dict[str, Any]) -> Panel:
    return panel(
        "missing",
        "Missing data (share of rows)",
        table_block(ctx["missing"], ["column", "missing_share", "missing_count"]),
    )


def confusion_panel(ctx: dict[str, Any]) -> Panel:
    score = ctx.get("test_score") or {}
    matrix = score.get("confusion_matrix")
    figure = None
    if matrix:
        labels = [str(i) for i in range(len(matrix))]
        figure = {
            "data": [
                {
                    "type": "heatmap",
                    "x": labels,
                    "y": labels,
                    "z": matrix,
                    "text": matrix,
                    "texttemplate": "%{text}",
                    "colorscale": "Blues",
                    "showscale": False,
                    "hovertemplate": "actual %{y}, predicted %{x}: %{z} rows<extra></extra>",
                }
            ],
            "layout": {
                "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
                "xaxis": {"title": {"text": "predicted class"}, "type": "category"},
                "yaxis": {
                    "title": {"text": "actual class"},
                    "type": "category",
                    "autorange": "reversed",
                },
                "title": {
                    "text": f"F1 {format_value(score.get('f1'))} on {score.get('n_rows')} rows",
                    "font": {"size": 13},
                },
            },
        }
    return panel(
        "confusion",
        "Confusion matrix (test data)",
        figure_block(figure, "confusion matrix", empty="no test score"),
    )


def live_panel(ctx: dict[str, Any]) -> Panel:
    return panel(
        "live",
        "Live performance on captured, labelled traffic",
        table_block(
            ctx["live"], ["model_version", "n_captured", "n_labelled", "f1", "precision", "recall"]
        ),
        wide=True,
    )


def runs_panel(ctx: dict[str, Any]) -> Panel:
    return panel(
        "runs",
        "Recent pipeline runs",
        table_block(ctx["runs"], ["started_at", "status", "outcome", "new_files", "reason"]),
        wide=True,
    )


def model_card_panel(ctx: dict[str, Any]) -> Panel:
    card = ctx.get("model_card")
    block = pre_block(card) if card else text_block("no model card", cls="empty")
    return panel("modelcard", "Model card", block, wide=True)


PANELS: list[Callable[[dict[str, Any]], Panel | None]] = [
    model_panel,
    f1_panel,
    estimated_f1_panel,
    drift_share_panel,
    drift_columns_panel,
    traffic_panel,
    latency_panel,
    ingested_panel,
    fairness_panel,
    delivery_panel,
    versions_panel,
    drift_panel,
    missing_panel,
    confusion_panel,
    live_panel,
    runs_panel,
    model_card_panel,
]


def build_panels(ctx: dict[str, Any]) -> list[Panel]:
    """Every panel of :data:`PANELS` for ``ctx``, in order, each figure given a ``key``."""
    panels = [p for p in (make(ctx) for make in PANELS) if p is not None]
    serial = itertools.count()
    for p in panels:
        for block in p["blocks"]:
            if block["kind"] == "figure" and block["figure"] is not None:
                block["key"] = f"fig{next(serial)}"
    return panels


# -- histograms --------------------------------------------------------------------
def histogram(reference: np.ndarray, current: np.ndarray, bins: int = HIST_BINS) -> dict[str, Any]:
    """Shares (%) of the sorted ``reference`` and ``current`` values in ``bins`` equal
    bins between the 0.5 % and 99.5 % quantiles of both (values beyond fall in the end
    bins): ``edges``, ``reference``, ``current``."""
    ends = []
    for values in (reference, current):
        n = values.size
        ends += [values[int(0.005 * (n - 1))], values[int(math.ceil(0.995 * (n - 1)))]]
    low, high = float(min(ends)), float(max(ends))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    shares = []
    for values in (reference, current):
        cuts = np.searchsorted(values, edges[1:-1], side="left")
        counts = np.diff(np.concatenate(([0], cuts, [values.size])))
        shares.append(100.0 * counts / values.size)
    return {"edges": edges.tolist(), "reference": shares[0].tolist(), "current": shares[1].tolist()}


def histogram_figure(column: str, hist: dict[str, Any]) -> dict[str, Any]:
    edges = hist["edges"]
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    width = edges[1] - edges[0]
    traces = [
        {
            "type": "bar",
            "x": centres,
            "y": hist[name],
            "width": width,
            "name": label,
            "opacity": 0.55,
            "marker": {"color": colour},
            "hovertemplate": "%{x:.4g}: %{y:.1f}% of rows<extra>" + label + "</extra>",
        }
        for name, label, colour in (
            ("reference", "training data", "#1f77b4"),
            ("current", "latest ingested data", "#ff7f0e"),
        )
    ]
    return {
        "data": traces,
        "layout": {
            "barmode": "overlay",
            "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
            "title": {"text": column, "font": {"size": 13}},
            "xaxis": {"title": {"text": f"{column} (value)"}},
            "yaxis": {"title": {"text": "share of rows (%)"}},
            "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"},
        },
    }


# -- the context -------------------------------------------------------------------
def traffic_context(views: ReadModels) -> dict[str, Any]:
    """What grows with traffic: captures per hour, latency, live F1 (re-read at most
    every :data:`TRAFFIC_SECONDS`, or as long as :data:`REFRESH_COST_FACTOR` says)."""
    settings = views.settings

    def compute() -> dict[str, Any]:
        store = views.store
        return {
            "serial": next(_TRAFFIC_SERIAL),
            "traffic": trends.hourly_traffic(store),
            "latency": trends.hourly_latency(store),
            "live_daily": trends.daily_live_f1(store, min_rows=settings.capture.min_labelled_rows),
            "live": [{"model_version": v, **m} for v, m in live_performance(store).items()],
            "labelled": labelled_count(store),
        }

    key = store_key(views.store, views.cache.clock)
    traffic: dict[str, Any] = views.cache.get(
        "dashboard_traffic", key, compute, min_age=TRAFFIC_SECONDS
    )
    return traffic


_TRAFFIC_SERIAL = itertools.count()


def collect_context(views: ReadModels) -> dict[str, Any]:
    """Everything the page shows, as plain data.

    Tables (``versions``, ``deployments`` newest first, ``live``, the 10 latest ``runs``,
    ``missing``), ``model``, ``test_score``, ``drift``, ``model_card``, the time series
    (``scores``, ``drift_runs``, ``traffic``, ``latency``, ``live_daily``, ``ingested``,
    ``deployment_log``), ``histograms`` (shares per bin) and the ``errors`` met.
    """
    store, settings = views.store, views.settings
    deployment_log = store.deployments()
    ctx: dict[str, Any] = {
        "versions": list_versions(store),
        "deployments": deployment_log[::-1][:20],
        "deployment_log": deployment_log,
        "scores": store.scores(),
        "runs": [
            {**r, "new_files": len((r.get("evidence") or {}).get("new_files") or [])}
            for r in store.runs(limit=10)
        ],
        "drift_runs": trends.drift_runs(store),
        "ingested": trends.ingested_rows(store),
        "missing": views.profile.missing(),
        "delivery": delivery_metrics(store, settings),
        "min_labelled_rows": settings.capture.min_labelled_rows,
        "sample_rate": settings.capture.sample_rate,
        **dict.fromkeys(("model", "drift", "test_score", "model_card")),  # with a model only
        "histograms": {},
        "errors": [],
    }
    ctx.update({k: v for k, v in traffic_context(views).items() if k not in ("serial", "labelled")})
    ctx["version_order"] = list(dict.fromkeys(s["model_version"] for s in ctx["scores"]))
    try:
        artifact = views.model.artifact()
    except MonitoringError as exc:
        ctx["errors"].append(exc.message)
        return ctx
    meta, training = artifact.metadata, artifact.metadata.get("training_data") or {}
    ctx["model"] = {
        "version": artifact.version,
        "estimator": meta.get("estimator"),
        "trained_at": meta.get("trained_at"),
        "features": artifact.features,
        "training_data_sha256": training.get("sha256"),
        "training_rows": training.get("rows"),
    }
    row = store.model_version(artifact.version, with_bytes=False)
    ctx["test_score"] = (row or {}).get("score") or {}
    try:  # the estimated F1 of each chunk of the live model's traffic, with its band
        estimated = views.scoring.estimated()
    except MonitoringError as exc:
        ctx["errors"].append(f"estimated performance: {exc.message}")
    else:
        ctx["estimated_f1"] = [
            {
                "time": chunk["end"],
                "model_version": artifact.version,
                "f1": chunk["f1"],
                "lower": (chunk.get("lower") or {}).get("f1"),
                "upper": (chunk.get("upper") or {}).get("f1"),
            }
            for chunk in estimated["chunks"]
            if chunk.get("f1") is not None
        ]
    try:
        ctx["fairness"] = live_audit(views)
    except MonitoringError as exc:
        ctx["errors"].append(f"bias audit: {exc.message}")
    ctx["model_card"] = read_model_card(store, artifact.version)
    try:
        ctx["drift"] = views.drift.latest()
    except MonitoringError as exc:
        ctx["errors"].append(f"data drift: {exc.message}")
        return ctx
    # Histograms: training data vs the latest ingested data, from their drift profiles.
    profile_id = views.profile.latest_id()
    current = {} if profile_id is None else views.profile.reference(profile_id).profiles_
    reference = views.model.reference().profiles_
    for column in artifact.features:
        ref, cur = reference.get(column), current.get(column)
        if ref is None or ref.numeric is None or cur is None or cur.numeric is None:
            continue
        if ref.numeric.sorted_values.size and cur.numeric.sorted_values.size:
            ctx["histograms"][column] = histogram(
                ref.numeric.sorted_values, cur.numeric.sorted_values
            )
    return ctx


def _finish(ctx: dict[str, Any]) -> dict[str, Any]:
    """Add what the panels derive from the context: formatter, histogram figures in
    order of drift (most drifted first)."""
    ctx.setdefault("format", format_value)
    drift_rank = {
        c["column"]: (
            not c.get("drifted"),
            c.get("p_value") if c.get("p_value") is not None else 1.0,
        )
        for c in (ctx.get("drift") or {}).get("columns", [])
    }
    names = sorted(ctx["histograms"], key=lambda c: drift_rank.get(c, (True, 1.0)))
    ctx["histogram_figures"] = {c: histogram_figure(c, ctx["histograms"][c]) for c in names}
    return ctx


# -- the page ----------------------------------------------------------------------
def page_json(panels: list[Panel]) -> str:
    """The figures of ``panels`` (and their histograms) as JSON safe inside ``<script>``."""
    figures: dict[str, Any] = {}
    histograms: dict[str, Any] = {}
    for p in panels:
        for block in p["blocks"]:
            if block["kind"] == "figure" and block.get("key"):
                figures[block["key"]] = block["figure"]
            elif block["kind"] == "histograms":
                histograms.update(block["figures"])
    text = json.dumps(clean({"figures": figures, "histograms": histograms}), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    ctx: dict[str, Any],
    *,
    title: str,
    report: Any = None,
    plotly_src: str | None = None,
    printing: bool = False,
) -> str:
    """The page for ``ctx`` (:func:`collect_context`).

    ``plotly_src`` is the URL of plotly.js; without it the script is inlined (a
    self-contained ``report.html``). ``printing`` draws static charts of a fixed width
    (for the PDF). With the combined ``report`` it also shows its predictions and
    summary statistics.
    """
    panels = build_panels(_finish(ctx))
    inline = None if plotly_src else plotly_js_path().read_text(encoding="utf-8")
    return render(
        "page.html",
        ctx=ctx,
        panels=panels,
        data=page_json(panels),
        title=title,
        report=report,
        plotly_src=plotly_src,
        plotly_inline=inline,
        printing=printing,
    )


def cache_key(views: ReadModels) -> Any:
    """Identity of what the page shows: served model, records, traffic part."""
    store = views.store
    records = store.change_key(records_only=True)
    if records is None:  # no stamp file (PostgreSQL): the newest id of each history
        records = (
            [(run["id"], run["status"]) for run in store.runs(limit=1)],
            [score["id"] for score in store.scores(limit=1)],
            len(store.deployments()),
            [r["id"] for r in store.drift_reports(limit=1)],
            [r["id"] for r in store.ingestions(limit=1)],
            views.profile.latest_id(),
        )
    traffic = traffic_context(views)
    return (views.model.served_version(), records, traffic["serial"], traffic["labelled"])


def dashboard_html(views: ReadModels, *, plotly_src: str | None = None) -> str:
    """The dashboard page, re-rendered only when :func:`cache_key` changes."""
    key = (cache_key(views), plotly_src)
    slot = str(views.settings.prod_deployment_path)
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] == key:
        return hit[1]
    with _LOCK:  # one render at a time: concurrent first requests wait for it
        hit = _CACHE.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        page = render_page(
            collect_context(views), title="Model monitoring dashboard", plotly_src=plotly_src
        )
        _CACHE[slot] = (key, page)
    return page
