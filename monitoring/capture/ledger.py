"""What capture writes to the record store, through SQLAlchemy Core on SQLite and PostgreSQL.

Row ids come in blocks from the ``counters`` row ``capture_row_id`` (one atomic
``UPDATE ... RETURNING``, so ids are unique across processes and hosts). A batch of
journal lines goes into ``captured_predictions`` in the same transaction as the
journal's new offset in ``capture_journals``, under that offset's row lock (``SELECT
... FOR UPDATE`` on PostgreSQL; SQLite serialises its writers anyway, and an ``flock``
beside the database lets a waiting process in the moment the lock is free): each line
is imported exactly once. Lines that hold no capture go into ``capture_quarantine`` in
that same transaction, so the offset moves past them exactly when they are recorded.

The bytes the captured rows take (:func:`row_bytes`) are kept in the ``counters`` row
``capture_bytes``, moved in the same transaction as every insert and delete, so the
total budget ``capture.max_bytes`` is checked with one key lookup: past it the oldest
rows (by row id) are evicted in the inserting transaction (:func:`evict_over_budget`),
counted in ``capture_evicted_rows``.
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
    label_events,
)
from monitoring.storage.store import Store

ROW_IDS = "capture_row_id"  # the counter of captured row ids
BYTES = "capture_bytes"  # the counter of the captured rows' bytes (row_bytes summed)
EVICTED = "capture_evicted_rows"  # rows evicted for the byte budget, ever
ROW_OVERHEAD = 64  # bytes counted per row for its numbers and time
EVICT_CHUNK = 4096  # rows read at a time while choosing what to evict
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


def row_bytes(request_id: str, model_version: str | None, inputs: str) -> int:
    """The bytes a captured row counts against ``capture.max_bytes``: its text columns
    (ASCII JSON and ids) and :data:`ROW_OVERHEAD` for the rest."""
    return len(inputs) + len(request_id) + len(model_version or "") + ROW_OVERHEAD


def _row_bytes_sql() -> Any:
    """:func:`row_bytes` of each stored row, in SQL."""
    table = captured_predictions
    return (
        func.length(table.c.inputs)
        + func.length(table.c.request_id)
        + func.coalesce(func.length(table.c.model_version), 0)
        + ROW_OVERHEAD
    )


def _add_to_counter(conn: Connection, name: str, amount: int) -> None:
    """Move counter ``name`` on by ``amount`` (after the change it counts).

    A missing :data:`BYTES` row starts from the stored rows' sum (what an earlier
    version stored, counted once; the change is in it already), any other from zero.
    """
    bump = update(counters).where(counters.c.name == name).values(value=counters.c.value + amount)
    if conn.execute(bump).rowcount:
        return
    start = amount
    if name == BYTES:
        total = select(func.coalesce(func.sum(_row_bytes_sql()), 0))
        start = int(conn.execute(total).scalar_one())
    made = conn.execute(_insert_ignoring(conn, counters).values(name=name, value=start))
    if not made.rowcount:  # another transaction made it meanwhile
        conn.execute(bump)


def counter_values(store: Store) -> dict[str, int]:
    """The capture counters (:data:`BYTES`, :data:`EVICTED`) by name; absent ones are 0."""
    query = select(counters.c.name, counters.c.value).where(counters.c.name.in_([BYTES, EVICTED]))
    with store.engine.connect() as conn:
        found = {name: int(value) for name, value in conn.execute(query)}
    return {BYTES: found.get(BYTES, 0), EVICTED: found.get(EVICTED, 0)}


def evict_over_budget(conn: Connection, max_bytes: int) -> int:
    """Delete the oldest captured rows (lowest ids) until the rows take at most
    ``max_bytes`` (:data:`BYTES`); return how many, counted in :data:`EVICTED`.

    Runs in the caller's transaction (hold :func:`write_lock`): one key lookup while
    within the budget, else a walk up the primary key from the oldest row.
    """
    query = select(counters.c.value).where(counters.c.name == BYTES).with_for_update()
    total = conn.execute(query).scalar()
    if total is None:  # made from the stored rows
        _add_to_counter(conn, BYTES, 0)
        total = conn.execute(query).scalar_one()
    excess = int(total) - max_bytes
    if excess <= 0:
        return 0
    table = captured_predictions
    freed = evicted = 0
    last: int | None = None
    while freed < excess:
        page = select(table.c.id, _row_bytes_sql()).order_by(table.c.id).limit(EVICT_CHUNK)
        if last is not None:
            page = page.where(table.c.id > last)
        rows = conn.execute(page).all()
        if not rows:
            break
        for row_id, size in rows:
            last, freed, evicted = int(row_id), freed + int(size), evicted + 1
            if freed >= excess:
                break
    if last is None:  # no rows: the counter was off
        conn.execute(update(counters).where(counters.c.name == BYTES).values(value=0))
        return 0
    conn.execute(delete(table).where(table.c.id <= last))
    conn.execute(delete(label_events).where(label_events.c.row_id <= last))
    _add_to_counter(conn, BYTES, -freed)
    _add_to_counter(conn, EVICTED, evicted)
    return evicted


def enforce_budget(store: Store, max_bytes: int) -> int:
    """:func:`evict_over_budget` in a transaction of its own; return how many rows went."""
    with write_lock(store), store.engine.begin() as conn:
        return evict_over_budget(conn, max_bytes)


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
    *,
    max_bytes: int | None = None,
) -> Outcome:
    """Insert the rows of the lines read from ``path`` at ``offset`` and move its offset on.

    ``parsed`` holds each line's first row id (None: ids are reserved here) and rows;
    ``size`` is the bytes of every line read; ``quarantined`` the ``capture_quarantine``
    rows of the lines among them that hold no capture. Under the offset's row lock:
    ``"moved"`` if another importer moved the offset meanwhile (read again), ``"gone"`` if
    the journal was imported whole and removed meanwhile, else ``"imported"``. The rows'
    bytes are added to :data:`BYTES` and, past ``max_bytes``, the oldest rows evicted, in
    the same transaction. Hold :func:`write_lock`.
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
            added = sum(len(v[1]) + len(v[4] or "") + len(v[5]) for v in values)  # row_bytes
            _add_to_counter(conn, BYTES, added + ROW_OVERHEAD * len(values))
            if max_bytes is not None:
                evict_over_budget(conn, max_bytes)
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
    row. SQLite runs one prepared statement per row in-process, which is as cheap; the
    tuples go to the driver's ``executemany`` as they are (``exec_driver_sql``), which
    takes about half the time per row of SQLAlchemy's parameter processing of dicts
    (``benchmarks/bench_fastpaths.py``).
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_sqlite_insert(), rows)
        return
    keyed = [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in rows]
    if conn.dialect.name != "postgresql":
        conn.execute(_insert_ignoring(conn, captured_predictions), keyed)
        return
    conn.execute(_batch_insert(), {"rows": json.dumps(keyed, separators=(",", ":"))})


