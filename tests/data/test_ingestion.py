"""Ingestion on the shipped data and on bad files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.config import Settings
from monitoring.data import ingestion
from monitoring.data.ingestion import (
    check_frame,
    find_new_files,
    ingest,
    read_record,
    validate_frame,
    write_csv,
)
from monitoring.data.profile import ProfileParts, profile_frame
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import ConfigError, DataValidationError, MonitoringError
from monitoring.storage.files import list_tables, read_table, sha256_file
from monitoring.storage.store import Store
from tests.helpers import assert_same_profile


def test_practice_data_reads_36_rows_and_keeps_26(settings: Settings, store: Store) -> None:
    result = ingest(settings, store=store)
    assert (result.rows_read, result.rows_kept) == (36, 26)
    final = pd.read_csv(settings.finaldata_file)
    assert list(final.columns) == list(settings.columns)
    assert len(final) == 26
    assert not final.duplicated().any()

    per_file = {
        r["file_name"]: (r["rows_read"], r["rows_kept"], r["duplicates_removed"])
        for r in result.records
    }
    assert per_file == {"dataset1.csv": (17, 17, 0), "dataset2.csv": (19, 9, 10)}

    record = read_record(settings.ingested_record_file)
    assert [r["file_name"] for r in record] == ["dataset1.csv", "dataset2.csv"]
    assert [r["rows_kept"] for r in record] == ["17", "9"]
    assert all(len(r["sha256"]) == 64 and r["status"] == "accepted" for r in record)

    rows = store.ingestions()
    assert {(r["file_name"], r["rows_read"], r["rows_kept"]) for r in rows} == {
        ("dataset1.csv", 17, 17),
        ("dataset2.csv", 19, 9),
    }
    assert store.timings("ingestion")[0]["rows"] == 36


def test_source_data_keeps_all_26_rows(make_settings, store: Store) -> None:
    settings = make_settings(input_folder_path="data/sourcedata")
    result = ingest(settings, store=store)
    assert (result.rows_read, result.rows_kept) == (26, 26)


def test_profile_is_written_for_the_api(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    profile = json.loads(settings.profile_file.read_text())
    final = pd.read_csv(settings.finaldata_file)
    by_column = {row["column"]: row for row in profile["summary"]}
    assert list(by_column) == list(settings.features)
    assert by_column["lastmonth_activity"]["mean"] == pytest.approx(final.lastmonth_activity.mean())
    assert by_column["number_of_employees"]["median"] == 14.0
    assert [m["missing_share"] for m in profile["missing"]] == [0.0] * 5


def test_the_profile_and_the_drift_profile_are_stored(make_settings, store: Store) -> None:
    """The store holds what the web tier serves: the exported profile and the drift
    profile of the ingested features, fitted with the drift options."""
    settings = make_settings(
        drift={"psi_bins": 4, "columns": {"lastmonth_activity": {"kind": "categorical"}}}
    )
    (settings.input_folder_path / "gaps.csv").write_text(GOOD + "gapp,,5,6,1\nhole,3,,7,0\n")
    assert store.data_profile() is None
    ingest(settings, store=store)
    stored = store.data_profile()
    assert stored is not None and stored["has_reference"] is True
    assert stored["profile"] == json.loads(settings.profile_file.read_text())
    assert stored["data_sha256"] == sha256_file(settings.finaldata_file)
    missing = {m["column"]: m["missing_count"] for m in stored["profile"]["missing"]}
    assert (missing["lastmonth_activity"], missing["lastyear_activity"]) == (1, 1)

    reference = ReferenceProfile.load(io.BytesIO(store.data_profile_reference(stored["id"])))
    expected = ReferenceProfile.from_options(settings.drift).fit(
        read_table(settings.finaldata_file), settings.features
    )
    assert_same_profile(reference, expected)
    assert reference.kinds_["lastmonth_activity"] == "categorical"
    assert (reference.psi_bins, reference.n_rows_) == (4, 28)
    assert reference.profiles_["lastyear_activity"].n_null == 1


def test_drift_reference_takes_the_parts_column_by_column(settings: Settings) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "corporation": pd.array([f"c{i}" for i in range(300)], dtype="string"),
            "lastmonth_activity": rng.integers(0, 2000, 300),
            "lastyear_activity": np.where(rng.random(300) < 0.1, np.nan, rng.normal(size=300)),
            "number_of_employees": rng.integers(1, 5, 300),
            "exited": rng.integers(0, 2, 300),
        }
    )
    parts = ProfileParts(settings)
    parts.add(frame.iloc[:120])
    parts.add(frame.iloc[120:])
    assert parts.profile()["rows"] == 300
    reference = ReferenceProfile.load(io.BytesIO(parts.drift_profile(settings.drift)))
    assert parts.features == {}  # the values went to the drift profile
    expected = ReferenceProfile.from_options(settings.drift).fit(frame, settings.features)
    assert_same_profile(reference, expected)


GOOD = "corporation,lastmonth_activity,lastyear_activity,number_of_employees,exited\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "corporation,lastmonth_activity,lastyear_activity,exited\nabcd,1,2,0\n",
            "bad.csv: missing column(s) 'number_of_employees'",
        ),
        (GOOD.strip() + ",region\nabcd,1,2,3,0,north\n", "bad.csv: unexpected column(s) 'region'"),
        (
            GOOD + "abcd,1,lots,3,0\n",
            "bad.csv, line 2: column 'lastyear_activity' must be numeric, got 'lots'",
        ),
        (
            GOOD + "abcd,1,2,3,2\n",
            "bad.csv, line 2: target column 'exited' must hold 0 or 1, got 2",
        ),
        ("", "bad.csv: cannot be parsed as csv"),
    ],
)
def test_a_bad_file_is_rejected_and_the_others_ingest(
    settings: Settings, store: Store, content: str, message: str
) -> None:
    (settings.input_folder_path / "bad.csv").write_text(content)
    result = ingest(settings, store=store)
    assert result.rows_kept == 26
    [rejected] = result.rejected
    assert rejected["file_name"] == "bad.csv"
    assert rejected["message"].startswith(message)
    statuses = {r["file_name"]: r["status"] for r in read_record(settings.ingested_record_file)}
    assert statuses == {
        "bad.csv": "rejected",
        "dataset1.csv": "accepted",
        "dataset2.csv": "accepted",
    }


def test_jsonl_and_parquet_files_are_ingested_too(settings: Settings, store: Store) -> None:
    extra = pd.DataFrame(
        {
            "corporation": ["zzzz", "yyyy"],
            "lastmonth_activity": [1, 2],
            "lastyear_activity": [3, 4],
            "number_of_employees": [5, 6],
            "exited": [0, 1],
        }
    )
    extra.iloc[:1].to_json(settings.input_folder_path / "more.jsonl", orient="records", lines=True)
    extra.iloc[1:].to_parquet(settings.input_folder_path / "more.parquet")
    (settings.input_folder_path / "notes.txt").write_text("not data")
    result = ingest(settings, store=store)
    assert (result.rows_read, result.rows_kept) == (38, 28)
    assert sorted(r["file_name"] for r in result.records) == [
        "dataset1.csv",
        "dataset2.csv",
        "more.jsonl",
        "more.parquet",
    ]


def test_the_same_rows_in_csv_jsonl_and_parquet_keep_one_copy_with_exact_values(
    make_settings, project: Path, store: Store
) -> None:
    rng = np.random.default_rng(14)
    text = [f"{v:.4f}" for v in rng.random(240)]  # 0.1138 read as 0.11380000000000001 before
    frame = pd.DataFrame(
        {
            "corporation": [f"c{i}" for i in range(240)],
            "lastmonth_activity": [float(v) for v in text],
            "lastyear_activity": rng.integers(0, 1000, 240),
            "number_of_employees": rng.integers(1, 500, 240),
            "exited": rng.integers(0, 2, 240),
        }
    )
    folder = project / "data" / "mixed"
    folder.mkdir()
    frame.to_csv(folder / "a.csv", index=False)
    frame.to_json(folder / "b.jsonl", orient="records", lines=True)
    frame.to_parquet(folder / "c.parquet")
    settings = make_settings(input_folder_path="data/mixed")
    result = ingest(settings, store=store)
    assert (result.rows_read, result.rows_kept) == (720, 240)
    kept = pd.read_csv(settings.finaldata_file, dtype={"lastmonth_activity": str})
    assert kept["lastmonth_activity"].tolist() == [repr(float(v)) for v in text]
    assert read_table(folder / "b.jsonl")["lastmonth_activity"].tolist() == [float(v) for v in text]


def test_missing_values_are_kept_and_reported(settings: Settings, store: Store) -> None:
    (settings.input_folder_path / "gaps.csv").write_text(GOOD + "gapp,,5,6,1\n")
    ingest(settings, store=store)
    final = pd.read_csv(settings.finaldata_file)
    assert len(final) == 27
    assert final.lastmonth_activity.isna().sum() == 1


def test_when_every_file_is_rejected_previous_outputs_stay(
    settings: Settings, store: Store
) -> None:
    ingest(settings, store=store)
    before = settings.finaldata_file.read_bytes()
    for path in settings.input_folder_path.iterdir():
        path.write_text("corporation\nx\n")
    with pytest.raises(DataValidationError, match="could be ingested: dataset1.csv: missing"):
        ingest(settings, store=store)
    assert settings.finaldata_file.read_bytes() == before


def test_an_empty_input_folder_is_an_error(make_settings, project: Path, store: Store) -> None:
    (project / "data" / "empty").mkdir()
    settings = make_settings(input_folder_path="data/empty")
    with pytest.raises(MonitoringError, match="holds no data file to ingest"):
        ingest(settings, store=store)


def test_new_files_are_found_by_name_and_content(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    record = settings.ingested_record_file.read_text()
    assert find_new_files(settings, record) == []
    path = settings.input_folder_path / "dataset1.csv"
    path.write_text(path.read_text() + "newc,1,2,3,0\n")
    assert [p.name for p in find_new_files(settings, record)] == ["dataset1.csv"]


def merge_frames(frames: list[tuple[str, pd.DataFrame]]) -> tuple[pd.DataFrame, list[int]]:
    """The merge ingestion streams, in memory with pandas: concatenate, drop exact
    duplicate rows (first kept); also how many rows of each frame survived."""
    combined = pd.concat([f for _, f in frames], ignore_index=True)
    duplicated = combined.duplicated(keep="first").to_numpy()
    bounds = np.cumsum([0] + [len(f) for _, f in frames])
    kept = [int((~duplicated[a:b]).sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return combined.loc[~duplicated].reset_index(drop=True), kept


def test_merge_keeps_the_first_of_each_duplicate() -> None:
    a = pd.DataFrame({"x": [1, 1, 2]})
    b = pd.DataFrame({"x": [2, 3]})
    merged, kept = merge_frames([("a", a), ("b", b)])
    assert merged["x"].tolist() == [1, 2, 3]
    assert kept == [2, 1]


# -- streaming ingestion equals the in-memory reference ---------------------------------
NAMES = ["acme", "beta", "c,comma", 'q"uote', "é☃ünï", "x" * 300, "12", "longer than 8 bytes"]


def random_file(rng: np.random.Generator, rows: int, pool: pd.DataFrame) -> pd.DataFrame:
    """Rows drawn from ``pool`` (so files repeat rows) plus a few fresh ones."""
    frame = pool.iloc[rng.integers(0, len(pool), rows)].reset_index(drop=True)
    fresh = rng.random(rows) < 0.3
    frame.loc[fresh, "lastyear_activity"] = rng.integers(0, 50, int(fresh.sum()))
    return frame


def random_pool(rng: np.random.Generator) -> pd.DataFrame:
    n = 12
    pool = pd.DataFrame(
        {
            "corporation": rng.choice(NAMES, n).astype(object),
            "lastmonth_activity": rng.integers(-3, 4, n).astype(float),
            "lastyear_activity": rng.integers(0, 50, n),
            "number_of_employees": rng.integers(1, 5, n).astype(float),
            "exited": rng.integers(0, 2, n),
        }
    )
    pool.loc[rng.random(n) < 0.15, "corporation"] = None
    pool.loc[rng.random(n) < 0.15, "lastmonth_activity"] = np.nan
    pool.loc[rng.random(n) < 0.15, "number_of_employees"] = 2.5
    pool.loc[rng.random(n) < 0.1, "lastmonth_activity"] = -0.0
    return pool


def reference_outputs(settings: Settings) -> tuple[bytes, dict[str, Any], list[int]]:
    """What the in-memory implementation (validate all, merge_frames, write_csv) gives;
    with quarantine, a file's good rows."""
    quarantine = settings.ingestion.bad_rows == "quarantine"
    accepted = []
    for path in list_tables(settings.input_folder_path):
        try:
            frame = read_table(path)
            if quarantine:
                good = check_frame(frame, settings, input_name=path.name).frame
            else:
                good = validate_frame(frame, settings, input_name=path.name)
        except DataValidationError:
            continue
        accepted.append((path.name, good))
    merged, kept = merge_frames(accepted)
    buffer = io.BytesIO()
    write_csv(merged, buffer)
    profile = profile_frame(merged, settings)
    del profile["computed_at"]
    return buffer.getvalue(), profile, kept


