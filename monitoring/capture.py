"""Prediction capture and delayed ground-truth labels.

Every ``POST /prediction`` request (or a sampled share of them,
``capture.sample_rate``) is recorded in the record store table
``captured_predictions``: one row per predicted input row with the request id,
the time, the model version, the row's inputs and the model's output. Each row
gets an integer *row id*; the response carries the request id (``X-Request-ID``
header and ``request_id`` field) and the row ids (``row_ids``).

Labels arrive later through ``POST /feedback``, by request id (a list of labels,
one per row of that request, in order) or by row id. Labelled rows give the
*live performance* of each model version on real traffic
(:func:`live_performance`), shown by ``/scoring``, the dashboard, and used by the
pipeline as model-drift evidence.

Rows older than ``capture.retention_days`` are deleted by the capture writer's
background thread, once a minute while captures come in (off the request path).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select, update

from monitoring.config import Settings
from monitoring.exceptions import DataValidationError, MonitoringError
from monitoring.store import Store, captured_predictions, utcnow

PURGE_EVERY_CAPTURES = 50  # other databases: purge once per this many captures, on average


class UnknownIdsError(MonitoringError):
    """Feedback names request ids or row ids that were never captured."""

    status_code = 404


def should_capture(settings: Settings) -> bool:
    """Whether to capture this request under ``capture.enabled``/``sample_rate``."""
    conf = settings.capture
    if not conf["enabled"]:
        return False
    rate = float(conf["sample_rate"])
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)


def _row_json(frame: pd.DataFrame) -> list[str]:
    """One compact JSON object per row (the captured inputs)."""
    if len(frame.columns) and all(d == np.float64 for d in frame.dtypes):
        values = frame.to_numpy()
        if np.isfinite(values).all():  # the common case: validated numeric features
            columns = [str(c) for c in frame.columns]
            return [
                json.dumps(dict(zip(columns, row, strict=True)), separators=(",", ":"))
                for row in values.tolist()
            ]
    # Anything else: to_json handles mixed types, NaN (-> null) and timestamps.
    text = frame.to_json(orient="records", date_format="iso", lines=True)
    return text.splitlines()


def record(
    store: Store,
    settings: Settings,
    *,
    request_id: str,
    model_version: str,
    frame: pd.DataFrame,
    result: Mapping[str, Any],
) -> list[int]:
    """Insert one captured row per predicted row; return their row ids in order.

    Parameters
    ----------
    store : Store
    settings : Settings
    request_id : str
    model_version : str
    frame : pandas.DataFrame
        The request's rows, as parsed.
    result : mapping
        The model's output with ``predictions`` and ``probabilities``.
    """
    now = utcnow()
    predictions = result["predictions"]
    probabilities = result.get("probabilities") or [None] * len(predictions)
    rows = [
        {
            "request_id": request_id,
            "row_index": i,
            "captured_at": now,
            "model_version": model_version,
            "inputs": inputs,
            "prediction": int(pred),
            "probability": prob,
        }
        for i, (inputs, pred, prob) in enumerate(
            zip(_row_json(frame), predictions, probabilities, strict=True)
        )
    ]
    if store.engine.dialect.name == "sqlite":
        while True:
            writer = _sqlite_writer(store)
            writer.retention_days = float(settings.capture["retention_days"])
            try:
                ids = writer.insert(rows)
                break
            except _WriterClosed:
                continue
    else:
        table = captured_predictions
        # One statement with RETURNING, ids in row order.
        query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        with store.engine.begin() as conn:
            ids = [int(r[0]) for r in conn.execute(query, rows)]
        if random.random() < 1.0 / PURGE_EVERY_CAPTURES:
            purge(store, settings)
    return ids


_COLUMNS = (
    "request_id",
    "row_index",
    "captured_at",
    "model_version",
    "inputs",
    "prediction",
    "probability",
)
_CHUNK = 1000  # rows per statement: 7 000 parameters, under SQLite's 32 766
CHECKPOINT_EVERY = 0.25  # seconds between background WAL checkpoints while capturing
PURGE_EVERY = 60.0  # seconds between background retention purges while capturing
IDLE_STOP = 30.0  # the background thread stops after this long without a capture


class _SqliteCaptureWriter:
    """The capture writer of one process for one SQLite database.

    It owns a connection with automatic WAL checkpoints turned off, so a request
    never pays for copying the WAL into the database (and its ``fsync``); a
    background thread checkpoints every :data:`CHECKPOINT_EVERY` seconds and
    deletes expired rows every :data:`PURGE_EVERY` seconds while captures come
    in, and stops after :data:`IDLE_STOP` idle seconds.

    Writers of all processes are serialised with an ``flock`` (a waiting worker
    is woken the moment the lock is free, instead of SQLite's busy handler
    sleeping 1, 2, 5, 10 ... ms between retries), threads of one process with a
    mutex. Each insert is committed before the response, so nothing is lost.
    """

    def __init__(self, store: Store, database: str) -> None:
        store.engine  # noqa: B018 - creates the tables and sets WAL mode
        self.database = database
        self.retention_days: float | None = None
        self.mutex = threading.Lock()
        self.lock_fd = os.open(f"{database}.capture-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.connection = _connect(database)
        self.connection.execute("PRAGMA wal_autocheckpoint=0")
        self.last_write = 0.0
        self.thread: threading.Thread | None = None
        self.closed = False

    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows in one transaction; return their ids in row order."""
        ids: list[int] = []
        with self.mutex:
            if self.closed:
                raise _WriterClosed
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                cursor = self.connection.cursor()
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    sql = (
                        f"INSERT INTO captured_predictions ({', '.join(_COLUMNS)}) VALUES "
                        + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                        + " RETURNING id"
                    )
                    cursor.execute(sql, [row[c] for row in chunk for c in _COLUMNS])
                    # RETURNING order is unspecified in SQLite, but one statement under
                    # the writer lock gets consecutive rowids in VALUES order: sort them.
                    ids.extend(sorted(int(r[0]) for r in cursor.fetchall()))
                self.connection.commit()
            except BaseException:
                self.connection.rollback()
                raise
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            self.last_write = time.monotonic()
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._background, name="capture-checkpoint", daemon=True
                )
                self.thread.start()
        return ids

    def _background(self) -> None:
        connection = _connect(self.database)
        last_purge = 0.0
        try:
            while True:
                time.sleep(CHECKPOINT_EVERY)
                with _writers_lock, self.mutex:
                    if time.monotonic() - self.last_write > IDLE_STOP:
                        self._close()
                        return
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                now = time.monotonic()
                if self.retention_days is not None and now - last_purge > PURGE_EVERY:
                    last_purge = now
                    self._purge(connection, _cutoff(datetime.now(UTC), self.retention_days))
        except sqlite3.Error:  # the database went away (tests, a moved file): stop
            with _writers_lock, self.mutex:
                self._close()
        finally:
            connection.close()

    def _close(self) -> None:
        """Forget this writer and free its connection (holding both locks)."""
        self.closed = True
        self.thread = None
        if _writers.get((os.getpid(), self.database)) is self:
            del _writers[(os.getpid(), self.database)]
        self.connection.close()
        os.close(self.lock_fd)

    def _purge(self, connection: sqlite3.Connection, cutoff: str) -> None:
        """Delete rows captured before ``cutoff``, holding the writer lock like an insert."""
        with self.mutex:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                connection.execute(
                    "DELETE FROM captured_predictions WHERE captured_at < ?", (cutoff,)
                )
                connection.commit()
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


