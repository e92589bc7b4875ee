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
the importer quarantines it). Lines of earlier versions, the bare JSON array, are read
as before. A writer holds a shared
``flock`` on its journal while it uses it, so a journal nobody locks is finished.
:mod:`~monitoring.capture.importer` moves the lines into the store.
"""

from __future__ import annotations

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
from sqlalchemy import make_url

from monitoring.config import Settings
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
