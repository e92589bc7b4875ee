"""Bias audit, as Aequitas does it: group metrics, disparities and the tau rule.

Rows are split into groups by each configured attribute (``fairness.attributes``:
a categorical column, or a numeric one cut at given points or in quantile buckets).
For each group, from its confusion counts (``label`` 1 is the positive class, a
prediction of 1 a predicted positive):

========== ================================================ ===========================
name       what                                             computed as
========== ================================================ ===========================
prevalence share of the group labelled positive             (tp + fn) / size
pprev      predicted prevalence: the share predicted        (tp + fp) / size
           positive *within* the group
ppr        predicted-positive share: the group's share of   (tp + fp) / predicted
           *all* predicted positives of the data            positives of all groups
precision  true share of the predicted positives            tp / (tp + fp)
fdr        false discovery rate                             fp / (tp + fp)
for        false omission rate                              fn / (tn + fn)
fpr        false positive rate                              fp / (fp + tn)
fnr        false negative rate                              fn / (fn + tp)
tpr        true positive rate (recall)                      tp / (tp + fn)
tnr        true negative rate                               tn / (tn + fp)
========== ================================================ ===========================

Each metric of each group is divided by the reference group's (the largest group,
or ``reference`` when configured): the *disparity*. Its verdict follows Aequitas'
rule: ``pass`` when ``tau <= ratio <= 1/tau``, else ``fail`` (``not_judged`` for a
metric left out of ``fairness.metrics``). Undefined ratios are stated, never hidden:
a metric whose own denominator is 0 (the precision of a group with no predicted
positive) is ``null``, and a disparity involving it ``undefined``; 0/0 (both groups
0) is ``undefined`` too (Aequitas: NaN); x/0 with x > 0 has no finite ratio (``ratio``
null, ``infinite`` true) and fails (Aequitas: filled with 10, which fails).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, ColumnElement, cast, select, type_coerce

from monitoring.config import (
    CATEGORICAL_MAX_VALUES,
    DEFAULT_BUCKETS,
    FAIRNESS_METRICS,
    FairnessSettings,
    GroupAttribute,
    Settings,
)
from monitoring.exceptions import MissingArtifactError, MonitoringError
from monitoring.model.artifact import Artifact
from monitoring.model.scoring import read_test_data
from monitoring.readmodels import ReadModels, store_key
from monitoring.storage.files import file_identity
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store

METRICS = FAIRNESS_METRICS
PASS, FAIL, UNDEFINED, NOT_JUDGED = "pass", "fail", "undefined", "not_judged"


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def group_metrics(
    tp: int, fp: int, tn: int, fn: int, *, all_predicted_positive: int
) -> dict[str, Any]:
    """The counts and metrics of one group (a metric with a zero denominator: None)."""
    size = tp + fp + tn + fn
    pp, pn = tp + fp, tn + fn
    return {
        "size": size,
        "label_positive": tp + fn,
        "label_negative": tn + fp,
        "predicted_positive": pp,
        "predicted_negative": pn,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "prevalence": _ratio(tp + fn, size),
        "pprev": _ratio(pp, size),
        "ppr": _ratio(pp, all_predicted_positive),
        "precision": _ratio(tp, pp),
        "fdr": _ratio(fp, pp),
        "for": _ratio(fn, pn),
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
        "tpr": _ratio(tp, tp + fn),
        "tnr": _ratio(tn, tn + fp),
    }


def disparity(value: float | None, reference: float | None, tau: float) -> dict[str, Any]:
    """``value / reference`` with its verdict under the tau rule.

    >>> disparity(0.5, 0.25, 0.8)
    {'ratio': 2.0, 'verdict': 'fail'}
    >>> disparity(0.0, 0.0, 0.8)
    {'ratio': None, 'verdict': 'undefined', 'note': '0/0: both groups have 0'}
    >>> disparity(0.2, 0.0, 0.8)["verdict"]
    'fail'
    """
    if value is None or reference is None:
        which = "this group's" if value is None else "the reference group's"
        return {"ratio": None, "verdict": UNDEFINED, "note": f"{which} value is undefined"}
    if reference == 0:
        if value == 0:
            return {"ratio": None, "verdict": UNDEFINED, "note": "0/0: both groups have 0"}
        return {
            "ratio": None,
            "verdict": FAIL,
            "infinite": True,
            "note": "the reference group has 0: the ratio is infinite",
        }
    ratio = value / reference
    return {"ratio": ratio, "verdict": PASS if tau <= ratio <= 1 / tau else FAIL}


def _bucket_label(edges: Sequence[float], i: int) -> str:
    low = "-inf" if i == 0 else f"{edges[i - 1]:g}"
    if i == len(edges):
        return f"({low}, inf)"
    return f"({low}, {edges[i]:g}]"


def _category(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 read from JSON or CSV is the category "1"
    return str(value)


def group_labels(
    values: pd.Series, options: GroupAttribute
) -> tuple[list[str | None], list[str], dict[str, Any]]:
    """Each row's group label (None: no value), the groups in order, and how they were made.

    Numeric groups are ``(low, high]`` intervals (the last ``(low, inf)``); quantile
    cut points are those of ``values`` (duplicates merged); a value that is not a
    number has no group.
    """
    kind = options.kind
    numbers = pd.to_numeric(values, errors="coerce")
    if kind is None:
        distinct = numbers.dropna().nunique()
        is_numeric = numbers.notna().sum() == values.notna().sum() and values.notna().any()
        kind = "numeric" if is_numeric and distinct > CATEGORICAL_MAX_VALUES else "categorical"
    if kind == "categorical":
        labels = [None if pd.isna(v) else _category(v) for v in values.tolist()]
        order = sorted({label for label in labels if label is not None})
        return labels, order, {"kind": "categorical"}
    finite = numbers.to_numpy(dtype=float)
    present = np.isfinite(finite)
    if options.cuts:
        edges = [float(c) for c in options.cuts]
        how: dict[str, Any] = {"kind": "numeric", "cuts": edges}
    else:
        buckets = options.buckets or DEFAULT_BUCKETS
        inner = np.linspace(0, 1, buckets + 1)[1:-1]
        edges = (
            sorted({float(v) for v in np.quantile(finite[present], inner)}) if present.any() else []
        )
        how = {"kind": "numeric", "buckets": buckets, "cuts": edges}
    index = np.searchsorted(np.asarray(edges, dtype=float), finite, "left")
    labels = [
        _bucket_label(edges, int(i)) if ok else None for i, ok in zip(index, present, strict=True)
    ]
    used = sorted({int(i) for i, ok in zip(index, present, strict=True) if ok})
    return labels, [_bucket_label(edges, i) for i in used], how


def audit_attribute(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[str | None],
    order: Sequence[str],
    *,
    tau: float,
    reference: str | None = None,
    judged: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """The audit of one attribute: per-group metrics, disparities and verdicts.

    ``labels`` gives each row's group (None: left out), ``order`` the groups in the
    order shown; ``reference`` the reference group, default the largest (the first
    of equals in ``order``). Every metric's disparity is reported; those not in
    ``judged`` have the verdict ``not_judged`` and never fail.
    """
    truth = np.asarray(y_true, dtype=int)
    pred = np.asarray(y_pred, dtype=int)
    group = np.asarray([label if label is not None else "" for label in labels], dtype=object)
    has = np.asarray([label is not None for label in labels], dtype=bool)
    counts = {}
    for name in order:
        mask = has & (group == name)
        t, p = truth[mask], pred[mask]
        counts[name] = (
            int(((t == 1) & (p == 1)).sum()),
            int(((t == 0) & (p == 1)).sum()),
            int(((t == 0) & (p == 0)).sum()),
            int(((t == 1) & (p == 0)).sum()),
        )
    all_pp = sum(tp + fp for tp, fp, _, _ in counts.values())
    groups = {
        name: {"group": name, **group_metrics(*c, all_predicted_positive=all_pp)}
        for name, c in counts.items()
    }
    out: dict[str, Any] = {
        "n_rows": int(has.sum()),
        "rows_without_value": int((~has).sum()),
        "reference_group": None,
        "reference_rule": "configured" if reference is not None else "largest",
    }
    if reference is not None and reference not in groups:
        out["error"] = (
            f"the configured reference group {reference!r} is not in the data; "
            f"groups: {list(order)}"
        )
        out["groups"] = list(groups.values())
        out["failing"], out["verdict"] = [], UNDEFINED
        return out
    if reference is None and groups:
        reference = max(order, key=lambda name: (groups[name]["size"], -order.index(name)))
    out["reference_group"] = reference
    failing = []
    verdicts = set()
    for name, row in groups.items():
        ref = groups[str(reference)]
        row["disparities"] = {m: disparity(row[m], ref[m], tau) for m in METRICS}
        for metric in set(METRICS) - set(judged):
            row["disparities"][metric]["verdict"] = NOT_JUDGED
        for metric, d in row["disparities"].items():
            verdicts.add(d["verdict"])
            if d["verdict"] == FAIL:
                failing.append({"group": name, "metric": metric, "ratio": d["ratio"]})
    out["groups"] = list(groups.values())
    out["failing"] = failing
    out["verdict"] = FAIL if failing else PASS if PASS in verdicts else UNDEFINED
    return out


def audit_frame(
    frame: pd.DataFrame,
    y_true: Sequence[int],
    y_pred: Sequence[int],
    options: FairnessSettings,
    *,
    dataset: str,
) -> dict[str, Any]:
    """The audit of every configured attribute of ``frame`` (rows aligned with the labels)."""
    attributes: dict[str, Any] = {}
    for column, attribute in options.attributes.items():
        if column not in frame.columns:
            attributes[column] = {
                "error": f"column '{column}' is not in the {dataset}",
                "verdict": UNDEFINED,
                "failing": [],
            }
            continue
        labels, order, how = group_labels(frame[column], attribute)
        result = audit_attribute(
            y_true,
            y_pred,
            labels,
            order,
            tau=options.tau,
            reference=attribute.reference,
            judged=options.metrics,
        )
        attributes[column] = {**how, **result}
    verdicts = {a["verdict"] for a in attributes.values()}
    return {
        "dataset": dataset,
        "n_rows": len(frame),
        "attributes": attributes,
        "verdict": FAIL if FAIL in verdicts else PASS if PASS in verdicts else UNDEFINED,
    }


def audit_test(settings: Settings, artifact: Artifact) -> dict[str, Any]:
    """The audit of ``artifact`` on the test data (rows missing a feature or the label left out)."""
    try:
        test = read_test_data(settings)
    except MissingArtifactError as exc:
        return {"dataset": "test data", "error": exc.message, "verdict": UNDEFINED}
    target = settings.target
    numeric = test.copy()
    for column in [*artifact.features, target]:
        if column in numeric.columns:
            numeric[column] = pd.to_numeric(numeric[column], errors="coerce")
    missing = [c for c in [*artifact.features, target] if c not in numeric.columns]
    if missing:
        return {
            "dataset": "test data",
            "error": f"the test data lacks the columns {missing}",
            "verdict": UNDEFINED,
        }
    usable = numeric.dropna(subset=[*artifact.features, target])
    usable = usable[usable[target].isin([0, 1])]
    rows = test.loc[usable.index]
    if usable.empty:
        return {"dataset": "test data", "error": "no complete labelled row", "verdict": UNDEFINED}
    predictions = artifact.predict(usable, input_name=settings.test_data_file.name)["predictions"]
    audit = audit_frame(
        rows.reset_index(drop=True),
        usable[target].astype(int).tolist(),
        predictions,
        settings.fairness,
        dataset="test data",
    )
    audit["rows_left_out"] = len(test) - len(usable)
    return audit


def labelled_traffic(
    store: Store, version: str, columns: Sequence[str], limit: int
) -> tuple[pd.DataFrame, list[int], list[int]]:
    """The newest ``limit`` labelled captured rows of ``version``: the values of
    ``columns`` in their inputs, their labels and the predictions served.

    The values are extracted by the database (JSON functions), so memory holds only
    them, never the rows' whole inputs (each up to ``capture.max_row_bytes``).
    """
    table = captured_predictions
    with store.engine.connect() as conn:
        document: ColumnElement[Any]
        if conn.dialect.name == "postgresql":
            document = cast(table.c.inputs, JSON)
        else:  # SQLite: JSON functions on the text as it is (CAST would make it a number)
            document = type_coerce(table.c.inputs, JSON)
        values = [document[name].as_string().label(f"c{i}") for i, name in enumerate(columns)]
        query = (
            select(table.c.label, table.c.prediction, *values)
            .where(table.c.model_version == version, table.c.label.is_not(None))
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        {name: [row[2 + i] for row in rows] for i, name in enumerate(columns)},
        index=range(len(rows)),
    )
    return frame, [int(row[0]) for row in rows], [int(row[1]) for row in rows]


def audit_traffic(settings: Settings, store: Store, version: str) -> dict[str, Any]:
    """The audit of ``version`` on its labelled captured traffic (the predictions it
    served), once ``fairness.min_labelled_rows`` rows are labelled."""
    options = settings.fairness
    columns = list(options.attributes)
    frame, labels, predictions = labelled_traffic(store, version, columns, options.max_traffic_rows)
    if len(labels) < options.min_labelled_rows:
        return {
            "dataset": "labelled captured traffic",
            "n_rows": len(labels),
            "verdict": UNDEFINED,
            "error": (
                f"{len(labels)} labelled captured rows of {version}; the audit needs "
                f"fairness.min_labelled_rows = {options.min_labelled_rows}"
            ),
        }
    return audit_frame(frame, labels, predictions, options, dataset="labelled captured traffic")


def fairness_audit(settings: Settings, store: Store, artifact: Artifact) -> dict[str, Any]:
    """The bias audit of ``artifact``: on the test data and on its labelled traffic.

    ``{"model_version", "tau", "metrics", "test": audit, "traffic": audit}``; each audit
    is ``{"dataset", "n_rows", "verdict", "attributes": {column: {"kind", "cuts"?,
    "reference_group", "groups": [...], "failing": [...], "verdict"}}}``, or
    ``{"error"}`` when it could not be made.
    """
    return {
        "model_version": artifact.version,
        "tau": settings.fairness.tau,
        "metrics": list(settings.fairness.metrics),
        "test": audit_test(settings, artifact),
        "traffic": audit_traffic(settings, store, artifact.version),
    }


def failing_disparities(audit: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """``(attribute, group, metric)`` of every failing disparity of an audit."""
    return {
        (column, f["group"], f["metric"])
        for column, attribute in (audit.get("attributes") or {}).items()
        for f in attribute.get("failing", [])
    }


def _listed(found: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"attribute": a, "group": g, "metric": m} for a, g, m in sorted(found)]


def fairness_gate(
    champion: Mapping[str, Any], challenger: Mapping[str, Any], *, enabled: bool
) -> dict[str, Any]:
    """The fairness criterion of the gate: the challenger may not fail a disparity
    (attribute, group, metric) that the champion passes or leaves undefined.

    ``accepted`` is False only when ``enabled`` and such a disparity exists.
    """
    before, after = failing_disparities(champion), failing_disparities(challenger)
    introduced = after - before
    return {
        "enabled": enabled,
        "accepted": not (enabled and introduced),
        "introduced": _listed(introduced),
        "champion_failing": _listed(before),
        "challenger_failing": _listed(after),
    }


def safe_audit_test(settings: Settings, artifact: Artifact) -> dict[str, Any]:
    """:func:`audit_test`, with a failure of the model on the data reported, not raised."""
    try:
        return audit_test(settings, artifact)
    except MonitoringError as exc:
        return {"dataset": "test data", "error": exc.message, "verdict": UNDEFINED}


def live_audit(views: ReadModels) -> dict[str, Any]:
    """:func:`fairness_audit` of the served model, cached per process (``GET /fairness``
    and the dashboard): recomputed when the live model changes, and when the store or
    the test data changes at most every 5 seconds."""
    artifact = views.model.artifact()
    key = (
        artifact.version,
        store_key(views.store, views.cache.clock),
        file_identity(views.settings.test_data_file),
    )

    def audit() -> dict[str, Any]:
        return fairness_audit(views.settings, views.store, artifact)

    found: dict[str, Any] = views.cache.get("fairness", key, audit, min_age=5.0)
    if found["model_version"] != artifact.version:  # kept for min_age, but of another model
        views.cache.forget("fairness")
        found = views.cache.get("fairness", key, audit)
    return found
