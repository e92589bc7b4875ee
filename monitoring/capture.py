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

With a SQLite store a request only appends its rows to a journal file; an
importer moves them into the table within a fraction of a second (see
:class:`_SqliteCaptureWriter`). Rows older than ``capture.retention_days`` are
deleted by the importer once a minute, off the request path.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


def _inputs(frame: pd.DataFrame) -> tuple[list[str] | None, list[Any]]:
    """The captured inputs compactly: (columns, value rows), or (None, JSON objects).

    Validated numeric features (the common case) stay a matrix of numbers, so a
    request is serialised with one ``json.dumps``; anything else becomes one JSON
    object per row through ``to_json`` (mixed types, NaN as null, timestamps).
    """
    values = frame.to_numpy()  # float64 when every column is a number and one a float
    if len(frame.columns) and values.dtype == np.float64 and np.isfinite(values).all():
        return [str(c) for c in frame.columns], values.tolist()
    text = frame.to_json(orient="records", date_format="iso", lines=True)
    return None, text.splitlines()


def _row_json(columns: list[str] | None, rows: list[Any]) -> list[str]:
    """One compact JSON object per row, from :func:`_inputs`.

    Rows of finite floats are formatted with ``repr``, which is what ``json.dumps``
    writes for a float, through a template made once per column list.
    """
    if columns is None:
        return list(rows)
    template = _json_template(tuple(columns))
    return [template % tuple(row) for row in rows]


@functools.lru_cache(maxsize=16)
def _json_template(columns: tuple[str, ...]) -> str:
    body = ",".join(json.dumps(c).replace("%", "%%") + ":%r" for c in columns)
    return "{" + body + "}"


