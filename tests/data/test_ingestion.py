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
    find_new_files,
    ingest,
    read_record,
    validate_frame,
    write_csv,
)
from monitoring.data.profile import ProfileParts, profile_frame
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import DataValidationError, MonitoringError
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
        (GOOD + "abcd,1,2,3,2\n", "bad.csv, line 2: target column 'exited' must hold 0 or 1, got 2"),
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
    """What the in-memory implementation (validate all, merge_frames, write_csv) gives."""
    accepted = []
    for path in list_tables(settings.input_folder_path):
        try:
            accepted.append(
                (path.name, validate_frame(read_table(path), settings, input_name=path.name))
            )
        except DataValidationError:
            pass
    merged, kept = merge_frames(accepted)
    buffer = io.BytesIO()
    write_csv(merged, buffer)
    profile = profile_frame(merged, settings)
    del profile["computed_at"]
    return buffer.getvalue(), profile, kept


@pytest.mark.parametrize("seed", range(40))
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
        (folder / "f9_bad.csv").write_text(GOOD + good_rows + "abcd,1,lots,3,0\n")
    settings = make_settings(input_folder_path=f"data/random{seed}")
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
