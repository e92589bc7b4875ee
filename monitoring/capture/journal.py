"""Capture journals: the host-local files captured rows wait in before the record store.

A process appends each captured request as one framed line to its own journal in
:func:`journal_folder` (one folder per store under ``capture.journal_path``):
``@<length> <crc32> <payload>\n``, the payload a compact JSON array ``[first row id or
null, request_id, captured_at, model_version, columns, inputs, predictions,
probabilities]`` (ASCII, so it never holds a newline). The first row id is null when
the process had no ids in hand (the store was unreachable); the importer gives those
rows ids. The length and CRC-32 of the payload tell a whole line from a torn one (a
write cut short by a full disk or a crash); a writer whose write failed starts its next
line on a fresh line, so a torn line never runs into the next one and a reader only
has to skip to the next newline (:func:`parse_line` raises :class:`BadLine` for it and
the importer quarantines it).

A request whose rows came through the columnar readers is journalled as one Arrow
record instead (:func:`encode_batch`, :func:`frame_batch`): ``A<length> <crc32> <first
row id or -> <payload>\n``, the payload the base64 of an Arrow IPC stream holding one
record batch (a struct column ``inputs`` with the request's columns as sent, ``prediction``
and ``probability``; the request id, capture time and model version in its schema
metadata), the CRC-32 over the row id and the payload. Values keep their exact binary
form; the importer writes each row's inputs as a JSON object. Lines of earlier
versions (the ``@`` frame, or the bare JSON array before it) are read as before. A
writer holds a shared
``flock`` on its journal while it uses it, so a journal nobody locks is finished.
:mod:`~monitoring.capture.importer` moves the lines into the store.
"""

from __future__ import annotations

import binascii
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import socket
import uuid
import zlib
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import make_url

from monitoring.config import Settings
from monitoring.data.payloads import plain_kind
from monitoring.storage.engine import safe_url, sqlite_file

IMPORT_BATCH = 256 << 10  # bytes of journal imported per transaction (short lock holds)
# A journal's name starts with the host's: names are unique across the hosts of a store.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


def row_json(columns: list[str] | None, rows: list[Any]) -> list[str]:
    """One compact JSON object per row of ``records._inputs``' (columns, rows).

    Finite floats are formatted with ``repr`` (what ``json.dumps`` writes for a float)
    through a template made once per column list.
    """
    if columns is None:
        return list(rows)
    template = _json_template(tuple(columns))
    return [template % tuple(row) for row in rows]


@functools.lru_cache(maxsize=16)
def _json_template(columns: tuple[str, ...]) -> str:
    body = ",".join(json.dumps(c).replace("%", "%%") + ":%r" for c in columns)
    return "{" + body + "}"


def encode_line(first: int | None, request: list[Any]) -> bytes:
    """The journal line of one captured request; ``request`` as ``writer.insert`` takes it."""
    payload = json.dumps([first, *request], separators=(",", ":")).encode()
    return b"@%d %08x %s\n" % (len(payload), zlib.crc32(payload), payload)


# Arrow types of captured input columns: what the columnar readers give for flat values.
def capturable(kind: pa.DataType) -> bool:
    """Whether an input column of this Arrow type is journalled as an Arrow record."""
    return plain_kind(kind) or pa.types.is_large_string(kind)


def table_struct(table: pa.Table) -> pa.StructArray:
    """The rows of ``table`` as one struct array (its columns as the fields)."""
    columns = [column.combine_chunks() for column in table.columns]
    return pa.StructArray.from_arrays(columns, names=table.column_names)


