"""Model versions in the record store: artifacts, scores, deployment and the live pointer.

Every trained model is one ``model_versions`` row holding its pickle and drift
reference as bytes (with the pickle's SHA-256), its metadata and test score as JSON;
publishing sets ``deployed_at`` and the ingestion record. ``live_model`` (one row)
names the version every worker on every host serves. :meth:`ModelVersions.publish`
and :meth:`ModelVersions.set_live` move that pointer and append the deployment
history in one transaction, so the pointer only ever names a complete version.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitoring.exceptions import NotFoundError
from monitoring.storage.schema import deployments, live_model, model_versions

LIVE_ROW = 1  # the id of the one live_model row
BYTES = (model_versions.c.artifact, model_versions.c.reference)
# Everything about a version but its bytes and its model card.
INFO = [c for c in model_versions.c if c.name not in ("artifact", "reference", "model_card")]


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    """A ``model_versions`` row with its metadata and score JSON decoded."""
    row["metadata"] = json.loads(row["metadata"])
    row["score"] = json.loads(row["score"]) if row.get("score") else None
    return row


class ModelVersions:
    """The model-version methods of :class:`~monitoring.storage.store.Store`."""

    if TYPE_CHECKING:

        def _write(self) -> contextlib.AbstractContextManager[Connection]: ...
        def _fetch(self, query: Executable) -> list[dict[str, Any]]: ...

    def add_model_version(
        self,
        version: str,
        *,
        trained_at: str,
        metadata: Mapping[str, Any],
        sha256: str,
        artifact: bytes,
        reference: bytes,
    ) -> None:
        """Save a trained model: its pickle (``artifact``, SHA-256 ``sha256``) and reference."""
        row = {
            "version": version,
            "trained_at": trained_at,
            "metadata": json.dumps(dict(metadata), default=str),
            "sha256": sha256,
            "artifact": artifact,
            "reference": reference,
        }
        with self._write() as conn:
            conn.execute(insert(model_versions), row)

    def set_model_score(self, version: str, score: Mapping[str, Any]) -> None:
        """Record the test score of ``version``; NotFoundError if it was never trained."""
        self._update(version, score=json.dumps(dict(score), default=str))

    def set_model_card(self, version: str, markdown: str, card: Mapping[str, Any]) -> None:
        """Record the model card of ``version``: its Markdown and its JSON."""
        value = json.dumps({"markdown": markdown, "card": dict(card)}, default=str)
        self._update(version, model_card=value)

    def _update(self, version: str, **values: Any) -> None:
        query = update(model_versions).where(model_versions.c.version == version)
        with self._write() as conn:
            if not conn.execute(query.values(values)).rowcount:
                raise NotFoundError(f"model version '{version}' is not in the record store")

    def newest_model(self, *, scored: bool = False) -> dict[str, Any] | None:
        """The newest trained version (``scored``: with a test score), without its bytes."""
        query = select(*INFO)
        if scored:
            query = query.where(model_versions.c.score.is_not(None))
        newest = model_versions.c.trained_at.desc(), model_versions.c.version.desc()
        rows = self._fetch(query.order_by(*newest).limit(1))
        return _decode(rows[0]) if rows else None

    def model_version(self, version: str, *, with_bytes: bool = True) -> dict[str, Any] | None:
        """One version (``artifact`` and ``reference`` bytes included unless not ``with_bytes``)."""
        columns = [*INFO, *BYTES] if with_bytes else INFO
        rows = self._fetch(select(*columns).where(model_versions.c.version == version))
        return _decode(rows[0]) if rows else None

    def model_card(self, version: str) -> dict[str, Any] | None:
        """The model card of ``version`` (``markdown`` and ``card``), or None."""
        query = select(model_versions.c.model_card).where(model_versions.c.version == version)
        rows = self._fetch(query)
        text = rows[0]["model_card"] if rows else None
        return json.loads(text) if text else None

    def deployed_models(self) -> list[dict[str, Any]]:
        """Every version ever published, without bytes, oldest first (versions sort by time)."""
        query = select(*INFO).where(model_versions.c.deployed_at.is_not(None))
        return [_decode(row) for row in self._fetch(query.order_by(model_versions.c.version))]

    def live_version(self) -> str | None:
        """The version the live pointer names, or None before the first deployment."""
        rows = self._fetch(select(live_model.c.version).where(live_model.c.id == LIVE_ROW))
        return rows[0]["version"] if rows else None

    def publish(self, version: str, ingestion_record: str) -> str | None:
        """Deploy a trained version: mark it published, make it live, record it; one transaction.

        A version published before keeps its first ``deployed_at`` and ingestion record.
        Returns the version that was live before. NotFoundError if ``version`` was never
        trained.
        """
        now = utcnow()
        c = model_versions.c
        # The first statement writes: SQLite then holds its write lock for the whole
        # transaction, so nothing read below can change before the commit.
        marked = (
            update(model_versions)
            .where(c.version == version)
            .values(
                deployed_at=func.coalesce(c.deployed_at, now),
                ingestion_record=func.coalesce(c.ingestion_record, ingestion_record),
            )
        )
        with self._write() as conn:
            if not conn.execute(marked).rowcount:
                raise NotFoundError(f"model version '{version}' is not in the record store")
            return self._go_live(conn, version, "deploy", now)

    def set_live(self, version: str) -> str | None:
        """Make a published ``version`` live again (a rollback) and record it; one transaction.

        Returns the version that was live before. NotFoundError, naming the published
        versions, if ``version`` was never published.
        """
        c = model_versions.c
        # A write first (it changes nothing), for the reason given in publish().
        check = (
            update(model_versions)
            .where(c.version == version, c.deployed_at.is_not(None))
            .values(deployed_at=c.deployed_at)
        )
        with self._write() as conn:
            if not conn.execute(check).rowcount:
                known = conn.execute(
                    select(c.version).where(c.deployed_at.is_not(None)).order_by(c.version)
                ).scalars()
                raise NotFoundError(
                    f"model version '{version}' is not deployed; known: {list(known)}"
                )
            return self._go_live(conn, version, "rollback", utcnow())

    def _go_live(self, conn: Connection, version: str, action: str, now: str) -> str | None:
        """Point ``live_model`` at ``version`` and append the history row; the previous one."""
        c = model_versions.c
        sha256, score = conn.execute(select(c.sha256, c.score).where(c.version == version)).one()
        live = select(live_model.c.version).where(live_model.c.id == LIVE_ROW).with_for_update()
        previous = conn.execute(live).scalar()
        values = {"id": LIVE_ROW, "version": version, "changed_at": now}
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(live_model).values(values)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[live_model.c.id],
                set_={"version": version, "changed_at": now},
            )
        )
        conn.execute(
            insert(deployments),
            {
                "deployed_at": now,
                "model_version": version,
                "action": action,
                "previous_version": previous,
                "f1": (json.loads(score) if score else {}).get("f1"),
                "sha256": sha256,
            },
        )
        return previous
