"""What capture writes to the record store, through SQLAlchemy Core on SQLite and PostgreSQL.

Row ids come in blocks from the ``counters`` row ``capture_row_id`` (one atomic
``UPDATE ... RETURNING``, so ids are unique across processes and hosts). A batch of
journal lines goes into ``captured_predictions`` in the same transaction as the
journal's new offset in ``capture_journals``, under that offset's row lock (``SELECT
... FOR UPDATE`` on PostgreSQL; SQLite serialises its writers anyway, and an ``flock``
beside the database lets a waiting process in the moment the lock is free): each line
is imported exactly once. Lines that hold no capture go into ``capture_quarantine`` in
that same transaction, so the offset moves past them exactly when they are recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    bindparam,
    cast,
    column,
    delete,
    func,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitoring.storage.schema import (
    capture_journals,
    capture_quarantine,
    captured_predictions,
    counters,
)
from monitoring.storage.store import Store

ROW_IDS = "capture_row_id"  # the counter of captured row ids
_COLUMNS = (
    "request_id",
    "row_index",
    "captured_at",
    "model_version",
    "inputs",
    "prediction",
    "probability",
)
_ROW_COLUMNS = ("id", *_COLUMNS)
Outcome = Literal["imported", "moved", "gone"]


def is_sqlite(store: Store) -> bool:
    """Whether ``store`` is SQLite (known from its URL, without connecting)."""
    return make_url(store.url).get_backend_name() == "sqlite"


_locks: dict[tuple[int, str], tuple[int, threading.Lock]] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def write_lock(store: Store) -> Iterator[None]:
    """Serialise capture writes to a SQLite store across threads and processes (``flock``).

    A waiting process wakes the moment the lock is free, where SQLite's busy handler
    would sleep 1, 2, 5, 10 ... ms between retries. Nothing for other databases.
    """
    if store.file is None:
        yield
        return
    key = (os.getpid(), str(store.file))
    with _locks_guard:
        if key not in _locks:
            fd = os.open(f"{store.file}.capture-lock", os.O_RDWR | os.O_CREAT, 0o600)
            _locks[key] = (fd, threading.Lock())
        fd, mutex = _locks[key]
    with mutex:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _insert_ignoring(conn: Connection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table`` in ``conn``'s dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def reserve_ids(store: Store, count: int) -> int:
    """Reserve ``count`` consecutive row ids in the store; return the first."""
    with write_lock(store), store.engine.begin() as conn:
        return _reserve(conn, store, count)


def _reserve(conn: Connection, store: Store, count: int) -> int:
    """Move the counter on by ``count`` in ``conn``'s transaction; return the first id.

    The counter row is made on first use, above every stored id (and above the
    ``<database>.capture-ids`` file earlier versions kept beside a SQLite store).
    """
    bump = (
        update(counters)
        .where(counters.c.name == ROW_IDS)
        .values(value=counters.c.value + count)
        .returning(counters.c.value)
    )
    end = conn.execute(bump).scalar()
    if end is None:
        stored = conn.execute(select(func.max(captured_predictions.c.id))).scalar()
        start = max(int(stored or 0) + 1, _legacy_next_id(store))
        conn.execute(_insert_ignoring(conn, counters).values(name=ROW_IDS, value=start))
        end = conn.execute(bump).scalar_one()  # ours, or the row another process made
    return int(end) - count


def _legacy_next_id(store: Store) -> int:
    try:
        raw = Path(f"{store.file}.capture-ids").read_text().strip() if store.file else ""
    except OSError:
        return 0
    return int(raw) if raw.isdigit() else 0


def imported_offset(store: Store, name: str) -> int:
    """Bytes of journal ``name`` imported so far."""
    query = select(capture_journals.c.imported).where(capture_journals.c.name == name)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def import_lines(
    store: Store,
    path: Path,
    offset: int,
    parsed: list[tuple[int | None, list[tuple[Any, ...]]]],
    size: int,
    quarantined: list[dict[str, Any]] | None = None,
) -> Outcome:
    """Insert the rows of the lines read from ``path`` at ``offset`` and move its offset on.

    ``parsed`` holds each line's first row id (None: ids are reserved here) and rows;
    ``size`` is the bytes of every line read; ``quarantined`` the ``capture_quarantine``
    rows of the lines among them that hold no capture. Under the offset's row lock:
    ``"moved"`` if another importer moved the offset meanwhile (read again), ``"gone"`` if
    the journal was imported whole and removed meanwhile, else ``"imported"``. Hold
    :func:`write_lock`.
    """
    name = path.name
    table = capture_journals
    with store.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(_insert_ignoring(conn, table).values(name=name, imported=0))
        query = select(table.c.imported).where(table.c.name == name).with_for_update()
        current = int(conn.execute(query).scalar() or 0)  # None: forgotten meanwhile
        if current != offset or not path.exists():  # a journal is removed once imported
            transaction.rollback()
            return "moved" if current != offset else "gone"
        missing = sum(len(rows) for first, rows in parsed if first is None)
        next_id = _reserve(conn, store, missing) if missing else 0
        values = []
        for first, rows in parsed:
            if first is None:
                first, next_id = next_id, next_id + len(rows)
            values += [(first + i, *row) for i, row in enumerate(rows)]
        if values:
            _insert_rows(conn, values)
        if quarantined:
            conn.execute(capture_quarantine.insert(), quarantined)
        conn.execute(update(table).where(table.c.name == name).values(imported=offset + size))
    return "imported"


def take_over(store: Store, path: Path, move: Callable[[int], int]) -> int:
    """Call ``move(imported offset)`` under the offset row lock of journal ``path`` (no
    importer moves it meanwhile) and, if ``path`` is gone, drop the row; return what
    ``move`` returned. For a journal deleted while in use: ``move`` takes its rest
    elsewhere. Hold :func:`write_lock`.
    """
    table = capture_journals
    with store.engine.connect() as conn, conn.begin():
        conn.execute(_insert_ignoring(conn, table).values(name=path.name, imported=0))
        query = select(table.c.imported).where(table.c.name == path.name).with_for_update()
        moved = move(int(conn.execute(query).scalar() or 0))
        if not path.exists():
            conn.execute(delete(table).where(table.c.name == path.name))
    return moved


def _insert_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples of :data:`_ROW_COLUMNS`) into ``captured_predictions``, skipping
    ids already there.

    PostgreSQL gets the batch as one JSON parameter expanded by the server
    (``json_to_recordset``): a few times less work on both sides than a statement per
    row. SQLite runs one prepared statement per row in-process, which is as cheap.
    """
    keyed = [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in rows]
    if conn.dialect.name != "postgresql":
        conn.execute(_insert_ignoring(conn, captured_predictions), keyed)
        return
    conn.execute(_batch_insert(), {"rows": json.dumps(keyed, separators=(",", ":"))})


