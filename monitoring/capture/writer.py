"""The capture writer of a process: journals a request's rows and answers, whatever the store.

A request is one ``write`` of one line to this process's journal, with row ids from a
block reserved in the store beforehand (the next block is fetched in the background
before this one runs out), and no lock shared with other workers. Without ids in hand
(the store cannot be reached) the rows are journalled without them and the importer
gives them ids. A background thread fetches id blocks, imports when no importer
process does, replaces the journal past :data:`ROTATE_BYTES` (the old one is then
imported and removed like a dead process's) and stops after :data:`IDLE_STOP` s idle.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sqlalchemy.exc import DBAPIError

from monitoring.capture import importer, ledger
from monitoring.capture.journal import encode_line, journal_folder, journal_folders, open_journal
from monitoring.config import Settings
from monitoring.exceptions import StoreUnavailableError
from monitoring.storage.store import Store

ID_BLOCK = 8192  # row ids a process reserves at a time
ID_WAIT = 1.0  # seconds a request waits for ids while the store answers (then: no ids)
ROTATE_BYTES = 1 << 20  # a journal this big is replaced by a fresh one
IDLE_STOP = 30.0  # the background thread stops after this long without a capture


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
        self.ids_down = False  # the last fetch failed: requests do not wait for ids
        self.fd = open_journal(self.folder)
        self.written = 0  # bytes written to the current journal
        self.last_write = time.monotonic()
        self.closed = False
        self.wake = threading.Event()
        self.wake.set()  # fetch the first block at once
        threading.Thread(target=self._background, name="capture-journal", daemon=True).start()

    def insert(self, request: list[Any]) -> list[int] | None:
        """Journal one request's rows; return their ids (consecutive), or None without ids.

        ``request`` is ``[request_id, captured_at, model_version, columns, inputs,
        predictions, probabilities]``.
        """
        count = len(request[5])
        with self.mutex:
            if self.closed:
                raise WriterClosed
            self.last_write = time.monotonic()
            first = self._take_ids(count)
            if self.closed:  # stopped while this request waited for ids
                raise WriterClosed
            line = encode_line(first, request)
            view = memoryview(line)
            while view:  # one write() for any normal size; loop on a short write
                view = view[os.write(self.fd, view) :]
            self.written += len(line)
        return None if first is None else list(range(first, first + count))

    def _take_ids(self, count: int) -> int | None:
        """The first of ``count`` fresh ids, or None when none can be had (hold the mutex)."""
        self._use_spare(count)
        if self.end_id - self.next_id < count:
            self.wanted = max(self.wanted, count)
            if not self.ids_down:
                self.wake.set()
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
        if self.spare is None and self.end_id - self.next_id < ID_BLOCK // 2 and not self.ids_down:
            self.wake.set()  # fetch the next block before this one runs out
        return first

    def _use_spare(self, count: int) -> None:
        if self.end_id - self.next_id < count and self.spare is not None:
            if self.spare[1] - self.spare[0] >= count:
                (self.next_id, self.end_id), self.spare = self.spare, None

    def _fetch_ids(self) -> None:
        """Reserve the next block if it is needed (outside the mutex while the store works)."""
        with self.mutex:
            size = max(ID_BLOCK, self.wanted)
            spare = 0 if self.spare is None else self.spare[1] - self.spare[0]
            low = self.spare is None and self.end_id - self.next_id < ID_BLOCK // 2
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
                    idle = time.monotonic() - self.last_write > IDLE_STOP
                    if idle:
                        self._forget()  # later captures take a new writer
                        retired, self.fd = self.fd, -1
                        self.ids_ready.notify_all()
                    elif self.written > ROTATE_BYTES:
                        retired, self.fd, self.written = self.fd, open_journal(self.folder), 0
                if retired >= 0:
                    os.close(retired)  # unlocked: imported and removed as a finished journal
                try:
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


_writers: dict[tuple[int, str, Any], CaptureWriter] = {}
_writers_lock = threading.Lock()


def writer_for(store: Store, settings: Settings) -> CaptureWriter:
    """The process's capture writer for the store and journal folder of ``settings``."""
    key = (os.getpid(), store.url, journal_folder(settings))
    with _writers_lock:
        if key not in _writers:
            _writers[key] = CaptureWriter(store, settings)
        return _writers[key]
