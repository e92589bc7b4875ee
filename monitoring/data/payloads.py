"""Turning an HTTP request payload into validated rows.

:func:`batch_from_request` is the request path: a CSV body or ``?dataset_path=`` CSV file
is read by pyarrow's CSV reader, JSON rows by orjson then Arrow (no Python loop per
row), into a :class:`Batch` whose feature matrix goes to the model without a DataFrame.
Anything the fast readers do not take as plainly valid (a missing or non-numeric
feature, NaN, infinity, nested values, other formats) goes through the checked
DataFrame path (:func:`frame_from_request`), so every error keeps its message.

``POST /prediction`` (and ``POST /drift``) take the data itself, as JSON records,
a CSV body or a file upload, or the course's way: a dataset path, which must
resolve (symlinks included) to a file inside one of the configured data folders.
A CSV dataset file is parsed once per version of the file (:class:`TableCache`), as
clients score the same test file again and again.

What a client sends is checked before it is parsed where that is cheap: the column
count (``api.max_columns``) from a CSV header or a Parquet schema, binary and nested
columns from a Parquet schema, JSON nesting and lone surrogates as JSON is read. A
client's value is echoed in messages only cut short (:func:`shown`).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import math
import os
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from werkzeug.datastructures import FileStorage

from monitoring.config import Settings
from monitoring.data.validation import shown
from monitoring.exceptions import (
    BadRequestError,
    ColumnLimitError,
    DataValidationError,
    ForbiddenPathError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from monitoring.storage.files import TABLE_SUFFIXES, read_table

PATH_KEYS = ("dataset_path", "filepath", "data_file", "path")
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
# A long cell is data, not an error (capture cuts it): the csv module's 128 KiB field
# limit is lifted once for the process; bodies are bounded by api.max_content_length.
csv.field_size_limit(2**31 - 1)
FLOAT_MAX = 1.7976931348623157e308  # sys.float_info.max
MAX_PATH_CHARS = 1024  # a dataset path longer than this is refused unread
# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): only these can put a lone
# surrogate into a parsed string (raw bytes must be valid UTF-8 already).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
SCALARS = (str, int, float, bool, type(None))  # what a cell of a JSON row may hold


def loads_json(data: bytes | str, *, input_name: str = "request body") -> Any:
    """Parse JSON text; :class:`BadRequestError` if it is nested too deeply for the
    parser or a string holds a lone surrogate (not Unicode text).

    Invalid JSON raises the parser's :class:`ValueError`, left to the caller.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRequestError(f"{input_name}: JSON nested too deeply") from None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _SURROGATE_ESCAPE.search(raw):  # rare: look for the string that holds it
        where = _lone_surrogate(value)
        if where is not None:
            raise BadRequestError(
                f"{input_name}: {where} is not valid Unicode (a lone surrogate escape "
                "such as \\ud800); send UTF-8 text"
            )
    return value


def _lone_surrogate(value: Any) -> str | None:
    """Where the first string (or key) holding a lone surrogate is, as a JSON pointer."""

    def part(key: str) -> str:
        text = key.encode("ascii", "backslashreplace").decode("ascii")
        return text if len(text) <= 40 else text[:37] + "..."

    def cut(pointer: str) -> str:
        pointer = pointer or "/"
        return pointer if len(pointer) <= 120 else pointer[:60] + "..." + pointer[-57:]

    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, pointer = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return f"the string at {cut(pointer)}"
        elif isinstance(item, dict):
            for key in item:
                if _SURROGATE.search(key):
                    return f"the key {part(key)} in {cut(pointer)}"
            stack.extend((v, f"{pointer}/{part(k)}") for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, f"{pointer}/{i}") for i, v in reversed(list(enumerate(item))))
    return None


def _column_limit(input_name: str, count: int, limit: int) -> ColumnLimitError:
    return ColumnLimitError(
        f"{input_name}: has {count} columns; the limit is {limit} (api.max_columns)"
    )


def column_limit(settings: Settings) -> int:
    """The most columns a request may have: ``api.max_columns``, at least the features."""
    return max(settings.api.max_columns, len(settings.features))


