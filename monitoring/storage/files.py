"""File helpers shared by every step: atomic writes, hashes, table readers, locks.

A write goes to a temporary file in the destination folder, flushed to disk, then
renamed over the target, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from monitoring.exceptions import DataValidationError

if TYPE_CHECKING:  # pandas loads in the readers: opening the store must not pay for it
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".ndjson", ".parquet")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` (folder created if needed) through ``write(binary file object)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Atomically replace ``path`` with ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` atomically."""
    with open(src, "rb") as handle:
        return atomic_write(dst, lambda out: shutil.copyfileobj(handle, out))


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of ``path``, or None when missing: changes when it is replaced."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON from ``path``; return ``default`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV, JSON-lines or Parquet file by its extension.

    Raises :class:`DataValidationError` naming the file if its type is unsupported or
    it cannot be parsed.
    """
    import pandas as pd  # lazy: opening the store needs no pandas

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(path, lines=True, precise_float=True)  # floats exact, as CSV
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except _PARSE_ERRORS as exc:
        raise _unparsable(path, exc) from exc
    raise DataValidationError(
        f"{path.name}: unsupported file type '{suffix}'; expected one of {list(TABLE_SUFFIXES)}"
    )


def read_table_pieces(
    path: Path, rows: int, *, na_values: Mapping[str, Sequence[str]] | None = None
) -> Iterator[pd.DataFrame]:
    """:func:`read_table` in pieces: CSV streamed ``rows`` rows at a time, others whole.

    Each piece keeps its rows' numbers in the file (0 for the first data row, blank
    lines not counted) as its index; errors are those of :func:`read_table`, possibly
    after some pieces. ``na_values`` (CSV only): for each column, the exact strings
    that read as missing, instead of pandas' defaults (a column not named has none).
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        yield read_table(path)
        return
    import pandas as pd  # lazy: opening the store needs no pandas

    options: dict[str, Any] = {}
    if na_values is not None:
        options = {
            "keep_default_na": False,
            "na_values": {k: list(v) for k, v in na_values.items()},
        }
    try:
        with pd.read_csv(path, chunksize=rows, **options) as reader:
            yield from reader
    except _PARSE_ERRORS as exc:
        raise _unparsable(path, exc) from exc


_PARSE_ERRORS = (ValueError, OSError)  # pandas' ParserError is a ValueError


def _unparsable(path: Path, exc: Exception) -> DataValidationError:
    # The parser's message may name the file by its full path: only its name is shown.
    reason = str(exc).replace(str(path), path.name).replace(str(path.parent) + os.sep, "")
    kind = path.suffix.lower()[1:]
    return DataValidationError(f"{path.name}: cannot be parsed as {kind}: {reason}")


def list_tables(folder: Path) -> list[Path]:
    """Data files directly inside ``folder``, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TABLE_SUFFIXES
    )
