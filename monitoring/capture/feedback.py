"""Ground-truth labels for captured predictions, and the live performance they give.

Labels arrive through ``POST /feedback``, by request id (one label per row of that
request, in order) or by row id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select, update

from monitoring.capture.importer import import_journals
from monitoring.config import Settings
from monitoring.exceptions import DataValidationError, UnknownIdsError
from monitoring.model.scoring import compute_metrics
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store, utcnow


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise DataValidationError(f"{where}: a label must be 0 or 1, got {value!r}")
    return int(value)


def parse_feedback(body: Any) -> tuple[dict[str, list[int]], dict[int, int]]:
    """Validate a feedback body; return labels by request id and label by row id.

    Accepted shapes: one item, a list of items or ``{"feedback": [items]}``, where an
    item is ``{"request_id": str, "labels": [0/1, ...]}`` or ``{"row_id": int, "label":
    0/1}``; anything else raises :class:`DataValidationError`.
    """
    if isinstance(body, dict) and "feedback" in body:
        body = body["feedback"]
    items = body if isinstance(body, list) else [body]
    if not items:
        raise DataValidationError("feedback: no items given")
    by_request: dict[str, list[int]] = {}
    by_row: dict[int, int] = {}
    for n, item in enumerate(items):
        where = f"feedback item {n}"
        if not isinstance(item, dict):
            raise DataValidationError(f"{where}: must be an object, got {item!r}")
        if "request_id" in item:
            rid, labels = item["request_id"], item.get("labels")
            if not isinstance(rid, str) or not rid:
                raise DataValidationError(f"{where}: 'request_id' must be a non-empty string")
            if not isinstance(labels, list) or not labels:
                raise DataValidationError(
                    f"{where}: 'labels' must be a non-empty list of 0/1, one per row"
                )
            by_request[rid] = [_label(v, where) for v in labels]
        elif "row_id" in item:
            row = item["row_id"]
            if isinstance(row, bool) or not isinstance(row, int):
                raise DataValidationError(f"{where}: 'row_id' must be an integer, got {row!r}")
            by_row[row] = _label(item.get("label"), where)
        else:
            raise DataValidationError(
                f"{where}: give either 'request_id' with 'labels' or 'row_id' with 'label'"
            )
    return by_request, by_row


def apply_feedback(store: Store, settings: Settings, body: Any) -> dict[str, Any]:
    """Store ground-truth labels for captured rows (all or nothing), journals imported first.

    Raises :class:`UnknownIdsError` naming every request id and row id not captured,
    :class:`DataValidationError` if a request's label count is not its row count.
    """
    by_request, by_row = parse_feedback(body)
    import_journals(store, settings)
    table = captured_predictions
    with store.engine.begin() as conn:
        query = (
            select(table.c.request_id, table.c.id)
            .where(table.c.request_id.in_(list(by_request)))
            .order_by(table.c.request_id, table.c.row_index)
        )
        request_rows: dict[str, list[int]] = {}
        for rid, row_id in conn.execute(query):
            request_rows.setdefault(rid, []).append(int(row_id))
        query = select(table.c.id).where(table.c.id.in_(list(by_row)))
        known_rows = {int(r[0]) for r in conn.execute(query)}
        unknown = {
            "request ids": [r for r in by_request if r not in request_rows],
            "row ids": sorted(r for r in by_row if r not in known_rows),
        }
        if any(unknown.values()):
            listed = "; ".join(f"unknown {kind}: {ids}" for kind, ids in unknown.items() if ids)
            raise UnknownIdsError(
                f"{listed} (never captured, sampled out or expired); no labels stored"
            )
        updates: dict[int, int] = {}
        for rid, labels in by_request.items():
            ids = request_rows[rid]
            if len(ids) != len(labels):
                raise DataValidationError(
                    f"request {rid!r} has {len(ids)} captured rows but {len(labels)} labels "
                    "were given; give one label per row, in order"
                )
            updates.update(zip(ids, labels, strict=True))
        updates.update(by_row)
        now = utcnow()
        for label in (0, 1):
            ids = [i for i, v in updates.items() if v == label]
            if ids:
                conn.execute(
                    update(table).where(table.c.id.in_(ids)).values(label=label, labelled_at=now)
                )
    return {
        "labelled_rows": len(updates),
        "request_ids": list(by_request),
        "row_ids": sorted(by_row),
    }


def live_performance(store: Store) -> dict[str, Any]:
    """Model version to ``{"n_captured", "n_labelled", **metrics}`` (metrics once labelled).

    The counts are one ``GROUP BY`` on the model-version index; each version's labelled
    rows are a range of their covering partial index, read through the driver's cursor
    (SQLAlchemy's row objects cost ~5x the query itself).
    """
    table = captured_predictions
    version_column = table.c.model_version
    with store.engine.connect() as conn:
        counts: dict[Any, int] = dict(
            conn.execute(select(version_column, func.count()).group_by(version_column)).all()
        )
        labelled: dict[Any, Sequence[Any]] = {}
        with contextlib.closing(conn.connection.cursor()) as cursor:
            for version in counts:
                query = select(table.c.label, table.c.prediction, table.c.probability).where(
                    table.c.label.is_not(None),
                    version_column.is_(None) if version is None else version_column == version,
                )  # no ORDER BY: a range of the partial index on labelled rows answers it
                sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                cursor.execute(str(sql))
                labelled[version] = cursor.fetchall()
    out: dict[str, Any] = {}
    for version, n in counts.items():
        entry: dict[str, Any] = {"n_captured": int(n), "n_labelled": len(labelled[version])}
        if labelled[version]:
            rows = np.array(labelled[version], dtype=np.float64)  # a missing probability: NaN
            scores = rows[:, 2]
            entry.update(
                compute_metrics(
                    rows[:, 0].astype(int),
                    rows[:, 1].astype(int),
                    None if np.isnan(scores).any() else scores,
                )
            )
        out[str(version)] = entry
    return out


def labelled_count(store: Store) -> int:
    """Number of labelled captured rows (a cheap cache key for views)."""
    query = select(func.count()).where(captured_predictions.c.label.is_not(None))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
