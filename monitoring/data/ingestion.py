"""Ingestion: merge every data file of the input folder into ``finaldata.csv``.

:func:`ingest` rejects a bad file (naming file and column) and ingests the others,
drops duplicate rows as ``drop_duplicates`` on their concatenation would, and
atomically writes ``finaldata.csv``, ``ingestedfiles.txt`` (one CSV line per file),
``finaldata.profile.json``, and into the record store a row per file and the data
profile (the summary, missing data and the drift profile of the features, which the
web tier serves). It streams: each piece (:data:`CHUNK_ROWS` rows) is validated,
de-duplicated by its rows' 128-bit keys (:class:`SeenRows`) and appended before the
next is read, so peak memory is a few pieces plus 16 bytes and the feature values
per kept row.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from monitoring.config import Settings
from monitoring.data.profile import ProfileParts
from monitoring.data.rowkeys import _EXACT_FLOAT, SeenRows
from monitoring.data.validation import check_binary_target, check_columns, to_numeric_columns
from monitoring.exceptions import DataValidationError, MissingArtifactError
from monitoring.storage.files import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    list_tables,
    read_table_pieces,
    sha256_file,
)
from monitoring.storage.store import Store, utcnow

RECORD_FIELDS = (
    "file_name",
    "source_path",
    "status",
    "rows_read",
    "rows_kept",
    "duplicates_removed",
    "ingested_at",
    "sha256",
    "message",
)


@dataclass
class IngestionResult:
    """What one ingestion did."""

    batch_id: str
    rows_read: int
    rows_kept: int
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == "rejected"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "duplicates_removed": self.rows_read - self.rows_kept,
            "seconds": self.seconds,
            "files": self.records,
        }


def validate_frame(frame: pd.DataFrame, settings: Settings, *, input_name: str) -> pd.DataFrame:
    """Check one input file's columns and types; return it in config column order.

    Values may be missing (reported, not refused); present ones must be numeric, the
    target's 0 or 1."""
    check_columns(frame, settings.columns, input_name=input_name)
    numeric_columns = [*settings.features, settings.target]
    # int64 columns are numeric, finite and whole already: only the others are checked.
    others = [c for c in numeric_columns if frame[c].dtype != np.int64]
    numeric = to_numeric_columns(frame, others, input_name=input_name, allow_missing=True)
    out: dict[str, pd.Series] = {}
    for column in numeric_columns:
        if column not in others:
            out[column] = frame[column]
            continue
        col = numeric[column]
        # Keep integer columns integer when they have no gaps, so the CSV stays as
        # given; only where int64 holds every value exactly (no -0.0, no 1e300).
        values = col.to_numpy()
        whole = (
            not np.isnan(values).any()
            and (values == np.round(values)).all()
            and (np.abs(values) <= _EXACT_FLOAT).all()
            and not (np.signbit(values) & (values == 0)).any()
        )
        out[column] = col.astype("int64") if whole else col
    check_binary_target(out[settings.target], input_name=input_name, column=settings.target)
    for column in settings.id_columns:
        out[column] = frame[column].astype("string")
    return pd.DataFrame({column: out[column] for column in settings.columns}, copy=False)


def write_csv(frame: pd.DataFrame, handle: IO[bytes], *, header: bool = True) -> None:
    """Write ``frame`` as CSV without its index, byte-for-byte as ``DataFrame.to_csv``.

    Integer, float and string columns go through Arrow's CSV writer (8x faster at a
    million rows), floats formatted by numpy as pandas does; a frame that needs
    quoting, has one column or another dtype is written by pandas."""
    names = [str(c) for c in frame.columns]
    plain = len(names) > 1 and len(frame) > 0 and all(_CSV_PLAIN.fullmatch(n) for n in names)
    arrays = []
    for name in frame.columns if plain else []:
        values = frame[name]
        kind = values.dtype.kind
        if kind in "iu":
            arrays.append(pa.array(values.to_numpy()))
        elif kind == "f" and values.dtype == "float64":
            numbers = values.to_numpy()
            arrays.append(pa.array(numbers.astype(str), mask=np.isnan(numbers)))
        elif isinstance(values.dtype, pd.StringDtype):
            arrays.append(pa.array(values.array))
        else:
            plain = False
            break
    if plain:
        body = io.BytesIO()
        try:
            pa_csv.write_csv(
                pa.table(arrays, names=names),
                body,
                pa_csv.WriteOptions(
                    include_header=False, quoting_style="none", batch_size=_CSV_BATCH
                ),
            )
        except pa.ArrowInvalid:  # a value needs quoting: pandas' rules apply
            pass
        else:
            if header:
                handle.write((",".join(names) + "\n").encode("utf-8"))
            handle.write(body.getbuffer())
            return
    frame.to_csv(handle, index=False, header=header)