def resolve_dataset_path(settings: Settings, raw: object) -> Path:
    """Resolve a client-supplied dataset path, confined to the data folders.

    Relative paths are tried against the project root, then each data folder (so
    ``testdata.csv`` and ``data/testdata/testdata.csv`` both work). A path outside
    every data folder (``..``, absolute, symlinks out) is a
    :class:`ForbiddenPathError`, a missing one inside a :class:`NotFoundError`.
    """
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise BadRequestError("dataset_path must be a non-empty string")
    if len(raw) > MAX_PATH_CHARS:
        raise BadRequestError(
            f"dataset_path is {len(raw)} characters long; the limit is {MAX_PATH_CHARS}"
        )
    if _SURROGATE.search(raw):
        raise BadRequestError("dataset_path is not valid Unicode text")
    allowed = settings.data_folders  # real paths: resolved when the config was loaded

    def confined(path: Path) -> Path | None:
        real = Path(os.path.realpath(path))
        return real if any(real.is_relative_to(folder) for folder in allowed) else None

    def is_file(path: Path) -> bool:
        try:
            return path.is_file()
        except OSError:  # a name too long for the file system, ...: not there
            return False

    given = Path(raw.strip())
    # The path as the client wrote it: relative to the project root, or absolute.
    primary = given if given.is_absolute() else settings.root / given
    # Convenience: a relative name inside one of the data folders ("testdata.csv"),
    # resolved only when the path as written is not a file.
    folders = () if given.is_absolute() else settings.data_folders
    for candidate in itertools.chain((primary,), (f / given for f in folders)):
        real = confined(candidate) if is_file(candidate) else None  # realpath: files only
        if real is not None:
            if real.suffix.lower() not in TABLE_SUFFIXES:
                raise DataValidationError(
                    f"dataset_path {shown(raw)} is not a data file; expected one of "
                    f"{list(TABLE_SUFFIXES)}"
                )
            return real
    if confined(primary) is None:
        names = [settings.public(f) for f in settings.data_folders]
        raise ForbiddenPathError(
            f"dataset_path {shown(raw)} is outside the data folders; it must name a file in "
            f"one of {names}"
        )
    raise NotFoundError(f"dataset_path {shown(raw)} does not exist in the data folders")


def frame_from_records(
    records: object,
    features: Sequence[str],
    *,
    max_columns: int | None = None,
    input_name: str = "request body",
) -> pd.DataFrame:
    """Build a frame from JSON records: a list of row objects or an object of columns.

    Raises :class:`DataValidationError` naming the row and column of the first
    feature value that is not a finite number, or of any value that is not a number,
    a string, a boolean or null (rows are flat), and :class:`ColumnLimitError` when
    the rows have more than ``max_columns`` columns between them.
    """
    if isinstance(records, dict):
        if max_columns is not None and len(records) > max_columns:
            raise _column_limit(input_name, len(records), max_columns)
        if not all(isinstance(v, list) for v in records.values()):
            raise DataValidationError(
                f"{input_name}: 'data' as an object must map each column to a list of values"
            )
        lengths = {len(v) for v in records.values()}
        if len(lengths) > 1:
            raise DataValidationError(
                f"{input_name}: the column lists in 'data' differ in length: {sorted(lengths)}"
            )
        records = [
            dict(zip(records, row, strict=True)) for row in zip(*records.values(), strict=True)
        ]
    if not isinstance(records, list):
        raise DataValidationError(
            f"{input_name}: 'data' must be a list of row objects or an object of column lists"
        )
    if not records:
        raise DataValidationError(f"{input_name}: 'data' contains no rows")
    matrix = _plain_matrix(records, features)
    if matrix is not None:  # the usual case, ~20x cheaper than from_records
        return pd.DataFrame(matrix, columns=_column_index(tuple(features)), copy=False)
    columns: set[str] = set()
    for i, row in enumerate(records):
        if not isinstance(row, dict):
            raise DataValidationError(
                f"{input_name}: row {i} must be an object of column: value, "
                f"got {type(row).__name__}"
            )
        columns.update(row)
        for column in features:
            value = row.get(column)
            if value is None:
                continue  # missing: reported by the model's column checks
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DataValidationError(
                    f"{input_name}: column '{column}' must be a number; row {i} has {shown(value)}"
                )
            if isinstance(value, int) and abs(value) > FLOAT_MAX:
                raise DataValidationError(
                    f"{input_name}: column '{column}' must be finite; row {i} has an "
                    f"integer of {len(str(abs(value)))} digits, beyond the float range"
                )
            if not math.isfinite(value):
                raise DataValidationError(
                    f"{input_name}: column '{column}' must be finite; row {i} has {value!r}"
                )
        for column, value in row.items():
            if not isinstance(value, SCALARS):
                raise DataValidationError(
                    f"{input_name}: column {shown(column)} must hold a number, a string or "
                    f"null; row {i} has {shown(value)}"
                )
    if max_columns is not None and len(columns) > max_columns:
        raise _column_limit(input_name, len(columns), max_columns)
    return pd.DataFrame.from_records(records)