# 16 seeds (and 39, which quarantines a bad row) in the fast layer, all 40 in the suite.
SEEDS = [pytest.param(s, marks=[pytest.mark.slow] if 16 <= s < 39 else []) for s in range(40)]


@pytest.mark.parametrize("seed", SEEDS)
def test_streaming_ingestion_equals_the_in_memory_merge(
    make_settings, project: Path, store: Store, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    if seed % 2:  # CSV files read in pieces of 7 rows
        monkeypatch.setattr(ingestion, "CHUNK_ROWS", 7)
    folder = project / "data" / f"random{seed}"
    folder.mkdir()
    pool = random_pool(rng)
    for i in range(int(rng.integers(1, 6))):
        frame = random_file(rng, int(rng.integers(0, 30)), pool)
        if rng.random() < 0.3:  # a file of whole numbers only: an integer column there
            frame = frame.fillna({"lastmonth_activity": 1, "number_of_employees": 1})
            frame["number_of_employees"] = frame["number_of_employees"].round()
        kind = rng.choice(["csv", "csv", "csv", "jsonl", "parquet"])
        path = folder / f"f{i}.{kind}"
        if kind == "csv":
            frame.to_csv(path, index=False)
        elif kind == "jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
    if rng.random() < 0.3:  # rejected in its third piece when pieces are 7 rows
        good_rows = "".join(f"ok{i},1,2,3,0\n" for i in range(16))
        (folder / "f9_bad.csv").write_text(GOOD + good_rows + "abcd,1,lots,3,0\nok,1,2,3,1\n")
    # every fourth seed sets bad rows aside instead: f9_bad.csv's good rows are kept
    bad_rows = "quarantine" if seed % 4 == 3 else "reject_file"
    settings = make_settings(
        input_folder_path=f"data/random{seed}", ingestion={"bad_rows": bad_rows}
    )
    try:
        expected_csv, expected_profile, expected_kept = reference_outputs(settings)
    except DataValidationError:  # every file empty or rejected: ingest must refuse too
        with pytest.raises(DataValidationError):
            ingest(settings, store=store)
        return

    result = ingest(settings, store=store)

    assert settings.finaldata_file.read_bytes() == expected_csv
    profile = json.loads(settings.profile_file.read_text())
    del profile["computed_at"]
    assert profile == json.loads(json.dumps(expected_profile))
    kept = [r["rows_kept"] for r in result.records if r["status"] == "accepted"]
    assert kept == expected_kept
    assert result.rows_kept == sum(expected_kept)
    f9_quarantined = bad_rows == "quarantine" and (folder / "f9_bad.csv").exists()
    assert result.rows_quarantined == (1 if f9_quarantined else 0)
    # the store serves the same profile, and the drift profile of the written file
    stored = store.data_profile()
    assert stored is not None
    assert stored["profile"] == json.loads(settings.profile_file.read_text())
    reference = ReferenceProfile.load(io.BytesIO(store.data_profile_reference(stored["id"])))
    written = read_table(settings.finaldata_file)
    expected = ReferenceProfile.from_options(settings.drift).fit(written, settings.features)
    assert_same_profile(reference, expected)


@pytest.mark.parametrize("good_rows", [2, 4, 5, 9])  # 0, 1, 1 and 2 pieces of 4 rows written
def test_a_bad_row_in_a_later_piece_rejects_the_whole_file(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch, good_rows: int
) -> None:
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 4)
    bad = "".join(f"new{i},1,2,3,0\n" for i in range(good_rows)) + "zzzz,1,lots,3,0\n"
    (settings.input_folder_path / "a_bad.csv").write_text(GOOD + bad)
    rows = "".join(f"new{i},1,2,3,0\n" for i in range(9))
    (settings.input_folder_path / "b_late.csv").write_text(GOOD + rows + "zzzz,1,2,3,0\n" * 2)
    result = ingest(settings, store=store)
    [rejected] = result.rejected
    assert rejected["message"] == (
        f"a_bad.csv, line {good_rows + 2}: column 'lastyear_activity' must be numeric, got 'lots'"
    )
    final = pd.read_csv(settings.finaldata_file)
    assert final.corporation.str.startswith("new").sum() == 9  # from b_late.csv only
    late = next(r for r in result.records if r["file_name"] == "b_late.csv")
    assert (late["rows_read"], late["rows_kept"]) == (11, 10)
    assert result.rows_kept == 26 + 10


