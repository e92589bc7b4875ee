"""Recording predictions: one captured row per predicted input row.

Each row gets an integer *row id*; the ``/prediction`` response carries the request
id and the row ids, which ``POST /feedback`` labels later. Whatever the store, a
request only appends its rows to its process's journal
(:mod:`~monitoring.capture.writer`); the importer moves them into the store and purges
rows older than ``capture.retention_days``, off the request path. Capture never fails
a prediction: a request whose rows cannot be journalled is logged and counted in
``monitoring_capture_dropped_total``.

What a row captures is bounded whatever the client sends: a text value longer than
:data:`MAX_TEXT_CHARS` (a 15 MB id cell) keeps only its start and a marker with its
length, and a row whose inputs still exceed ``capture.max_row_bytes`` as JSON (very
many or very long column names) is stored with :func:`omitted` in their place; its
prediction, probability and row id stay, so it can still be labelled. Both are
counted in ``monitoring_capture_truncated_total{part="value"|"row"}``. The request id
is at most 128 characters (:mod:`monitoring.web.logs` replaces a longer
``X-Request-ID``), the outputs are numbers. The store's total is bounded by
``capture.max_bytes`` (:func:`~monitoring.capture.ledger.evict_over_budget`).
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter
from sqlalchemy import select

from monitoring.capture import ledger
from monitoring.capture.importer import import_journals, retention_cutoff
from monitoring.capture.journal import (
    capturable,
    encode_batch,
    frame_batch,
    inputs_json,
    row_json,
    table_struct,
)
from monitoring.capture.writer import (
    DROPPED,
    CaptureWriter,
    WriterClosed,
    drop_reason,
    writer_for,
)
from monitoring.config import Settings
from monitoring.data.payloads import Batch
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store, utcnow

log = logging.getLogger("monitoring.capture")
TRUNCATED = Counter(
    "monitoring_capture_truncated",
    "Captured input values cut to their first characters (part=value) and rows stored "
    "with a marker in place of their inputs (part=row), for capture size bounds.",
    ["part"],
)
MAX_TEXT_CHARS = 256  # a longer text value is captured as its start and a marker
# A batch of up to this many rows is journalled as a JSON line (its rows as JSON objects,
# made from the Arrow table), a larger one as an Arrow record: decoding an Arrow record
# costs the importer about 0.5 ms whatever its size, a JSON row about 20 us
# (benchmarks/bench_capture.py measures the crossing).
ARROW_MIN_ROWS = 64
_KEPT_CHARS = 64  # how much of such a value is kept
_FLOAT_CHARS = 24  # the longest repr of a float64 ('-2.2250738585072014e-308')


@functools.lru_cache(maxsize=16)
def _longest_row(columns: tuple[str, ...]) -> int:
    """Bytes of the longest JSON object of finite floats in ``columns``."""
    return sum(len(json.dumps(c)) + 2 + _FLOAT_CHARS for c in columns) + 2


def omitted(size: int, limit: int) -> str:
    """The captured inputs of a row whose inputs were ``size`` bytes of JSON, over ``limit``."""
    return json.dumps({"_omitted": {"bytes": size, "max_row_bytes": limit}})


def _cut(value: str) -> str:
    return f"{value[:_KEPT_CHARS]}...[truncated: {len(value)} characters]"


def _cap_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text value longer than :data:`MAX_TEXT_CHARS` cut (a copy if any)."""
    cut: dict[Any, pd.Series] = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "biufcmM":  # numbers and times are short
            continue
        if isinstance(column.dtype, pd.StringDtype):  # vectorised (a text column of a CSV)
            long = column.str.len().gt(MAX_TEXT_CHARS).fillna(False).astype(bool)
        else:  # anything in an object column: only text is cut
            long = column.map(lambda v: isinstance(v, str) and len(v) > MAX_TEXT_CHARS)
            long = long.astype(bool)
        if long.any():
            text = column.astype(object)  # a categorical column takes no new values
            cut[name] = text.where(~long, text[long].map(_cut))
            TRUNCATED.labels("value").inc(int(long.sum()))
    if not cut:
        return frame
    frame = frame.copy()
    for name, column in cut.items():
        frame[name] = column
    return frame


def _bounded(lines: list[str], limit: int) -> list[str]:
    """``lines`` (one JSON object per row) with each longer than ``limit`` bytes replaced
    by the :func:`omitted` marker (JSON here is ASCII: a character is a byte)."""
    over = [i for i, line in enumerate(lines) if len(line) > limit]
    if not over:
        return lines
    TRUNCATED.labels("row").inc(len(over))
    lines = list(lines)
    for i in over:
        lines[i] = omitted(len(lines[i]), limit)
    return lines


def should_capture(settings: Settings) -> bool:
    """Whether to capture this request under ``capture.enabled``/``sample_rate``."""
    return settings.capture.enabled and random.random() < settings.capture.sample_rate


def _inputs(frame: pd.DataFrame, max_row_bytes: int) -> tuple[list[str] | None, list[Any]]:
    """The captured inputs compactly: (columns, value rows), or (None, JSON objects).

    Finite floats (the common case) stay a matrix, serialised with one ``json.dumps``,
    when no row can exceed ``max_row_bytes``; anything else becomes a JSON object per
    row (``to_json``, NaN as null; text values cut), each within ``max_row_bytes``.
    """
    values = frame.to_numpy()  # float64 when every column is a number and one a float
    if len(frame.columns) and values.dtype == np.float64 and np.isfinite(values).all():
        columns = [str(c) for c in frame.columns]
        if _longest_row(tuple(columns)) <= max_row_bytes:
            return columns, values.tolist()
        return None, _bounded(row_json(columns, values.tolist()), max_row_bytes)
    text = _cap_text(frame).to_json(orient="records", date_format="iso", lines=True)
    return None, _bounded(text.splitlines(), max_row_bytes)


