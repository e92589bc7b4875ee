"""Request latency per hour in the record store: fixed buckets, counts added, p95 read back.

A latency falls in the first bucket of :data:`LATENCY_BUCKETS` (upper bounds, seconds,
each 1.2 times the one before, from 0.1 ms to past 60 s; the last one catches the
rest) whose bound it does not exceed. :func:`add_latency_counts` adds a worker's counts
to ``request_latency`` (one row per hour, URL rule and bucket, summed on conflict, so
every worker and host adds to the same rows) and deletes hours older than asked;
:func:`hourly_quantiles` reads them back as a quantile per hour and rule, interpolated
within its bucket as Prometheus' ``histogram_quantile`` does (within 20 % of the truth).
These writes do not touch the store's change stamp: they are not records that caches
of the dashboard or the API follow.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from monitoring.storage.schema import request_latency
from monitoring.storage.store import Store

LATENCY_RATIO = 1.2
LATENCY_BUCKETS: tuple[float, ...] = (
    *(1e-4 * LATENCY_RATIO**i for i in range(math.ceil(math.log(6e5, LATENCY_RATIO)) + 1)),
    math.inf,
)


def latency_bucket(seconds: float) -> int:
    """Index of the bucket of ``seconds`` in :data:`LATENCY_BUCKETS`.

    Examples
    --------
    >>> latency_bucket(0.0), latency_bucket(1e-4), latency_bucket(1.1e-4), latency_bucket(1e9)
    (0, 0, 1, 74)
    """
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of latencies counted per bucket; None without any.

    Linear within the bucket it falls in (the first bucket starts at 0); in the last,
    open bucket it is that bucket's lower bound.

    Examples
    --------
    >>> round(quantile({0: 100}, 0.95), 9)  # 95 of 100 requests below 0.095 ms
    9.5e-05
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if n <= 0:
            continue
        if seen + n >= rank:
            low = 0.0 if bucket == 0 else LATENCY_BUCKETS[bucket - 1]
            high = LATENCY_BUCKETS[bucket]
            if math.isinf(high):
                return low
            return low + (high - low) * (rank - seen) / n
        seen += n
    return LATENCY_BUCKETS[-2]


def add_latency_counts(
    store: Store, counts: Mapping[tuple[str, str, int], int], *, delete_before: str | None = None
) -> None:
    """Add ``counts`` (by ``(hour, endpoint, bucket)``) to the store, in one transaction,
    and delete the hours before ``delete_before`` (``YYYY-MM-DDTHH``)."""
    rows = [
        {"hour": hour, "endpoint": endpoint, "bucket": bucket, "count": n}
        for (hour, endpoint, bucket), n in sorted(counts.items())
        if n > 0
    ]
    with store.engine.begin() as conn:
        if rows:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            upsert = dialect.insert(request_latency)
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[
                        request_latency.c.hour,
                        request_latency.c.endpoint,
                        request_latency.c.bucket,
                    ],
                    set_={"count": request_latency.c.count + upsert.excluded.count},
                ),
                rows,
            )
        if delete_before is not None:
            conn.execute(delete(request_latency).where(request_latency.c.hour < delete_before))


def hourly_quantiles(
    store: Store, *, since: str, q: float = 0.95, endpoints: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per hour from ``since`` on (``YYYY-MM-DDTHH``) and endpoint: ``requests`` and the
    ``q`` quantile ``seconds``; plus ``endpoint`` ``"all"`` summing every endpoint.
    Oldest hour first."""
    query = select(request_latency).where(request_latency.c.hour >= since)
    if endpoints is not None:
        query = query.where(request_latency.c.endpoint.in_(list(endpoints)))
    with store.engine.connect() as conn:
        found = conn.execute(query).all()
    cells: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for hour, endpoint, bucket, n in found:
        cells[(hour, endpoint)][bucket] += n
        cells[(hour, "all")][bucket] += n
    return [
        {
            "hour": hour,
            "endpoint": endpoint,
            "requests": sum(counts.values()),
            "seconds": quantile(counts, q),
        }
        for (hour, endpoint), counts in sorted(cells.items())
    ]
