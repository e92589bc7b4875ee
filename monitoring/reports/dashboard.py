"""The ``/dashboard`` page, also written as ``report.html``.

:func:`collect_context` gathers what the page shows from the read models,
:func:`render_page` fills ``templates/page.html`` with it and its figures, and
:func:`dashboard_html` caches the page until :func:`cache_key` changes. Nothing here
writes state; the drift table is not recorded.
"""

from __future__ import annotations

import base64
from typing import Any

from monitoring.capture.feedback import labelled_count, live_performance
from monitoring.exceptions import MonitoringError
from monitoring.model.deployment import list_versions
from monitoring.readmodels import ReadModels
from monitoring.reports.formatting import render
from monitoring.reports.modelcard import read_model_card
from monitoring.reports.plots import build_figures, png

# One rendered page per production folder: (cache_key, page).
_CACHE: dict[str, tuple[Any, str]] = {}


def collect_context(views: ReadModels) -> dict[str, Any]:
    """Everything the page shows, as plain data (plus arrays for the histograms).

    Table rows (``versions``, ``deployments`` newest first, ``live``, the 10 latest
    ``runs``, ``missing``), ``model``, ``test_score``, ``drift``, ``model_card``,
    ``scores`` and ``histograms`` for the plots, and the ``errors`` met.
    """
    store = views.store
    ctx: dict[str, Any] = {
        "versions": list_versions(store),
        "deployments": store.deployments()[::-1][:20],
        "scores": store.scores(),
        "runs": [
            {**r, "new_files": len((r.get("evidence") or {}).get("new_files") or [])}
            for r in store.runs(limit=10)
        ],
        "live": [{"model_version": v, **m} for v, m in live_performance(store).items()],
        "missing": views.profile.missing(),
        **dict.fromkeys(("model", "drift", "test_score", "model_card")),  # with a model only
        "histograms": {},
        "errors": [],
    }
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
        ctx["histograms"][column] = (ref.numeric.sorted_values, cur.numeric.sorted_values)
    return ctx


def render_page(
    ctx: dict[str, Any], images: dict[str, bytes], *, title: str, report: Any = None
) -> str:
    """The page for ``ctx`` (:func:`collect_context`) and its figures' PNG ``images``.

    With the combined ``report`` it also shows its predictions and summary statistics.
    """
    encoded = {name: base64.b64encode(data).decode("ascii") for name, data in images.items()}
    return render("page.html", ctx=ctx, png=encoded, title=title, report=report)


def cache_key(views: ReadModels) -> Any:
    """Identity of what the page shows: model, ingested data, latest run, labels."""
    store = views.store
    return (
        views.model.served_version(),
        views.profile.latest_id(),
        [(run["id"], run["status"]) for run in store.runs(limit=1)],
        [score["id"] for score in store.scores(limit=1)],
        len(store.deployments()),
        labelled_count(store),
    )


def dashboard_html(views: ReadModels) -> str:
    """The dashboard page, re-rendered only when :func:`cache_key` changes."""
    key = cache_key(views)
    slot = str(views.settings.prod_deployment_path)
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] == key:
        return hit[1]
    ctx = collect_context(views)
    images = {name: png(fig) for name, fig in build_figures(ctx).items()}
    page = render_page(ctx, images, title="Model monitoring dashboard")
    _CACHE[slot] = (key, page)
    return page