def test_a_later_float_column_rewrites_earlier_integer_rows(
    make_settings, project: Path, store: Store
) -> None:
    folder = project / "data" / "mixed"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD + "aaaa,1,2,3,0\nbbbb,4,5,6,1\n")
    (folder / "b.csv").write_text(GOOD + "cccc,7,8.5,9,0\naaaa,1,2.0,3,0\n")
    settings = make_settings(input_folder_path="data/mixed")
    result = ingest(settings, store=store)
    assert settings.finaldata_file.read_text() == GOOD + (
        "aaaa,1,2.0,3,0\nbbbb,4,5.0,6,1\ncccc,7,8.5,9,0\n"
    )
    assert [r["rows_kept"] for r in result.records] == [2, 1]


def test_a_column_turning_float_in_a_later_piece_of_the_same_file(
    make_settings, project: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 2)
    folder = project / "data" / "pieces"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD + "aaaa,1,2,3,0\nbbbb,4,5,6,1\ncccc,7,8.5,9,0\n")
    settings = make_settings(input_folder_path="data/pieces")
    ingest(settings, store=store)
    assert settings.finaldata_file.read_text() == GOOD + (
        "aaaa,1,2.0,3,0\nbbbb,4,5.0,6,1\ncccc,7,8.5,9,0\n"
    )


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(
            {
                "corporation": pd.array(["a", None, "x y", ""], dtype="string"),
                "a": [1, 2, 3, 4],
                "f": [0.1, np.nan, 1e20, -0.0],
            }
        ),
        pd.DataFrame({"corporation": pd.array(["a,b", 'q"', "x", None], dtype="string"), "a": 1}),
        pd.DataFrame({"f": [1.0, np.nan]}),
        pd.DataFrame({"i": np.array([1, 2], dtype="int32"), "f": np.array([1.5, 2], "float32")}),
        pd.DataFrame({"c": pd.array(list("ab"), dtype="str"), "f": [1.234e-7, 5e-324]}),
    ],
)
def test_write_csv_is_byte_identical_to_pandas(frame: pd.DataFrame) -> None:
    handle = io.BytesIO()
    write_csv(frame, handle)
    assert handle.getvalue().decode() == frame.to_csv(index=False)


