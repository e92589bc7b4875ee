"""Ingested batches in the record store: all pieces or none, each data stored once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitoring.storage.store import Store


def test_batches_keep_their_pieces_in_order_and_the_same_data_once(store: Store) -> None:
    assert store.batches() == []
    pieces = [(3, 10, b"\x00first"), (2, 20, b"second\xff")]
    assert store.add_batch(
        "b1", ingested_at="2026-01-01T00:00:00", data_sha256="a" * 64, pieces=pieces
    )
    assert store.add_batch(
        "b2", ingested_at="2026-01-02T00:00:00", data_sha256="b" * 64, pieces=[(7, 1, b"x")]
    )
    again = [(3, 5, b"other")]
    assert not store.add_batch(
        "b3", ingested_at="2026-01-03T00:00:00", data_sha256="a" * 64, pieces=again
    )
    assert store.batches() == [
        {
            "batch_id": "b1",
            "ingested_at": "2026-01-01T00:00:00",
            "data_sha256": "a" * 64,
            "rows": 5,
            "pieces": 2,
        },
        {
            "batch_id": "b2",
            "ingested_at": "2026-01-02T00:00:00",
            "data_sha256": "b" * 64,
            "rows": 7,
            "pieces": 1,
        },
    ]
    assert list(store.batch_pieces("b1")) == [(10, b"\x00first"), (20, b"second\xff")]
    assert list(store.batch_pieces("b3")) == []


def test_a_batch_failing_half_way_stores_nothing(store: Store) -> None:
    def pieces() -> Iterator[tuple[int, int, bytes]]:
        yield 1, 3, b"one"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.add_batch(
            "b1", ingested_at="2026-01-01T00:00:00", data_sha256="a" * 64, pieces=pieces()
        )
    assert store.batches() == []
