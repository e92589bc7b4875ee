"""Deployment: publish a trained, scored model to the production folder.

Layout of ``prod_deployment_path``::

    versions/<version>/   every file of one deployed model (never changed again)
    CURRENT               the name of the live version (replaced atomically)
    trainedmodel.pkl      \\
    latestscore.txt        > copies of the live version's files, for course tools
    ingestedfiles.txt     /

A deployment builds ``versions/<version>`` under a temporary name, checks its model
loads and matches its checksum, renames it into place and only then switches
``CURRENT``: a crash leaves it naming a complete version. Rollback switches back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from monitoring.config import Settings
from monitoring.exceptions import MissingArtifactError, NotDeployedError, NotFoundError
from monitoring.model.artifact import (
    METADATA_FILE,
    MODEL_FILE,
    Artifact,
    load_artifact,
    read_metadata,
)
from monitoring.model.scoring import SCORE_FILE, SCORES_JSON, read_score
from monitoring.model.training import REFERENCE_PROFILE
from monitoring.storage.engine import exclusive
from monitoring.storage.files import atomic_copy, atomic_write_text
from monitoring.storage.store import Store, utcnow

CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
RECORD_FILE = "ingestedfiles.txt"
COMPAT_FILES = (MODEL_FILE, SCORE_FILE, RECORD_FILE)


def versions_root(settings: Settings) -> Path:
    return settings.prod_deployment_path / VERSIONS_DIR


def version_folder(settings: Settings, version: str) -> Path:
    """Folder of a deployed version; refuses names that are not plain folder names."""
    if not version or "/" in version or version.startswith(".") or "\\" in version:
        raise NotFoundError(f"'{version}' is not a model version")
    return versions_root(settings) / version


def current_version(settings: Settings) -> str | None:
    """The live version, or None when nothing is deployed."""
    try:
        text = (settings.prod_deployment_path / CURRENT_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip() or None


def current_folder(settings: Settings) -> Path:
    """Folder of the live version; NotDeployedError if nothing is deployed yet."""
    version = current_version(settings)
    if version is None:
        raise NotDeployedError(
            "no model is deployed yet; run 'python -m monitoring setup' "
            "(or ingest, train, score and deploy)"
        )
    return version_folder(settings, version)


def load_deployed(settings: Settings) -> Artifact:
    """Load and verify the live model."""
    return load_artifact(current_folder(settings))


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every deployed version with its metadata summary, oldest first."""
    live = current_version(settings)
    out = []
    for folder in sorted(versions_root(settings).glob("[!.]*/")):  # not the ".staging" ones
        try:
            metadata = read_metadata(folder)
        except MissingArtifactError:
            continue
        score = read_score(folder) or {}
        out.append(
            {
                "version": folder.name,
                "trained_at": metadata.get("trained_at"),
                "estimator": metadata.get("estimator"),
                "training_data_sha256": metadata.get("training_data", {}).get("sha256"),
                "f1": score.get("f1"),
                "live": folder.name == live,
            }
        )
    return out


def _publish(settings: Settings, source: Path, record: Path, version: str) -> Path:
    """Build ``versions/<version>`` from the artifact folder; return it."""
    target = version_folder(settings, version)
    if target.is_dir():
        load_artifact(target)  # already published: make sure it is intact
        return target
    root = versions_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{version}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        names = (MODEL_FILE, METADATA_FILE, SCORE_FILE, SCORES_JSON)
        profile = sorted(source.glob(REFERENCE_PROFILE + "*"))
        for path in [*(source / name for name in names), *profile]:
            if path.is_file():
                atomic_copy(path, staging / path.name)
        atomic_copy(record, staging / RECORD_FILE)
        load_artifact(staging)  # checksum and unpickling verified before going live
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _switch(settings: Settings, version: str) -> None:
    """Make ``version`` live: CURRENT first, then the compatibility copies."""
    folder = version_folder(settings, version)
    atomic_write_text(settings.prod_deployment_path / CURRENT_FILE, version + "\n")
    for name in COMPAT_FILES:
        atomic_copy(folder / name, settings.prod_deployment_path / name)


def _lock(settings: Settings) -> Any:
    return exclusive(settings.database_url, "deploy", what="a deployment")


def _record(
    store: Store, action: str, version: str, previous: str | None, f1: Any, sha256: Any
) -> None:
    """Append a deploy or rollback to the deployment history."""
    store.add_deployment(
        {
            "deployed_at": utcnow(),
            "model_version": version,
            "action": action,
            "previous_version": previous,
            "f1": f1,
            "sha256": sha256,
        }
    )


def deploy(settings: Settings, *, store: Store | None = None) -> dict[str, Any]:
    """Deploy the model in ``output_model_path`` with its score and ingestion record.

    Raises MissingArtifactError if it is not trained or scored, or nothing was ingested.
    """
    store = store or Store(settings.database_url)
    source = settings.output_model_path
    metadata = read_metadata(source)
    version = str(metadata["version"])
    score = read_score(source)
    if not score or score.get("model_version") != version:
        raise MissingArtifactError(
            f"model {version} has not been scored; run 'python -m monitoring score' first"
        )
    record = settings.ingested_record_file
    if not record.is_file():
        raise MissingArtifactError(
            f"{record} does not exist; run 'python -m monitoring ingest' first"
        )
    with _lock(settings):
        previous = current_version(settings)
        folder = _publish(settings, source, record, version)
        _switch(settings, version)
        _record(store, "deploy", version, previous, score.get("f1"), metadata.get("sha256"))
    return {
        "model_version": version,
        "previous_version": previous,
        "f1": score.get("f1"),
        "folder": str(folder),
    }


def rollback(
    settings: Settings, *, to_version: str | None = None, store: Store | None = None
) -> dict[str, Any]:
    """Make an earlier version live again.

    ``to_version`` defaults to the newest one older than the live one, so repeated
    rollbacks walk back in time. Raises NotDeployedError if nothing is deployed,
    NotFoundError if the version does not exist or there is no older one.
    """
    store = store or Store(settings.database_url)
    with _lock(settings):
        live = current_version(settings)
        if live is None:
            raise NotDeployedError("no model is deployed yet; nothing to roll back")
        known = [v["version"] for v in list_versions(settings)]
        if to_version is None:  # versions sort by time
            older = [version for version in known if version < live]
            if not older:
                raise NotFoundError(
                    f"no version older than '{live}' is deployed; nothing to roll back to"
                )
            to_version = older[-1]
        folder = version_folder(settings, to_version)
        if not folder.is_dir():
            raise NotFoundError(f"model version '{to_version}' is not deployed; known: {known}")
        artifact = load_artifact(folder)
        _switch(settings, to_version)
        score = read_score(folder) or {}
        sha256 = artifact.metadata.get("sha256")
        _record(store, "rollback", to_version, live, score.get("f1"), sha256)
    return {"model_version": to_version, "previous_version": live, "f1": score.get("f1")}
