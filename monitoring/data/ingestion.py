"""Ingestion: merge every data file of the input folder into ``finaldata.csv``.

:func:`ingest` rejects a bad file (naming file, column and, for a bad row, its file
line) and ingests the others; with ``ingestion.bad_rows: "quarantine"`` a file's bad
rows go to ``rejects/<batch_id>-<file>.csv`` instead and the rest is ingested. It
drops duplicate rows as ``drop_duplicates`` on their concatenation would, and
atomically writes ``finaldata.csv``, ``ingestedfiles.txt`` (one CSV line per file),
``finaldata.profile.json``, and into the record store a row per file and the data
profile (the summary, missing data and the drift profile of the features, which the
web tier serves).

It streams: each piece (:data:`CHUNK_ROWS` rows) is validated and spooled to disk as
Arrow IPC before the next is read; polars' streaming engine then de-duplicates the
spooled rows (out of core) and the rows kept are written and profiled piece by
piece. Peak memory is a few pieces, polars' table of the distinct rows, and the
feature values the profile needs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc

from monitoring.config import Settings
from monitoring.data.profile import ProfileParts
from monitoring.data.validation import (
    _to_float,
    check_columns,
)
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
    rows_quarantined: int = 0  # bad rows set aside (``ingestion.bad_rows: "quarantine"``)

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == "rejected"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_quarantined": self.rows_quarantined,
            "duplicates_removed": self.rows_read - self.rows_quarantined - self.rows_kept,
            "seconds": self.seconds,
            "files": self.records,
        }


@dataclass
class CheckedFrame:
    """An input piece checked cell by cell (:func:`check_frame`)."""

    frame: pd.DataFrame  # the good rows, in config column order, typed
    bad: np.ndarray  # positions in the input of the bad rows, ascending
    reasons: list[str]  # why each bad row is bad ("; " between its bad cells)


def check_frame(frame: pd.DataFrame, settings: Settings, *, input_name: str) -> CheckedFrame:
    """Check one input piece's columns, then each row's cells; return its good rows.

    A missing or unexpected column raises :class:`DataValidationError` (the file is
    bad). A row is bad when a feature holds a non-numeric or an infinite value, or
    the target is missing or not 0 or 1. In a feature or the target, a string listed
    in ``ingestion.na_values`` or the empty string is missing (CSV's parser already
    read them so; here they are read so from JSON lines and Parquet too). Missing
    features are kept (reported by the profile). Integer columns without gaps stay
    integer; an empty identifier is missing.
    """
    check_columns(frame, settings.columns, input_name=input_name)
    tokens = ["", *settings.ingestion.na_values]
    # (rows, column, its values, reason template), in column order
    problems: list[tuple[np.ndarray, str, pd.Series, str]] = []
    numbers: dict[str, pd.Series] = {}
    for column in [*settings.features, settings.target]:
        values = frame[column]
        target = column == settings.target
        if values.dtype == np.int64:  # numeric, finite and whole already
            numbers[column] = values
            if target:
                problems.append((~values.isin([0, 1]).to_numpy(), column, values, _NOT_BINARY))
            continue
        if values.dtype.kind in "biuf":
            numeric = values.astype("float64")
            present = values.notna().to_numpy()
            not_number = np.zeros(len(values), dtype=bool)
        else:
            values = values.mask(values.isin(tokens))
            try:
                numeric = pd.to_numeric(values, errors="coerce").astype("float64")
            except OverflowError:  # an integer beyond float range: float() gives inf
                numeric = values.map(_to_float).astype("float64")
            present = values.notna().to_numpy()
            not_number = present & np.isnan(numeric.to_numpy())
        array = numeric.to_numpy()
        if target:
            problems.append((~present, column, values, _MISSING_TARGET))
            problems.append((present & ~np.isin(array, [0.0, 1.0]), column, values, _NOT_BINARY))
        else:
            problems.append((not_number, column, values, _NOT_NUMERIC))
            problems.append((np.isinf(array), column, values, _INFINITE))
        numbers[column] = numeric

    bad_rows = np.zeros(len(frame), dtype=bool)
    for mask, *_ in problems:
        bad_rows |= mask
    bad = np.flatnonzero(bad_rows)
    reasons: dict[int, list[str]] = {int(i): [] for i in bad}
    if len(bad):
        for mask, column, values, template in problems:
            for at in np.flatnonzero(mask):
                reasons[int(at)].append(
                    template.format(column=column, value=_shown(values.iloc[at]))
                )
    keep = None if not len(bad) else ~bad_rows
    out: dict[str, pd.Series] = {}
    for column, numeric in numbers.items():
        col = numeric if keep is None else numeric[keep]
        if col.dtype == np.int64:
            out[column] = col
            continue
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
    for column in settings.id_columns:
        ids = frame[column] if keep is None else frame[column][keep]
        out[column] = ids.astype("string").replace("", pd.NA)
    good = pd.DataFrame({column: out[column] for column in settings.columns}, copy=False)
    return CheckedFrame(good, bad, ["; ".join(reasons[int(i)]) for i in bad])


_EXACT_FLOAT = 2**53  # integers up to this size are exact as float64
_NOT_NUMERIC = "column '{column}' must be numeric, got {value}"
_INFINITE = "column '{column}' must be finite, got {value}"
_MISSING_TARGET = "target column '{column}' is missing"
_NOT_BINARY = "target column '{column}' must hold 0 or 1, got {value}"


def _shown(value: Any) -> str:
    """``repr`` of a cell as a user wrote it (2, not 2.0 or np.float64(2.0)); a long
    string is cut, so a message stays short."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"
    return repr(value)


