"""Request latency per hour for the dashboard: counted in memory, stored in the background.

:meth:`LatencyRecorder.observe` (called after every request) adds one to a counter keyed
by hour, URL rule and latency bucket (:mod:`monitoring.storage.latency`): a lock and a
dictionary update, well under a microsecond next to a request. A daemon thread adds
the counts to the record store every :data:`FLUSH_EVERY` seconds and stops after a
cycle with nothing to add (the next request starts it again), so an idle process keeps
no thread. While the store cannot be reached the counts wait in memory, at most
:data:`MAX_PENDING_HOURS` hours of them (the oldest go first): no request ever waits
for the store, and memory stays bounded by hours x URL rules x buckets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from monitoring.storage.latency import add_latency_counts, latency_bucket
from monitoring.storage.store import Store

FLUSH_EVERY = 10.0  # seconds between additions to the store
MAX_PENDING_HOURS = 48  # hours of counts kept while the store cannot be reached

log = logging.getLogger("monitoring.latency")


def hour_key(epoch_hour: int) -> str:
    """``YYYY-MM-DDTHH`` (UTC) of an hour counted since the epoch.

    Examples
    --------
    >>> hour_key(0), hour_key(493978)
    ('1970-01-01T00', '2026-05-09T10')
    """
    return datetime.fromtimestamp(epoch_hour * 3600, UTC).strftime("%Y-%m-%dT%H")


class LatencyRecorder:
    """The request latencies of one process, added to ``store`` every few seconds.

    Parameters
    ----------
    store : Store
        Where the counts go.
    retention_days : float
        Hours older than this are deleted from the store when counts are added.
    background : bool, default True
        Add the counts from a background thread; without it only :meth:`flush` adds
        them (an app under test makes no thread that outlives it).
    """

    def __init__(self, store: Store, *, retention_days: float, background: bool = True) -> None:
        self.store, self.retention_days, self.background = store, retention_days, background
        self._lock = threading.Lock()
        self._counts: defaultdict[tuple[int, str, int], int] = defaultdict(int)
        self._thread: threading.Thread | None = None
        self._failing = False

    def observe(self, endpoint: str, seconds: float, *, now: float | None = None) -> None:
        """Count one request of URL rule ``endpoint`` that took ``seconds``."""
        hour = int((time.time() if now is None else now) // 3600)
        key = (hour, endpoint, latency_bucket(seconds))
        with self._lock:
            self._counts[key] += 1
            thread = self._thread
            if self.background and (thread is None or not thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._background, name="latency-flush", daemon=True
                )
                self._thread.start()

    def pending(self) -> dict[tuple[str, str, int], int]:
        """The counts not added to the store yet, by ``(hour, endpoint, bucket)``."""
        with self._lock:
            return {(hour_key(h), e, b): n for (h, e, b), n in self._counts.items()}

    def flush(self) -> bool:
        """Add the pending counts to the store; True if there were any.

        When the store fails the counts are kept (up to :data:`MAX_PENDING_HOURS` hours)
        and the failure is logged once until it succeeds again.
        """
        with self._lock:
            taken, self._counts = self._counts, defaultdict(int)
        if not taken:
            return False
        merged: dict[tuple[str, str, int], int] = defaultdict(int)
        for (hour, endpoint, bucket), n in taken.items():
            merged[(hour_key(hour), endpoint, bucket)] += n
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        try:
            add_latency_counts(self.store, merged, delete_before=cutoff.strftime("%Y-%m-%dT%H"))
        except Exception as exc:  # noqa: BLE001 - the counts wait for the next try
            if not self._failing:
                log.warning("request latencies not stored (kept for the next try): %s", exc)
                self._failing = True
            with self._lock:
                for key, n in taken.items():
                    self._counts[key] += n
                hours = sorted({key[0] for key in self._counts})
                for old in hours[:-MAX_PENDING_HOURS]:
                    for key in [k for k in self._counts if k[0] == old]:
                        del self._counts[key]
            return True
        if self._failing:
            log.warning("request latencies are stored again")
            self._failing = False
        return True

    def _background(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            if not self.flush():
                with self._lock:
                    if not self._counts:  # observe() starts a new thread from now on
                        self._thread = None
                        return