def _plain_matrix(records: list[Any], features: Sequence[str]) -> np.ndarray | None:
    """The float64 matrix of rows that hold exactly the features as finite numbers.

    ``None`` for anything else (extra or missing keys, other types such as bool, NaN,
    infinity, integers beyond float range): the caller then runs its full checks.
    """
    width = len(features)
    rows = []
    try:
        for row in records:
            if type(row) is not dict or len(row) != width:
                return None
            rows.append([row[column] for column in features])
    except KeyError:
        return None
    if not {type(v) for values in rows for v in values} <= {int, float}:
        return None
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        return None
    return matrix if np.isfinite(matrix).all() else None


@functools.lru_cache(maxsize=8)
def _column_index(features: tuple[str, ...]) -> pd.Index:
    # An object-dtype Index: building a frame with it is ~5x cheaper than from a
    # list (which pandas turns into an Arrow-backed string Index each time).
    return pd.Index(features, dtype=object)


def _csv_header(data: bytes, *, input_name: str) -> tuple[list[str], list[str]]:
    """The header record of CSV bytes (the first record that is not blank) and the
    first row after it, read without parsing the rest; :class:`BadRequestError` if
    they cannot be read."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    records = (record for record in csv.reader(stream) if record)
    try:
        return next(records, []), next(records, [])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BadRequestError(f"{input_name}: is not valid CSV: {exc}") from None


def _check_unique(names: list[str], *, input_name: str) -> None:
    """:class:`DataValidationError` naming the column names given more than once."""
    if len(set(names)) != len(names):
        counts = Counter(names)
        twice = sorted(name for name, count in counts.items() if count > 1)
        listed = ", ".join(shown(name) for name in twice[:5])
        raise DataValidationError(f"{input_name}: duplicated column(s) {listed}")


def frame_from_csv(data: bytes, *, input_name: str, max_columns: int | None = None) -> pd.DataFrame:
    """Parse CSV bytes; :class:`BadRequestError` if they are empty or not CSV.

    The header is read first: more than ``max_columns`` columns is a
    :class:`ColumnLimitError` and a column name given twice (which pandas would
    rename ``name.1``) a :class:`DataValidationError`, before any row is parsed; a
    first row longer than the header (which pandas would read shifted, its first
    field as the index) a :class:`BadRequestError`.
    """
    if not data.strip():
        raise BadRequestError(f"{input_name}: is empty; send CSV with a header row")
    header, first = _csv_header(data, input_name=input_name)
    if max_columns is not None and len(header) > max_columns:
        raise _column_limit(input_name, len(header), max_columns)
    _check_unique([name for name in header if name], input_name=input_name)
    if len(first) > len(header):  # pandas would take the first column as the index
        raise BadRequestError(
            f"{input_name}: is not valid CSV: row 0 has {len(first)} fields; the header "
            f"has {len(header)}"
        )
    try:
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadRequestError(f"{input_name}: is not valid CSV: {reason}") from None


def frame_from_json_lines(
    data: bytes, *, input_name: str, features: Sequence[str], max_columns: int | None = None
) -> pd.DataFrame:
    """Parse JSON lines (one row object per line) with the rules of JSON rows
    (:func:`frame_from_records`); :class:`BadRequestError` if a line is not JSON.

    A ``.json`` file may also be one JSON document: a list of rows, or an object with
    ``data`` as in a request body.
    """
    if input_name.lower().endswith(".json"):
        try:
            document = loads_json(data, input_name=input_name)
        except BadRequestError:
            raise
        except ValueError:
            document = None  # not one document: JSON lines
        if isinstance(document, dict) and "data" in document:
            records = document["data"]
        elif isinstance(document, list):
            records = document
        else:  # one row object (one line of JSON lines), or not one document
            records = None
        if records is not None:
            return frame_from_records(
                records, features, max_columns=max_columns, input_name=input_name
            )
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(loads_json(line, input_name=f"{input_name} line {number}"))
            except BadRequestError:
                raise
            except ValueError:
                raise BadRequestError(
                    f"{input_name}: is not valid JSON lines (line {number})"
                ) from None
    if not rows:
        raise DataValidationError(f"{input_name}: contains no rows")
    return frame_from_records(rows, features, max_columns=max_columns, input_name=input_name)


def _arrow_kind(kind: pa.DataType) -> str | None:
    """What makes an Arrow column type unacceptable in an upload, or None."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "binary data"
    if pa.types.is_fixed_size_binary(kind) or getattr(pa.types, "is_binary_view", bool)(kind):
        return "binary data"
    if pa.types.is_nested(kind):
        return "nested values"
    return None