_CSV_BATCH = 8192  # rows per batch in Arrow's CSV writer (its default 1024 is ~25% slower)
_CSV_PLAIN = re.compile(r"[^,\"\r\n]+")


def format_record(records: Sequence[dict[str, Any]]) -> str:
    """Render ingestion records as the CSV text of ``ingestedfiles.txt``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RECORD_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def read_record(path: Path) -> list[dict[str, str]]:
    """Parse an ``ingestedfiles.txt``; a missing file is an empty record."""
    try:
        return parse_record(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def parse_record(text: str) -> list[dict[str, str]]:
    """Parse the text of an ``ingestedfiles.txt``.

    An older plain list (one path per line) gives entries with only ``file_name``.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("file_name,"):
        return list(csv.DictReader(io.StringIO(text)))
    return [{"file_name": Path(line.strip().strip("'\",[]")).name} for line in lines]


def find_new_files(settings: Settings, record: str) -> list[Path]:
    """Data files in the input folder that the ingestion ``record`` (the text of an
    ``ingestedfiles.txt``) has not seen.

    A file counts as seen when both its name and its content hash match an entry,
    so a file replaced in place with new content is new data too.
    """
    seen = {(r.get("file_name"), r.get("sha256") or None) for r in parse_record(record)}
    names_only = {name for name, digest in seen if digest is None}  # older records
    return [
        path
        for path in list_tables(settings.input_folder_path)
        if path.name not in names_only and (path.name, sha256_file(path)) not in seen
    ]


class _Restart(Exception):
    """A column turned out to be float (``args[0]``: the float columns): write again."""


CHUNK_ROWS = 100_000  # CSV files are read in pieces of this many rows
_END = object()  # marks the end of a file in the stream of pieces


def _stream(paths: Sequence[Path], skip: set[Path]) -> Iterator[tuple[Path, str, Any]]:
    """``(path, sha256, piece)`` for each piece of each file, then ``(path, sha256, _END)``.

    A piece is a DataFrame or the DataValidationError that stopped the file; files
    added to ``skip`` (rejected meanwhile) are not read further.
    """
    for path in paths:
        digest = sha256_file(path)
        try:
            for piece in read_table_pieces(path, CHUNK_ROWS):
                yield path, digest, piece
                if path in skip:
                    break
        except DataValidationError as exc:
            yield path, digest, exc
        yield path, digest, _END


def _read_ahead(items: Iterator[Any], worker: ThreadPoolExecutor) -> Iterator[Any]:
    """Iterate ``items`` with the next piece already being produced by ``worker``.

    End-of-file markers come with the piece after them, so the worker starts on the
    next file while this thread still works on the previous file's last piece.
    """

    def up_to_a_piece() -> list[Any]:
        batch = []
        for item in items:
            batch.append(item)
            if item[2] is not _END:
                break
        return batch

    pending = worker.submit(up_to_a_piece)
    while batch := pending.result():
        pending = worker.submit(up_to_a_piece)
        yield from batch


def _csv_bytes(frame: pd.DataFrame, header: bool) -> bytes:
    buffer = io.BytesIO()
    write_csv(frame, buffer, header=header)
    return buffer.getvalue()


class _Output:
    """The merged CSV being written: pieces formatted by the worker, written in order."""

    def __init__(self, handle: IO[bytes], worker: ThreadPoolExecutor) -> None:
        self.handle = handle
        self.worker = worker
        self.formatting: deque[Future[bytes]] = deque()
        self.header = True
        self.starts: list[int] = []  # where each appended piece starts in the file

    def append(self, frame: pd.DataFrame) -> None:
        self.formatting.append(self.worker.submit(_csv_bytes, frame, self.header))
        self.header = False
        while len(self.formatting) > 1 or (self.formatting and self.formatting[0].done()):
            self._write_next()

    def _write_next(self) -> None:
        self.starts.append(self.handle.tell())
        self.handle.write(self.formatting.popleft().result())

    def flush(self) -> None:
        while self.formatting:
            self._write_next()

    def mark(self) -> tuple[int, bool]:
        """Where the next file starts (to undo it if it is rejected), without waiting."""
        return len(self.starts) + len(self.formatting), self.header

    def undo(self, mark: tuple[int, bool]) -> None:
        self.flush()
        pieces, self.header = mark
        if pieces < len(self.starts):
            self.handle.seek(self.starts[pieces])
            self.handle.truncate()
            del self.starts[pieces:]


