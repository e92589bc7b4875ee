"""Request payloads: JSON rows become the feature matrix, or a message naming row and column."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from werkzeug.datastructures import FileStorage

from monitoring.data import payloads
from monitoring.data.payloads import (
    frame_from_csv,
    frame_from_records,
    frame_from_upload,
    loads_json,
)
from monitoring.data.validation import to_numeric_columns
from monitoring.exceptions import BadRequestError, ColumnLimitError, DataValidationError
from tests.helpers import FEATURES, small_artifact

ROWS = [
    {"lastmonth_activity": 234, "lastyear_activity": 3, "number_of_employees": 10},
    {"lastmonth_activity": 14.5, "lastyear_activity": 2145, "number_of_employees": 99},
]


def test_records_fast_path_matches_pandas() -> None:
    fast = frame_from_records(ROWS, FEATURES)
    slow = pd.DataFrame.from_records(ROWS)
    assert list(fast.columns) == FEATURES
    assert np.array_equal(fast.to_numpy(dtype="float64"), slow.to_numpy(dtype="float64"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "column 'lastyear_activity' must be a number; row 1 has True"),
        ("3", "column 'lastyear_activity' must be a number; row 1 has '3'"),
        ([3], "column 'lastyear_activity' must be a number; row 1 has [3]"),
        (float("nan"), "column 'lastyear_activity' must be finite; row 1 has nan"),
        (float("-inf"), "column 'lastyear_activity' must be finite; row 1 has -inf"),
        (10**400, "column 'lastyear_activity' must be finite; row 1 has an integer of 401 digits"),
    ],
)
def test_records_that_are_not_plain_numbers_are_refused_by_row_and_column(
    value: object, message: str
) -> None:
    rows = [ROWS[0], {**ROWS[1], "lastyear_activity": value}]
    with pytest.raises(DataValidationError, match=re.escape(message)):
        frame_from_records(rows, FEATURES)


def test_plain_records_of_any_size_and_both_layouts_give_the_same_matrix() -> None:
    rows = [*ROWS, {**ROWS[0], "lastyear_activity": 2**70}]
    by_row = frame_from_records(rows, FEATURES)
    by_column = frame_from_records({c: [r[c] for r in rows] for c in FEATURES}, FEATURES)
    expected = np.array([[r[c] for c in FEATURES] for r in rows], dtype="float64")
    for frame in (by_row, by_column):
        assert list(frame.columns) == FEATURES
        assert np.array_equal(frame.to_numpy(), expected)
    assert by_row.to_numpy()[2, 1] == 1.1805916207174113e21


def test_rows_with_extra_or_missing_keys_keep_pandas_semantics(rng: np.random.Generator) -> None:
    extra = frame_from_records([{**ROWS[0], "corporation": "abc"}], FEATURES)
    assert list(extra.columns) == [*FEATURES, "corporation"]
    gap = frame_from_records([{**ROWS[0], "number_of_employees": None}], FEATURES)
    artifact, _ = small_artifact(LogisticRegression(), rng)
    with pytest.raises(DataValidationError, match="has a missing value at row 0"):
        artifact.predict(gap, input_name="request body")
    reordered = frame_from_records([dict(reversed(list(ROWS[0].items())))], FEATURES)
    assert list(reordered.columns) == FEATURES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "body: JSON nested too deeply", id="deep"),
        pytest.param(
            b'{"a": ["x", "\\ud800"]}',
            "body: the string at /a/1 is not valid Unicode",
            id="lone-high-surrogate",
        ),
        pytest.param(
            b'{"a/b": {"k": "\\uDC00"}}',
            "body: the string at /a/b/k is not valid Unicode",
            id="lone-low-surrogate-upper-case",
        ),
        pytest.param(b'"\\ud800"', "body: the string at / is not valid Unicode", id="top-level"),
        pytest.param(
            b"[" * 900 + b'"\\ud800"' + b"]" * 900,
            "body: the string at " + "/0" * 30 + "...0" + "/0" * 28 + " is not valid Unicode",
            id="deep-pointer-cut-short",
        ),
        pytest.param(
            b'{"' + b"k" * 100 + b'\\ud800": 1}',
            "body: the key " + "k" * 37 + "... in / is not valid Unicode",
            id="long-key-cut-short",
        ),
    ],
)
def test_loads_json_refuses_what_is_not_unicode_or_too_deep(text: bytes, message: str) -> None:
    with pytest.raises(BadRequestError, match=re.escape(message)):
        loads_json(text, input_name="body")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param(b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}, id="surrogate-pair"),
        pytest.param(b'{"a": "\\\\ud800"}', {"a": "\\ud800"}, id="escaped-backslash"),
        pytest.param(b"[" * 500 + b"]" * 500, [[[[]]]], id="500-deep"),
    ],
)
def test_loads_json_keeps_valid_text(text: bytes, value: object) -> None:
    parsed = loads_json(text)
    if isinstance(value, dict):
        assert parsed == value
    else:
        depth = 0
        while parsed:
            parsed, depth = parsed[0], depth + 1
        assert depth == 499


def test_loads_json_leaves_invalid_json_to_the_caller() -> None:
    with pytest.raises(ValueError, match="Expecting property name") as caught:
        loads_json(b"{oops: 1}")
    assert not isinstance(caught.value, BadRequestError)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        pytest.param(b"a,b,c\n1,2,3\n", None, "", id="plain"),
        pytest.param(b"\xef\xbb\xbfa,b\n1,2\n", None, "", id="byte-order-mark"),
        pytest.param(
            b"\n\na,b,a\n1,2,3\n",
            DataValidationError,
            "x: duplicated column(s) 'a'",
            id="duplicate-after-blank-lines",
        ),
        pytest.param(
            b'"a,b",c,"a,b"\n1,2,3\n',
            DataValidationError,
            "x: duplicated column(s) 'a,b'",
            id="duplicate-quoted",
        ),
        pytest.param(b",a,\n1,2,3\n", None, "", id="two-unnamed-columns"),
        pytest.param(
            b"a,b\n\n1,2,3\n",
            BadRequestError,
            "x: is not valid CSV: row 0 has 3 fields; the header has 2",
            id="first-row-longer-than-the-header",
        ),
        pytest.param(b"a,b\n1\n", None, "", id="first-row-shorter-than-the-header"),
        pytest.param(
            b"a,b,c,d\n1,2,3,4\n", ColumnLimitError, "x: has 4 columns; the limit is 3", id="wide"
        ),
        pytest.param(
            b'"a\nb",c,d,e\n1,2,3,4\n',
            ColumnLimitError,
            "x: has 4 columns; the limit is 3",
            id="wide-with-a-newline-in-a-name",
        ),
        pytest.param(  # past the csv module's default 128 KiB field limit: still data
            b'"' + b"n" * 200_000 + b'",b\n1,2\n',
            None,
            "",
            id="header-field-over-128-kib",
        ),
    ],
)
def test_csv_header_is_checked_before_parsing(
    data: bytes, error: type[Exception] | None, message: str
) -> None:
    if error is None:
        frame = frame_from_csv(data, input_name="x", max_columns=3)
        assert len(frame) == 1
    else:
        with pytest.raises(error, match=re.escape(message)):
            frame_from_csv(data, input_name="x", max_columns=3)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(
            pd.DataFrame({"x": [True, False]}),
            "x: column 'x' must be numeric; row 0 has True",
            id="bool",
        ),
        pytest.param(
            pd.DataFrame({"x": pd.array([None, False], dtype="boolean")}),
            "x: column 'x' must be numeric; row 1 has False",
            id="nullable-bool",
        ),
        pytest.param(
            pd.DataFrame({"x": pd.to_datetime(["2020-01-01"]).as_unit("ns")}),
            "x: column 'x' must be numeric; it holds datetime64[ns] values",
            id="datetime",
        ),
        pytest.param(
            pd.DataFrame({"x": pd.to_timedelta([1], unit="s").as_unit("s")}),
            "x: column 'x' must be numeric; it holds timedelta64[s] values",
            id="timedelta",
        ),
        pytest.param(
            pd.DataFrame({"x": ["y" * 500]}),
            "x: column 'x' must be numeric; row 0 has '" + "y" * 27 + "..." + "y" * 28 + "'",
            id="long-text-cut-short",
        ),
    ],
)
def test_numbers_are_numbers(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataValidationError, match=re.escape(message)):
        to_numeric_columns(frame, ["x"], input_name="x", allow_missing=True)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("rows.jsonl", b'{"a": 1, "b": 2}\n\n{"a": 3, "b": 4}\n', id="json-lines"),
        pytest.param("rows.json", b'{"a": 1, "b": 2}\n{"a": 3, "b": 4}', id="json-named-lines"),
        pytest.param("rows.json", b'[{"a": 1, "b": 2},\n {"a": 3, "b": 4}]', id="json-list"),
        pytest.param("rows.json", b'{"data": {"a": [1, 3], "b": [2, 4]}}', id="json-body"),
    ],
)
def test_json_uploads_are_rows_by_the_rules_of_a_json_body(name: str, data: bytes) -> None:
    upload = FileStorage(io.BytesIO(data), filename=name)
    frame, shown_name = frame_from_upload(upload, features=["a", "b"], max_columns=2)
    assert shown_name == name
    assert frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


@pytest.mark.parametrize(
    ("name", "data", "error", "message"),
    [
        pytest.param(
            "x.jsonl", b"\n \n", DataValidationError, "x.jsonl: contains no rows", id="empty"
        ),
        pytest.param(
            "x.json",
            b'{"a": 1}\n{"a": ',
            BadRequestError,
            "x.json: is not valid JSON lines (line 2)",
            id="broken-second-line",
        ),
        pytest.param(
            "x.json",
            b'[{"a": 1, "b": 2, "c": 3}]',
            ColumnLimitError,
            "x.json: has 3 columns; the limit is 2",
            id="wide-list",
        ),
    ],
)
def test_json_uploads_that_are_not_rows(
    name: str, data: bytes, error: type[Exception], message: str
) -> None:
    upload = FileStorage(io.BytesIO(data), filename=name)
    with pytest.raises(error, match=re.escape(message)):
        frame_from_upload(upload, features=["a", "b"], max_columns=2)


# -- dataset files: parsed once per version of the file ----------------------------------
def _old(path: Path, seconds: float = 10) -> None:
    """Date ``path`` ``seconds`` back (past the cache's racy window)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_dataset_file_is_parsed_once_per_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    _old(path)
    reads: list[Path] = []
    real_read = payloads.csv_table
    monkeypatch.setattr(payloads, "csv_table", lambda p: reads.append(p) or real_read(p))
    cache = payloads.TableCache(1 << 20)
    first = cache.table(path)
    assert first is not None and first.to_pydict() == {"a": [1, 3], "b": [2, 4]}
    assert cache.table(path) is first and len(reads) == 1
    # Rewritten in place with the same size: its times change, so it is read again.
    path.write_text("a,b\n5,6\n7,8\n")
    _old(path, 5)
    assert cache.table(path).to_pydict() == {"a": [5, 7], "b": [6, 8]}
    # Replaced by a rename (the atomic way): another inode.
    new = tmp_path / "new.csv"
    new.write_text("a,b\n9,9\n9,9\n")
    _old(new)
    new.replace(path)
    assert cache.table(path).to_pydict() == {"a": [9, 9], "b": [9, 9]}
    assert len(reads) == 3 and len(cache) == 1


def test_a_file_just_written_is_read_every_time(tmp_path: Path) -> None:
    """Within the racy window a rewrite could keep the file's times: nothing is kept."""
    path = tmp_path / "rows.csv"
    path.write_text("a\n1\n")
    cache = payloads.TableCache(1 << 20)
    assert cache.table(path).to_pydict() == {"a": [1]}
    assert len(cache) == 0
    _old(path)
    cache.table(path)
    assert len(cache) == 1


def test_the_cache_stays_within_its_bytes(tmp_path: Path) -> None:
    """Least recently used tables go first; a file over a quarter of the budget is
    never kept."""
    tables = {}
    for name in "abcde":
        path = tmp_path / f"{name}.csv"
        path.write_text("x\n" + "\n".join(str(i) for i in range(100)) + "\n")  # 800 bytes
        _old(path)
        tables[name] = path
    cache = payloads.TableCache(3200)
    for name in "abcda":  # a used again: b is now the least recently used
        cache.table(tables[name])
    assert cache._bytes == 3200
    cache.table(tables["e"])
    assert list(cache._tables) == [str(tables[n]) for n in "cdae"]
    assert cache._bytes == 3200
    big = tmp_path / "big.csv"
    big.write_text("x\n" + "\n".join(str(i) for i in range(1000)) + "\n")
    _old(big)
    assert cache.table(big).num_rows == 1000
    assert str(big) not in cache._tables