# -- bad rows: file line numbers, missing targets, NA tokens, quarantine ------------------
ROW = "aaaa,1,2,3,0\n"


def write_jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def record_line(corporation: str, exited: Any, **values: Any) -> str:
    row = {"corporation": corporation, "lastmonth_activity": 1, "lastyear_activity": 2}
    row |= {"number_of_employees": 3, "exited": exited, **values}
    return json.dumps(row)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.csv",
            GOOD + ROW + "abcd,1,2,3,\n",
            "bad.csv, line 3: target column 'exited' is missing",
        ),
        (
            "bad.csv",
            GOOD + ROW + "abcd,1,2,3,n/a\n",
            "bad.csv, line 3: target column 'exited' is missing",
        ),
        (
            "bad.csv",
            GOOD + ROW + "abcd,1,2,3,yes\n",
            "bad.csv, line 3: target column 'exited' must hold 0 or 1, got 'yes'",
        ),
        (
            "bad.csv",
            GOOD + ROW + "abcd,1,2,3,0.5\n",
            "bad.csv, line 3: target column 'exited' must hold 0 or 1, got 0.5",
        ),
        (  # blank lines and a line of spaces are skipped by the parser, counted here
            "bad.csv",
            "\n" + GOOD + ROW + "\n   \n\t\nabcd,1,lots,3,0\n",
            "bad.csv, line 7: column 'lastyear_activity' must be numeric, got 'lots'",
        ),
        (  # a quoted value over two lines: the next row starts on line 4
            "bad.csv",
            GOOD + '"two\nlines",1,2,3,0\nabcd,1,2,3,7\n',
            "bad.csv, line 4: target column 'exited' must hold 0 or 1, got 7",
        ),
        (
            "bad.csv",
            GOOD + ROW + "abcd,1e999,2,3,0\n",
            "bad.csv, line 3: column 'lastmonth_activity' must be finite, got inf",  # as parsed
        ),
        (
            "bad.csv",
            GOOD + ROW + "abcd,-inf,2,3,0\n",
            "bad.csv, line 3: column 'lastmonth_activity' must be finite, got -inf",
        ),
        (  # every bad cell of the first bad row, in column order
            "bad.csv",
            GOOD + ROW + "abcd,x,y,3,5\nefgh,1,2,3,\n",
            "bad.csv, line 3: column 'lastmonth_activity' must be numeric, got 'x'; "
            "column 'lastyear_activity' must be numeric, got 'y'; "
            "target column 'exited' must hold 0 or 1, got 5",
        ),
        (
            "bad.jsonl",
            [record_line("aaaa", 0), "", record_line("abcd", None)],
            "bad.jsonl, line 3: target column 'exited' is missing",
        ),
        (
            "bad.jsonl",
            [record_line("aaaa", 0), record_line("abcd", 1, lastyear_activity="lots")],
            "bad.jsonl, line 2: column 'lastyear_activity' must be numeric, got 'lots'",
        ),
        (
            "bad.parquet",
            pd.DataFrame(
                {
                    "corporation": ["aaaa", "abcd"],
                    "lastmonth_activity": [1.5, 2.0],
                    "lastyear_activity": [2, 2],
                    "number_of_employees": [3, 3],
                    "exited": [0, 3],
                }
            ),
            "bad.parquet, row 2: target column 'exited' must hold 0 or 1, got 3",
        ),
    ],
)
def test_a_bad_row_rejects_its_file_naming_the_line_and_why(
    settings: Settings, store: Store, name: str, content: Any, message: str
) -> None:
    path = settings.input_folder_path / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path)
    elif isinstance(content, list):
        write_jsonl(path, content)
    else:
        path.write_text(content)
    result = ingest(settings, store=store)
    [rejected] = result.rejected
    assert (rejected["file_name"], rejected["message"]) == (name, message)
    assert (result.rows_read, result.rows_kept) == (36, 26)
    stored = {r["file_name"]: (r["status"], r["message"]) for r in store.ingestions()}
    assert stored[name] == ("rejected", message)
    assert not settings.rejects_folder.exists()