def _merge_files(
    paths: Sequence[Path],
    settings: Settings,
    handle: IO[bytes],
    records: list[dict[str, Any]],
    *,
    float_columns: frozenset[str],
) -> ProfileParts:
    """Validate, de-duplicate and append each file to ``handle``; fill ``records``.

    A file is accepted or rejected as a whole: a piece that fails validation undoes
    the file's earlier pieces. :class:`_Restart` when a column turns float after rows
    were written as integers (pandas' concat makes it float throughout).
    """
    numeric = [*settings.features, settings.target]
    seen = SeenRows()
    parts = ProfileParts(settings)
    written_as_int: set[str] = set()
    now = utcnow()
    skip: set[Path] = set()
    # A worker thread hashes and parses the next piece and formats the previous
    # one's CSV while this thread validates and de-duplicates (pandas' parser,
    # hashlib and Arrow's CSV writer release the GIL). One, not two: with two the
    # extra piece in flight costs 0.3x the data in peak memory for ~10% time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest") as worker:
        output = _Output(handle, worker)
        record: dict[str, Any] = {}
        for path, digest, piece in _read_ahead(_stream(paths, skip), worker):
            if record.get("file_name") != path.name:  # a new file starts
                record = {
                    "file_name": path.name,
                    "source_path": settings.relative(path),
                    "ingested_at": now,
                    "sha256": digest,
                    "rows_read": 0,
                }
                records.append(record)
                mark = output.mark()
                seen.mark()
                file_parts = ProfileParts(settings)
                file_floats = set(float_columns)
                file_writes_int: set[str] = set()
            if path in skip:
                continue
            if piece is _END:
                if file_floats & (written_as_int | file_writes_int):
                    raise _Restart(frozenset(file_floats))
                float_columns = frozenset(file_floats)
                written_as_int |= file_writes_int
                seen.commit()
                parts.absorb(file_parts)
                kept = file_parts.rows
                record.update(
                    status="accepted",
                    rows_kept=kept,
                    duplicates_removed=record["rows_read"] - kept,
                    message="",
                )
                continue
            try:
                if isinstance(piece, DataValidationError):
                    raise piece
                frame = validate_frame(piece, settings, input_name=path.name)
            except DataValidationError as exc:
                skip.add(path)
                output.undo(mark)
                seen.rollback()
                record.update(
                    status="rejected",
                    rows_read=None,
                    rows_kept=0,
                    duplicates_removed=None,
                    message=exc.message,
                )
                continue
            del piece
            file_floats |= {c for c in numeric if frame[c].dtype.kind == "f"}
            keep = seen.admit(frame)
            kept = frame if keep.all() else frame.loc[keep]
            if file_floats:
                kept = kept.astype(dict.fromkeys(file_floats, "float64"))
            record["rows_read"] += len(frame)
            del frame
            output.append(kept)
            if len(kept):
                file_writes_int |= {c for c in numeric if c not in file_floats}
            file_parts.add(kept)
        output.flush()
    if not any(r["status"] == "accepted" for r in records):
        reasons = "; ".join(r["message"] for r in records)
        raise DataValidationError(
            f"no file in {settings.public(settings.input_folder_path)} could be ingested: {reasons}"
        )
    return parts


def ingest(settings: Settings, *, store: Store | None = None) -> IngestionResult:
    """Ingest every data file in the input folder.

    :class:`MissingArtifactError` if the folder holds no data file, or
    :class:`DataValidationError` if every file was rejected; the previous
    ingestion's outputs are then left untouched.
    """
    started = time.perf_counter()
    store = store or Store(settings.database_url)
    folder = settings.input_folder_path
    paths = list_tables(folder)
    if not paths:
        raise MissingArtifactError(
            f"input folder {settings.public(folder)} holds no data file to ingest"
        )

    batch_id = str(uuid.uuid4())
    records: list[dict[str, Any]] = []
    parts: list[ProfileParts] = []

    def write(handle: IO[bytes]) -> None:
        float_columns: frozenset[str] = frozenset()
        while True:
            records.clear()
            try:
                parts.append(
                    _merge_files(paths, settings, handle, records, float_columns=float_columns)
                )
                return
            except _Restart as restart:
                float_columns = restart.args[0]
                handle.seek(0)
                handle.truncate()

    atomic_write(settings.finaldata_file, write)
    # The merged file is hashed on a thread while this one profiles (hashlib and
    # numpy's sort release the GIL); the parts go as the drift profile is fitted.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as hasher:
        digest = hasher.submit(sha256_file, settings.finaldata_file)
        profile = parts[0].profile()
        reference = parts.pop().drift_profile(settings.drift)
    atomic_write_json(settings.profile_file, profile)
    atomic_write_text(settings.ingested_record_file, format_record(records))
    store.add_data_profile(profile, reference=reference, data_sha256=digest.result())
    store.add_ingestions([{**r, "batch_id": batch_id} for r in records])

    rows_read = sum(r["rows_read"] or 0 for r in records)
    seconds = time.perf_counter() - started
    store.add_timing("ingestion", seconds, rows_read)
    return IngestionResult(batch_id, rows_read, profile["rows"], records, seconds)