@functools.cache
def _batch_insert() -> Any:
    """``INSERT INTO captured_predictions SELECT * FROM json_to_recordset(:rows) ON
    CONFLICT DO NOTHING`` (PostgreSQL)."""
    table = captured_predictions
    columns = [column(n, table.c[n].type) for n in _ROW_COLUMNS]
    source = func.json_to_recordset(cast(bindparam("rows"), JSON)).table_valued(*columns)
    query = select(*source.render_derived("batch", with_types=True).c)
    return postgresql.insert(table).from_select(list(_ROW_COLUMNS), query).on_conflict_do_nothing()


def forget_journal(store: Store, name: str) -> None:
    """Drop the offset of journal ``name`` (call only once it is removed)."""
    with write_lock(store), store.engine.begin() as conn:
        conn.execute(delete(capture_journals).where(capture_journals.c.name == name))


def purge_expired(store: Store, cutoff: str) -> int:
    """Delete captured rows from before ``cutoff`` (ISO time); return how many."""
    query = delete(captured_predictions).where(captured_predictions.c.captured_at < cutoff)
    with write_lock(store), store.engine.begin() as conn:
        return int(conn.execute(query).rowcount or 0)


def checkpoint(store: Store) -> None:
    """Copy a SQLite store's write-ahead log into the database file (passive)."""
    if is_sqlite(store):
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