class _WriterClosed(Exception):
    """The writer stopped while idle; take a new one."""


def _connect(database: str) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=10.0, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


_writers: dict[tuple[int, str], _SqliteCaptureWriter] = {}
_writers_lock = threading.Lock()


def _sqlite_writer(store: Store) -> _SqliteCaptureWriter:
    """The process's capture writer for the store's database."""
    database = store.engine.url.database or ""
    if not database or database == ":memory:":
        raise MonitoringError("prediction capture needs a file database")
    key = (os.getpid(), database)
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = _SqliteCaptureWriter(store, database)
        return writer


def _cutoff(now: datetime, retention_days: float) -> str:
    return (now - timedelta(days=float(retention_days))).isoformat(timespec="microseconds")


def purge(store: Store, settings: Settings, *, now: datetime | None = None) -> int:
    """Delete captured rows older than ``capture.retention_days``; return how many."""
    cutoff = _cutoff(now or datetime.now(UTC), settings.capture["retention_days"])
    with store.engine.begin() as conn:
        result = conn.execute(
            delete(captured_predictions).where(captured_predictions.c.captured_at < cutoff)
        )
    return int(result.rowcount or 0)


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise DataValidationError(f"{where}: a label must be 0 or 1, got {value!r}")
    return int(value)


def parse_feedback(body: Any) -> tuple[dict[str, list[int]], dict[int, int]]:
    """Validate a feedback body.

    Accepted shapes: one item or ``{"feedback": [items]}`` (or a bare list of
    items), where an item is ``{"request_id": str, "labels": [0/1, ...]}`` or
    ``{"row_id": int, "label": 0/1}``.

    Returns
    -------
    tuple
        Labels by request id, and label by row id.

    Raises
    ------
    DataValidationError
        If the body has another shape or a label is not 0/1.
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


def apply_feedback(store: Store, body: Any) -> dict[str, Any]:
    """Store ground-truth labels for captured rows (all or nothing).

    Raises
    ------
    UnknownIdsError
        (404) naming every request id and row id that was not captured (never
        seen, sampled out, or deleted by retention); nothing is stored.
    DataValidationError
        (422) if a request's label count differs from its captured row count.
    """
    by_request, by_row = parse_feedback(body)
    table = captured_predictions
    with store.engine.begin() as conn:
        request_rows: dict[str, list[int]] = {}
        if by_request:
            query = (
                select(table.c.request_id, table.c.id)
                .where(table.c.request_id.in_(list(by_request)))
                .order_by(table.c.request_id, table.c.row_index)
            )
            for rid, row_id in conn.execute(query):
                request_rows.setdefault(rid, []).append(int(row_id))
        known_rows: set[int] = set()
        if by_row:
            query = select(table.c.id).where(table.c.id.in_(list(by_row)))
            known_rows = {int(r[0]) for r in conn.execute(query)}
        unknown_requests = [r for r in by_request if r not in request_rows]
        unknown_rows = sorted(r for r in by_row if r not in known_rows)
        if unknown_requests or unknown_rows:
            parts = []
            if unknown_requests:
                parts.append(f"unknown request ids: {unknown_requests}")
            if unknown_rows:
                parts.append(f"unknown row ids: {unknown_rows}")
            raise UnknownIdsError(
                "; ".join(parts) + " (never captured, sampled out or expired); no labels stored"
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
    """Metrics of each model version on its labelled captured rows.

    Returns
    -------
    dict
        Model version to ``{"n_captured", "n_labelled", **metrics}`` where the
        metrics (from :func:`monitoring.scoring.compute_metrics`) are present only
        when at least one row is labelled.
    """
    from monitoring.scoring import compute_metrics

    table = captured_predictions
    with store.engine.connect() as conn:
        counts: dict[Any, int] = dict(
            conn.execute(
                select(table.c.model_version, func.count()).group_by(table.c.model_version)
            ).all()
        )
        labelled = conn.execute(
            select(table.c.model_version, table.c.label, table.c.prediction, table.c.probability)
            .where(table.c.label.is_not(None))
            .order_by(table.c.id)
        ).all()
    out: dict[str, Any] = {}
    for version, n in counts.items():
        rows = [r for r in labelled if r[0] == version]
        entry: dict[str, Any] = {"n_captured": int(n), "n_labelled": len(rows)}
        if rows:
            y_true = np.array([r[1] for r in rows])
            y_pred = np.array([r[2] for r in rows])
            probs = [r[3] for r in rows]
            y_score = None if any(p is None for p in probs) else np.array(probs, dtype=float)
            entry.update(compute_metrics(y_true, y_pred, y_score))
        out[str(version)] = entry
    return out


def captured(store: Store, *, request_id: str) -> list[dict[str, Any]]:
    """Captured rows of one request, in row order (inputs decoded)."""
    table = captured_predictions
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.request_id == request_id).order_by(table.c.row_index)
        ).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["inputs"] = json.loads(item["inputs"])
        out.append(item)
    return out


def labelled_count(store: Store) -> int:
    """Number of labelled captured rows (a cheap cache key for views)."""
    table = captured_predictions
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(table).where(table.c.label.is_not(None))
            ).scalar_one()
        )


def live_model_drift(settings: Settings, store: Store, champion: Any) -> dict[str, Any]:
    """Model-drift check of the deployed model on its labelled captured traffic.

    The baseline is the model's F1 on its training data (as for the ingested-data
    check), the new value its F1 on labelled live rows, with
    ``thresholds.model_drift_tolerance``. It is a check (``checked`` true, with a
    ``drift`` verdict) only with at least ``capture.min_labelled_rows`` labelled
    rows; otherwise it is reported as evidence only.
    """
    from monitoring.drift import tolerance_drift

    perf = live_performance(store).get(champion.version) or {"n_captured": 0, "n_labelled": 0}
    needed = int(settings.capture["min_labelled_rows"])
    out: dict[str, Any] = {"metric": "f1", "min_labelled_rows": needed, "live": perf}
    baseline = (champion.metadata.get("training_score") or {}).get("f1")
    if perf["n_labelled"] < needed or baseline is None or perf.get("f1") is None:
        out.update(
            checked=False,
            drift=False,
            reason=f"{perf['n_labelled']} labelled live rows; at least {needed} needed",
        )
        return out
    verdict = tolerance_drift(
        float(baseline), float(perf["f1"]), tolerance=settings.thresholds["model_drift_tolerance"]
    )
    out.update(verdict, checked=True, baseline_dataset="training data")
    return out
