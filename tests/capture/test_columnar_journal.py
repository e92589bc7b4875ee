"""Columnar journal lines: a request's rows as one Arrow record, framed like JSON lines
(length, CRC-32, one line), read back to exactly the values sent; lines of the previous
version still import, in the same journal, each exactly once."""

from __future__ import annotations

import binascii
import json
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from monitoring.capture import import_journals, journal
from monitoring.config import Settings
from monitoring.storage.store import Store
from tests.capture.test_journal import stored

NOW = "2026-12-01T00:00:00+00:00"


def _inputs() -> pa.Table:
    return pa.table(
        {
            "corporation": pa.array(["acme", None, 'é/"x"\n'], pa.string()),
            "lastmonth_activity": pa.array([234, -(2**62), 0], pa.int64()),
            "lastyear_activity": pa.array([0.1, 1e-300, -2.2250738585072014e-308]),
            "exited": pa.array([1.5, float("nan"), float("inf")]),
            "flag": pa.array([True, False, None]),
        }
    )


def test_a_columnar_line_reads_back_exactly_what_was_captured() -> None:
    payload = journal.encode_batch("r1", NOW, "v1", _inputs(), [1, 0, 1], [0.25, None, 1.0])
    line = journal.frame_batch(41, payload)
    assert line.startswith(b"A%d " % len(payload)) and line.count(b"\n") == 1
    first, rows = journal.parse_line(line)  # type: ignore[misc]
    assert first == 41
    assert [r[:4] for r in rows] == [("r1", i, NOW, "v1") for i in range(3)]
    assert [r[5:] for r in rows] == [(1, 0.25), (0, None), (1, 1.0)]
    assert [json.loads(r[4]) for r in rows] == [
        {
            "corporation": "acme",
            "lastmonth_activity": 234,
            "lastyear_activity": 0.1,
            "exited": 1.5,
            "flag": True,
        },
        {
            "corporation": None,
            "lastmonth_activity": -(2**62),
            "lastyear_activity": 1e-300,
            "exited": None,  # NaN: JSON has none
            "flag": False,
        },
        {
            "corporation": 'é/"x"\n',
            "lastmonth_activity": 0,
            "lastyear_activity": -2.2250738585072014e-308,
            "exited": None,  # infinity neither
            "flag": None,
        },
    ]
    assert all(r[4].isascii() for r in rows)


def test_floats_round_trip_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(1000) * 10.0 ** rng.integers(-300, 300, 1000)
    table = pa.table({"a": values, "b": np.arange(1000)})
    payload = journal.encode_batch("r", NOW, None, table, [0] * 1000, [0.5] * 1000)
    first, rows = journal.parse_line(journal.frame_batch(None, payload))  # type: ignore[misc]
    assert first is None and rows[0][3] is None  # no ids in hand, no model version
    back = np.array([json.loads(r[4])["a"] for r in rows])
    assert back.tobytes() == values.tobytes()
    assert rows[5][4] == f'{{"a":{float(values[5])!r},"b":5}}'  # as row_json writes numbers


GOOD = journal.frame_batch(
    7, journal.encode_batch("r", NOW, "v", pa.table({"x": [1.0]}), [1], [0.75])
)


def _framed(payload: bytes, head: bytes = b"7") -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"A%d %08x %s %s\n" % (len(payload), crc, head, payload)


def _b64(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return binascii.b2a_base64(sink.getvalue().to_pybytes(), newline=False)


def _record(**metadata: str) -> pa.Table:
    inputs = pa.StructArray.from_arrays([pa.array([1.0])], names=["x"])
    table = pa.table({"inputs": inputs, "prediction": [1], "probability": [0.5]})
    base = {"request_id": "r", "captured_at": NOW, "model_version": "v", "has_version": "1"}
    return table.replace_schema_metadata({**base, **metadata})


@pytest.mark.parametrize(
    ("line", "kind", "detail"),
    [
        (GOOD[:-1], "torn", "the line has no end"),
        (GOOD[:40] + b"\n", "torn", "the frame says"),
        (GOOD[:30] + GOOD, "torn", "the frame says"),  # a torn line run into the next
        (b"A12\n", "torn", "the frame header is cut or damaged"),
        (b"A1 zzzzzzzz 7 a\n", "torn", "the frame header is cut or damaged"),
        (GOOD[:-3] + b"AA\n", "torn", "does not match its CRC-32"),
        (GOOD.replace(b" 7 ", b" 8 ", 1), "torn", "does not match its CRC-32"),
        (_framed(b"not base64!"), "bad_shape", "not an Arrow record"),
        (_framed(binascii.b2a_base64(b"\x00" * 12, newline=False)), "bad_shape", "Arrow"),
        (_framed(GOOD.split(b" ")[3][:-1], b"x"), "bad_shape", "first row id"),
        (_framed(_b64(pa.table({"x": [1]}))), "bad_shape", "not a capture record"),
        (_framed(_b64(_record(request_id=""))), "bad_shape", "the request id"),
        (_framed(_b64(_record(request_id="r" * 129))), "bad_shape", "the request id"),
        (_framed(_b64(_record(captured_at="t" * 33))), "bad_shape", "the capture time"),
        (_framed(_b64(_record(model_version="v" * 65))), "bad_shape", "model version"),
        (_framed(_b64(_record()), b"9223372036854775807"), "bad_shape", "first row id"),
        (_framed(_b64(_record()), b"0"), "bad_shape", "first row id"),
    ],
)
def test_a_damaged_columnar_line_is_refused_with_its_reason(
    line: bytes, kind: str, detail: str
) -> None:
    with pytest.raises(journal.BadLine) as caught:
        journal.parse_line(line)
    assert caught.value.kind == kind and detail in caught.value.detail


def test_a_nan_probability_is_refused() -> None:
    table = _record()
    table = table.set_column(2, "probability", pa.array([float("nan")]))
    with pytest.raises(journal.BadLine, match="a probability"):
        journal.parse_line(_framed(_b64(table.replace_schema_metadata(_record().schema.metadata))))


def test_json_lines_of_the_previous_version_and_columnar_lines_import_once(
    settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    """An upgrade finds journals of the previous version (JSON lines, framed or bare) on
    disk: their rows import with the new lines, each exactly once."""
    folder = journal.journal_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    old = ["old-1", NOW, "v", ["x"], [[1.0], [2.5]], [1, 0], [0.5, 0.25]]
    bare = json.dumps([None, "old-2", NOW, "v", ["x"], [[3.0]], [1], [0.75]]).encode() + b"\n"
    new = journal.encode_batch("new-1", NOW, "v", pa.table({"x": [4.0, 5.0]}), [0, 1], [0.1, 0.9])
    path = folder / "host_1_abc.jsonl"
    path.write_bytes(journal.encode_line(101, old) + bare + journal.frame_batch(201, new))
    import_journals(store, settings)
    import_journals(store, settings)  # nothing twice
    assert [(r[1], r[2]) for r in stored(store, "old-1")] == [(0, 101), (1, 102)]
    assert [r[1] for r in stored(store, "old-2")] == [0]
    assert [(r[1], r[2]) for r in stored(store, "new-1")] == [(0, 201), (1, 202)]