@functools.cache
def _sqlite_insert() -> str:
    """``INSERT INTO captured_predictions (...) VALUES (?, ...) ON CONFLICT DO NOTHING``
    for SQLite, its parameters in :data:`_ROW_COLUMNS` order."""
    statement = (
        sqlite.insert(captured_predictions)
        .values({name: bindparam(name) for name in _ROW_COLUMNS})
        .on_conflict_do_nothing()
    )
    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="qmark"))
    if tuple(compiled.positiontup or ()) != _ROW_COLUMNS:
        raise AssertionError(f"parameters out of order: {compiled.positiontup}")
    return str(compiled)


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
    """Delete captured rows from before ``cutoff`` (ISO time); return how many.

    Their bytes leave :data:`BYTES` and their label events go, in the same transaction.
    """
    expired = captured_predictions.c.captured_at < cutoff
    with write_lock(store), store.engine.begin() as conn:
        freed = conn.execute(select(func.coalesce(func.sum(_row_bytes_sql()), 0)).where(expired))
        amount = int(freed.scalar_one())
        gone = select(captured_predictions.c.id).where(expired)
        conn.execute(delete(label_events).where(label_events.c.row_id.in_(gone)))
        deleted = int(conn.execute(delete(captured_predictions).where(expired)).rowcount or 0)
        if deleted:
            _add_to_counter(conn, BYTES, -amount)
        return deleted


def checkpoint(store: Store) -> None:
    """Copy a SQLite store's write-ahead log into the database file (passive)."""
    if is_sqlite(store):
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
