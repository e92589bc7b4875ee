"""Capture journals: how captured rows reach a SQLite record store off the request path.

A request appends its rows as one line to its process's journal in
``<database>.capture-journal/``; the holder of the importer lock (gunicorn's importer
process, else a worker's background thread) imports each line exactly once. Whatever
needs every captured row calls :func:`import_journals` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import resource
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitoring.config import Settings
from monitoring.exceptions import MonitoringError
from monitoring.storage.store import Store


def row_json(columns: list[str] | None, rows: list[Any]) -> list[str]:
    """One compact JSON object per row of ``records._inputs``' (columns, rows).

    Finite floats are formatted with ``repr`` (what ``json.dumps`` writes for a float)
    through a template made once per column list.
    """
    if columns is None:
        return list(rows)
    template = _json_template(tuple(columns))
    return [template % tuple(row) for row in rows]


@functools.lru_cache(maxsize=16)
def _json_template(columns: tuple[str, ...]) -> str:
    body = ",".join(json.dumps(c).replace("%", "%%") + ":%r" for c in columns)
    return "{" + body + "}"


def _journal_rows(line: bytes) -> list[tuple[Any, ...]]:
    """The table rows of one journal line (one captured request)."""
    first, request_id, now, version, columns, inputs, predictions, probabilities = json.loads(line)
    return [
        (first + i, request_id, i, now, version, row_inputs, pred, prob)
        for i, (row_inputs, pred, prob) in enumerate(
            zip(row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]


_INSERT = (
    "INSERT OR IGNORE INTO captured_predictions (id, request_id, row_index, captured_at,"
    " model_version, inputs, prediction, probability) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
ID_BLOCK = 8192  # row ids a process reserves at a time
IMPORT_EVERY = 0.1  # seconds between imports of the journals into the database
ROTATE_BYTES = 1 << 20  # a journal this big is replaced by a fresh one
PURGE_EVERY = 60.0  # seconds between retention purges by the importer
IDLE_STOP = 30.0  # a writer's background thread stops after this long without a capture
IMPORT_BATCH = 256 << 10  # bytes of journal imported per transaction (short lock holds)


class _SqliteCaptureWriter:
    """The capture writer of one process for one SQLite database.

    A request is one ``write`` of one line, under row ids this process reserved, with no
    lock shared with other workers; the line then survives the process (as SQLite's WAL
    does with ``synchronous=NORMAL``). A background thread imports when no importer
    process does, replaces the journal past :data:`ROTATE_BYTES` (the old one is then
    imported and removed like a dead process's) and stops after :data:`IDLE_STOP` s idle.
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
        self.last_write = time.monotonic()
        self.closed = False
        threading.Thread(target=self._background, name="capture-journal", daemon=True).start()

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
        predictions, probabilities]``.
        """
        count = len(request[5])
        with self.mutex:
            if self.closed:
                raise WriterClosed
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
                        retired, self.fd = self.fd, -1
                    elif self.written > ROTATE_BYTES:
                        retired, self.fd, self.written = self.fd, self._open_journal(), 0
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
        if _writers.get((os.getpid(), self.database)) is self:
            del _writers[(os.getpid(), self.database)]


class WriterClosed(Exception):
    """The writer stopped while idle; take a new one."""


def journal_folder(database: str) -> Path:
    """Where the capture journals of a SQLite database live."""
    return Path(f"{database}.capture-journal")


class _Importer:
    """Imports the capture journals of SQLite file ``database`` while holding the importer lock."""

    def __init__(self, database: str, retention_days: float | None = None) -> None:
        self.database = database
        self.folder = journal_folder(database)
        self.retention_days = retention_days
        self.connection = _connect(database)
        self.lock_fd = os.open(f"{database}.capture-importer", os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False
        self.last_purge = 0.0

    def cycle(self, *, block: bool) -> bool:
        """Import every journal once if this process holds or gets the importer lock; say if so.

        With ``block`` wait for the lock and keep it, else take it only if free, for once.
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
            self.held = block
            if not block:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        return True

    def _purge(self) -> None:
        """Delete expired rows and the bookkeeping of journals that are gone."""
        assert self.retention_days is not None
        cutoff = retention_cutoff(datetime.now(UTC), self.retention_days)
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
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (FileNotFoundError, BlockingIOError):
        return False
    return True


def run_importer(
    settings: Settings, *, stop: Callable[[], bool], idle_priority: bool = False
) -> None:
    """Import the capture journals of ``settings``' SQLite store until ``stop()``.

    Run by ``python -m monitoring capture-importer`` beside gunicorn's workers, leaving
    them only journals to write. ``idle_priority`` applies once set up, so as not to
    starve the start. Returns at once for other databases and when capture is off.
    """
    if not settings.capture.enabled:
        return
    store = Store(settings.database_url)
    if store.file is None or stop():
        return
    store.engine  # noqa: B018 - creates the tables
    importer = _Importer(str(store.file), float(settings.capture.retention_days))
    if idle_priority:
        use_idle_priority()
    try:
        while not stop():
            importer.cycle(block=True)
            time.sleep(IMPORT_EVERY)
    finally:
        importer.close()


_database_locks: dict[tuple[int, str], tuple[int, threading.Lock]] = {}


