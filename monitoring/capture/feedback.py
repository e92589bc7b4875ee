"""Ground-truth labels for captured predictions, and the live performance they give.

Labels arrive through ``POST /feedback``, by request id (one label per row of that
request, in order; the id the ``/prediction`` response made for it) or by row id.
Every label given is recorded in ``label_events`` (an audit trail: the label, the
one it replaced, when and from whom); ``captured_predictions.label`` holds the latest,
which live performance uses. A row keeps its newest :data:`MAX_LABEL_EVENTS` events,
and its events go with it when it expires or is evicted.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from monitoring.capture.importer import import_journals
from monitoring.config import Settings
from monitoring.exceptions import DataValidationError, UnknownIdsError
from monitoring.model.scoring import compute_metrics
from monitoring.storage.schema import captured_predictions, label_events
from monitoring.storage.store import Store, utcnow

MAX_ROW_ID = 2**63 - 1  # the largest row id a store can hold
MAX_LABEL_EVENTS = 16  # a row's newest label events kept (relabelling cannot grow it)
LISTED = 10  # unknown ids named in a 404, at most (the rest counted)
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")  # as an X-Request-ID


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise DataValidationError(f"{where}: a label must be 0 or 1, got {value!r}")
    return int(value)


def parse_feedback(body: Any) -> tuple[dict[str, list[int]], dict[int, int]]:
    """Validate a feedback body; return labels by request id and label by row id.

    Accepted shapes: one item, a list of items or ``{"feedback": [items]}``, where an
    item is ``{"request_id": str, "labels": [0/1, ...]}`` or ``{"row_id": int, "label":
    0/1}``; anything else raises :class:`DataValidationError`. A request id is at most
    128 letters, digits or ``._:-`` (what a response can have given); a row id is from
    1 to :data:`MAX_ROW_ID`.
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
            raise DataValidationError(f"{where}: must be an object, got {_short(item)}")
        if "request_id" in item:
            rid, labels = item["request_id"], item.get("labels")
            if not isinstance(rid, str) or not rid:
                raise DataValidationError(f"{where}: 'request_id' must be a non-empty string")
            if not _REQUEST_ID.fullmatch(rid):
                raise DataValidationError(
                    f"{where}: 'request_id' must be at most 128 letters, digits or '._:-' "
                    "(the request_id of a /prediction response)"
                )
            if not isinstance(labels, list) or not labels:
                raise DataValidationError(
                    f"{where}: 'labels' must be a non-empty list of 0/1, one per row"
                )
            by_request[rid] = [_label(v, where) for v in labels]
        elif "row_id" in item:
            row = item["row_id"]
            if isinstance(row, bool) or not isinstance(row, int):
                raise DataValidationError(
                    f"{where}: 'row_id' must be an integer, got {_short(row)}"
                )
            if not 1 <= row <= MAX_ROW_ID:
                raise DataValidationError(
                    f"{where}: 'row_id' must be between 1 and {MAX_ROW_ID}, got {_short(row)}"
                )
            by_row[row] = _label(item.get("label"), where)
        else:
            raise DataValidationError(
                f"{where}: give either 'request_id' with 'labels' or 'row_id' with 'label'"
            )
    return by_request, by_row


def _chunks(values: list[Any], size: int = 10_000) -> list[list[Any]]:
    """``values`` in lists of at most ``size`` (a statement's parameters are limited)."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def _short(value: Any, limit: int = 64) -> str:
    """``repr(value)`` cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _listed(ids: Sequence[Any]) -> str:
    """The first :data:`LISTED` of ``ids`` for a message, and how many more there are."""
    shown = "[" + ", ".join(_short(i) for i in ids[:LISTED]) + "]"
    return shown if len(ids) <= LISTED else f"{shown} and {len(ids) - LISTED} more"


