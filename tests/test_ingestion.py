"""Ingestion on the shipped data and on bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from monitoring.config import Settings
from monitoring.exceptions import DataValidationError, MonitoringError
from monitoring.ingestion import find_new_files, ingest, merge_frames, read_record
from monitoring.store import Store


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
    import json

    profile = json.loads(settings.profile_file.read_text())
    final = pd.read_csv(settings.finaldata_file)
    by_column = {row["column"]: row for row in profile["summary"]}
    assert list(by_column) == list(settings.features)
    assert by_column["lastmonth_activity"]["mean"] == pytest.approx(final.lastmonth_activity.mean())
    assert by_column["number_of_employees"]["median"] == 14.0
    assert [m["missing_share"] for m in profile["missing"]] == [0.0] * 5


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
            "bad.csv: column 'lastyear_activity' must be numeric; row 0 has 'lots'",
        ),
        (GOOD + "abcd,1,2,3,2\n", "bad.csv: target column 'exited' must hold 0 or 1; found 2"),
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
    record = settings.ingested_record_file
    assert find_new_files(settings, record) == []
    path = settings.input_folder_path / "dataset1.csv"
    path.write_text(path.read_text() + "newc,1,2,3,0\n")
    assert [p.name for p in find_new_files(settings, record)] == ["dataset1.csv"]


def test_merge_keeps_the_first_of_each_duplicate() -> None:
    a = pd.DataFrame({"x": [1, 1, 2]})
    b = pd.DataFrame({"x": [2, 3]})
    merged, kept = merge_frames([("a", a), ("b", b)])
    assert merged["x"].tolist() == [1, 2, 3]
    assert kept == [2, 1]