def frame_from_parquet(
    data: bytes, *, input_name: str, max_columns: int | None = None
) -> pd.DataFrame:
    """Parse Parquet bytes after checking their schema: more than ``max_columns``
    columns is a :class:`ColumnLimitError`, a binary or nested column a
    :class:`DataValidationError` (rows must be flat numbers and text)."""
    try:
        schema = pq.ParquetFile(io.BytesIO(data)).schema_arrow
    except Exception:  # pyarrow raises several unrelated types
        raise BadRequestError(f"{input_name}: is not a valid Parquet file") from None
    if max_columns is not None and len(schema) > max_columns:
        raise _column_limit(input_name, len(schema), max_columns)
    for column in schema:
        what = _arrow_kind(column.type)
        if what is not None:
            raise DataValidationError(
                f"{input_name}: column {shown(column.name)} holds {what} ({column.type}); "
                "columns must hold numbers or text"
            )
    _check_unique([column.name for column in schema], input_name=input_name)
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception:
        raise BadRequestError(f"{input_name}: is not a valid Parquet file") from None


def frame_from_upload(
    upload: FileStorage, *, features: Sequence[str], max_columns: int | None = None
) -> tuple[pd.DataFrame, str]:
    """Parse an uploaded file by the extension of its name."""
    name = Path(upload.filename or "upload.csv").name
    suffix = Path(name).suffix.lower()
    if len(name) > 80:  # the name as the client gave it, cut short for messages
        name = name[:60] + "..." + name[-17:]
    data = upload.read()
    if suffix in ("", ".csv", ".txt"):
        return frame_from_csv(data, input_name=name, max_columns=max_columns), name
    if suffix in (".jsonl", ".ndjson", ".json"):
        frame = frame_from_json_lines(
            data, input_name=name, features=features, max_columns=max_columns
        )
        return frame, name
    if suffix == ".parquet":
        return frame_from_parquet(data, input_name=name, max_columns=max_columns), name
    raise UnsupportedMediaTypeError(
        f"{name}: unsupported file type {shown(suffix)}; upload .csv, .jsonl or .parquet"
    )


def frame_from_request(request: Any, settings: Settings) -> tuple[pd.DataFrame, str]:
    """The DataFrame a request carries, and a name for it in messages."""
    mimetype = request.mimetype or ""
    features = settings.features
    limit = column_limit(settings)
    if mimetype == "application/json" or mimetype.endswith("+json"):
        payload = request.get_json(silent=True)
        if payload is None:
            raise BadRequestError("request body is not valid JSON")
        if isinstance(payload, list):
            return frame_from_records(payload, features, max_columns=limit), "request body"
        if not isinstance(payload, dict):
            raise BadRequestError(
                "request body must be a JSON object with 'data' (rows) or 'dataset_path', "
                "or a JSON list of rows"
            )
        path_keys = [k for k in PATH_KEYS if k in payload]
        if "data" in payload and path_keys:
            raise BadRequestError("send either 'data' or 'dataset_path', not both")
        if "data" in payload:
            return frame_from_records(payload["data"], features, max_columns=limit), "request body"
        if path_keys:
            path = resolve_dataset_path(settings, payload[path_keys[0]])
            return read_table(path), path.name
        keys = [shown(key) for key in list(payload)[:5]]
        raise BadRequestError(
            f"request body must have a 'data' list of rows or a 'dataset_path'; "
            f"got keys [{', '.join(sorted(keys))}]"
        )
    if mimetype in CSV_TYPES:
        frame = frame_from_csv(request.get_data(), input_name="request body", max_columns=limit)
        return frame, "request body"
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequestError("multipart request must carry the data in a 'file' field")
        return frame_from_upload(upload, features=features, max_columns=limit)
    path_arg = next((request.args[k] for k in PATH_KEYS if k in request.args), None)
    if path_arg is not None and not request.get_data():
        path = resolve_dataset_path(settings, path_arg)
        return read_table(path), path.name
    if not mimetype and not request.get_data():
        raise BadRequestError(
            "request has no data; send JSON {'data': [...]} or {'dataset_path': ...}, "
            "a text/csv body, or a multipart 'file' upload"
        )
    raise UnsupportedMediaTypeError(
        f"unsupported content type {shown(mimetype or 'none')}; use application/json, "
        "text/csv or multipart/form-data"
    )


