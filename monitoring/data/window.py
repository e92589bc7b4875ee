"""The training window: which ingested rows a model is trained on (``training.window``).

Every ingestion stores the rows it kept (its ``finaldata.csv``, compressed) in the
record store (:func:`store_batch`); :func:`training_data` reads the configured window back:

``all`` (the default)
    every row ingested so far, de-duplicated across batches;
``new``
    the newest ingestion only, read from ``finaldata.csv`` (the course's behaviour);
``rows``
    the ``window_size`` most recently ingested distinct rows;
``days``
    the rows of the ingestions within ``window_size`` days of the newest one.

Whatever the window, the model's drift reference is fitted on the rows it was
trained on, so drift is always measured against the live model's training data.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from monitoring.config import Settings
from monitoring.exceptions import MissingArtifactError
from monitoring.storage.files import read_table, sha256_file
from monitoring.storage.store import Store

# Bytes of CSV per stored piece (before compression): one piece is read or written
# at a time, and a piece stays far below PostgreSQL's 1 GB limit for a value.
PIECE_BYTES = 64 << 20
_CODEC = pa.Codec("zstd", 1)  # ~10x smaller than the CSV at a few hundred MB/s


@dataclass(frozen=True)
class TrainingData:
    """The rows of a training window and where they came from.

    ``sha256`` identifies the data: ``finaldata.csv``'s hash for ``new``, otherwise a
    hash of the window and of the stored batches it covers. ``window`` is the record
    kept in the model's metadata.
    """

    frame: pd.DataFrame
    sha256: str
    source: str
    window: dict[str, Any] = field(default_factory=dict)


def _compressed(header: bytes, body: bytes, rows: int) -> tuple[int, int, bytes]:
    text = header + body
    return rows, len(text), _CODEC.compress(text, asbytes=True)


def batch_pieces(path: Path, rows: int) -> list[tuple[int, int, bytes]]:
    """``finaldata.csv`` as ``(rows, size, zstd bytes)`` CSV pieces, each with the header.

    ``rows``: the file's data rows. Pieces end at line ends; a file with a quoted value
    (which may hold a line end) is kept as one piece. The bytes are those of the file,
    so a piece reads back exactly as the file does.
    """
    pieces = []
    with open(path, "rb") as handle:
        header = handle.readline()
        while chunk := handle.read(PIECE_BYTES):
            chunk += handle.readline()
            if b'"' in chunk:  # a quoted value may hold a line end: one piece
                handle.seek(len(header))
                return [_compressed(header, handle.read(), rows)]
            lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
            pieces.append(_compressed(header, chunk, lines))
    return pieces or [_compressed(header, b"", 0)]


def store_batch(
    settings: Settings,
    store: Store,
    *,
    batch_id: str,
    ingested_at: str,
    data_sha256: str,
    pieces: list[tuple[int, int, bytes]],
) -> bool:
    """Store the rows of the ingestion just written to ``finaldata.csv`` (its
    :func:`batch_pieces`). Returns False when the same data (by ``data_sha256``) is
    already stored."""
    return store.add_batch(
        batch_id, ingested_at=ingested_at, data_sha256=data_sha256, pieces=pieces
    )


def _read_batch(store: Store, batch_id: str) -> pd.DataFrame:
    """A stored batch, read as :func:`~monitoring.storage.files.read_table` reads the file."""
    frames = [
        pd.read_csv(io.BytesIO(_CODEC.decompress(data, decompressed_size=size, asbytes=True)))
        for size, data in store.batch_pieces(batch_id)
    ]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _window_hash(settings: Settings, chosen: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256(f"{settings.training.window}:{settings.training.window_size}".encode())
    for batch in chosen:
        digest.update(batch["data_sha256"].encode())
    return digest.hexdigest()


def _from_file(settings: Settings, window: dict[str, Any]) -> TrainingData:
    path = settings.finaldata_file
    if not path.is_file():
        raise MissingArtifactError(
            f"{settings.public(path)} does not exist; run 'python -m monitoring ingest' first"
        )
    frame = read_table(path)
    return TrainingData(frame, sha256_file(path), settings.relative(path), window)


def training_data(settings: Settings, store: Store) -> TrainingData:
    """The rows of the configured training window.

    :class:`MissingArtifactError` when nothing was ingested. A store that holds no
    batch yet (data ingested before batches were kept) falls back to
    ``finaldata.csv``, said in ``window["note"]``.
    """
    policy, size = settings.training.window, settings.training.window_size
    record: dict[str, Any] = {"policy": policy, "size": size}
    if policy == "new":
        return _from_file(settings, record)
    stored = store.batches()
    if not stored:
        note = "no ingested batch is stored yet: trained on finaldata.csv"
        return _from_file(settings, {**record, "note": note})
    if policy == "days":
        assert size is not None
        newest = datetime.fromisoformat(stored[-1]["ingested_at"])
        since = newest - timedelta(days=float(size))
        chosen = [b for b in stored if datetime.fromisoformat(b["ingested_at"]) >= since]
    elif policy == "rows":
        assert size is not None
        chosen, total = [], 0
        for batch in reversed(stored):  # newest first, until enough rows
            chosen.insert(0, batch)
            total += batch["rows"]
            if total >= size:
                break
    else:
        chosen = stored
    frames = [_read_batch(store, batch["batch_id"]) for batch in chosen]
    combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    before = len(combined)
    # Keep each row's latest occurrence, in ingestion order.
    frame = combined.drop_duplicates(keep="last", ignore_index=True)
    distinct = len(frame)
    if policy == "rows" and size is not None and distinct > size:
        frame = frame.iloc[distinct - int(size) :].reset_index(drop=True)
    record.update(
        batches=len(chosen),
        first_ingested_at=chosen[0]["ingested_at"],
        last_ingested_at=chosen[-1]["ingested_at"],
        rows_stored=before,
        duplicates_removed=before - distinct,
    )
    plural = "es" if len(chosen) > 1 else ""
    source = f"record store: {len(chosen)} ingested batch{plural} ({policy} window)"
    return TrainingData(frame, _window_hash(settings, chosen), source, record)
