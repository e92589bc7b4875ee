"""The importer: moves capture journal lines into the record store, each exactly once.

The holder of a journal folder's importer lock (gunicorn's ``python -m monitoring
capture-importer`` process, else a worker's background thread) imports every journal
of the folder about every :data:`IMPORT_EVERY` seconds, removes the journals of
processes that ended once they are imported, and deletes expired rows. Whatever needs
every captured row calls :func:`import_journals` first. While the store cannot be
reached the importer waits, longer each time up to :data:`RETRY_MAX` seconds, and the
captures wait in the journals.

A line that holds no capture (torn, not JSON, not a capture record, or refused by the
store) is quarantined and the import goes on with the next line: a row in
``capture_quarantine`` (journal, offset, length, reason, an escaped excerpt) written in
the transaction that moves the offset past it, its bytes (up to :data:`KEEP_LINE`)
appended to ``quarantine/<journal>.bad`` in the journal folder, a log line and
``monitoring_capture_quarantined_total{reason}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from monitoring.capture import ledger
from monitoring.capture.journal import (
    BadLine,
    finished,
    journal_folder,
    journal_folders,
    journals,
    parse_line,
    read_lines,
)
from monitoring.config import Settings
from monitoring.exceptions import StoreUnavailableError
from monitoring.storage.store import Store, utcnow

IMPORT_EVERY = 0.1  # seconds between imports of the journals into the store
PURGE_EVERY = 60.0  # seconds between retention purges by the importer
RETRY_MAX = 5.0  # longest wait between tries while the store cannot be reached
KEEP_LINE = 1 << 20  # bytes of a quarantined line kept in its quarantine file
KEEP_TOTAL = 64 << 20  # quarantine files of a folder past this size keep no more bytes
EXCERPT = 120  # bytes of a quarantined line shown (escaped) in its capture_quarantine row

log = logging.getLogger("monitoring.capture")
QUARANTINED = Counter(
    "monitoring_capture_quarantined",
    "Capture journal lines quarantined because they hold no capture, by reason: torn (a "
    "cut or damaged frame), not_json, bad_shape (not a capture record), rejected (the "
    "store refused it).",
    ["reason"],
)


class Retry:
    """How long to wait before the next try: :data:`IMPORT_EVERY` while the store answers,
    doubling up to :data:`RETRY_MAX` while it fails. Logs when it starts failing
    (a store error once; any other error each time) and when it answers again."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.failures = 0

    @property
    def wait(self) -> float:
        return min(IMPORT_EVERY * 2**self.failures, max(RETRY_MAX, IMPORT_EVERY))

    def ok(self) -> None:
        if self.failures:
            log.info("%s: the record store answers again; importing the waiting captures", self.who)
        self.failures = 0

    def failed(self, exc: Exception) -> None:
        if not isinstance(exc, DBAPIError | StoreUnavailableError):
            log.error("%s failed; trying again: %s", self.who, exc, exc_info=exc)
        elif not self.failures:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            log.warning(
                "%s: the record store cannot be reached (%s); captures wait in the journals",
                self.who,
                first[0] if first else type(exc).__name__,
            )
        self.failures = min(self.failures + 1, 16)


