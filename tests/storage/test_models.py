"""Model versions in the record store: saved, scored, published, live, one transaction each."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from monitoring.exceptions import NotFoundError
from monitoring.storage import models
from monitoring.storage.store import Store


def _add(store: Store, version: str, trained_at: str, *, score: float | None = None) -> None:
    store.add_model_version(
        version,
        trained_at=trained_at,
        metadata={"version": version, "estimator": "LogisticRegression"},
        sha256="0" * 64,
        artifact=version.encode() * 3,
        reference=b"npz" + version.encode(),
    )
    if score is not None:
        store.set_model_score(version, {"f1": score, "dataset": "test"})


@pytest.fixture
def three(store: Store) -> Store:
    """v1 and v2 scored, v3 newest and not scored; nothing published."""
    _add(store, "v1", "2026-01-01T00:00:00.000000+00:00", score=0.5)
    _add(store, "v2", "2026-01-02T00:00:00.000000+00:00", score=0.75)
    _add(store, "v3", "2026-01-03T00:00:00.000000+00:00")
    return store


def test_a_saved_version_round_trips_with_and_without_bytes(three: Store) -> None:
    row = three.model_version("v2")
    assert row == {
        "version": "v2",
        "trained_at": "2026-01-02T00:00:00.000000+00:00",
        "metadata": {"version": "v2", "estimator": "LogisticRegression"},
        "sha256": "0" * 64,
        "score": {"f1": 0.75, "dataset": "test"},
        "ingestion_record": None,
        "deployed_at": None,
        "artifact": b"v2v2v2",
        "reference": b"npzv2",
    }
    light = three.model_version("v2", with_bytes=False)
    assert light == {k: v for k, v in row.items() if k not in ("artifact", "reference")}
    assert three.model_version("v9") is None


def test_newest_trained_and_newest_scored(three: Store) -> None:
    assert three.newest_model()["version"] == "v3"  # type: ignore[index]
    assert three.newest_model(scored=True)["version"] == "v2"  # type: ignore[index]
    assert "artifact" not in three.newest_model()  # type: ignore[operator]


def test_scores_and_cards_of_unknown_versions_are_refused(three: Store) -> None:
    with pytest.raises(NotFoundError, match="model version 'v9' is not in the record store"):
        three.set_model_score("v9", {"f1": 1.0})
    with pytest.raises(NotFoundError, match="model version 'v9' is not in the record store"):
        three.set_model_card("v9", "# card", {})


def test_the_model_card_keeps_markdown_and_json(three: Store) -> None:
    assert three.model_card("v1") is None
    three.set_model_card("v1", "# Model v1\n", {"model": {"version": "v1"}})
    assert three.model_card("v1") == {
        "markdown": "# Model v1\n",
        "card": {"model": {"version": "v1"}},
    }


def test_publish_and_set_live_move_the_pointer_and_write_the_history(three: Store) -> None:
    assert three.live_version() is None and three.deployed_models() == []
    assert three.publish("v1", "record 1") is None
    assert three.publish("v2", "record 2") == "v1"
    assert three.live_version() == "v2"
    assert [r["version"] for r in three.deployed_models()] == ["v1", "v2"]
    assert "artifact" not in three.deployed_models()[0]
    assert three.set_live("v1") == "v2"
    history = [
        (d["action"], d["model_version"], d["previous_version"], d["f1"], d["sha256"])
        for d in three.deployments()
    ]
    assert history == [
        ("deploy", "v1", None, 0.5, "0" * 64),
        ("deploy", "v2", "v1", 0.75, "0" * 64),
        ("rollback", "v1", "v2", 0.5, "0" * 64),
    ]


def test_a_republished_version_keeps_its_first_deployment(three: Store) -> None:
    three.publish("v1", "record 1")
    first = three.model_version("v1", with_bytes=False)
    three.publish("v2", "record 2")
    assert three.publish("v1", "another record") == "v2"
    again = three.model_version("v1", with_bytes=False)
    assert again == first  # deployed_at and ingestion_record unchanged
    assert (again["ingestion_record"], three.live_version()) == ("record 1", "v1")  # type: ignore[index]


def test_only_known_and_published_versions_go_live(three: Store) -> None:
    with pytest.raises(NotFoundError, match="model version 'v9' is not in the record store"):
        three.publish("v9", "record")
    three.publish("v1", "record 1")
    with pytest.raises(NotFoundError) as caught:
        three.set_live("v2")  # trained, never published
    assert caught.value.message == "model version 'v2' is not deployed; known: ['v1']"
    assert three.live_version() == "v1" and len(three.deployments()) == 1


@pytest.mark.parametrize("move", ["publish", "set_live"])
def test_a_move_that_fails_midway_changes_nothing(
    three: Store, monkeypatch: pytest.MonkeyPatch, move: str
) -> None:
    three.publish("v1", "record 1")
    three.publish("v2", "record 2")
    before: dict[str, Any] = {
        "live": three.live_version(),
        "rows": [three.model_version(v, with_bytes=False) for v in ("v1", "v2", "v3")],
        "history": three.deployments(),
    }
    # The history row goes last: a table that does not exist fails the transaction there.
    missing = Table("no_such_table", MetaData(), Column("id", Integer, primary_key=True))
    monkeypatch.setattr(models, "deployments", missing)
    with pytest.raises(Exception, match="no_such_table"):
        if move == "publish":
            three.publish("v3", "record 3")
        else:
            three.set_live("v1")
    after = {
        "live": three.live_version(),
        "rows": [three.model_version(v, with_bytes=False) for v in ("v1", "v2", "v3")],
        "history": three.deployments(),
    }
    assert after == before
