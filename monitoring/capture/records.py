"""Recording predictions: one captured row per predicted input row.

Each row gets an integer *row id*; the ``/prediction`` response carries the request
id and the row ids, which ``POST /feedback`` labels later. With a SQLite store a
request only appends its rows to its process's journal; other databases get one
INSERT. Rows older than ``capture.retention_days`` are purged off the request path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select

from monitoring.capture.journal import (
    WriterClosed,
    import_journals,
    retention_cutoff,
    row_json,
    writer_for,
)
from monitoring.config import Settings
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store, utcnow

PURGE_EVERY_CAPTURES = 50  # other databases: purge once per this many captures, on average


def should_capture(settings: Settings) -> bool:
    """Whether to capture this request under ``capture.enabled``/``sample_rate``."""
    return settings.capture.enabled and random.random() < settings.capture.sample_rate


def _inputs(frame: pd.DataFrame) -> tuple[list[str] | None, list[Any]]:
    """The captured inputs compactly: (columns, value rows), or (None, JSON objects).

    Finite floats (the common case) stay a matrix, serialised with one ``json.dumps``;
    anything else becomes a JSON object per row through ``to_json`` (NaN as null).
    """
    values = frame.to_numpy()  # float64 when every column is a number and one a float
    if len(frame.columns) and values.dtype == np.float64 and np.isfinite(values).all():
        return [str(c) for c in frame.columns], values.tolist()
    text = frame.to_json(orient="records", date_format="iso", lines=True)
    return None, text.splitlines()


def record(
    store: Store,
    settings: Settings,
    *,
    request_id: str,
    model_version: str,
    frame: pd.DataFrame,
    result: Mapping[str, Any],
) -> list[int]:
    """Capture one row per row of ``frame``; return their row ids in order.

    ``result`` is the model's output, with ``predictions`` and ``probabilities``.
    """
    now = utcnow()
    predictions = [int(p) for p in result["predictions"]]
    probabilities = result.get("probabilities") or [None] * len(predictions)
    columns, inputs = _inputs(frame)
    if store.engine.dialect.name == "sqlite":
        while True:
            writer = writer_for(store)
            writer.retention_days = float(settings.capture.retention_days)
            try:
                return writer.insert(
                    [request_id, now, model_version, columns, inputs, predictions, probabilities]
                )
            except WriterClosed:
                continue
    rows = [
        {
            "request_id": request_id,
            "row_index": i,
            "captured_at": now,
            "model_version": model_version,
            "inputs": row_inputs,
            "prediction": pred,
            "probability": prob,
        }
        for i, (row_inputs, pred, prob) in enumerate(
            zip(row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]
    table = captured_predictions
    query = insert(table).returning(table.c.id, sort_by_parameter_order=True)  # in row order
    with store.engine.begin() as conn:
        ids = [int(r[0]) for r in conn.execute(query, rows)]
    if random.random() < 1.0 / PURGE_EVERY_CAPTURES:
        purge(store, settings)
    return ids


def purge(store: Store, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete captured rows older than ``capture.retention_days``; return how many."""
    import_journals(store)
    cutoff = retention_cutoff(now or datetime.now(UTC), settings.capture.retention_days)
    query = delete(captured_predictions).where(captured_predictions.c.captured_at < cutoff)
    with store.engine.begin() as conn:
        return int(conn.execute(query).rowcount or 0)


def captured(store: Store, *, request_id: str) -> list[dict[str, Any]]:
    """Captured rows of one request, in row order (inputs decoded)."""
    import_journals(store)
    table = captured_predictions
    query = select(table).where(table.c.request_id == request_id).order_by(table.c.row_index)
    with store.engine.connect() as conn:
        return [{**row._mapping, "inputs": json.loads(row.inputs)} for row in conn.execute(query)]
