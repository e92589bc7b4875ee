"""Capture journals: the host-local files captured rows wait in before the record store.

A process appends each captured request as one JSON line to its own journal in
:func:`journal_folder` (one folder per store under ``capture.journal_path``): ``[first
row id or null, request_id, captured_at, model_version, columns, inputs, predictions,
probabilities]``. The first row id is null when the process had no ids in hand (the
store was unreachable); the importer gives those rows ids. A writer holds a shared
``flock`` on its journal while it uses it, so a journal nobody locks is finished.
:mod:`~monitoring.capture.importer` moves the lines into the store.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

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
    return (json.dumps([first, *request], separators=(",", ":")) + "\n").encode()


def parse_line(line: bytes) -> tuple[int | None, list[tuple[Any, ...]]]:
    """The first row id (or None) and the table rows, without ids, of one journal line.

    Each row is ``(request_id, row_index, captured_at, model_version, inputs,
    prediction, probability)``.
    """
    first, request_id, now, version, columns, inputs, predictions, probabilities = json.loads(line)
    rows = [
        (request_id, i, now, version, row_inputs, pred, prob)
        for i, (row_inputs, pred, prob) in enumerate(
            zip(row_json(columns, inputs), predictions, probabilities, strict=True)
        )
    ]
    return first, rows


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


def open_journal(folder: Path) -> int:
    """Create a journal in ``folder`` and return its descriptor, holding its shared lock.

    Named ``<host>_<pid>_<random>.jsonl``; locked before it gets that name, so an
    importer never takes a new journal for a finished one.
    """
    name = f"{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    fd = os.open(folder / f".{name}.new", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # held while the journal is in use: "owner alive"
    os.rename(folder / f".{name}.new", folder / f"{name}.jsonl")
    return fd


def finished(path: Path) -> bool:
    """Whether no process writes ``path`` any more (nobody holds its shared lock)."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (FileNotFoundError, BlockingIOError):
        return False
    return True


def read_lines(path: Path, offset: int) -> tuple[list[bytes], bool]:
    """The complete lines of ``path`` from ``offset`` (about a batch), and whether they end it."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            lines = handle.readlines(IMPORT_BATCH)  # whole lines, until a batch is read
    except FileNotFoundError:
        return [], True
    at_end = sum(map(len, lines)) < IMPORT_BATCH
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()  # still being written: next time
    return lines, at_end