def test_a_long_bad_value_is_cut_in_the_message(settings: Settings, store: Store) -> None:
    (settings.input_folder_path / "bad.csv").write_text(GOOD + f"abcd,1,{'z' * 10_000},3,0\n")
    [rejected] = ingest(settings, store=store).rejected
    assert rejected["message"] == (
        f"bad.csv, line 2: column 'lastyear_activity' must be numeric, got {'z' * 40!r}... "
        "(10000 characters)"
    )


def test_validate_frame_names_the_1_based_row(settings: Settings) -> None:
    frame = pd.read_csv(io.StringIO(GOOD + ROW + ROW + "abcd,1,2,3,\n"))
    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame, settings, input_name="frame")
    assert caught.value.message == "frame, row 3: target column 'exited' is missing"


@pytest.mark.parametrize(
    ("na_values", "cell", "outcome"),
    [
        (None, "n/a", "missing"),  # the default list holds n/a, NA, null, ...
        (None, "NA", "missing"),
        (None, "null", "missing"),
        (None, "", "missing"),
        (None, "?", "bad"),
        ([], "n/a", "bad"),
        ([], "", "missing"),  # an empty cell is always missing
        (["?"], "?", "missing"),
        (["?"], "NA", "bad"),
    ],
)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_na_tokens_in_a_feature_read_as_documented(
    make_settings, store: Store, na_values: list[str] | None, cell: str, outcome: str, kind: str
) -> None:
    settings = make_settings(
        **({} if na_values is None else {"ingestion": {"na_values": na_values}})
    )
    path = settings.input_folder_path / f"tokens.{kind}"
    if kind == "csv":
        path.write_text(GOOD + f"tok1,{cell},2,3,0\n")
    else:
        write_jsonl(path, [record_line("tok1", 0, lastmonth_activity=cell)])
    result = ingest(settings, store=store)
    final = pd.read_csv(settings.finaldata_file, keep_default_na=False, dtype=str)
    if outcome == "missing":
        assert result.rejected == []
        assert final.loc[final.corporation == "tok1", "lastmonth_activity"].tolist() == [""]
        missing = {
            m["column"]: m["missing_count"] for m in store.data_profile()["profile"]["missing"]
        }
        assert missing["lastmonth_activity"] == 1
    else:
        [rejected] = result.rejected
        assert rejected["message"] == (
            f"tokens.{kind}, line 2: column 'lastmonth_activity' must be numeric, got {cell!r}"
            if kind == "csv"
            else f"tokens.{kind}, line 1: column 'lastmonth_activity' must be numeric, got {cell!r}"
        )
        assert "tok1" not in final.corporation.tolist()


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_na_tokens_do_not_apply_to_identifiers(settings: Settings, store: Store, kind: str) -> None:
    path = settings.input_folder_path / f"ids.{kind}"
    if kind == "csv":
        path.write_text(GOOD + "NA,1,2,3,0\n,4,5,6,1\n")
    else:
        write_jsonl(path, [record_line("NA", 0), record_line("", 1, lastmonth_activity=4)])
    ingest(settings, store=store)
    final = pd.read_csv(settings.finaldata_file, keep_default_na=False, dtype=str)
    assert final.corporation.tolist()[-2:] == ["NA", ""]  # "" written for the missing id