@contextlib.contextmanager
def _database_lock(database: str) -> Iterator[None]:
    """Serialise capture writes to ``database`` across threads and processes (``flock``).

    A waiting process wakes the moment the lock is free, where SQLite's busy handler
    would sleep 1, 2, 5, 10 ... ms between retries.
    """
    key = (os.getpid(), database)
    with _writers_lock:
        if key not in _database_locks:
            fd = os.open(f"{database}.capture-lock", os.O_RDWR | os.O_CREAT)
            _database_locks[key] = (fd, threading.Lock())
        fd, mutex = _database_locks[key]
    with mutex:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _reserve_ids(database: str, count: int) -> int:
    """Reserve ``count`` consecutive row ids; return the first.

    The next free id lives in ``<database>.capture-ids`` under its own ``flock`` (which
    no import holds). It never goes below the largest id stored, so losing the file
    only skips ids.
    """
    fd = os.open(f"{database}.capture-ids", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).strip()
        with contextlib.closing(_connect(database)) as connection:  # WAL: a read waits for no write
            stored = connection.execute(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM captured_predictions"
            ).fetchone()[0]
        first = max(int(raw) if raw.isdigit() else 1, int(stored))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(first + count).encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return first


def _imported(connection: sqlite3.Connection, name: str) -> int:
    row = connection.execute(
        "SELECT imported FROM capture_journals WHERE name = ?", (name,)
    ).fetchone()
    return int(row[0]) if row else 0


def _read_lines(path: Path, offset: int) -> tuple[list[bytes], bool]:
    """The complete lines of ``path`` from ``offset`` (about a batch), and whether they end it."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            lines = handle.readlines(IMPORT_BATCH)  # whole lines, until a batch is read
    except FileNotFoundError:
        return [], True
    at_end = sum(map(len, lines)) < IMPORT_BATCH
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()  # still being written: next time
    return lines, at_end


def _import_journal(
    connection: sqlite3.Connection, database: str, path: Path, *, finished: bool = False
) -> None:
    """Insert the journal's complete lines not imported yet (each exactly once).

    The imported offset in ``capture_journals`` moves in the same transaction as the
    inserts, one per :data:`IMPORT_BATCH` bytes. Lines are decoded before taking the
    lock, so it covers only the write (retried if another importer moved the offset
    meanwhile). A ``finished`` journal (no writer any more) is removed once imported.
    """
    while True:
        offset = _imported(connection, path.name)
        lines, at_end = _read_lines(path, offset)
        if not lines:
            break
        rows = [row for line in lines for row in _journal_rows(line)]
        with _database_lock(database), _write_priority():
            if _imported(connection, path.name) != offset:
                continue  # imported meanwhile by someone else: read again
            connection.executemany(_INSERT, rows)
            connection.execute(
                "INSERT OR REPLACE INTO capture_journals (name, imported) VALUES (?, ?)",
                (path.name, offset + sum(map(len, lines))),
            )
            connection.commit()
        if at_end:  # everything written so far is imported
            break
    if finished:
        path.unlink(missing_ok=True)


_idle_priority = False  # set in the importer process (SCHED_IDLE)


@contextlib.contextmanager
def _write_priority() -> Iterator[None]:
    """Normal CPU priority for the idle-priority importer while it holds the write lock.

    A worker waiting on that lock (``POST /feedback`` imports first) must not wait for
    an idle CPU.
    """
    normal = _idle_priority and _set_scheduler(os.SCHED_OTHER)  # not allowed: stay idle
    try:
        yield
    finally:
        if normal:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def use_idle_priority() -> None:
    """Run this process (the importer) at idle CPU priority, writing at normal one.

    An unprivileged process may leave ``SCHED_IDLE`` only if ``RLIMIT_NICE`` allows
    nice 0; otherwise (and without ``SCHED_IDLE``) it runs at ``nice 19`` instead.
    """
    global _idle_priority
    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    may_return = os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20
    _idle_priority = may_return and hasattr(os, "SCHED_IDLE") and _set_scheduler(os.SCHED_IDLE)
    if not _idle_priority:
        os.nice(19)


def _set_scheduler(policy: int) -> bool:
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:
        return False
    return True


def import_journals(store: Store) -> None:
    """Import every capture journal of the store's SQLite database (cheap when up to date)."""
    if store.file is None:
        return
    database = str(store.file)
    folder = journal_folder(database)
    if not folder.is_dir():
        return
    with contextlib.closing(_connect(database)) as connection:
        for path in sorted(folder.glob("*.jsonl")):
            _import_journal(connection, database, path)


def _connect(database: str) -> sqlite3.Connection:
    connection = sqlite3.connect(database, timeout=10.0, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


_writers: dict[tuple[int, str], _SqliteCaptureWriter] = {}
_writers_lock = threading.Lock()


def writer_for(store: Store) -> _SqliteCaptureWriter:
    """The process's capture writer for the store's database."""
    if store.file is None:
        raise MonitoringError("prediction capture needs a file database")
    database = str(store.file)
    key = (os.getpid(), database)
    with _writers_lock:
        if key not in _writers:
            _writers[key] = _SqliteCaptureWriter(store, database)
        return _writers[key]


def retention_cutoff(now: datetime, retention_days: float) -> str:
    return (now - timedelta(days=float(retention_days))).isoformat(timespec="microseconds")
