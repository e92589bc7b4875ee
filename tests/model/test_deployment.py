"""Deployment: versions in the store, the live pointer, rollback, integrity and exports."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from sqlalchemy import update

from monitoring.config import Settings
from monitoring.data.ingestion import ingest
from monitoring.exceptions import (
    IntegrityError,
    MissingArtifactError,
    NotDeployedError,
    NotFoundError,
)
from monitoring.model.artifact import load_artifact
from monitoring.model.deployment import (
    current_version,
    deploy,
    list_versions,
    load_deployed,
    rollback,
)
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.storage.schema import model_versions
from monitoring.storage.store import Store

# The starter model trained on the 26 practice rows predicts [0, 1, 1, 1, 1] for the
# five test rows whose labels are [1, 0, 0, 1, 1]: TP = 2 (rows 4, 5), FP = 2 (rows
# 2, 3), FN = 1 (row 1), TN = 0. F1 = 2TP / (2TP + FP + FN) = 4 / 7.
PRACTICE_F1 = 4 / 7


def _retrain(make_settings: Any, store: Store) -> tuple[Settings, str]:
    """Ingest the source data, train and score on it; the settings and the new version."""
    source = make_settings(input_folder_path="data/sourcedata")
    ingest(source, store=store)
    version = train(source, store=store)["version"]
    score(source, store=store)
    return source, version


def test_deploy_makes_the_version_live_and_exports_the_course_files(
    settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    version = deployed["model_version"]
    prod = settings.prod_deployment_path
    assert current_version(store) == store.live_version() == version
    row = store.model_version(version)
    assert row is not None
    assert (prod / "trainedmodel.pkl").read_bytes() == row["artifact"]
    assert (prod / "latestscore.txt").read_text() == f"{PRACTICE_F1}\n"
    record = settings.ingested_record_file.read_text()
    assert (prod / "ingestedfiles.txt").read_text() == row["ingestion_record"] == record
    assert load_deployed(store).version == version
    # the live pointer is in the store: no version folders, no CURRENT file
    assert not (prod / "versions").exists() and not (prod / "CURRENT").exists()
    [entry] = list_versions(store)
    assert entry == {
        "version": version,
        "trained_at": row["trained_at"],
        "deployed_at": row["deployed_at"],
        "estimator": "LogisticRegression",
        "training_data_sha256": row["metadata"]["training_data"]["sha256"],
        "f1": PRACTICE_F1,
        "live": True,
    }


def test_redeploy_keeps_versions_and_rollback_walks_back(
    make_settings: Any, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    first = deployed["model_version"]
    source, second = _retrain(make_settings, store)
    result = deploy(source, store=store)
    assert result == {"model_version": second, "previous_version": first, "f1": result["f1"]}
    assert [(v["version"], v["live"]) for v in list_versions(store)] == [
        (first, False),
        (second, True),
    ]

    back = rollback(settings, store=store)
    assert back == {"model_version": first, "previous_version": second, "f1": PRACTICE_F1}
    assert current_version(store) == first
    prod = settings.prod_deployment_path
    assert (prod / "latestscore.txt").read_text() == f"{PRACTICE_F1}\n"
    assert (prod / "trainedmodel.pkl").read_bytes() == store.model_version(first)["artifact"]  # type: ignore[index]
    with pytest.raises(NotFoundError, match="no version older than"):
        rollback(settings, store=store)
    assert rollback(settings, to_version=second, store=store)["model_version"] == second
    history = store.deployments()
    assert [(d["action"], d["model_version"], d["previous_version"]) for d in history] == [
        ("deploy", first, None),
        ("deploy", second, first),
        ("rollback", first, second),
        ("rollback", second, first),
    ]


@pytest.mark.parametrize("version", ["nope", "../versions", ".hidden"])
def test_rollback_to_an_unknown_version(
    settings: Settings, store: Store, deployed: dict[str, Any], version: str
) -> None:
    known = [deployed["model_version"]]
    with pytest.raises(NotFoundError) as caught:
        rollback(settings, to_version=version, store=store)
    assert caught.value.message == f"model version '{version}' is not deployed; known: {known}"
    assert current_version(store) == known[0]


def test_a_trained_but_never_deployed_version_is_no_rollback_target(
    make_settings: Any, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    _, trained = _retrain(make_settings, store)
    with pytest.raises(NotFoundError, match=f"model version '{trained}' is not deployed"):
        rollback(settings, to_version=trained, store=store)


def test_rollback_and_load_without_a_deployment(settings: Settings, store: Store) -> None:
    with pytest.raises(NotDeployedError, match="no model is deployed yet"):
        rollback(settings, store=store)
    with pytest.raises(NotDeployedError):
        load_deployed(store)
    assert current_version(store) is None and list_versions(store) == []


def test_deploy_requires_a_trained_scored_model_and_takes_the_record_from_the_store(
    settings: Settings, store: Store
) -> None:
    with pytest.raises(MissingArtifactError, match="no trained model in the record store"):
        deploy(settings, store=store)
    ingest(settings, store=store)
    version = train(settings, store=store)["version"]
    with pytest.raises(MissingArtifactError, match=f"model {version} has not been scored"):
        deploy(settings, store=store)
    assert store.live_version() is None and store.deployments() == []
    score(settings, store=store)
    local = settings.ingested_record_file.read_text()
    settings.ingested_record_file.unlink()  # another host: the record comes from the store
    deploy(settings, store=store)
    assert store.live_version() == version
    assert (settings.prod_deployment_path / "ingestedfiles.txt").read_text() == local


def test_a_newer_unscored_model_is_not_deployed_in_place_of_the_scored_one(
    settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    newer = train(settings, store=store)["version"]
    with pytest.raises(MissingArtifactError, match=f"model {newer} has not been scored"):
        deploy(settings, store=store)
    assert store.newest_model(scored=True)["version"] == deployed["model_version"]  # type: ignore[index]
    assert current_version(store) == deployed["model_version"]


def test_a_tampered_model_is_refused(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    version = train(settings, store=store)["version"]
    score(settings, store=store)
    with store.engine.begin() as conn:
        conn.execute(
            update(model_versions)
            .where(model_versions.c.version == version)
            .values(artifact=pickle.dumps({"evil": True}))
        )
    with pytest.raises(IntegrityError, match="does not match its recorded checksum"):
        load_artifact(store, version)
    with pytest.raises(IntegrityError, match="does not match its recorded checksum"):
        deploy(settings, store=store)  # verified before it goes live
    assert store.live_version() is None
    assert not (settings.prod_deployment_path / "trainedmodel.pkl").exists()


def test_a_tampered_reference_profile_is_refused(store: Store, deployed: dict[str, Any]) -> None:
    version = deployed["model_version"]
    row = store.model_version(version)
    assert row is not None
    with store.engine.begin() as conn:
        conn.execute(
            update(model_versions)
            .where(model_versions.c.version == version)
            .values(reference=row["reference"] + b"\x00")
        )
    artifact = load_artifact(store, version)  # the pickle is fine
    with pytest.raises(IntegrityError, match="drift reference .* does not match"):
        artifact.reference  # noqa: B018 - loaded on first use