@pytest.mark.parametrize(
    ("ingestion_config", "message"),
    [
        (
            {"bad_rows": "drop"},
            "config key 'ingestion.bad_rows' must be one of "
            "['reject_file', 'quarantine'], got 'drop'",
        ),
        (
            {"na_values": "n/a"},
            "config key 'ingestion.na_values' must be a list of strings, got 'n/a'",
        ),
        (
            {"na_values": ["n/a", 0]},
            "config key 'ingestion.na_values' must be a list of strings, got ['n/a', 0]",
        ),
        (
            {"na_values": ["-999"]},
            "config key 'ingestion.na_values' must not list a number "
            "(it would read as missing only where written exactly so), got '-999'",
        ),
        (
            {"quarantine": True},
            "unknown config key 'ingestion.quarantine'; expected one of ['bad_rows', 'na_values']",
        ),
    ],
)
def test_ingestion_config_keys_are_checked(
    make_settings, ingestion_config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(ingestion=ingestion_config)
    assert str(caught.value) == message


def test_ingestion_config_defaults(settings: Settings) -> None:
    assert settings.ingestion.bad_rows == "reject_file"
    assert settings.ingestion.na_values == (
        "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    )  # fmt: skip
    assert settings.rejects_folder == settings.output_folder_path / "rejects"


QUARANTINE = {"bad_rows": "quarantine"}
REJECTS_HEADER = GOOD.strip() + ",line,reason\n"


def rejects_text(settings: Settings, result: Any, name: str) -> str:
    """The one rejects file of ``name`` in this ingestion, and no other file there."""
    path = settings.rejects_folder / f"{result.batch_id}-{name}"
    assert [p.name for p in settings.rejects_folder.iterdir()] == [path.name]
    return path.read_text()


@pytest.mark.parametrize("chunk_rows", [3, 100_000])  # bad rows in three pieces, or one
def test_quarantine_sets_bad_csv_rows_aside_and_ingests_the_rest(
    make_settings, store: Store, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", chunk_rows)
    settings = make_settings(ingestion=QUARANTINE)
    (settings.input_folder_path / "bad.csv").write_text(
        GOOD
        + "q1,1,2,3,0\n"  # line 2
        + "q2,1,lots,3,1\n"  # line 3: bad
        + "q3,1,2,3,\n"  # line 4: bad
        + "\n"  # line 5: blank
        + "q4,1,2,3,1\n"  # line 6
        + "q1,1,2,3,0\n"  # line 7: a duplicate of line 2
        + '"q,5",1.50,x,3,9\n'  # line 8: bad twice
        + "q6,1,2,3,n/a\n"  # line 9: bad
    )
    result = ingest(settings, store=store)

    name = f"{result.batch_id}-bad.csv"
    message = f"4 bad rows quarantined to data/ingesteddata/rejects/{name}"
    assert rejects_text(settings, result, "bad.csv") == REJECTS_HEADER + (
        "q2,1,lots,3,1,3,\"column 'lastyear_activity' must be numeric, got 'lots'\"\n"
        "q3,1,2,3,,4,target column 'exited' is missing\n"
        "\"q,5\",1.50,x,3,9,8,\"column 'lastyear_activity' must be numeric, got 'x'; "
        "target column 'exited' must hold 0 or 1, got 9\"\n"
        "q6,1,2,3,n/a,9,target column 'exited' is missing\n"
    )
    bad = next(r for r in result.records if r["file_name"] == "bad.csv")
    assert {k: bad[k] for k in ("status", "rows_read", "rows_quarantined", "rows_kept")} == {
        "status": "accepted",
        "rows_read": 7,
        "rows_quarantined": 4,
        "rows_kept": 2,
    }
    assert (bad["duplicates_removed"], bad["message"]) == (1, message)
    assert (result.rows_read, result.rows_quarantined, result.rows_kept) == (43, 4, 28)
    assert result.to_dict()["duplicates_removed"] == 11
    final = pd.read_csv(settings.finaldata_file)
    assert final.corporation.tolist()[:2] == ["q1", "q4"]
    assert len(final) == 28
    [txt] = [r for r in read_record(settings.ingested_record_file) if r["file_name"] == "bad.csv"]
    assert (txt["status"], txt["rows_read"], txt["rows_kept"]) == ("accepted", "7", "2")
    assert (txt["duplicates_removed"], txt["message"]) == ("1", message)
    [stored] = [r for r in store.ingestions() if r["file_name"] == "bad.csv"]
    assert (stored["status"], stored["rows_kept"], stored["message"]) == ("accepted", 2, message)


def test_quarantined_json_lines_keep_their_values_as_written(make_settings, store: Store) -> None:
    settings = make_settings(ingestion=QUARANTINE)
    write_jsonl(
        settings.input_folder_path / "bad.jsonl",
        [
            '{"corporation": "j1", "lastmonth_activity": 0.1000, "lastyear_activity": 2,'
            ' "number_of_employees": 3, "exited": 2}',
            "",
            record_line("j2", 1),
            '{"corporation": "j3", "lastmonth_activity": "n/a", "lastyear_activity": 2,'
            ' "number_of_employees": 3, "exited": null}',
        ],
    )
    result = ingest(settings, store=store)
    assert rejects_text(settings, result, "bad.jsonl.csv") == REJECTS_HEADER + (
        "j1,0.1000,2,3,2,1,\"target column 'exited' must hold 0 or 1, got 2\"\n"
        "j3,n/a,2,3,,4,target column 'exited' is missing\n"
    )
    [bad] = [r for r in result.records if r["file_name"] == "bad.jsonl"]
    assert (bad["rows_read"], bad["rows_quarantined"], bad["rows_kept"]) == (3, 2, 1)
    assert bad["message"] == (
        f"2 bad rows quarantined to data/ingesteddata/rejects/{result.batch_id}-bad.jsonl.csv"
    )


def test_quarantined_parquet_rows_are_numbered_from_1(make_settings, store: Store) -> None:
    settings = make_settings(ingestion=QUARANTINE)
    pd.DataFrame(
        {
            "corporation": ["p1", None, "p3"],
            "lastmonth_activity": [0.1, np.inf, 2.5],
            "lastyear_activity": [2, 2, 2],
            "number_of_employees": [3, 3, 3],
            "exited": [0, 1, 1],
        }
    ).to_parquet(settings.input_folder_path / "bad.parquet")
    result = ingest(settings, store=store)
    assert rejects_text(settings, result, "bad.parquet.csv") == REJECTS_HEADER + (
        ",inf,2,3,1,2,\"column 'lastmonth_activity' must be finite, got inf\"\n"
    )
    [bad] = [r for r in result.records if r["file_name"] == "bad.parquet"]
    assert (bad["rows_read"], bad["rows_quarantined"], bad["rows_kept"]) == (3, 1, 2)
    assert bad["message"] == (
        f"1 bad row quarantined to data/ingesteddata/rejects/{result.batch_id}-bad.parquet.csv"
    )


def test_quarantine_still_rejects_a_file_that_cannot_be_read(
    make_settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 2)
    settings = make_settings(ingestion=QUARANTINE)
    (settings.input_folder_path / "bad.csv").write_text(
        GOOD + "r1,1,2,3,\nr2,1,2,3,0\nr3,1,2,3,0\nr4,1,2,3,0,extra\n"
    )
    result = ingest(settings, store=store)
    [rejected] = result.rejected
    assert rejected["message"].startswith("bad.csv: cannot be parsed as csv: ")
    assert "Expected 5 fields in line 5, saw 6" in rejected["message"]
    assert (rejected["rows_read"], rejected["rows_quarantined"], result.rows_quarantined) == (
        None,
        0,
        0,
    )
    assert list(settings.rejects_folder.iterdir()) == []  # the half-written rejects are gone
    assert len(pd.read_csv(settings.finaldata_file)) == 26


@pytest.mark.parametrize("b_has_a_bad_row", [False, True])
def test_quarantine_writes_the_rejects_once_when_ingestion_restarts(
    make_settings, project: Path, store: Store, b_has_a_bad_row: bool
) -> None:
    folder = project / "data" / "mixed"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD + "aaaa,1,2,3,0\nbad1,1,2,3,\n")
    # a float column in b.csv: the rows of a.csv are written again
    (folder / "b.csv").write_text(GOOD + "cccc,7,8.5,9,0\n" + "bad2,1,2,3,2\n" * b_has_a_bad_row)
    settings = make_settings(input_folder_path="data/mixed", ingestion=QUARANTINE)
    result = ingest(settings, store=store)
    assert settings.finaldata_file.read_text() == GOOD + "aaaa,1,2.0,3,0\ncccc,7,8.5,9,0\n"
    a_rejects = settings.rejects_folder / f"{result.batch_id}-a.csv"
    b_rejects = settings.rejects_folder / f"{result.batch_id}-b.csv"
    assert (
        sorted(settings.rejects_folder.iterdir()) == [a_rejects, b_rejects][: 1 + b_has_a_bad_row]
    )
    assert a_rejects.read_text() == REJECTS_HEADER + (
        "bad1,1,2,3,,3,target column 'exited' is missing\n"
    )
    if b_has_a_bad_row:
        assert b_rejects.read_text() == REJECTS_HEADER + (
            "bad2,1,2,3,2,3,\"target column 'exited' must hold 0 or 1, got 2\"\n"
        )
    assert [r["rows_quarantined"] for r in result.records] == [1, int(b_has_a_bad_row)]


def test_a_file_of_bad_rows_only_is_quarantined_whole(make_settings, store: Store) -> None:
    settings = make_settings(ingestion=QUARANTINE)
    (settings.input_folder_path / "bad.csv").write_text(GOOD + "b1,1,2,3,\nb2,1,2,3,\n")
    result = ingest(settings, store=store)
    [bad] = [r for r in result.records if r["file_name"] == "bad.csv"]
    assert (bad["status"], bad["rows_read"], bad["rows_kept"], bad["duplicates_removed"]) == (
        "accepted",
        2,
        0,
        0,
    )
    assert (result.rows_read, result.rows_quarantined, result.rows_kept) == (38, 2, 26)
