"""The training window: every ingestion is kept in the store, and a model trains on the
configured window of it (``training.window``), its drift reference fitted on the same rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import update

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.data.window import batch_pieces, training_data
from monitoring.drift import ReferenceProfile
from monitoring.exceptions import ConfigError, MissingArtifactError
from monitoring.model.deployment import load_deployed
from monitoring.model.training import train
from monitoring.pipeline import run_full_process
from monitoring.storage.files import read_table
from monitoring.storage.schema import ingested_batches
from monitoring.storage.store import Store

# The shipped data: practicedata keeps 26 distinct rows, sourcedata 26 others.
PRACTICE_ROWS, SOURCE_ROWS = 26, 26


def _ingest_both(make_settings: Any, store: Store) -> tuple[Settings, Settings]:
    practice = make_settings()
    source = make_settings(input_folder_path="data/sourcedata")
    ingest(practice, store=store)
    ingest(source, store=store)
    return practice, source


def test_each_ingestion_is_stored_once_with_its_exact_rows(
    make_settings: Any, store: Store
) -> None:
    practice = make_settings()
    ingest(practice, store=store)
    [batch] = store.batches()
    assert (batch["rows"], batch["pieces"]) == (PRACTICE_ROWS, 1)
    stored = training_data(practice, store).frame
    pd.testing.assert_frame_equal(
        stored, read_table(practice.finaldata_file), check_dtype=False, check_exact=True
    )
    ingest(practice, store=store)  # the same data again: not stored twice
    assert len(store.batches()) == 1
    ingest(make_settings(input_folder_path="data/sourcedata"), store=store)
    assert [b["rows"] for b in store.batches()] == [PRACTICE_ROWS, SOURCE_ROWS]


@pytest.mark.parametrize(
    ("window", "rows"),
    [
        ({}, PRACTICE_ROWS + SOURCE_ROWS),  # the default: all
        ({"window": "all"}, PRACTICE_ROWS + SOURCE_ROWS),
        ({"window": "new"}, SOURCE_ROWS),
        ({"window": "rows", "window_size": 30}, 30),
        ({"window": "rows", "window_size": 10}, 10),
        ({"window": "rows", "window_size": 1000}, PRACTICE_ROWS + SOURCE_ROWS),
        ({"window": "days", "window_size": 1}, SOURCE_ROWS),  # practice is 3 days older
        ({"window": "days", "window_size": 5}, PRACTICE_ROWS + SOURCE_ROWS),
    ],
)
def test_the_window_picks_the_configured_rows(
    make_settings: Any, store: Store, window: dict[str, Any], rows: int
) -> None:
    _ingest_both(make_settings, store)
    first = store.batches()[0]["batch_id"]
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="microseconds")
    with store.engine.begin() as conn:
        conn.execute(
            update(ingested_batches)
            .where(ingested_batches.c.batch_id == first)
            .values(ingested_at=three_days_ago)
        )
    settings = make_settings(input_folder_path="data/sourcedata", training=window)
    data = training_data(settings, store)
    assert len(data.frame) == rows
    assert not data.frame.duplicated().any()
    source = read_table(settings.finaldata_file)
    # Every window ends with the newest rows: the source batch, in its order.
    tail = data.frame.tail(min(rows, SOURCE_ROWS)).reset_index(drop=True)
    expected = source.tail(min(rows, SOURCE_ROWS)).reset_index(drop=True)
    pd.testing.assert_frame_equal(tail, expected, check_dtype=False)


def test_a_file_with_quoted_values_is_one_piece(tmp_path: Any) -> None:
    path = tmp_path / "finaldata.csv"
    path.write_bytes(b'id,x\n"a\nb",1\nc,2\n')
    [(rows, size, _)] = batch_pieces(path, 2)
    assert (rows, size) == (2, len(path.read_bytes()))


def test_rows_seen_again_count_once_and_as_recent(make_settings: Any, store: Store) -> None:
    practice, source = _ingest_both(make_settings, store)
    both = make_settings(input_folder_path="data/practicedata")
    for path in source.input_folder_path.glob("*.csv"):  # practice + source in one folder
        (both.input_folder_path / path.name).write_bytes(path.read_bytes())
    ingest(both, store=store)
    data = training_data(both, store)
    assert len(data.frame) == PRACTICE_ROWS + SOURCE_ROWS
    assert data.window["rows_stored"] == 2 * (PRACTICE_ROWS + SOURCE_ROWS)
    assert data.window["duplicates_removed"] == PRACTICE_ROWS + SOURCE_ROWS
    assert data.window["batches"] == 3


def test_a_model_trains_on_the_window_and_its_drift_reference_is_that_data(
    make_settings: Any, store: Store
) -> None:
    _, source = _ingest_both(make_settings, store)
    metadata = train(source, store=store)
    training = metadata["training_data"]
    assert (training["rows"], training["rows_used"]) == (52, 52)
    assert training["path"] == "record store: 2 ingested batches (all window)"
    assert training["window"]["policy"] == "all"
    assert training["window"]["batches"] == 2
    assert training["sha256"] == training_data(source, store).sha256
    row = store.model_version(metadata["version"])
    assert row is not None
    assert ReferenceProfile.load(io.BytesIO(row["reference"])).n_rows_ == 52

    new = make_settings(input_folder_path="data/sourcedata", training={"window": "new"})
    assert train(new, store=store)["training_data"]["rows"] == SOURCE_ROWS


def test_a_retrain_on_new_data_trains_on_everything_and_drift_uses_it(
    make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    source = make_settings(input_folder_path="data/sourcedata")
    run = run_full_process(source, store=store)
    assert run["outcome"] == "deployed"  # 52 rows make a challenger as good as the champion
    live = load_deployed(store)
    assert live.version == run["evidence"]["challenger"]
    assert live.metadata["training_data"]["rows"] == PRACTICE_ROWS + SOURCE_ROWS
    assert live.reference.n_rows_ == PRACTICE_ROWS + SOURCE_ROWS

    # The next run's drift is measured against those 52 rows: the source data is part
    # of them now, so it drifts less than it did against the 26 practice rows.
    again = run_full_process(source, store=store, force=True)
    before = {c["column"]: c for c in run["evidence"]["data_drift"]["columns"]}
    after = {c["column"]: c for c in again["evidence"]["data_drift"]["columns"]}
    assert after["lastmonth_activity"]["p_value"] > before["lastmonth_activity"]["p_value"]


def test_data_ingested_before_batches_were_kept_trains_from_finaldata(
    settings: Settings, store: Store
) -> None:
    with pytest.raises(MissingArtifactError, match="run 'python -m monitoring ingest' first"):
        training_data(settings, store)
    ingest(settings, store=store)
    with store.engine.begin() as conn:
        conn.execute(ingested_batches.delete())
    data = training_data(settings, store)
    assert len(data.frame) == PRACTICE_ROWS
    assert data.window["note"] == "no ingested batch is stored yet: trained on finaldata.csv"


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (
            {"window": "last"},
            "config key 'training.window' must be one of ['all', 'new', 'rows', 'days'], "
            "got 'last'",
        ),
        ({"window": "rows"}, "config key 'training.window_size' must be given for window 'rows'"),
        ({"window": "days"}, "config key 'training.window_size' must be given for window 'days'"),
        (
            {"window": "rows", "window_size": 2.5},
            "config key 'training.window_size' must be a whole number of rows for window "
            "'rows', got 2.5",
        ),
        (
            {"window": "days", "window_size": 0},
            "config key 'training.window_size' must be positive or null, got 0.0",
        ),
        (
            {"size": 3},
            "unknown config key 'training.size'; expected one of ['window', 'window_size']",
        ),
    ],
)
def test_bad_windows_are_refused_at_start(
    make_settings: Any, training: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(training=training)
    assert str(caught.value) == message