class Importer:
    """Imports the journals in ``folders`` (the first one's lock) into ``store``."""

    def __init__(
        self,
        store: Store,
        folders: list[Path],
        retention_days: float | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.folders = folders
        self.retention_days = retention_days
        self.max_bytes = max_bytes  # capture.max_bytes: evict the oldest rows past it
        self.lock_fd = os.open(folders[0] / ".importer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.held = False
        self.last_purge = 0.0

    def cycle(self, *, block: bool) -> bool:
        """Import every journal once if this process holds or gets the importer lock; say if so.

        With ``block`` wait for the lock and keep it, else take it only if free, for once.
        Raises what the store raises when it cannot be reached.
        """
        if not self.held:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:  # another process is the importer
                return False
        try:
            with _write_priority():  # the first use may migrate the schema under a lock
                self.store.engine  # noqa: B018
            for path in journals(self.folders):
                import_journal(self.store, path, finished=finished(path), max_bytes=self.max_bytes)
            ledger.checkpoint(self.store)
            now = time.monotonic()
            if self.retention_days is not None and now - self.last_purge > PURGE_EVERY:
                cutoff = retention_cutoff(datetime.now(UTC), self.retention_days)
                ledger.purge_expired(self.store, cutoff)
                self.last_purge = now
        finally:
            self.held = block
            if not block:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        return True

    def close(self) -> None:
        os.close(self.lock_fd)  # releases the lock


def import_journal(
    store: Store, path: Path, *, finished: bool = False, max_bytes: int | None = None
) -> None:
    """Insert the journal's complete lines not imported yet (each exactly once), evicting
    the oldest rows past ``max_bytes`` (:func:`~monitoring.capture.ledger.import_lines`).

    One transaction per :data:`~monitoring.capture.journal.IMPORT_BATCH` bytes; lines
    are decoded before taking the lock, so it covers only the write (read again if
    another importer moved the offset meanwhile). Lines that hold no capture are
    quarantined in the same transaction; if the store refuses a batch, its lines are
    taken one at a time and the refused one is quarantined. A ``finished`` journal (no
    writer any more) is removed once imported, then its offset.
    """
    single = False  # one line per transaction, from a refused batch to its refused line
    while True:
        offset = ledger.imported_offset(store, path.name)
        lines, at_end = read_lines(path, offset, finished=finished)
        if not lines:
            break
        if single:
            lines, at_end = lines[:1], at_end and len(lines) == 1
        parsed, bad = _parse(path.name, offset, lines)
        try:
            outcome = _import(store, path, offset, lines, parsed, bad, max_bytes)
        except StatementError as exc:
            if isinstance(exc, DBAPIError) and not isinstance(exc, DataError | IntegrityError):
                raise  # the store is unreachable or failing: try again later
            if len(lines) > 1:
                single = True
                continue
            detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
            refused = [_Bad(offset, lines[0], "rejected", f"the store refused it: {detail[:200]}")]
            outcome = _import(store, path, offset, lines, [], refused, max_bytes)
            single = False  # the lines after it: in batches again
        if outcome == "gone":
            return
        if outcome == "imported" and at_end:  # everything written so far is imported
            break
    if finished:
        path.unlink(missing_ok=True)
        ledger.forget_journal(store, path.name)


class _Bad:
    """A journal line to quarantine: where it is, its bytes, why."""

    def __init__(self, offset: int, line: bytes, kind: str, detail: str) -> None:
        self.offset, self.line, self.kind, self.detail = offset, line, kind, detail
        self.kept = 0  # bytes of it in the quarantine file


def _parse(
    name: str, offset: int, lines: list[bytes]
) -> tuple[list[tuple[int | None, list[tuple[Any, ...]]]], list[_Bad]]:
    """The captures of ``lines`` (read at ``offset``) and the lines to quarantine."""
    parsed, bad = [], []
    at = offset
    for line in lines:
        try:
            record = parse_line(line)
        except BadLine as exc:
            bad.append(_Bad(at, line, exc.kind, exc.detail))
        else:
            if record is not None:
                parsed.append(record)
        at += len(line)
    return parsed, bad


def _import(
    store: Store,
    path: Path,
    offset: int,
    lines: list[bytes],
    parsed: list[tuple[int | None, list[tuple[Any, ...]]]],
    bad: list[_Bad],
    max_bytes: int | None,
) -> ledger.Outcome:
    """One import transaction; the quarantined lines' bytes are kept only if it commits.

    Past ``max_bytes`` of captured rows the oldest are evicted in it too.
    """
    with _quarantine_file(path, bad) as commit, ledger.write_lock(store), _write_priority():
        rows = [_quarantine_row(path.name, b) for b in bad]
        outcome = ledger.import_lines(
            store, path, offset, parsed, sum(map(len, lines)), rows, max_bytes=max_bytes
        )
        commit(outcome == "imported")
    if outcome == "imported":
        for b in bad:
            QUARANTINED.labels(b.kind).inc()
            log.warning(
                "capture journal %s: the line at byte %d (%d bytes) is quarantined (%s: %s); "
                "%s; the import goes on",
                path.name,
                b.offset,
                len(b.line),
                b.kind,
                b.detail,
                f"its bytes are in {quarantine_path(path)}" if b.kept else "its bytes are not kept",
            )
    return outcome


def quarantine_path(journal: Path) -> Path:
    """The file keeping the quarantined lines of ``journal``."""
    return journal.parent / "quarantine" / f"{journal.stem}.bad"


def _quarantine_row(name: str, bad: _Bad) -> dict[str, Any]:
    """The ``capture_quarantine`` row of a quarantined line."""
    excerpt = bad.line[:EXCERPT].decode("latin-1").encode("unicode_escape").decode("ascii")
    kept = "" if bad.kept == len(bad.line) else f" (bytes kept: {bad.kept} of {len(bad.line)})"
    return {
        "quarantined_at": utcnow(),
        "journal": name[:128],
        "offset": bad.offset,
        "length": len(bad.line),
        "reason": f"{bad.kind}: {bad.detail}{kept}",
        "excerpt": excerpt,
    }


@contextlib.contextmanager
def _quarantine_file(path: Path, bad: list[_Bad]) -> Iterator[Callable[[bool], None]]:
    """Append the lines of ``bad`` to ``path``'s quarantine file, each after a header
    ``# offset <n> length <n> kept <n> <reason>``; yield ``commit(ok)``: unless called
    with True, the file is cut back to its size before (the transaction did not commit).

    Sets each line's ``kept`` bytes (0 where the folder holds :data:`KEEP_TOTAL` already
    or the file cannot be written: the row in the store is made all the same).
    """
    if not bad:
        yield lambda ok: None
        return
    committed: list[bool] = []
    target = quarantine_path(path)
    try:
        target.parent.mkdir(exist_ok=True)
        room = KEEP_TOTAL - sum(f.stat().st_size for f in target.parent.glob("*.bad"))
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        log.error("capture quarantine: %s cannot be written: %s", target, exc)
        yield committed.append
        return
    before: int | None = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one importer at a time appends to (and cuts) it
        before = os.fstat(fd).st_size
        try:
            for b in bad:
                kept = b.line[: max(0, min(KEEP_LINE, room))]
                header = f"# offset {b.offset} length {len(b.line)} kept {len(kept)} {b.kind}\n"
                os.write(fd, header.encode() + kept + b"\n")
                b.kept, room = len(kept), room - len(kept)
        except OSError as exc:  # a full disk: the rows say what is missing
            log.error("capture quarantine: %s cannot be written: %s", target, exc)
            for b in bad:
                b.kept = 0
            os.ftruncate(fd, before)
        yield committed.append
        if not any(committed):
            os.ftruncate(fd, before)
    except BaseException:
        if before is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
        raise
    finally:
        os.close(fd)


def import_journals(store: Store, settings: Settings) -> None:
    """Import every capture journal of this host for the store (cheap when up to date)."""
    for path in journals(journal_folders(settings)):
        import_journal(store, path, max_bytes=settings.capture.max_bytes)


def run_importer(
    settings: Settings, *, stop: Callable[[], bool], idle_priority: bool = False
) -> None:
    """Import the capture journals of ``settings``' store until ``stop()``.

    Run by ``python -m monitoring capture-importer`` beside gunicorn's workers, leaving
    them only journals to write. ``idle_priority`` applies once set up, so as not to
    starve the start. Returns at once when capture is off.
    """
    if not settings.capture.enabled:
        return
    store = Store(settings.database_url)
    journal_folder(settings).mkdir(parents=True, exist_ok=True)
    importer = Importer(
        store,
        journal_folders(settings),
        float(settings.capture.retention_days),
        settings.capture.max_bytes,
    )
    retry = Retry("capture importer")
    with contextlib.suppress(DBAPIError, StoreUnavailableError):  # else in the first cycle
        store.engine  # noqa: B018 - creates or upgrades the schema at normal priority
    if idle_priority:
        use_idle_priority()
    try:
        while not stop():
            try:
                importer.cycle(block=True)
            except Exception as exc:  # noqa: BLE001 - logged; the importer keeps going
                retry.failed(exc)
            else:
                retry.ok()
            deadline = time.monotonic() + retry.wait
            while not stop() and time.monotonic() < deadline:
                time.sleep(min(IMPORT_EVERY, retry.wait))
    finally:
        importer.close()


def retention_cutoff(now: datetime, retention_days: float) -> str:
    """The ISO time before which captured rows are expired."""
    return (now - timedelta(days=float(retention_days))).isoformat(timespec="microseconds")


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
