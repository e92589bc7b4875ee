"""Recording predictions: one captured row per predicted input row.

Each row gets an integer *row id*; the ``/prediction`` response carries the request
id and the row ids, which ``POST /feedback`` labels later. Whatever the store, a
request only appends its rows to its process's journal
(:mod:`~monitoring.capture.writer`); the importer moves them into the store and purges
rows older than ``capture.retention_days``, off the request path. Capture never fails
a prediction: a request whose rows cannot be journalled is logged and counted in
``monitoring_capture_dropped_total``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from monitoring.capture import ledger
from monitoring.capture.importer import import_journals, retention_cutoff
from monitoring.capture.writer import DROPPED, WriterClosed, drop_reason, writer_for
from monitoring.config import Settings
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store, utcnow

log = logging.getLogger("monitoring.capture")


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
) -> list[int] | None:
    """Capture one row per row of ``frame``; return their row ids in order.

    ``result`` is the model's output, with ``predictions`` and ``probabilities``.
    Returns None when the rows were journalled without ids (the store could not give
    any; the importer gives them ids) or could not be journalled at all (logged and
    counted): never raises.
    """
    try:
        predictions = [int(p) for p in result["predictions"]]
        probabilities = result.get("probabilities") or [None] * len(predictions)
        columns, inputs = _inputs(frame)
        request = [request_id, utcnow(), model_version, columns, inputs, predictions, probabilities]
        for _ in range(3):
            try:
                return writer_for(store, settings).insert(request)
            except WriterClosed:  # it stopped meanwhile: the next call makes a new one
                continue
        raise WriterClosed("every capture writer stopped before it could journal the rows")
    except Exception as exc:  # noqa: BLE001 - a capture must never fail the prediction
        reason = drop_reason(exc)  # disk_full, journal (another OSError) or error
        DROPPED.labels(reason).inc()  # its series appears with the first drop
        log.error(
            "capture of request %s dropped (%s): %s",
            request_id,
            reason,
            exc,
            exc_info=None if isinstance(exc, OSError) else exc,
        )
        return None


def purge(store: Store, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete captured rows older than ``capture.retention_days``; return how many."""
    import_journals(store, settings)
    cutoff = retention_cutoff(now or datetime.now(UTC), settings.capture.retention_days)
    return ledger.purge_expired(store, cutoff)


def captured(store: Store, settings: Settings, *, request_id: str) -> list[dict[str, Any]]:
    """Captured rows of one request, in row order (inputs decoded), journals imported first."""
    import_journals(store, settings)
    table = captured_predictions
    query = select(table).where(table.c.request_id == request_id).order_by(table.c.row_index)
    with store.engine.connect() as conn:
        return [{**row._mapping, "inputs": json.loads(row.inputs)} for row in conn.execute(query)]
