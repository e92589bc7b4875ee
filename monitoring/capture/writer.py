"""The capture writer of a process: journals a request's rows and answers, whatever the store.

A request is one ``write`` of one line to this process's journal, with row ids from a
block reserved in the store beforehand (the next block is fetched in the background
before this one runs out), and no lock shared with other workers. Without ids in hand
(the store cannot be reached) the rows are journalled without them and the importer
gives them ids. A background thread fetches id blocks, imports when no importer
process does, replaces the journal past :data:`ROTATE_BYTES` (the old one is then
imported and removed like a dead process's) and stops after :data:`IDLE_STOP` s idle.

Faults: a write that fails (a full disk, an I/O error) fails only the capture (the
caller counts it in ``monitoring_capture_dropped_total``); if it wrote part of its line,
the next line starts with a newline, so the torn line stays alone and is quarantined.
A journal deleted or replaced while in use is noticed (its inode against the path's, at
most every :data:`CHECK_EVERY` s, and on every background cycle): the writer goes on
in a new journal, and the rows written to the old one and not imported yet are read
back from its still-open descriptor into a new journal (:meth:`CaptureWriter._salvage`);
rows that cannot be recovered so are counted as dropped (``journal_deleted``).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError

from monitoring.capture import importer, ledger
from monitoring.capture.journal import (
    encode_line,
    journal_folder,
    journal_folders,
    open_journal,
    publish_journal,
    stage_journal,
)
from monitoring.config import Settings
from monitoring.exceptions import StoreUnavailableError
from monitoring.storage.store import Store

ID_BLOCK = 8192  # row ids a process reserves at a time (at least; see CaptureWriter.block)
ID_WAIT = 1.0  # seconds a request waits for ids while the store answers (then: no ids)
ROTATE_BYTES = 1 << 20  # a journal this big is replaced by a fresh one
IDLE_STOP = 30.0  # the background thread stops after this long without a capture
CHECK_EVERY = 0.05  # seconds between checks that the journal is still in its folder
MAX_ORPHANS = 16  # deleted journals waiting to be salvaged; past it the oldest is given up

log = logging.getLogger("monitoring.capture")
DROPPED = Counter(
    "monitoring_capture_dropped",
    "Captured /prediction requests lost because their rows could not be journalled, by "
    "reason: disk_full (no space or quota left), journal (the journal could not be "
    "written otherwise), journal_deleted (rows of a deleted journal that could not be "
    "recovered) or error (anything else).",
    ["reason"],
)
DROP_REASONS = ("disk_full", "journal", "journal_deleted", "error")


def drop_reason(exc: BaseException) -> str:
    """The ``monitoring_capture_dropped_total`` reason for a capture lost to ``exc``."""
    if isinstance(exc, OSError):
        return "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "journal"
    return "error"


class WriterClosed(Exception):
    """The writer stopped while idle; take a new one."""


class CaptureWriter:
    """Journals captured requests of this process for one store and journal folder."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.folder = journal_folder(settings)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folders = journal_folders(settings)
        self.retention_days = float(settings.capture.retention_days)
        self.max_bytes = settings.capture.max_bytes
        self.mutex = threading.Lock()
        self.ids_ready = threading.Condition(self.mutex)
        self.next_id = self.end_id = 0  # the block in use
        self.spare: tuple[int, int] | None = None  # the next block, once fetched
        self.wanted = 0  # ids a waiting request needs at once
        self.largest = 0  # the most rows one request captured (blocks grow to 4x it)
        self.ids_down = False  # the last fetch failed: requests do not wait for ids
        self.fd, self.path = open_journal(self.folder)
        self.identity = _identity(os.fstat(self.fd))
        self.written = 0  # bytes written to the current journal
        self.lines = 0  # lines written to it
        self.torn = False  # a write stopped part-way: the next line starts on a new line
        self.checked = time.monotonic()  # the last check that the journal is in place
        self.orphans: list[tuple[int, Path, int]] = []  # deleted journals: fd, path, lines
        self.salvage_failed = False  # logged once until a salvage succeeds
        self.salvage_lock = threading.Lock()
        self.rotate_failed = False  # logged once until a new journal is made
        self.last_write = time.monotonic()
        self.closed = False
        self.wake = threading.Event()
        self.wake.set()  # fetch the first block at once
        # Id blocks are also fetched by a thread of their own, so that a request never
        # waits for ids behind an import (the background thread may be importing).
        self.ids_wanted = threading.Event()
        self.fetch_lock = threading.Lock()
        threading.Thread(target=self._background, name="capture-journal", daemon=True).start()
        threading.Thread(target=self._id_fetcher, name="capture-ids", daemon=True).start()

    def insert(self, request: list[Any]) -> list[int] | None:
        """Journal one request's rows; return their ids (consecutive), or None without ids.

        ``request`` is ``[request_id, captured_at, model_version, columns, inputs,
        predictions, probabilities]``.
        """
        return self.insert_encoded(len(request[5]), lambda first: encode_line(first, request))

    def insert_encoded(self, count: int, line: Callable[[int | None], bytes]) -> list[int] | None:
        """Journal ``count`` rows as the line ``line(first row id or None)``; return their
        ids (consecutive), or None without ids."""
        with self.mutex:
            if self.closed:
                raise WriterClosed
            self.last_write = time.monotonic()
            first = self._take_ids(count)
            if self.closed:  # stopped while this request waited for ids
                raise WriterClosed
            self._check_journal()
            self._write(line(first))
        return None if first is None else list(range(first, first + count))

    def _write(self, line: bytes) -> None:
        """Append ``line`` to the journal (hold the mutex); after a write that stopped
        part-way, on a fresh line."""
        data = b"\n" + line if self.torn else line
        view, done = memoryview(data), 0
        try:
            while done < len(data):  # one write() for any normal size; loop on a short one
                done += os.write(self.fd, view[done:])
        except OSError:
            self.torn = self.torn or done > 0
            raise
        finally:
            self.written += done
        self.torn = False
        self.lines += 1

    def _check_journal(self, *, now: bool = False) -> None:
        """Go on in a new journal if the current one was deleted or replaced (hold the mutex);
        checked at most every :data:`CHECK_EVERY` s unless ``now``."""
        at = time.monotonic()
        if self.fd < 0 or (not now and at - self.checked < CHECK_EVERY):
            return
        self.checked = at
        try:
            if _identity(os.stat(self.path)) == self.identity:
                return
            what = "replaced"
        except FileNotFoundError:
            what = "deleted"
        except OSError:
            return  # cannot tell: keep writing where the rows can be read back
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, path = open_journal(self.folder)
        except OSError as exc:
            if not self.rotate_failed:  # once, not at every check
                log.error("capture journal %s was %s; no new one: %s", self.path, what, exc)
            self.rotate_failed = True
            return  # the rows go on into the old one, to be recovered later
        self.rotate_failed = False
        log.warning(
            "capture journal %s was %s while in use; going on in %s and recovering its rows "
            "not imported yet",
            self.path.name,
            what,
            path.name,
        )
        self.orphans.append((self.fd, self.path, self.lines))
        self.fd, self.path, self.identity = fd, path, _identity(os.fstat(fd))
        self.written = self.lines = 0
        self.torn = False
        if len(self.orphans) > MAX_ORPHANS:  # the first may be in salvage: give up the next
            self._give_up(*self.orphans.pop(1), "too many deleted journals wait")
        self.wake.set()

    def _rotate(self) -> int:
        """Go on in a new journal (hold the mutex); return the old descriptor to close, or
        -1 when no new journal can be made (a full disk: the current one goes on)."""
        try:
            fd, path = open_journal(self.folder)
        except OSError as exc:
            if not self.rotate_failed:  # once, not at every cycle
                log.error("capture journal %s: no new journal can be made: %s", self.path, exc)
            self.rotate_failed = True
            return -1
        self.rotate_failed = False
        retired, self.fd, self.path = self.fd, fd, path
        self.identity = _identity(os.fstat(fd))
        self.written = self.lines = 0
        self.torn = False
        return retired

    def _salvage(self) -> None:
        """Move the rows of deleted journals not imported yet into new journals.

        Under the old journal's offset row lock (no importer moves it meanwhile), the
        bytes after the imported offset are read from the still-open descriptor into a
        staged journal, the offset row is dropped (the path is gone) and, once that
        commits, the staged journal is published to be imported like a finished one.
        Raises what the store raises (tried again later); a file error leaves the journal
        waiting, logged once. One call at a time.
        """
        with self.salvage_lock:
            self._salvage_all()

    def _salvage_all(self) -> None:
        while True:
            with self.mutex:
                if not self.orphans:
                    return
                fd, path, lines = self.orphans[0]
            staged: list[Path] = []

            def stage(offset: int, fd: int = fd, staged: list[Path] = staged) -> int:
                tail = _read_from(fd, offset)
                if tail:
                    ended = tail if tail.endswith(b"\n") else tail + b"\n"  # a torn last line
                    staged.append(stage_journal(self.folder, ended))
                return tail.count(b"\n")

            try:
                with ledger.write_lock(self.store):
                    moved = ledger.take_over(self.store, path, stage)
            except OSError as exc:
                for file in staged:
                    file.unlink(missing_ok=True)
                if not self.salvage_failed:
                    log.error("capture journal %s cannot be recovered yet: %s", path.name, exc)
                self.salvage_failed = True
                return
            except BaseException:
                for file in staged:
                    file.unlink(missing_ok=True)
                raise
            self.salvage_failed = False
            with self.mutex:
                self.orphans.remove((fd, path, lines))  # only a salvage removes the first
            try:
                for file in staged:
                    publish_journal(file)
            except OSError as exc:
                for file in staged:
                    file.unlink(missing_ok=True)
                self._give_up(fd, path, moved, f"its rows could not be moved: {exc}")
                continue
            os.close(fd)
            log.info("capture journal %s: %d lines not imported yet recovered", path.name, moved)

    def _give_up(self, fd: int, path: Path, lines: int, why: str) -> None:
        """Count the rows of a deleted journal as dropped (up to ``lines``) and close it."""
        os.close(fd)
        if lines:
            DROPPED.labels("journal_deleted").inc(lines)
        log.error(
            "capture journal %s was deleted and up to %d captured requests in it are lost: %s",
            path.name,
            lines,
            why,
        )

    @property
    def block(self) -> int:
        """Ids reserved at a time: :data:`ID_BLOCK`, or 4 requests of the largest seen, so
        that requests of 10,000 rows do not each wait for a block (``api.max_rows`` bounds it).
        """
        return max(ID_BLOCK, 4 * self.largest)

    def _take_ids(self, count: int) -> int | None:
        """The first of ``count`` fresh ids, or None when none can be had (hold the mutex)."""
        self.largest = max(self.largest, count)
        self._use_spare(count)
        if self.end_id - self.next_id < count:
            self.wanted = max(self.wanted, count)
            if not self.ids_down:
                self.wake.set()
                self.ids_wanted.set()
                deadline = time.monotonic() + ID_WAIT
                while self.end_id - self.next_id < count and not self.ids_down:
                    left = deadline - time.monotonic()
                    if left <= 0 or self.closed:
                        break
                    self.ids_ready.wait(left)
                    self._use_spare(count)
            if self.end_id - self.next_id < count:
                return None
        first = self.next_id
        self.next_id += count
        low = self.end_id - self.next_id < self.block // 2
        if self.spare is None and low and not self.ids_down:
            self.ids_wanted.set()  # fetch the next block before this one runs out
        return first

    def _use_spare(self, count: int) -> None:
        if self.end_id - self.next_id < count and self.spare is not None:
            if self.spare[1] - self.spare[0] >= count:
                (self.next_id, self.end_id), self.spare = self.spare, None

    def _id_fetcher(self) -> None:
        """Fetch an id block whenever one is wanted, until the writer stops; a failure
        leaves ``ids_down`` set, and the background thread tries again and logs it."""
        while not self.closed:
            if not self.ids_wanted.wait(1.0):
                continue
            self.ids_wanted.clear()
            try:
                self._fetch_ids()
            except Exception:  # noqa: BLE001, S112 - retried (and logged) by the background loop
                continue

    def _fetch_ids(self) -> None:
        """Reserve the next block if it is needed (outside the mutex while the store works)."""
        with self.fetch_lock:
            self._fetch_block()

    def _fetch_block(self) -> None:
        with self.mutex:
            size = max(self.block, self.wanted)
            spare = 0 if self.spare is None else self.spare[1] - self.spare[0]
            low = self.spare is None and self.end_id - self.next_id < self.block // 2
            if not low and self.wanted <= spare:
                return
        try:
            first = ledger.reserve_ids(self.store, size)
        except BaseException:
            with self.mutex:
                self.ids_down = True
                self.ids_ready.notify_all()
            raise
        with self.mutex:
            self.spare = (first, first + size)
            self.wanted = 0 if self.wanted <= size else self.wanted
            self.ids_down = False
            self.ids_ready.notify_all()

    def _background(self) -> None:
        retry = importer.Retry("capture writer")
        imports: importer.Importer | None = None
        try:
            imports = importer.Importer(self.store, self.folders)
            while True:
                self.wake.wait(retry.wait)
                self.wake.clear()
                retired = -1
                with _writers_lock, self.mutex:
                    self._check_journal(now=True)
                    idle = time.monotonic() - self.last_write > IDLE_STOP and not self.orphans
                    if idle:
                        self._forget()  # later captures take a new writer
                        retired, self.fd = self.fd, -1
                        self.ids_ready.notify_all()
                    elif self.written > ROTATE_BYTES:
                        retired = self._rotate()
                if retired >= 0:
                    os.close(retired)  # unlocked: imported and removed as a finished journal
                try:
                    self._salvage()
                    self._fetch_ids()
                    imports.retention_days = self.retention_days
                    imports.max_bytes = self.max_bytes
                    imports.cycle(block=False)
                except (DBAPIError, StoreUnavailableError) as exc:  # the store is down
                    retry.failed(exc)
                except OSError:
                    raise
                except Exception as exc:  # noqa: BLE001 - logged; try again later
                    retry.failed(exc)
                else:
                    retry.ok()
                if idle:
                    return
        except OSError:  # the journal folder went away (tests, a moved folder)
            with _writers_lock, self.mutex:
                self._forget()
                self.ids_ready.notify_all()
                if self.fd >= 0:
                    os.close(self.fd)
                    self.fd = -1
        finally:
            if imports is not None:
                imports.close()

    def _forget(self) -> None:
        """Stop taking captures (holding both locks); the next one makes a new writer."""
        self.closed = True
        key = (os.getpid(), self.store.url, self.folder)
        if _writers.get(key) is self:
            del _writers[key]


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _read_from(fd: int, offset: int) -> bytes:
    """The bytes of the file open as ``fd`` from ``offset`` to its end."""
    chunks = []
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


_writers: dict[tuple[int, str, Any], CaptureWriter] = {}
_writers_lock = threading.Lock()


def writer_for(store: Store, settings: Settings) -> CaptureWriter:
    """The process's capture writer for the store and journal folder of ``settings``."""
    key = (os.getpid(), store.url, journal_folder(settings))
    with _writers_lock:
        if key not in _writers:
            _writers[key] = CaptureWriter(store, settings)
        return _writers[key]
