"""Deployment: versions, the live pointer, rollback and integrity."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

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
    CURRENT_FILE,
    current_version,
    deploy,
    list_versions,
    load_deployed,
    rollback,
)
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.storage.store import Store

# The starter model trained on the 26 practice rows predicts [0, 1, 1, 1, 1] for the
# five test rows whose labels are [1, 0, 0, 1, 1]: TP = 2 (rows 4, 5), FP = 2 (rows
# 2, 3), FN = 1 (row 1), TN = 0. F1 = 2TP / (2TP + FP + FN) = 4 / 7.
PRACTICE_F1 = 4 / 7


def test_deploy_publishes_a_version_and_compat_copies(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    version = deployed["model_version"]
    prod = settings.prod_deployment_path
    assert current_version(settings) == version
    for name in ("trainedmodel.pkl", "latestscore.txt", "ingestedfiles.txt"):
        assert (prod / name).read_bytes() == (prod / "versions" / version / name).read_bytes()
    assert (prod / "latestscore.txt").read_text().strip() == str(PRACTICE_F1)
    assert load_deployed(settings).version == version


def test_redeploy_keeps_versions_and_rollback_walks_back(
    make_settings, settings: Settings, store: Store, deployed: dict[str, Any]
) -> None:
    first = deployed["model_version"]
    source = make_settings(input_folder_path="data/sourcedata")
    ingest(source, store=store)
    second = train(source, store=store)["version"]
    score(source, store=store)
    result = deploy(source, store=store)
    assert result == {**result, "model_version": second, "previous_version": first}
    assert [v["version"] for v in list_versions(settings)] == [first, second]

    back = rollback(settings, store=store)
    assert (back["model_version"], back["previous_version"]) == (first, second)
    assert current_version(settings) == first
    assert (settings.prod_deployment_path / "latestscore.txt").read_text().strip() == str(
        PRACTICE_F1
    )
    with pytest.raises(NotFoundError, match="no version older than"):
        rollback(settings, store=store)
    assert rollback(settings, to_version=second, store=store)["model_version"] == second
    actions = [(d["action"], d["model_version"]) for d in store.deployments()]
    assert actions == [
        ("deploy", first),
        ("deploy", second),
        ("rollback", first),
        ("rollback", second),
    ]


@pytest.mark.parametrize("version", ["nope", "../versions", ".hidden"])
def test_rollback_to_an_unknown_version(
    settings: Settings, store: Store, deployed: dict[str, Any], version: str
) -> None:
    with pytest.raises(NotFoundError):
        rollback(settings, to_version=version, store=store)


def test_rollback_and_load_without_a_deployment(settings: Settings, store: Store) -> None:
    with pytest.raises(NotDeployedError, match="no model is deployed yet"):
        rollback(settings, store=store)
    with pytest.raises(NotDeployedError):
        load_deployed(settings)


def test_deploy_requires_a_scored_model(settings: Settings, store: Store) -> None:
    ingest(settings, store=store)
    train(settings, store=store)
    with pytest.raises(MissingArtifactError, match="has not been scored"):
        deploy(settings, store=store)


def test_a_tampered_model_is_refused(settings: Settings, deployed: dict[str, Any]) -> None:
    folder = settings.prod_deployment_path / "versions" / deployed["model_version"]
    (folder / "trainedmodel.pkl").write_bytes(pickle.dumps({"evil": True}))
    with pytest.raises(IntegrityError, match="does not match its recorded checksum"):
        load_artifact(folder)


def test_current_file_names_a_complete_version(
    settings: Settings, deployed: dict[str, Any]
) -> None:
    version = (settings.prod_deployment_path / CURRENT_FILE).read_text().strip()
    folder = settings.prod_deployment_path / "versions" / version
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("reference")) == [
        "ingestedfiles.txt",
        "latestscore.txt",
        "scores.json",
        "trainedmodel.json",
        "trainedmodel.pkl",
    ]
