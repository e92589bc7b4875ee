"""Deployment: make a trained, scored model the live one, or an earlier one again.

The live model is the record store's live pointer (:meth:`Store.live_version`), the
same for every worker on every host that shares the store. :func:`deploy` verifies
the newest trained model (checksum, unpickling) and publishes it: pointer, publication
and history in one transaction, so the pointer always names a complete version.
:func:`rollback` moves the pointer back. Both then export the course's files to
``prod_deployment_path`` (each written atomically; nothing reads them back)::

    trainedmodel.pkl      the live model's pickle
    latestscore.txt       its F1 on the test data
    ingestedfiles.txt     the ingestion record it was deployed with
"""

from __future__ import annotations

from typing import Any

from monitoring.config import Settings
from monitoring.data.ingestion import format_record
from monitoring.data.validation import shown
from monitoring.exceptions import MissingArtifactError, NotDeployedError, NotFoundError
from monitoring.model.artifact import MODEL_FILE, Artifact, artifact_from_row, load_artifact
from monitoring.model.scoring import SCORE_FILE
from monitoring.model.tracking import log_deployment
from monitoring.model.versions import current_version as current_version
from monitoring.model.versions import list_versions as list_versions
from monitoring.storage.engine import exclusive
from monitoring.storage.files import atomic_write_bytes, atomic_write_text
from monitoring.storage.store import Store

RECORD_FILE = "ingestedfiles.txt"
NOTHING_DEPLOYED = (
    "no model is deployed yet; run 'python -m monitoring setup' "
    "(or ingest, train, score and deploy)"
)


def load_deployed(store: Store) -> Artifact:
    """Load and verify the live model; NotDeployedError if nothing is deployed."""
    version = store.live_version()
    if version is None:
        raise NotDeployedError(NOTHING_DEPLOYED)
    return load_artifact(store, version)


def _lock(settings: Settings) -> Any:
    return exclusive(settings.database_url, "deploy", what="a deployment")


def _verified(store: Store, version: str) -> dict[str, Any]:
    """The store row of ``version`` with its bytes, after its artifact loaded and verified."""
    row = store.model_version(version)
    if row is None:
        raise NotFoundError(f"model version '{version}' is not in the record store")
    artifact_from_row(row)  # checksum and unpickling verified before going live
    return row


def _export(settings: Settings, row: dict[str, Any], record: str) -> None:
    """Write the course's copies of the live version's files to ``prod_deployment_path``."""
    folder = settings.prod_deployment_path
    atomic_write_bytes(folder / MODEL_FILE, row["artifact"])
    atomic_write_text(folder / SCORE_FILE, f"{(row['score'] or {}).get('f1')}\n")
    atomic_write_text(folder / RECORD_FILE, record)


def deploy(settings: Settings, *, store: Store | None = None) -> dict[str, Any]:
    """Deploy the newest trained model with its score and the newest ingestion's record.

    Raises MissingArtifactError if it is not scored or nothing was ingested,
    IntegrityError if it fails its checksum.
    """
    store = store or Store(settings.database_url)
    with _lock(settings):
        newest = store.newest_model()
        if newest is None:
            raise MissingArtifactError(
                "no trained model in the record store; run 'python -m monitoring train' first"
            )
        version = newest["version"]
        if newest["score"] is None:
            raise MissingArtifactError(
                f"model {version} has not been scored; run 'python -m monitoring score' first"
            )
        ingestion = store.latest_ingestion()  # from the store: any host may deploy
        if not ingestion:
            raise MissingArtifactError(
                "nothing has been ingested; run 'python -m monitoring ingest' first"
            )
        row = _verified(store, version)
        text = format_record(ingestion)
        previous = store.publish(version, text)
        _export(settings, row, row["ingestion_record"] or text)  # a republished one keeps its own
    return {"model_version": version, "previous_version": previous, "f1": newest["score"]["f1"]}


def rollback(
    settings: Settings, *, to_version: str | None = None, store: Store | None = None
) -> dict[str, Any]:
    """Make an earlier deployed version live again.

    ``to_version`` defaults to the newest one older than the live one, so repeated
    rollbacks walk back in time. Raises NotDeployedError if nothing is deployed,
    NotFoundError if the version was never deployed or there is no older one.
    """
    store = store or Store(settings.database_url)
    with _lock(settings):
        live = store.live_version()
        if live is None:
            raise NotDeployedError("no model is deployed yet; nothing to roll back")
        known = [row["version"] for row in store.deployed_models()]
        if to_version is None:  # versions sort by time
            older = [version for version in known if version < live]
            if not older:
                raise NotFoundError(
                    f"no version older than '{live}' is deployed; nothing to roll back to"
                )
            to_version = older[-1]
        if to_version not in known:
            listed = f"{known[-5:]}"
            if len(known) > 5:
                listed += f" (the newest 5 of {len(known)})"
            raise NotFoundError(
                f"model version {shown(to_version)} is not deployed; known: {listed}"
            )
        row = _verified(store, to_version)
        previous = store.set_live(to_version)
        _export(settings, row, row["ingestion_record"] or "")
    f1 = (row["score"] or {}).get("f1")
    result = {"model_version": to_version, "previous_version": previous, "f1": f1}
    card = store.model_card(to_version)
    tracked = log_deployment(
        settings,
        action="rollback",
        version=to_version,
        previous=previous,
        f1=f1,
        model_card=None if card is None else str(card["markdown"]),
    )
    if tracked is not None:  # MLflow on
        result["mlflow"] = tracked
    return result