def record(
    store: Store,
    settings: Settings,
    *,
    request_id: str,
    model_version: str,
    frame: pd.DataFrame,
    result: Mapping[str, Any],
) -> list[int]:
    """Capture one row per predicted row; return their row ids in order.

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
    predictions = [int(p) for p in result["predictions"]]
    probabilities = result.get("probabilities") or [None] * len(predictions)
    columns, inputs = _inputs(frame)
    if store.engine.dialect.name == "sqlite":
        while True:
            writer = _sqlite_writer(store)
            writer.retention_days = float(settings.capture["retention_days"])
            try:
                return writer.insert(
                    [request_id, now, model_version, columns, inputs, predictions, probabilities]
                )
            except _WriterClosed:
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
            zip(_row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]
    table = captured_predictions
    # One statement with RETURNING, ids in row order.
    query = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    with store.engine.begin() as conn:
        ids = [int(r[0]) for r in conn.execute(query, rows)]
    if random.random() < 1.0 / PURGE_EVERY_CAPTURES:
        purge(store, settings)
    return ids


def _journal_rows(line: bytes) -> list[tuple[Any, ...]]:
    """The table rows of one journal line (one captured request)."""
    first, request_id, now, version, columns, inputs, predictions, probabilities = json.loads(line)
    return [
        (first + i, request_id, i, now, version, row_inputs, pred, prob)
        for i, (row_inputs, pred, prob) in enumerate(
            zip(_row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]


_COLUMNS = (
    "id",
    "request_id",
    "row_index",
    "captured_at",
    "model_version",
    "inputs",
    "prediction",
    "probability",
)
_INSERT = (
    f"INSERT OR IGNORE INTO captured_predictions ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
ID_BLOCK = 8192  # row ids a process reserves at a time
IMPORT_EVERY = 0.1  # seconds between imports of the journals into the database
ROTATE_BYTES = 1 << 20  # a journal this big is replaced by a fresh one
PURGE_EVERY = 60.0  # seconds between retention purges by the importer
IDLE_STOP = 30.0  # a writer's background thread stops after this long without a capture


class _SqliteCaptureWriter:
    """The capture writer of one process for one SQLite database.

    A request appends its rows, with row ids from a block this process reserved
    (:func:`_reserve_ids`), as one line to the process's *journal* (an append-only file
    in ``<database>.capture-journal/``) and answers: one ``write`` call and no
    lock shared with other workers, so a worker descheduled mid-write never makes
    another wait. The line is in the kernel once ``write`` returns, so it
    survives the process (the guarantee of SQLite's WAL with ``synchronous=NORMAL``).

    *Importing* journals into ``captured_predictions`` is the job of whoever
    holds the importer lock (:func:`run_importer`: the process gunicorn starts
    beside its workers, so no worker spends its time or its GIL on it). Without
    one, the writer's background thread takes the lock for a moment every
    :data:`IMPORT_EVERY` seconds and imports itself. Every line is imported
    exactly once, whoever imports it. Anything that needs every captured row
    (:func:`apply_feedback`, :func:`captured`, :func:`purge`) calls
    :func:`import_journals` first; summaries (:func:`live_performance`) may lag by
    a fraction of a second.

    The background thread also replaces the journal past :data:`ROTATE_BYTES`
    (the old one, unlocked, is imported and removed like the journal of a process
    that died) and stops after :data:`IDLE_STOP` idle seconds.
    """

    def __init__(self, store: Store, database: str) -> None:
        store.engine  # noqa: B018 - creates the tables and sets WAL mode
        self.database = database
        self.folder = journal_folder(database)
        self.folder.mkdir(exist_ok=True)
        self.retention_days: float | None = None
        self.mutex = threading.Lock()
        self.next_id = self.end_id = 0
        self.fd = self._open_journal()
        self.written = 0  # bytes written to the current journal
        self.last_write = 0.0
        self.thread: threading.Thread | None = None
        self.closed = False

    def _open_journal(self) -> int:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # Locked before it gets its .jsonl name, so an importer never takes a new
        # journal for a finished one.
        fd = os.open(self.folder / f".{name}.new", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)  # held while the journal is in use: "owner alive"
        os.rename(self.folder / f".{name}.new", self.folder / f"{name}.jsonl")
        return fd

    def insert(self, request: list[Any]) -> list[int]:
        """Journal one request's rows under fresh, consecutive row ids; return the ids.

        ``request`` is ``[request_id, captured_at, model_version, columns, inputs,
        predictions, probabilities]`` (see :func:`_journal_rows`).
        """
        count = len(request[5])
        with self.mutex:
            if self.closed:
                raise _WriterClosed
            if self.end_id - self.next_id < count:
                self.next_id = _reserve_ids(self.database, max(ID_BLOCK, count))
                self.end_id = self.next_id + max(ID_BLOCK, count)
            first = self.next_id
            line = (json.dumps([first, *request], separators=(",", ":")) + "\n").encode()
            view = memoryview(line)
            while view:  # one write() for any normal size; loop on a short write
                view = view[os.write(self.fd, view) :]
            self.next_id += count
            self.written += len(line)
            self.last_write = time.monotonic()
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._background, name="capture-journal", daemon=True
                )
                self.thread.start()
        return list(range(first, first + count))

    def _background(self) -> None:
        importer = _Importer(self.database)
        try:
            while True:
                time.sleep(IMPORT_EVERY)
                retired = -1
                with _writers_lock, self.mutex:
                    idle = time.monotonic() - self.last_write > IDLE_STOP
                    if idle:
                        self._forget()  # later captures take a new writer
                    if idle or self.written > ROTATE_BYTES:
                        retired, self.fd = self.fd, -1
                    if not idle and self.fd < 0:
                        self.fd = self._open_journal()
                        self.written = 0
                if retired >= 0:
                    os.close(retired)  # unlocked: imported and removed as a finished journal
                importer.retention_days = self.retention_days
                importer.cycle(block=False)
                if idle:
                    return
        except (sqlite3.Error, OSError):  # the database went away (tests, a moved file)
            with _writers_lock, self.mutex:
                self._forget()
                if self.fd >= 0:
                    os.close(self.fd)
                    self.fd = -1
        finally:
            importer.close()

    def _forget(self) -> None:
        """Stop taking captures (holding both locks); the next one makes a new writer."""
        self.closed = True
        self.thread = None
        if _writers.get((os.getpid(), self.database)) is self:
            del _writers[(os.getpid(), self.database)]


class _WriterClosed(Exception):
    """The writer stopped while idle; take a new one."""


def journal_folder(database: str) -> Path:
    """Where the capture journals of a SQLite database live."""
    return Path(f"{database}.capture-journal")


class _Importer:
    """Imports capture journals into the database while holding the importer lock.

    Parameters
    ----------
    database : str
        The SQLite file.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.folder = journal_folder(database)
        self.retention_days: float | None = None
        self.connection = _connect(database)
        self.lock_fd = os.open(f"{database}.capture-importer", os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False
        self.last_purge = 0.0

    def cycle(self, *, block: bool) -> bool:
        """Import every journal once if this process holds (or gets) the importer lock.

        With ``block`` wait for the lock and keep it; otherwise take it only if it
        is free and let it go after. Returns whether anything was done.
        """
        if not self.held:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:  # another process is the importer
                return False
        try:
            for path in sorted(self.folder.glob("*.jsonl")):
                _import_journal(self.connection, self.database, path, finished=_finished(path))
            self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            now = time.monotonic()
            if self.retention_days is not None and now - self.last_purge > PURGE_EVERY:
                self.last_purge = now
                self._purge()
        finally:
            if block:
                self.held = True
            else:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        return True

    def _purge(self) -> None:
        """Delete expired rows and the bookkeeping of journals that are gone."""
        assert self.retention_days is not None
        cutoff = _cutoff(datetime.now(UTC), self.retention_days)
        present = [p.name for p in self.folder.glob("*.jsonl")]
        with _database_lock(self.database):
            self.connection.execute(
                "DELETE FROM captured_predictions WHERE captured_at < ?", (cutoff,)
            )
            self.connection.execute(
                f"DELETE FROM capture_journals WHERE name NOT IN ({', '.join('?' * len(present))})",
                present,
            )
            self.connection.commit()

    def close(self) -> None:
        self.connection.close()
        os.close(self.lock_fd)  # releases the lock


def _finished(path: Path) -> bool:
    """Whether no process writes ``path`` any more (nobody holds its shared lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def run_importer(
    settings: Settings, *, stop: Callable[[], bool], idle_priority: bool = False
) -> None:
    """Import the capture journals of ``settings``' SQLite store until ``stop()``.

    Run by ``python -m monitoring capture-importer``, which gunicorn starts
    beside its workers (``gunicorn.conf.py``). It holds the importer lock, so the
    workers only write journals. Returns at once for other databases and when
    capture is off. With ``idle_priority`` it drops to idle CPU priority
    (:func:`use_idle_priority`) once set up, so its start is not starved.
    """
    from monitoring.store import Store

    if not settings.capture["enabled"]:
        return
    store = Store(settings.database_url)
    if store.file is None or stop():
        return
    store.engine  # noqa: B018 - creates the tables
    database = str(store.file)
    journal_folder(database).mkdir(exist_ok=True)
    importer = _Importer(database)
    importer.retention_days = float(settings.capture["retention_days"])
    if idle_priority:
        use_idle_priority()
    try:
        while not stop():
            importer.cycle(block=True)
            time.sleep(IMPORT_EVERY)
    finally:
        importer.close()


_lock_fds: dict[tuple[int, str], int] = {}
_thread_locks: dict[tuple[int, str], threading.Lock] = {}


@contextlib.contextmanager
def _database_lock(database: str) -> Iterator[None]:
    """Serialise capture writes to ``database`` across processes (an ``flock``).

    A waiting process is woken the moment the lock is free, instead of SQLite's
    busy handler sleeping 1, 2, 5, 10 ... ms between retries.
    """
    key = (os.getpid(), database)
    with _writers_lock:
        fd = _lock_fds.get(key)
        if fd is None:
            fd = _lock_fds[key] = os.open(f"{database}.capture-lock", os.O_RDWR | os.O_CREAT)
        mutex = _thread_locks.setdefault(key, threading.Lock())
    with mutex:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _reserve_ids(database: str, count: int) -> int:
    """Reserve ``count`` consecutive row ids; return the first.

    The next free id lives in ``<database>.capture-ids`` under its own ``flock``
    (never held by the importer, so a worker never waits for an import), written
    and synced once per block. It never goes below the largest id stored, so
    losing the file only skips ids.
    """
    fd = os.open(f"{database}.capture-ids", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).strip()
        connection = _connect(database)
        try:  # a read: with WAL it waits for no writer
            stored = connection.execute(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM captured_predictions"
            ).fetchone()[0]
        finally:
            connection.close()
        first = max(int(raw) if raw.isdigit() else 1, int(stored))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(first + count).encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return first


IMPORT_BATCH = 256 << 10  # bytes of journal imported per transaction (short lock holds)


def _imported(connection: sqlite3.Connection, name: str) -> int:
    row = connection.execute(
        "SELECT imported FROM capture_journals WHERE name = ?", (name,)
    ).fetchone()
    return int(row[0]) if row else 0


def _read_lines(path: Path, offset: int) -> tuple[bytes, bool]:
    """The complete lines of ``path`` from ``offset`` (about a batch at most), and
    whether they reach the end of what is written.

    A line still being written is left for next time; a line longer than a batch
    is read whole.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(IMPORT_BATCH)
            at_end = len(data) < IMPORT_BATCH
            end = data.rfind(b"\n") + 1
            if not end and not at_end:
                handle.seek(offset)
                data = handle.readline()
                end = len(data) if data.endswith(b"\n") else 0
    except FileNotFoundError:
        return b"", True
    return data[:end], at_end


def _import_journal(
    connection: sqlite3.Connection, database: str, path: Path, *, finished: bool = False
) -> None:
    """Insert the journal's complete lines not imported yet (each exactly once).

    How far a journal was imported is kept in ``capture_journals``, moved in the
    same transaction as the inserts, one transaction per :data:`IMPORT_BATCH`
    bytes. Lines are read and decoded before taking the lock, which then covers
    only the write (and is retried if another importer moved the offset
    meanwhile). A ``finished`` journal (no process writes it any more) is removed
    once imported.
    """
    while True:
        offset = _imported(connection, path.name)
        lines, at_end = _read_lines(path, offset)
        if not lines:
            break
        rows = [row for line in lines.splitlines() for row in _journal_rows(line)]
        with _database_lock(database), _write_priority():
            if _imported(connection, path.name) != offset:
                continue  # imported meanwhile by someone else: read again
            connection.executemany(_INSERT, rows)
            connection.execute(
                "INSERT OR REPLACE INTO capture_journals (name, imported) VALUES (?, ?)",
                (path.name, offset + len(lines)),
            )
            connection.commit()
        if at_end:  # everything written so far is imported
            break
    if finished:
        path.unlink(missing_ok=True)


_idle_priority = False  # set in the importer process (SCHED_IDLE)


@contextlib.contextmanager
def _write_priority() -> Iterator[None]:
    """Normal CPU priority for the importer while it holds the write lock.

    The importer runs at idle priority so it never takes CPU from the workers,
    but a worker waiting on its lock (``POST /feedback`` imports first) must not
    wait for an idle CPU: the short write itself runs at normal priority.
    """
    if not _idle_priority:
        yield
        return
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:  # not allowed after all: write at idle priority
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def use_idle_priority() -> None:
    """Run this process (the importer) at idle CPU priority, writing at normal one.

    An unprivileged process may leave ``SCHED_IDLE`` only if ``RLIMIT_NICE``
    allows nice 0; otherwise (and where ``SCHED_IDLE`` does not exist) it runs at
    ``nice 19`` instead.
    """
    global _idle_priority
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    may_return = os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20
    if may_return and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass
        else:
            _idle_priority = True
            return
    os.nice(19)


def import_journals(store: Store) -> None:
    """Import every capture journal of the store's SQLite database (no-op otherwise).

    Called before anything that must see every captured row; cheap when the
    importer is up to date.
    """
    if store.file is None:
        return
    database = str(store.file)
    folder = journal_folder(database)
    if not folder.is_dir():
        return
    connection = _connect(database)
    try:
        for path in sorted(folder.glob("*.jsonl")):
            _import_journal(connection, database, path)
    finally:
        connection.close()


def _connect(database: str) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=10.0, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


_writers: dict[tuple[int, str], _SqliteCaptureWriter] = {}
_writers_lock = threading.Lock()


def _sqlite_writer(store: Store) -> _SqliteCaptureWriter:
    """The process's capture writer for the store's database."""
    if store.file is None:
        raise MonitoringError("prediction capture needs a file database")
    database = str(store.file)
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
    import_journals(store)
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
    import_journals(store)
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

    Notes
    -----
    The counts are one ``GROUP BY`` on the model-version index; each version's
    labelled rows are a range of their covering partial index, read through the
    driver's cursor (SQLAlchemy's row objects cost ~5x the query itself).
    """
    from monitoring.scoring import compute_metrics

    table = captured_predictions
    version_column = table.c.model_version
    with store.engine.connect() as conn:
        counts: dict[Any, int] = dict(
            conn.execute(select(version_column, func.count()).group_by(version_column)).all()
        )
        labelled: dict[Any, Sequence[Any]] = {}
        cursor = conn.connection.cursor()
        try:
            for version in counts:
                query = select(table.c.label, table.c.prediction, table.c.probability).where(
                    table.c.label.is_not(None),
                    version_column.is_(None) if version is None else version_column == version,
                )  # no ORDER BY: a range of the partial index on labelled rows answers it
                sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                cursor.execute(str(sql))
                labelled[version] = cursor.fetchall()
        finally:
            cursor.close()
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


def captured(store: Store, *, request_id: str) -> list[dict[str, Any]]:
    """Captured rows of one request, in row order (inputs decoded)."""
    import_journals(store)
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