def _arrow_inputs(table: pa.Table, max_row_bytes: int) -> pa.Table | None:
    """``table`` with its long text values cut, to journal as an Arrow record; None when
    a column is of another kind or a row might exceed ``max_row_bytes`` as JSON (the
    DataFrame path then bounds each row exactly).

    A row's JSON is at most its names' part plus 24 characters per number, 5 per
    boolean and 6 per byte of text (a ``\\uXXXX`` escape) plus quotes.
    """
    names = table.column_names
    if len(set(names)) != len(names) or not all(capturable(c.type) for c in table.columns):
        return None
    longest = _names_bytes(tuple(names))
    text_bytes = np.zeros(table.num_rows, dtype=np.int64)
    cut: dict[int, pa.Array] = {}
    for i, column in enumerate(table.columns):
        kind = column.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            longest += _FLOAT_CHARS
            continue
        size = pc.binary_length(column).to_numpy(zero_copy_only=False)  # NaN: null
        # A value has at most as many characters as bytes: count characters only when
        # some value has more bytes than a value may have characters.
        if np.nan_to_num(size, nan=0).max(initial=0) > MAX_TEXT_CHARS and (
            (pc.max(pc.utf8_length(column)).as_py() or 0) > MAX_TEXT_CHARS
        ):
            values = column.to_pylist()
            long = [j for j, v in enumerate(values) if v is not None and len(v) > MAX_TEXT_CHARS]
            for j in long:
                values[j] = _cut(values[j])
            TRUNCATED.labels("value").inc(len(long))
            column = pa.array(values, type=pa.large_string())
            cut[i] = column
            size = pc.binary_length(column).to_numpy(zero_copy_only=False)
        text_bytes += np.nan_to_num(size, nan=1).astype(np.int64) * 6 + 2  # null: 4
    if table.num_rows and longest + int(text_bytes.max()) > max_row_bytes:
        return None
    for i, column in cut.items():
        table = table.set_column(i, names[i], column)
    return table


@functools.lru_cache(maxsize=16)
def _names_bytes(columns: tuple[str, ...]) -> int:
    """Bytes of a JSON object's braces, keys, colons and commas for ``columns``."""
    return sum(len(json.dumps(c)) + 2 for c in columns) + 2


def record(
    store: Store,
    settings: Settings,
    *,
    request_id: str,
    model_version: str,
    rows: Batch | pd.DataFrame,
    result: Mapping[str, Any],
) -> list[int] | None:
    """Capture one row per row of ``rows``; return their row ids in order.

    ``result`` is the model's output, with ``predictions`` and ``probabilities``. The
    Arrow table of a :class:`~monitoring.data.payloads.Batch` (:func:`_arrow_inputs`)
    is journalled as one columnar record from ``ARROW_MIN_ROWS`` rows, below that as a
    JSON line made from it; anything else as a JSON line made from the DataFrame.
    Returns None when the rows were journalled without ids (the store could not give
    any; the importer gives them ids) or could not be journalled at all (logged and
    counted): never raises.
    """
    try:
        predictions = result["predictions"]
        probabilities = result.get("probabilities") or [None] * len(predictions)
        max_row_bytes = settings.capture.max_row_bytes
        table = rows.table if isinstance(rows, Batch) else None
        inputs = None if table is None else _arrow_inputs(table, max_row_bytes)
        insert: Callable[[CaptureWriter], list[int] | None]
        if inputs is not None and inputs.num_rows >= ARROW_MIN_ROWS:
            arrays = rows.outputs if isinstance(rows, Batch) else None
            if arrays is not None:  # the same values as the answer's lists
                predictions, probabilities = arrays
            payload = encode_batch(
                request_id, utcnow(), model_version, inputs, predictions, probabilities
            )
            count = len(predictions)
            insert = lambda writer: (  # noqa: E731
                writer.insert_encoded(count, lambda first: frame_batch(first, payload))
            )
        else:
            if inputs is not None:  # a small batch: JSON objects from the Arrow table
                columns, values = None, inputs_json(table_struct(inputs))
            else:
                frame = rows.frame() if isinstance(rows, Batch) else rows
                columns, values = _inputs(frame, max_row_bytes)
            request = [
                request_id,
                utcnow(),
                model_version,
                columns,
                values,
                [int(p) for p in predictions],
                probabilities,
            ]
            insert = lambda writer: writer.insert(request)  # noqa: E731
        for _ in range(3):
            try:
                return insert(writer_for(store, settings))
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
    """Delete captured rows older than ``capture.retention_days``, then the oldest past
    ``capture.max_bytes``; return how many."""
    import_journals(store, settings)
    cutoff = retention_cutoff(now or datetime.now(UTC), settings.capture.retention_days)
    expired = ledger.purge_expired(store, cutoff)
    return expired + ledger.enforce_budget(store, settings.capture.max_bytes)


def captured(store: Store, settings: Settings, *, request_id: str) -> list[dict[str, Any]]:
    """Captured rows of one request, in row order (inputs decoded), journals imported first."""
    import_journals(store, settings)
    table = captured_predictions
    query = select(table).where(table.c.request_id == request_id).order_by(table.c.row_index)
    with store.engine.connect() as conn:
        return [{**row._mapping, "inputs": json.loads(row.inputs)} for row in conn.execute(query)]