# -- the columnar fast path --------------------------------------------------------------
_CSV_READ = pa_csv.ReadOptions(use_threads=False)  # request bodies are small: no pool hop


class Batch:
    """The rows of one request: an Arrow ``table`` when a columnar reader took them
    (every column as sent, ids and target included), and the checked DataFrame, built by
    ``frame`` only when needed (the table was not plainly valid, or no fast reader
    applies).

    ``name`` names the rows in messages ("request body" or the file's name).
    """

    __slots__ = ("_frame", "_make_frame", "_matrices", "name", "outputs", "table")

    def __init__(
        self,
        name: str,
        table: pa.Table | None,
        frame: Callable[[], pd.DataFrame] | pd.DataFrame,
    ) -> None:
        self.name, self.table = name, table
        self._frame: pd.DataFrame | None = frame if isinstance(frame, pd.DataFrame) else None
        self._make_frame = None if isinstance(frame, pd.DataFrame) else frame
        self._matrices: dict[tuple[str, ...], np.ndarray | None] = {}
        # The model's classes and rounded probabilities as arrays, once predicted on
        # the matrix (the capture journals them without converting the answer's lists).
        self.outputs: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.frame())

    def frame(self) -> pd.DataFrame:
        """The rows as the checked path reads them (raises its errors)."""
        if self._frame is None:
            assert self._make_frame is not None
            self._frame = self._make_frame()
        return self._frame

    def matrix(self, features: Sequence[str]) -> np.ndarray | None:
        """The float64 matrix of ``features`` (C order) when the table holds each of them
        once as integers or floats, with no missing value and all finite; else None
        (then :meth:`frame` and the model's checks say what is wrong)."""
        key = tuple(features)
        if key not in self._matrices:
            self._matrices[key] = table_matrix(self.table, key)
        return self._matrices[key]


def table_matrix(table: pa.Table | None, features: Sequence[str]) -> np.ndarray | None:
    """See :meth:`Batch.matrix`."""
    if table is None or table.num_rows == 0 or not features:
        return None
    names = table.column_names
    if len(set(names)) != len(names):
        return None
    matrix = np.empty((table.num_rows, len(features)), dtype=np.float64)
    for j, feature in enumerate(features):
        try:
            column = table.column(feature)
        except KeyError:
            return None
        kind = column.type
        if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        matrix[:, j] = column.to_numpy()  # ints convert as float(int): correctly rounded
    return matrix if np.isfinite(matrix).all() else None


def csv_table(source: bytes | Path) -> pa.Table | None:
    """CSV bytes or a CSV file read by pyarrow, or None where it refuses them."""
    try:
        data = pa.BufferReader(source) if isinstance(source, bytes) else str(source)
        return pa_csv.read_csv(data, read_options=_CSV_READ)
    except (pa.ArrowException, OSError, ValueError):
        return None


def _json_rows_table(data: bytes, limit: int) -> tuple[pa.Table | None, Any]:
    """JSON rows (``{"data": [...]}`` or ``[...]``) as an Arrow table, with the parsed
    body; (None, body) when the fast reader does not take the rows plainly (then the
    checked path reads the body again), (None, None) when orjson refuses the body."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN literals, >64-bit integers, lone surrogates...
        return None, None
    rows = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not rows:
        return None, payload
    try:
        array = pa.array(rows)  # Arrow infers one struct type over every row, in C++
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None, payload
    kind = array.type
    if (
        not pa.types.is_struct(kind)
        or array.null_count
        or kind.num_fields > limit
        or any(not plain_kind(field.type) for field in kind)
    ):
        return None, payload
    return pa.Table.from_struct_array(array), payload


def plain_kind(kind: pa.DataType) -> bool:
    """A JSON scalar's Arrow type: integer, float, string, boolean or null."""
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )


class TableCache:
    """Dataset files as Arrow tables, each parsed once per version of the file.

    A file's version is its inode, size, modification and change times: a file
    rewritten or replaced (renamed over) is read again. A file modified within the
    last ``RACY_SECONDS`` is read but not kept, since a rewrite within the same
    clock tick would leave its times as they were (git's "racily clean" rule).
    The least recently used tables go beyond ``max_bytes`` (Arrow buffer sizes); a
    file over a quarter of it is never kept. Safe to share between threads: tables
    are immutable.
    """

    RACY_SECONDS = 2.0

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tables: OrderedDict[str, tuple[tuple[int, ...], pa.Table]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def table(self, path: Path) -> pa.Table | None:
        """``path`` read by :func:`csv_table` (None where pyarrow refuses it), or the
        table read before from the same version of the file."""
        try:
            st = os.stat(path)
        except OSError:
            return csv_table(path)  # and its answer for a file that went away
        version = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = str(path)
        with self._lock:
            known = self._tables.get(key)
            if known is not None and known[0] == version:
                self._tables.move_to_end(key)
                return known[1]
        table = csv_table(path)
        settled = time.time_ns() - st.st_mtime_ns > self.RACY_SECONDS * 1e9
        if table is None or not settled or 4 * table.nbytes > self.max_bytes:
            return table
        with self._lock:
            old = self._tables.pop(key, None)
            self._bytes += table.nbytes - (old[1].nbytes if old else 0)
            self._tables[key] = (version, table)
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._tables.popitem(last=False)
                self._bytes -= dropped.nbytes
        return table

    def __len__(self) -> int:
        return len(self._tables)


_TABLES: dict[int, TableCache] = {}


def table_cache(max_bytes: int) -> TableCache:
    """The process's :class:`TableCache` of ``max_bytes`` (one per configured size)."""
    cache = _TABLES.get(max_bytes)
    if cache is None:
        cache = _TABLES.setdefault(max_bytes, TableCache(max_bytes))
    return cache


def _file_batch(path: Path, settings: Settings) -> Batch:
    """The rows of a dataset file: CSV read by pyarrow (once per version of the file,
    ``api.dataset_cache_bytes``), other kinds by :func:`read_table`."""
    table = None
    if path.suffix.lower() == ".csv":
        limit = settings.api.dataset_cache_bytes
        table = table_cache(limit).table(path) if limit else csv_table(path)
    return Batch(path.name, table, lambda: read_table(path))


def batch_from_request(request: Any, settings: Settings) -> Batch:
    """The rows a request carries (:class:`Batch`); the same errors as
    :func:`frame_from_request`, which reads whatever the fast readers do not take."""
    mimetype = request.mimetype or ""

    def checked() -> pd.DataFrame:
        return frame_from_request(request, settings)[0]

    limit = column_limit(settings)
    if mimetype == "application/json" or mimetype.endswith("+json"):
        table, payload = _json_rows_table(request.get_data(), limit)
        path_keys = [k for k in PATH_KEYS if k in payload] if isinstance(payload, dict) else []
        if table is not None and not path_keys:
            return Batch("request body", table, checked)
        if path_keys and "data" not in payload:
            path = resolve_dataset_path(settings, payload[path_keys[0]])
            return _file_batch(path, settings)
    elif mimetype in CSV_TYPES:
        data = request.get_data()
        if data.strip():
            header, first = _csv_header(data, input_name="request body")
            if (
                len(header) <= limit
                and len(set(header)) == len(header)
                and len(first) <= len(header)
            ):
                table = csv_table(data)
                if table is not None:
                    return Batch("request body", table, checked)
    elif not mimetype:
        path_arg = next((request.args[k] for k in PATH_KEYS if k in request.args), None)
        if path_arg is not None and not request.get_data():
            return _file_batch(resolve_dataset_path(settings, path_arg), settings)
    frame, name = frame_from_request(request, settings)
    return Batch(name, None, frame)