_SHOWN_CHARS = 40


def validate_frame(frame: pd.DataFrame, settings: Settings, *, input_name: str) -> pd.DataFrame:
    """:func:`check_frame` for a whole table in memory: its rows, or
    :class:`DataValidationError` naming the first bad row (1-based) and why."""
    checked = check_frame(frame, settings, input_name=input_name)
    if len(checked.bad):
        raise DataValidationError(
            f"{input_name}, row {int(checked.bad[0]) + 1}: {checked.reasons[0]}"
        )
    return checked.frame


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


CHUNK_ROWS = 100_000  # CSV files are read in pieces of this many rows
_END = object()  # marks the end of a file in the stream of pieces


def na_values(settings: Settings) -> dict[str, list[str]]:
    """The strings CSV's parser reads as missing, per column: the empty cell everywhere,
    and ``ingestion.na_values`` in the features and the target."""
    tokens = ["", *settings.ingestion.na_values]
    return {
        **{column: [""] for column in settings.id_columns},
        **{column: tokens for column in [*settings.features, settings.target]},
    }


class _Lines:
    """Where a file's data rows are: their file line numbers and original values,
    found by reading the file again only when a row is bad (forward only).

    CSV: the line a row starts on (the header is line 1; blank lines, skipped by the
    parser, are counted); JSON lines: the record's line; Parquet: the 1-based row.
    """

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        self.word = "row" if suffix == ".parquet" else "line"
        self._offset = 2 if suffix == ".csv" else 1  # data row 0's line, were none skipped
        self._rows: Generator[tuple[int, Any], None, None] | None = None
        if suffix == ".csv":
            self._rows = _csv_rows(path)
        elif suffix != ".parquet":
            self._rows = _json_rows(path)
        self._next = 0  # the data row the next item of _rows is

    def find(self, rows: Sequence[int]) -> list[tuple[int, Any]]:
        """``(line, original values or None)`` of data rows ``rows`` (0-based, ascending,
        after those asked before)."""
        found = []
        for row in rows:
            line, original = row + self._offset, None
            if self._rows is not None:
                try:
                    while self._next <= row:
                        line, original = next(self._rows)
                        self._next += 1
                except StopIteration:  # the parser saw rows we do not: say where we think
                    self._rows = None
                    line, original = row + self._offset, None
            found.append((line, original))
        return found

    def close(self) -> None:
        if self._rows is not None:
            self._rows.close()


def _csv_rows(path: Path) -> Generator[tuple[int, list[str]], None, None]:
    """``(first line, fields)`` of each data row of a CSV file, skipping what pandas'
    parser skips: blank lines and lines of spaces and tabs only."""
    csv.field_size_limit(max(csv.field_size_limit(), min(path.stat().st_size, 2**31 - 1)))
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header, end = True, 0
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip(" \t")):
                continue
            if header:
                header = False
                continue
            yield start, fields


