"""Model card: what a deployed model is, what it was trained on, how good it is where.

:func:`monitoring.pipeline.publish` writes the card of every version it deploys into
the record store (Markdown and JSON) and exports it as
``<prod_deployment_path>/modelcards/<version>.md`` and ``.json``; the report and the
dashboard read it from the store. Per-slice metrics, on the test and the training data: each
feature is cut into ``model_card.quantile_buckets`` buckets at training-data
quantiles, unless ``model_card.slices`` gives a column's cut points. The bias audit
of the test data (:mod:`monitoring.reports.fairness`) when ``fairness.attributes``
names group attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config import Settings
from monitoring.data.window import training_data
from monitoring.exceptions import MissingArtifactError
from monitoring.model.artifact import Artifact, load_artifact
from monitoring.model.scoring import compute_metrics, read_test_data
from monitoring.reports.fairness import safe_audit_test
from monitoring.reports.formatting import render
from monitoring.storage.files import atomic_write_json, atomic_write_text
from monitoring.storage.store import Store

MODEL_CARD_MD = "modelcard.md"
MODEL_CARDS_DIR = "modelcards"
SMALL_SLICE = 10

INTENDED_USE = (
    "Rank corporate clients by their risk of churning (exiting) so that client "
    "managers can prioritise outreach. It supports human decisions; it is not meant "
    "to take automatic action against a client, and it is only valid for clients "
    "like those in the training data (same activity and size ranges)."
)


def slice_edges(settings: Settings, train: pd.DataFrame, column: str) -> list[float]:
    """Inner cut points of ``column``: configured, or training-data quantiles."""
    configured = settings.model_card.slices.get(column)
    if configured:
        return sorted(float(v) for v in configured)
    buckets = int(settings.model_card.quantile_buckets)
    values = pd.to_numeric(train[column], errors="coerce").dropna().to_numpy(dtype=float)
    if buckets < 2 or values.size == 0:
        return []
    inner = np.quantile(values, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({float(v) for v in inner})


def _label(edges: list[float], i: int) -> str:
    low = "-inf" if i == 0 else f"{edges[i - 1]:g}"
    high = "inf" if i == len(edges) else f"{edges[i]:g}"
    return f"({low}, {high}]"


def slice_metrics(
    artifact: Artifact, frame: pd.DataFrame, target: str, column: str, edges: list[float]
) -> list[dict[str, Any]]:
    """Metrics of ``artifact`` on each bucket of ``column`` in a labelled frame."""
    frame = frame.dropna(subset=[*artifact.features, target])
    if frame.empty:
        return []
    result = artifact.predict(frame, input_name="slice")
    y_true = frame[target].astype(int).to_numpy()
    y_pred = np.asarray(result["predictions"])
    bucket = np.searchsorted(np.asarray(edges, dtype=float), frame[column].to_numpy(float), "left")
    out = []
    for i in range(len(edges) + 1):
        mask = bucket == i
        n = int(mask.sum())
        row: dict[str, Any] = {"slice": _label(edges, i), "n_rows": n}
        if n:
            m = compute_metrics(y_true[mask], y_pred[mask])
            row["positives"] = int(y_true[mask].sum())
            row.update({k: m[k] for k in ("f1", "precision", "recall", "accuracy")})
        out.append(row)
    return out


def build_model_card(settings: Settings, artifact: Artifact, store: Store) -> dict[str, Any]:
    """The model card of a trained, scored artifact (its training window read from ``store``)."""
    meta = artifact.metadata
    score = artifact.score or {}
    training = meta.get("training_data", {})
    caveats = []
    empty = pd.DataFrame(columns=[*artifact.features, settings.target])  # gives no slices
    try:
        test = read_test_data(settings)
    except MissingArtifactError as exc:  # the card must not block a deployment
        test = empty
        caveats.append(f"no test data for slices: {exc.message}")
    train = empty
    try:
        window = training_data(settings, store)
    except MissingArtifactError:
        window = None
    if window is not None and window.sha256 == training.get("sha256"):
        train = window.frame
    else:
        caveats.append("the training data has changed since training; no training-data slices")
    n_test = len(test)
    if n_test < 30:
        caveats.append(
            f"the test set has only {n_test} rows: the test metrics (and every slice of "
            "them) have very wide uncertainty"
        )
    rows = training.get("rows_used") or training.get("rows")
    if rows is not None and rows < 200:
        caveats.append(f"trained on only {rows} rows")
    caveats.append(
        "training-data metrics are in-sample and optimistic; compare models on the test data"
    )
    slices: dict[str, Any] = {}
    for column in artifact.features:
        edges = slice_edges(settings, test if train.empty else train, column)
        slices[column] = {
            "edges": edges,
            "test": slice_metrics(artifact, test, settings.target, column, edges),
            "training": slice_metrics(artifact, train, settings.target, column, edges),
        }
        small = [s["slice"] for s in slices[column]["test"] if s["n_rows"] < SMALL_SLICE]
        if small:
            caveats.append(
                f"test slices of {column} with fewer than {SMALL_SLICE} rows: {', '.join(small)}"
            )
    fairness = None
    if settings.fairness.attributes:
        fairness = {"tau": settings.fairness.tau, **safe_audit_test(settings, artifact)}
        failing = [
            f"{f['metric']} of {column} group {f['group']}"
            for column, attribute in (fairness.get("attributes") or {}).items()
            for f in attribute.get("failing", [])
        ]
        if failing:
            caveats.append(
                f"failing disparities on the test data (tau {settings.fairness.tau}): "
                + ", ".join(failing)
            )
    return {
        "model": {
            "version": artifact.version,
            "estimator": meta.get("estimator"),
            "params": meta.get("params"),
            "trained_at": meta.get("trained_at"),
            "features": artifact.features,
            "target": meta.get("target"),
            "sha256": meta.get("sha256"),
            "library_versions": meta.get("library_versions"),
        },
        "intended_use": INTENDED_USE,
        "training_data": training,
        "metrics": {
            "test": {k: score.get(k) for k in ("f1", "precision", "recall", "accuracy", "roc_auc")}
            | {"n_rows": score.get("n_rows"), "sha256": score.get("dataset_sha256")},
            "training": meta.get("training_score"),
        },
        "slices": slices,
        "fairness": fairness,
        "caveats": caveats,
    }


def model_card_folder(settings: Settings) -> Path:
    """``<prod_deployment_path>/modelcards``: the exported card of each deployed version."""
    return settings.prod_deployment_path / MODEL_CARDS_DIR


def write_model_card(settings: Settings, store: Store, version: str) -> dict[str, Any]:
    """Build the card of model ``version``, keep it in the store, export it; return it.

    Exported as ``modelcards/<version>.md`` and ``.json`` in ``prod_deployment_path``
    and as ``modelcard.md`` in ``output_model_path``, next to the report.
    """
    card = build_model_card(settings, load_artifact(store, version), store)
    text = render("modelcard.md", card=card)
    store.set_model_card(version, text, card)
    target = model_card_folder(settings)
    atomic_write_json(target / f"{version}.json", card)
    atomic_write_text(target / f"{version}.md", text)
    atomic_write_text(settings.output_model_path / MODEL_CARD_MD, text)
    return card


def read_model_card(store: Store, version: str) -> str | None:
    """The Markdown model card of a deployed version, or None."""
    card = store.model_card(version)
    return None if card is None else str(card["markdown"])