def encode_batch(
    request_id: str,
    captured_at: str,
    model_version: str | None,
    inputs: pa.Table,
    predictions: np.ndarray | list[int],
    probabilities: np.ndarray | list[float | None],
) -> bytes:
    """The payload of a columnar journal line (base64 of an Arrow IPC stream), ready for
    :func:`frame_batch` once the first row id is known. ``inputs`` holds
    :func:`capturable` columns."""
    struct = table_struct(inputs)
    batch = pa.RecordBatch.from_arrays(
        [
            struct,
            pa.array(predictions, type=pa.int64()),
            pa.array(probabilities, type=pa.float64()),
        ],
        schema=pa.schema(
            [
                pa.field("inputs", struct.type),
                pa.field("prediction", pa.int64()),
                pa.field("probability", pa.float64()),
            ],
            metadata={
                "request_id": request_id,
                "captured_at": captured_at,
                "model_version": "" if model_version is None else model_version,
                "has_version": "1" if model_version is not None else "0",
            },
        ),
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return binascii.b2a_base64(sink.getvalue().to_pybytes(), newline=False)


def frame_batch(first: int | None, payload: bytes) -> bytes:
    """The journal line of an :func:`encode_batch` payload whose rows start at ``first``."""
    head = b"-" if first is None else b"%d" % first
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"A%d %08x %s %s\n" % (len(payload), crc, head, payload)


def _batch_record(line: bytes) -> tuple[int | None, list[tuple[Any, ...]]]:
    """:func:`parse_line` of a columnar line."""
    body = line[1:-1]
    parts = body.split(b" ", 3)
    if len(parts) != 4 or not parts[0].isdigit() or len(parts[1]) != 8:
        raise BadLine("torn", "the frame header is cut or damaged")
    size, crc_text, head, payload = parts
    if len(payload) != int(size):
        raise BadLine("torn", f"the frame says {int(size)} bytes, the line holds {len(payload)}")
    try:
        crc = int(crc_text, 16)
    except ValueError:
        raise BadLine("torn", "the frame header is cut or damaged") from None
    if zlib.crc32(payload, zlib.crc32(head)) != crc:
        raise BadLine("torn", "the payload does not match its CRC-32")
    if head != b"-" and not head.isdigit():
        raise BadLine("bad_shape", "the first row id is not a positive 64-bit integer")
    first = None if head == b"-" else int(head)
    try:
        reader = pa.ipc.open_stream(binascii.a2b_base64(payload, strict_mode=True))
        table = reader.read_all()
    except (binascii.Error, pa.ArrowException, ValueError) as exc:
        raise BadLine("bad_shape", f"the payload is not an Arrow record ({exc})") from None
    return first, _batch_rows(first, table)


def _batch_rows(first: int | None, table: pa.Table) -> list[tuple[Any, ...]]:
    """The table rows of a decoded columnar record, after the checks of :func:`_check`."""

    def bad(what: str) -> BadLine:
        return BadLine("bad_shape", what)

    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if table.column_names != ["inputs", "prediction", "probability"]:
        raise bad("not a capture record (columns inputs, prediction, probability)")
    kinds = [field.type for field in table.schema]
    if not (
        pa.types.is_struct(kinds[0])
        and kinds[1] == pa.int64()
        and kinds[2] == pa.float64()
        and all(capturable(field.type) for field in kinds[0])
    ):
        raise bad("the columns of the record are not of the capture types")
    request_id, now = meta.get("request_id"), meta.get("captured_at")
    version = meta.get("model_version") if meta.get("has_version") == "1" else None
    if not (request_id and len(request_id) <= 128):
        raise bad("the request id is not a string of 1 to 128 characters")
    if not (now is not None and len(now) <= 32):
        raise bad("the capture time is not a string of up to 32 characters")
    if version is not None and len(version) > 64:
        raise bad("the model version is not a string of up to 64 characters")
    count = table.num_rows
    if first is not None and not (0 < first and first + count <= _INT64):
        raise bad("the first row id is not a positive 64-bit integer")
    inputs = table.column("inputs").combine_chunks()
    if inputs.null_count or table.column("prediction").null_count:
        raise bad("a row has no inputs or no prediction")
    probabilities = table.column("probability").to_numpy(zero_copy_only=False)
    if not np.isfinite(probabilities[~np.isnan(probabilities)]).all() or (
        np.isnan(probabilities).sum() != table.column("probability").null_count
    ):
        raise bad("a probability is not a finite number or null")
    texts = inputs_json(inputs)
    predictions = table.column("prediction").to_pylist()
    return [
        (request_id, i, now, version, text, prediction, probability)
        for i, (text, prediction, probability) in enumerate(
            zip(texts, predictions, table.column("probability").to_pylist(), strict=True)
        )
    ]


def inputs_json(inputs: pa.StructArray) -> list[str]:
    """One compact JSON object per row of a struct array (missing and non-finite values
    as null, text ASCII-escaped), as ``row_json`` writes numbers."""
    names = [field.name for field in inputs.type]
    values: list[list[Any]] = []
    plain = True  # every column an integer or a finite float without nulls
    for i, field in enumerate(inputs.type):
        column = inputs.field(i)
        kind = field.type
        if pa.types.is_floating(kind):
            array = column.to_numpy(zero_copy_only=False).astype(np.float64)
            finite = np.isfinite(array)
            if not finite.all():
                plain = False
                listed = array.tolist()
                values.append([v if ok else None for v, ok in zip(listed, finite, strict=True)])
                continue
            values.append(array.tolist())
        else:
            values.append(column.to_pylist())
        if not pa.types.is_integer(kind) and not pa.types.is_floating(kind) or column.null_count:
            plain = False
    rows = list(zip(*values, strict=True)) if values else [()] * len(inputs)
    if plain:
        return row_json(names, rows)
    encode = json.JSONEncoder(separators=(",", ":")).encode
    return [encode(dict(zip(names, row, strict=True))) for row in rows]


class BadLine(ValueError):
    """A journal line that holds no capture: ``kind`` is one of :data:`BAD_KINDS`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


# Why a line is quarantined: a torn or corrupt frame, a payload that is not JSON, or JSON
# that is not a capture record (also what the store refuses to take).
BAD_KINDS = ("torn", "not_json", "bad_shape", "rejected")
# Integers no store takes; PostgreSQL's 32-bit columns refuse more (then: "rejected").
_INT64 = 2**63 - 1


def _payload(line: bytes) -> bytes:
    """The payload of a framed line after checking its length and checksum, or a legacy
    line as it is."""
    body = line[:-1] if line.endswith(b"\n") else line
    if not line.endswith(b"\n"):
        raise BadLine("torn", "the line has no end (its writer stopped in the middle)")
    if not body.startswith(b"@"):
        return body  # a line of an earlier version: bare JSON
    header = body.split(b" ", 2)
    if len(header) != 3 or not header[0][1:].isdigit() or len(header[1]) != 8:
        raise BadLine("torn", "the frame header is cut or damaged")
    length, payload = int(header[0][1:]), header[2]
    if len(payload) != length:
        raise BadLine("torn", f"the frame says {length} bytes, the line holds {len(payload)}")
    try:
        crc = int(header[1], 16)
    except ValueError:
        raise BadLine("torn", "the frame header is cut or damaged") from None
    if zlib.crc32(payload) != crc:
        raise BadLine("torn", "the payload does not match its CRC-32")
    return payload


def parse_line(line: bytes) -> tuple[int | None, list[tuple[Any, ...]]] | None:
    """The first row id (or None) and the table rows, without ids, of one journal line.

    Each row is ``(request_id, row_index, captured_at, model_version, inputs,
    prediction, probability)``. None for an empty line (a writer's fresh start after a
    failed write). Raises :class:`BadLine` for a line that holds no capture record, or
    one no store could take (checked here: types, sizes, finite numbers, 64-bit integers).
    """
    if line in (b"\n", b""):
        return None
    if line.startswith(b"A"):
        if not line.endswith(b"\n"):
            raise BadLine("torn", "the line has no end (its writer stopped in the middle)")
        return _batch_record(line)
    payload = _payload(line)
    try:
        record = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadLine("not_json", f"the payload is not JSON ({exc})") from None
    if not isinstance(record, list) or len(record) != 8:
        raise BadLine("bad_shape", "not an array of 8 values")
    first, request_id, now, version, columns, inputs, predictions, probabilities = record
    _check(first, request_id, now, version, columns, inputs, predictions, probabilities)
    rows = [
        (request_id, i, now, version, row_inputs, pred, prob)
        for i, (row_inputs, pred, prob) in enumerate(
            zip(row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]
    return first, rows


def _check(
    first: Any,
    request_id: Any,
    now: Any,
    version: Any,
    columns: Any,
    inputs: Any,
    predictions: Any,
    probabilities: Any,
) -> None:
    """Raise :class:`BadLine` unless the values make rows the store takes."""

    def bad(what: str) -> BadLine:
        return BadLine("bad_shape", what)

    if not (isinstance(request_id, str) and 0 < len(request_id) <= 128):
        raise bad("the request id is not a string of 1 to 128 characters")
    if not (isinstance(now, str) and len(now) <= 32):
        raise bad("the capture time is not a string of up to 32 characters")
    if not (version is None or (isinstance(version, str) and len(version) <= 64)):
        raise bad("the model version is not a string of up to 64 characters")
    if not (isinstance(inputs, list) and isinstance(predictions, list)):
        raise bad("inputs and predictions are not arrays")
    if not isinstance(probabilities, list) or not len(inputs) == len(predictions) == len(
        probabilities
    ):
        raise bad("inputs, predictions and probabilities differ in length")
    if first is not None and not (
        type(first) is int and 0 < first and first + len(predictions) <= _INT64
    ):
        raise bad("the first row id is not a positive 64-bit integer")
    if any(type(p) is not int or not -_INT64 <= p <= _INT64 for p in predictions):
        raise bad("a prediction is not a 64-bit integer")
    if any(
        p is not None and (type(p) not in (int, float) or not math.isfinite(p))
        for p in probabilities
    ):
        raise bad("a probability is not a finite number or null")
    if columns is None:
        if any(type(row) is not str for row in inputs):
            raise bad("an input row is not a JSON object text")
        return
    if not (isinstance(columns, list) and all(type(c) is str for c in columns)):
        raise bad("the columns are not an array of strings")
    if any(type(row) is not list or len(row) != len(columns) for row in inputs):
        raise bad("an input row does not have one value per column")
    values = list(chain.from_iterable(inputs))
    try:
        finite = set(map(type, values)) <= {int, float} and bool(
            np.isfinite(np.array(values, dtype=np.float64)).all()
        )
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise bad("an input value is not a finite number")


def journal_folder(settings: Settings) -> Path:
    """Where this host keeps the capture journals of ``settings``' store.

    A folder per store under ``capture.journal_path``, so a line never reaches
    another store than the one it was captured for.
    """
    return _folder(settings.capture.journal_path, settings.database_url)


@functools.lru_cache(maxsize=16)
def _folder(journal_path: str, database_url: str) -> Path:
    url = make_url(database_url)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(url.database or "memory").stem)[:40]
    digest = hashlib.sha256(safe_url(database_url).encode()).hexdigest()[:10]
    return Path(journal_path) / f"{url.get_backend_name()}-{name}-{digest}"


def journal_folders(settings: Settings) -> list[Path]:
    """The folders whose journals are imported: :func:`journal_folder`, and for a SQLite
    store the ``<database>.capture-journal`` folder of earlier versions."""
    file = sqlite_file(settings.database_url)
    folders = [journal_folder(settings)]
    return folders if file is None else [*folders, Path(f"{file}.capture-journal")]


def journals(folders: list[Path]) -> list[Path]:
    """The journals in ``folders``, oldest process first within a folder."""
    return [path for folder in folders for path in sorted(folder.glob("*.jsonl"))]


def open_journal(folder: Path) -> tuple[int, Path]:
    """Create a journal in ``folder``; return its descriptor (read and append), holding its
    shared lock, and its path.

    Named ``<host>_<pid>_<random>.jsonl``; locked before it gets that name, so an
    importer never takes a new journal for a finished one. Readable, so that the rows of
    a journal deleted while in use can still be read from the descriptor.
    """
    name = f"{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    fd = os.open(folder / f".{name}.new", os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # held while the journal is in use: "owner alive"
    os.rename(folder / f".{name}.new", folder / f"{name}.jsonl")
    return fd, folder / f"{name}.jsonl"


def stage_journal(folder: Path, data: bytes) -> Path:
    """Write ``data`` to a new hidden file in ``folder`` (no importer takes it yet); its path.

    :func:`publish_journal` makes it a finished journal; on a failed write it is removed.
    """
    staged = folder / f".{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:12]}.new"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view, done = memoryview(data), 0
        while done < len(data):
            done += os.write(fd, view[done:])
        os.fsync(fd)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return staged


def publish_journal(staged: Path) -> Path:
    """Give a file of :func:`stage_journal` its journal name: imported as a finished one."""
    path = staged.with_name(staged.name[1:].removesuffix(".new") + ".jsonl")
    os.rename(staged, path)
    return path


def finished(path: Path) -> bool:
    """Whether no process writes ``path`` any more (nobody holds its shared lock)."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (FileNotFoundError, BlockingIOError):
        return False
    return True


def read_lines(path: Path, offset: int, *, finished: bool = False) -> tuple[list[bytes], bool]:
    """The complete lines of ``path`` from ``offset`` (about a batch), and whether they end it.

    An unfinished last line is left for next time, unless the journal is ``finished``
    (no writer will end it): then it is returned too, to be quarantined.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            lines = handle.readlines(IMPORT_BATCH)  # whole lines, until a batch is read
    except FileNotFoundError:
        return [], True
    unended = bool(lines) and not lines[-1].endswith(b"\n")  # only ever the file's last
    at_end = unended or sum(map(len, lines)) < IMPORT_BATCH
    if unended and not finished:
        lines.pop()  # still being written: next time
    return lines, at_end