def _json_rows(path: Path) -> Generator[tuple[int, str], None, None]:
    """``(line, text)`` of each record of a JSON lines file (blank lines skipped, as
    pandas does)."""
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, 1):
            text = raw.decode("utf-8", "replace")
            if text.strip():
                yield line, text


def _cell_text(value: Any) -> str:
    """A value as a rejects file shows it: missing empty, JSON literals as in JSON."""
    value = value.item() if isinstance(value, np.generic) else value
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def _original_values(piece: pd.DataFrame, at: int, original: Any) -> list[str]:
    """The cells of the piece's row at position ``at`` as the file holds them."""
    columns = [str(c) for c in piece.columns]
    if isinstance(original, list):  # CSV fields
        return [*original[: len(columns)], *[""] * (len(columns) - len(original))]
    if isinstance(original, str):  # a JSON lines record, numbers kept as written
        try:
            record = json.loads(original, parse_float=str, parse_int=str, parse_constant=str)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return [_cell_text(record.get(c)) for c in columns]
    return [_cell_text(v) for v in piece.iloc[at].tolist()]


class _Rejects:
    """A file's quarantined rows, streamed to a temporary file beside their rejects file
    (``<batch_id>-<file name>[.csv]`` in ``rejects/``); renamed into place by
    :meth:`commit` once the ingestion succeeded."""

    def __init__(self, folder: Path, batch_id: str, name: str, columns: Sequence[str]) -> None:
        self.path = folder / f"{batch_id}-{name}{'' if name.lower().endswith('.csv') else '.csv'}"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        self.tmp = Path(tmp)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.writer.writerow([*columns, "line", "reason"])
        self.rows = 0

    def write(self, rows: list[list[Any]]) -> None:
        self.writer.writerows(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _stream(
    paths: Sequence[Path], skip: set[Path], na: dict[str, list[str]]
) -> Iterator[tuple[Path, str, Any]]:
    """``(path, sha256, piece)`` for each piece of each file, then ``(path, sha256, _END)``.

    A piece is a DataFrame or the DataValidationError that stopped the file; files
    added to ``skip`` (rejected meanwhile) are not read further.
    """
    for path in paths:
        digest = sha256_file(path)
        try:
            for piece in read_table_pieces(path, CHUNK_ROWS, na_values=na):
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


class _Spool:
    """The checked rows of the files being ingested, piece by piece, as Arrow IPC files
    in a scratch folder (so memory holds a few pieces, whatever the data's size).

    Each piece carries its file's position in ``__file``; a rejected file's pieces are
    deleted; :meth:`kept` de-duplicates them all with polars' streaming engine.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pieces: list[Path] = []  # of the accepted files, in order
        self.rows: list[int] = []  # rows of each of them
        self.pending: list[Path] = []  # of the file being read
        self.pending_rows: list[int] = []
        self.float_columns: set[str] = set()  # float in a piece of an accepted file
        self.pending_floats: set[str] = set()

    def add(self, frame: pd.DataFrame, file_index: int, numeric: Sequence[str]) -> None:
        self.pending_floats |= {c for c in numeric if frame[c].dtype.kind == "f"}
        if not len(frame):
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)  # NaN: null
        table = table.append_column(_FILE, pa.array(np.full(len(frame), file_index, np.int32)))
        path = self.folder / f"piece{len(self.pieces) + len(self.pending):07d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.pending.append(path)
        self.pending_rows.append(len(frame))

    def accept(self) -> None:
        """Keep the pieces of the file just read."""
        self.pieces += self.pending
        self.rows += self.pending_rows
        self.float_columns |= self.pending_floats
        self.pending, self.pending_rows, self.pending_floats = [], [], set()

    def reject(self) -> None:
        """Forget the pieces of the file just read."""
        for path in self.pending:
            path.unlink()
        self.pending, self.pending_rows, self.pending_floats = [], [], set()

    def kept(self, settings: Settings) -> Iterator[pd.DataFrame]:
        """The accepted rows without repeats (the first of each kept), in order, piece by
        piece, each with its file's position in ``__file``.

        Numeric columns that are float in any accepted piece are float throughout (as
        pandas' concat makes them), so 3 and 3.0 are the same value; two missing values
        are equal, and so are 0.0 and -0.0. Rows are compared by a 128-bit hash of their
        values (two seeded polars hashes): polars' streaming engine finds the first row
        of each key, holding about 40 bytes per distinct row; two different rows share
        a key with probability about ``n**2 / 2**129`` (below 1e-20 at a billion rows).
        """
        # polars is imported here: it costs every process that imports ingestion (each
        # web worker) ~0.4 s of start-up, and only an ingestion uses it.
        import polars as pl

        if not self.pieces:
            return
        types = {
            **{c: pl.String() for c in settings.id_columns},
            **{
                c: pl.Float64() if c in self.float_columns else pl.Int64()
                for c in [*settings.features, settings.target]
            },
        }
        columns = list(settings.columns)
        typed = [pl.col(c).cast(types[c]) for c in columns]
        # the values as compared: no NaN (missing is null) and no -0.0
        canonical = [
            (pl.col(c).fill_nan(None) + 0.0) if types[c] == pl.Float64() else pl.col(c)
            for c in columns
        ]
        row = pl.struct(canonical)
        first = (
            pl.concat([pl.scan_ipc(path).select(typed) for path in self.pieces])
            .select(row.hash(_SEEDS[0]).alias("a"), row.hash(_SEEDS[1]).alias("b"))
            .with_row_index("row")
            .group_by("a", "b")
            .agg(pl.col("row").min())
            .select("row")
            .collect(engine="streaming")
        )
        keep = np.zeros(sum(self.rows), dtype=bool)
        keep[first["row"].to_numpy()] = True
        del first
        start = 0
        for path, rows in zip(self.pieces, self.rows, strict=True):
            mask = pl.Series(keep[start : start + rows])
            start += rows
            piece = pl.read_ipc(path).select(*typed, pl.col(_FILE))
            yield piece.filter(mask).to_pandas()


_FILE = "__file"  # the spool's column of each row's file (its position in the records)
_SEEDS = (0x6D6F6E69746F7201, 0x726F77736B657902)  # of the two halves of a row's key


def _merge_files(
    paths: Sequence[Path],
    settings: Settings,
    handle: IO[bytes],
    records: list[dict[str, Any]],
    rejects: list[_Rejects],
    *,
    batch_id: str,
) -> ProfileParts:
    """Validate and spool each file, de-duplicate them all and write the rows kept to
    ``handle`` as CSV; fill ``records``.

    A bad file (a missing column, a parse error) is rejected as a whole: a piece that
    fails drops the file's earlier pieces. So is a file with a bad row, unless
    ``ingestion.bad_rows`` is ``quarantine``: then its bad rows go to ``rejects`` (a
    :class:`_Rejects` per file that had some, to commit) and the others are kept.
    """
    numeric = [*settings.features, settings.target]
    quarantine = settings.ingestion.bad_rows == "quarantine"
    now = utcnow()
    skip: set[Path] = set()
    lines: _Lines | None = None
    quarantined: _Rejects | None = None
    scratch = settings.finaldata_file.parent
    with (
        tempfile.TemporaryDirectory(prefix=".ingest-", dir=scratch) as folder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest") as worker,
    ):
        # A worker thread hashes and parses the next piece while this thread validates
        # and spools the previous one (pandas' parser and hashlib release the GIL).
        spool = _Spool(Path(folder))
        record: dict[str, Any] = {}
        stream = _stream(paths, skip, na_values(settings))
        for path, digest, piece in _read_ahead(stream, worker):
            if record.get("file_name") != path.name:  # a new file starts
                record = {
                    "file_name": path.name,
                    "source_path": settings.relative(path),
                    "ingested_at": now,
                    "sha256": digest,
                    "rows_read": 0,
                    "rows_quarantined": 0,
                }
                records.append(record)
                lines = _Lines(path)
            if path in skip:
                continue
            if piece is _END:
                if lines is not None:
                    lines.close()
                spool.accept()
                message = ""
                if quarantined is not None:
                    quarantined.close()
                    count = quarantined.rows
                    message = (
                        f"{count} bad row{'s' if count > 1 else ''} quarantined to "
                        f"{settings.relative(quarantined.path)}"
                    )
                    quarantined = None
                record.update(status="accepted", rows_kept=0, message=message)
                continue
            try:
                if isinstance(piece, DataValidationError):
                    raise piece
                checked = check_frame(piece, settings, input_name=path.name)
                if len(checked.bad):
                    assert lines is not None
                    found = lines.find([int(i) for i in piece.index[checked.bad]])
                    if not quarantine:
                        raise DataValidationError(
                            f"{path.name}, {lines.word} {found[0][0]}: {checked.reasons[0]}"
                        )
                    if quarantined is None:
                        quarantined = _Rejects(
                            settings.rejects_folder, batch_id, path.name, piece.columns
                        )
                        rejects.append(quarantined)  # discarded by the caller on failure
                    quarantined.write(
                        [
                            [*_original_values(piece, int(at), original), line, reason]
                            for at, (line, original), reason in zip(
                                checked.bad, found, checked.reasons, strict=True
                            )
                        ]
                    )
                    record["rows_quarantined"] += len(checked.bad)
            except DataValidationError as exc:
                skip.add(path)
                spool.reject()
                if lines is not None:
                    lines.close()
                if quarantined is not None:
                    quarantined.discard()
                    rejects.remove(quarantined)
                    quarantined = None
                record.update(
                    status="rejected",
                    rows_read=None,
                    rows_quarantined=0,
                    rows_kept=0,
                    duplicates_removed=None,
                    message=exc.message,
                )
                continue
            record["rows_read"] += len(piece)
            del piece
            spool.add(checked.frame, len(records) - 1, numeric)
            del checked
        if not any(r["status"] == "accepted" for r in records):
            reasons = "; ".join(r["message"] for r in records)
            raise DataValidationError(
                f"no file in {settings.public(settings.input_folder_path)} could be ingested:"
                f" {reasons}"
            )
        parts = ProfileParts(settings)
        kept = np.zeros(len(records), dtype=np.int64)
        header = True
        writing: Future[None] | None = None
        # The worker writes a piece's CSV (Arrow's writer releases the GIL) while
        # this thread profiles it.
        for frame in spool.kept(settings):
            kept += np.bincount(frame.pop(_FILE).to_numpy(), minlength=len(records))
            if writing is not None:
                writing.result()
            writing = worker.submit(write_csv, frame, handle, header=header)
            header = False
            parts.add(frame)
        if writing is not None:
            writing.result()
        if header:  # no row kept
            pd.DataFrame(columns=list(settings.columns)).to_csv(handle, index=False)
    for record, count in zip(records, kept.tolist(), strict=True):
        if record["status"] == "accepted":
            record["rows_kept"] = count
            record["duplicates_removed"] = record["rows_read"] - record["rows_quarantined"] - count
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
    rejects: list[_Rejects] = []

    def discard_rejects() -> None:
        for quarantined in rejects:
            quarantined.discard()
        rejects.clear()

    def write(handle: IO[bytes]) -> None:
        parts.append(_merge_files(paths, settings, handle, records, rejects, batch_id=batch_id))

    try:
        atomic_write(settings.finaldata_file, write)
    except BaseException:
        discard_rejects()
        raise
    for quarantined in rejects:  # the rejects files appear with the data they left
        quarantined.commit()
    # The merged file is hashed on a thread while this one profiles (hashlib and
    # numpy's sort release the GIL); the parts go as the drift profile is fitted.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as hasher:
        digest = hasher.submit(sha256_file, settings.finaldata_file)
        profile = parts[0].profile()
        reference = parts.pop().drift_profile(settings.drift)
    atomic_write_json(settings.profile_file, profile)
    atomic_write_text(settings.ingested_record_file, format_record(records))
    store.add_data_profile(profile, reference=reference, data_sha256=digest.result())
    store.add_ingestions(
        [{**{k: r[k] for k in RECORD_FIELDS}, "batch_id": batch_id} for r in records]
    )

    rows_read = sum(r["rows_read"] or 0 for r in records)
    seconds = time.perf_counter() - started
    store.add_timing("ingestion", seconds, rows_read)
    quarantined_rows = sum(r["rows_quarantined"] for r in records)
    return IngestionResult(
        batch_id, rows_read, profile["rows"], records, seconds, rows_quarantined=quarantined_rows
    )
