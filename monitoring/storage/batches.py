"""Ingested batches in the record store: the rows each ingestion kept, as compressed pieces.

A training window other than ``new`` (``training.window``) is read from here, so any
host holding the pipeline lock trains on the same rows. A batch is written in one
transaction (all its pieces or none), and data byte-identical to a stored batch is
not stored again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, func, insert, select

from monitoring.storage.schema import ingested_batches as batches


class IngestedBatches:
    """The ingested-batch methods of :class:`~monitoring.storage.store.Store`."""

    if TYPE_CHECKING:

        @property
        def engine(self) -> Any: ...
        def _write(self) -> contextlib.AbstractContextManager[Connection]: ...
        def _fetch(self, query: Executable) -> list[dict[str, Any]]: ...

    def add_batch(
        self,
        batch_id: str,
        *,
        ingested_at: str,
        data_sha256: str,
        pieces: Iterable[tuple[int, int, bytes]],
    ) -> bool:
        """Store a batch's ``(rows, size, data)`` pieces in one transaction (``size``: the
        bytes of the piece before ``data`` compressed them).

        Returns False, storing nothing, when a batch with the same ``data_sha256`` is
        already stored (the same data ingested again).
        """
        with self._write() as conn:
            seen = conn.execute(
                select(batches.c.id).where(batches.c.data_sha256 == data_sha256).limit(1)
            ).first()
            if seen is not None:
                return False
            for number, (rows, size, data) in enumerate(pieces):
                conn.execute(
                    insert(batches),
                    {
                        "batch_id": batch_id,
                        "ingested_at": ingested_at,
                        "data_sha256": data_sha256,
                        "piece": number,
                        "rows": rows,
                        "size": size,
                        "data": data,
                    },
                )
        return True

    def batches(self) -> list[dict[str, Any]]:
        """Every stored batch, oldest first: ``batch_id``, ``ingested_at``,
        ``data_sha256``, ``rows`` and ``pieces``."""
        query = (
            select(
                batches.c.batch_id,
                func.min(batches.c.ingested_at).label("ingested_at"),
                func.min(batches.c.data_sha256).label("data_sha256"),
                func.sum(batches.c.rows).label("rows"),
                func.count().label("pieces"),
            )
            .group_by(batches.c.batch_id)
            .order_by(func.min(batches.c.id))
        )
        return [
            {**row, "rows": int(row["rows"]), "pieces": int(row["pieces"])}
            for row in self._fetch(query)
        ]

    def batch_pieces(self, batch_id: str) -> Iterator[tuple[int, bytes]]:
        """``(size, data)`` of a batch's pieces, in order (one piece in memory at a time)."""
        ids = [
            row["id"]
            for row in self._fetch(
                select(batches.c.id).where(batches.c.batch_id == batch_id).order_by(batches.c.piece)
            )
        ]
        for piece_id in ids:
            with self.engine.connect() as conn:
                size, data = conn.execute(
                    select(batches.c.size, batches.c.data).where(batches.c.id == piece_id)
                ).one()
            yield int(size), bytes(data)