def apply_feedback(
    store: Store, settings: Settings, body: Any, *, source: str = "anonymous"
) -> dict[str, Any]:
    """Store ground-truth labels for captured rows (all or nothing), journals imported first.

    Each label given adds a ``label_events`` row naming ``source`` (who sent it) and the
    label it replaced. Returns the counts: ``labelled_rows`` and ``relabelled`` (rows
    that had a label already). Raises :class:`UnknownIdsError` naming (the first
    :data:`LISTED` of) the given request ids and row ids that are not captured, and
    nothing else; :class:`DataValidationError` if a request's label count is not its
    row count.
    """
    by_request, by_row = parse_feedback(body)
    import_journals(store, settings)
    table = captured_predictions
    with store.engine.begin() as conn:
        request_rows: dict[str, list[int]] = {}
        for chunk in _chunks(list(by_request)):
            query = (
                select(table.c.request_id, table.c.id)
                .where(table.c.request_id.in_(chunk))
                .order_by(table.c.request_id, table.c.row_index)
            )
            for rid, row_id in conn.execute(query):
                request_rows.setdefault(rid, []).append(int(row_id))
        known_rows: set[int] = set()
        for chunk in _chunks(list(by_row)):
            query = select(table.c.id).where(table.c.id.in_(chunk))
            known_rows.update(int(r[0]) for r in conn.execute(query))
        unknown: dict[str, list[Any]] = {
            "request ids": [r for r in by_request if r not in request_rows],
            "row ids": sorted(r for r in by_row if r not in known_rows),
        }
        if any(unknown.values()):
            listed = "; ".join(
                f"unknown {kind}: {_listed(ids)}" for kind, ids in unknown.items() if ids
            )
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
        relabelled = _record_labels(conn, updates, source)
    return {
        "labelled_rows": len(updates),
        "relabelled": relabelled,
        "request_ids": list(by_request),
        "row_ids": sorted(by_row),
    }


def _record_labels(conn: Connection, updates: dict[int, int], source: str) -> int:
    """Set the labels ``updates`` (row id: label), add their events; return how many rows
    had a label before. Each row keeps its newest :data:`MAX_LABEL_EVENTS` events."""
    table = captured_predictions
    ids = list(updates)
    previous: dict[int, int | None] = {}
    for chunk in _chunks(ids):
        query = select(table.c.id, table.c.label).where(table.c.id.in_(chunk))
        previous.update((int(i), label) for i, label in conn.execute(query))
    now = utcnow()
    for label in (0, 1):
        for chunk in _chunks([i for i, v in updates.items() if v == label]):
            conn.execute(
                update(table).where(table.c.id.in_(chunk)).values(label=label, labelled_at=now)
            )
    events = [
        {
            "row_id": i,
            "label": v,
            "previous_label": previous.get(i),
            "labelled_at": now,
            "source": source,
        }
        for i, v in updates.items()
    ]
    conn.execute(insert(label_events), events)
    relabelled = [i for i in ids if previous.get(i) is not None]
    events_of = label_events.c.row_id
    for chunk in _chunks(relabelled):  # only these can have more events than kept
        while True:  # the oldest event of each row over the limit, until none is
            oldest = (
                select(func.min(label_events.c.id))
                .where(events_of.in_(chunk))
                .group_by(events_of)
                .having(func.count() > MAX_LABEL_EVENTS)
            )
            if not conn.execute(delete(label_events).where(label_events.c.id.in_(oldest))).rowcount:
                break
    return len(relabelled)


def label_history(store: Store, settings: Settings, row_id: int) -> dict[str, Any] | None:
    """A captured row's label and its label events, oldest first (None: neither exists),
    journals imported first."""
    import_journals(store, settings)
    table = captured_predictions
    query = select(
        label_events.c.label,
        label_events.c.previous_label,
        label_events.c.labelled_at,
        label_events.c.source,
    ).where(label_events.c.row_id == row_id)
    with store.engine.connect() as conn:
        current = conn.execute(select(table.c.label).where(table.c.id == row_id)).first()
        events = [dict(row._mapping) for row in conn.execute(query.order_by(label_events.c.id))]
    if current is None and not events:
        return None
    return {
        "row_id": row_id,
        "captured": current is not None,
        "label": None if current is None else current[0],
        "events": events,
    }


_FETCH_ROWS = 4096  # labelled rows read and converted at a time


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
        labelled: dict[Any, np.ndarray] = {}
        with contextlib.closing(conn.connection.cursor()) as cursor:
            for version in counts:
                query = select(table.c.label, table.c.prediction, table.c.probability).where(
                    table.c.label.is_not(None),
                    version_column.is_(None) if version is None else version_column == version,
                )  # no ORDER BY: a range of the partial index on labelled rows answers it
                sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                cursor.execute(str(sql))
                # In batches, each turned into numbers at once: this often runs on a
                # worker's background thread, and one conversion of every row would
                # hold the GIL from the requests for tens of milliseconds.
                parts = [np.zeros((0, 3))]
                while batch := cursor.fetchmany(_FETCH_ROWS):
                    parts.append(np.array(batch, dtype=np.float64))  # None: NaN
                    time.sleep(0)  # let a waiting request thread run
                labelled[version] = np.concatenate(parts)

    out: dict[str, Any] = {}
    for version, n in counts.items():
        entry: dict[str, Any] = {"n_captured": int(n), "n_labelled": len(labelled[version])}
        if len(labelled[version]):
            rows = labelled[version]  # a missing probability: NaN
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
