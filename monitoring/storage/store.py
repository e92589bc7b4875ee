"""The record store: the source of truth for history.

Ingestions, scores, deployments, drift reports, step timings, pipeline runs,
captured predictions and the profile of each ingestion live in one SQL database
through SQLAlchemy: a SQLite file by default, PostgreSQL through ``DATABASE_URL``.
The course's text files (``ingestedfiles.txt``, ``latestscore.txt``) are written
too, as compatible outputs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    delete,
    insert,
    or_,
    select,
    update,
)

from monitoring.storage.batches import IngestedBatches
from monitoring.storage.engine import get_engine, sqlite_file
from monitoring.storage.files import file_identity
from monitoring.storage.models import ModelVersions, utcnow
from monitoring.storage.schema import (
    data_profiles,
    deployments,
    drift_reports,
    ingestions,
    live_model,
    runs,
    scores,
    timings,
)

# Drift reports of a client's batch (POST /drift): kept within limits, never alerting.
ADHOC_SOURCE = "request"

# Profiles that keep their drift reference bytes (about 8 bytes per row and feature);
# older ones keep only their JSON, so the table does not grow by the data's size.
KEEP_PROFILE_REFERENCES = 5


class Store(ModelVersions, IngestedBatches):
    """Typed access to the record store at SQLAlchemy database URL ``url``.

    With SQLite, :attr:`stamp` (``<file>.records``) is touched after each write of all
    but captured predictions (written all the time): readers cache what they derive
    from the records until it changes.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.file = sqlite_file(url)
        self.stamp = None if self.file is None else Path(f"{self.file}.records")

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    def ping(self) -> None:
        """Read one row of a table; raise what the driver raises when the store cannot be
        reached or its database is damaged (``SELECT 1`` would not read the file)."""
        with self.engine.connect() as conn:
            conn.execute(select(live_model.c.version).limit(1)).all()

    def change_key(self, *, records_only: bool = False) -> Any:
        """A cheap value that changes whenever the store (``records_only``: its stamp) is written.

        Without ``records_only``: the identities of the SQLite file and its ``-wal`` (a
        commit appends to the log, a checkpoint rewrites the file); ``None`` without a file.
        """
        if self.file is None or self.stamp is None:
            return None
        if records_only:
            return ("records", file_identity(self.stamp))
        return (file_identity(self.file), file_identity(Path(f"{self.file}-wal")))

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction of the record methods; touches :attr:`stamp` after commit."""
        with self.engine.begin() as conn:
            yield conn
        if self.stamp is not None:
            self.stamp.touch()

    def _fetch(self, query: Executable) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def add_ingestions(self, records: list[Mapping[str, Any]]) -> None:
        """Insert one row per source file of an ingestion batch."""
        if records:
            with self._write() as conn:
                conn.execute(insert(ingestions), [dict(r) for r in records])

    def ingestions(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return self._fetch(select(ingestions).order_by(ingestions.c.id.desc()).limit(limit))

    def latest_ingestion(self) -> list[dict[str, Any]]:
        """The per-file records of the newest ingestion batch, in file order (empty if none)."""
        newest = select(ingestions.c.batch_id).order_by(ingestions.c.id.desc()).limit(1)
        query = select(ingestions).where(ingestions.c.batch_id == newest.scalar_subquery())
        return self._fetch(query.order_by(ingestions.c.id))

    def add_data_profile(
        self,
        profile: Mapping[str, Any],
        *,
        reference: bytes | None,
        data_sha256: str | None,
        keep_references: int = KEEP_PROFILE_REFERENCES,
    ) -> int:
        """Store the profile of an ingestion (JSON) and its drift ``reference`` bytes;
        return its id.

        Only the latest ``keep_references`` profiles keep their reference bytes.
        """
        row = {
            "created_at": utcnow(),
            "data_sha256": data_sha256,
            "profile": json.dumps(profile),
            "reference": reference,
        }
        with self._write() as conn:
            key = conn.execute(insert(data_profiles), row).inserted_primary_key
            oldest_kept = conn.execute(
                select(data_profiles.c.id)
                .order_by(data_profiles.c.id.desc())
                .limit(1)
                .offset(max(keep_references, 1) - 1)
            ).scalar()
            if oldest_kept is not None:
                conn.execute(
                    update(data_profiles)
                    .where(data_profiles.c.id < oldest_kept, data_profiles.c.reference.is_not(None))
                    .values(reference=None)
                )
        return int(key[0]) if key else 0

    def latest_data_profile_id(self) -> int | None:
        """Id of the latest data profile (None before the first ingestion)."""
        query = select(data_profiles.c.id).order_by(data_profiles.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else int(found)

    def data_profile(self, profile_id: int | None = None) -> dict[str, Any] | None:
        """A data profile without its reference bytes (default: the latest), or None.

        ``id``, ``created_at``, ``data_sha256``, ``profile`` (decoded) and
        ``has_reference``.
        """
        columns = [data_profiles.c[name] for name in ("id", "created_at", "data_sha256")]
        has_reference = data_profiles.c.reference.is_not(None).label("has_reference")
        query = select(*columns, data_profiles.c.profile, has_reference)
        if profile_id is not None:
            query = query.where(data_profiles.c.id == profile_id)
        rows = self._fetch(query.order_by(data_profiles.c.id.desc()).limit(1))
        if not rows:
            return None
        row = rows[0]
        row["profile"] = json.loads(row["profile"])
        row["has_reference"] = bool(row["has_reference"])
        return row

    def data_profile_reference(self, profile_id: int) -> bytes | None:
        """The drift reference bytes of a data profile (None once dropped, or unknown id)."""
        query = select(data_profiles.c.reference).where(data_profiles.c.id == profile_id)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else bytes(found)

    def add_score(self, record: Mapping[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(insert(scores), dict(record))

    def scores(
        self, *, model_version: str | None = None, dataset: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Score history, oldest first."""
        query = select(scores)
        if model_version is not None:
            query = query.where(scores.c.model_version == model_version)
        if dataset is not None:
            query = query.where(scores.c.dataset == dataset)
        return self._fetch(query.order_by(scores.c.id.desc()).limit(limit))[::-1]

    def deployments(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Deployments and rollbacks, oldest first."""
        return self._fetch(select(deployments).order_by(deployments.c.id.desc()).limit(limit))[::-1]

    def deployments_since(self, since: str) -> list[dict[str, Any]]:
        """Deployments and rollbacks at or after ``since`` (ISO time), oldest first."""
        query = select(deployments).where(deployments.c.deployed_at >= since)
        return self._fetch(query.order_by(deployments.c.id))

    def run_statuses(self, since: str) -> list[dict[str, Any]]:
        """Runs finished at or after ``since`` (ISO time): id, times, status and outcome,
        without their evidence, oldest first."""
        columns = [
            runs.c[name] for name in ("id", "started_at", "finished_at", "status", "outcome")
        ]
        query = select(*columns).where(runs.c.finished_at >= since)
        return self._fetch(query.order_by(runs.c.finished_at))

    def ingested_files(self) -> list[dict[str, Any]]:
        """Every accepted ingestion record: batch, time, file name and content hash, oldest
        first (no paths or messages)."""
        names = ("batch_id", "ingested_at", "file_name", "sha256")
        query = select(*[ingestions.c[name] for name in names])
        return self._fetch(query.where(ingestions.c.status == "accepted").order_by(ingestions.c.id))

    def add_drift_report(
        self,
        report: Mapping[str, Any],
        *,
        model_version: str | None,
        source: str,
        dataset_sha256: str | None = None,
    ) -> int:
        """Store a drift report; return its id."""
        row = {
            "created_at": utcnow(),
            "model_version": model_version,
            "source": source,
            "dataset_sha256": dataset_sha256,
            "n_current": report.get("n_current"),
            "dataset_drift": bool(report.get("dataset_drift")),
            "drift_share": report.get("drift_share"),
            "report": json.dumps(report),
        }
        with self._write() as conn:
            key = conn.execute(insert(drift_reports), row).inserted_primary_key
        return int(key[0]) if key else 0

    def drift_reports(
        self,
        *,
        limit: int = 50,
        full: bool = False,
        adhoc: bool | None = None,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Drift reports, newest first, each with ``adhoc`` (a client's batch, source
        :data:`ADHOC_SOURCE`); ``adhoc`` True/False keeps only those/the others,
        ``source`` only that source; ``full`` includes each per-column table."""
        query = select(drift_reports)
        if source is not None:
            query = query.where(drift_reports.c.source == source)
        if adhoc is not None:
            is_adhoc = drift_reports.c.source == ADHOC_SOURCE
            query = query.where(is_adhoc if adhoc else ~is_adhoc)
        rows = self._fetch(query.order_by(drift_reports.c.id.desc()).limit(limit))
        for row in rows:
            report = json.loads(row.pop("report"))
            row["drifted_columns"] = report.get("drifted_columns", [])
            row["adhoc"] = row["source"] == ADHOC_SOURCE
            if full:
                row["report"] = report
        return rows

    def prune_adhoc_drift_reports(self, *, keep: int, before: str) -> int:
        """Delete ad-hoc drift reports but the newest ``keep``, and any created before
        ``before`` (ISO time); return how many."""
        adhoc = drift_reports.c.source == ADHOC_SOURCE
        newest = (
            select(drift_reports.c.id)
            .where(adhoc)
            .order_by(drift_reports.c.id.desc())
            .limit(1)
            .offset(keep)
        ).scalar_subquery()  # the newest report beyond those kept (NULL: none)
        old = or_(drift_reports.c.created_at < before, drift_reports.c.id <= newest)
        with self._write() as conn:
            return int(conn.execute(delete(drift_reports).where(adhoc, old)).rowcount or 0)

    def add_timing(self, step: str, seconds: float, rows: int | None = None) -> None:
        row = {"measured_at": utcnow(), "step": step, "seconds": seconds, "rows": rows}
        with self._write() as conn:
            conn.execute(insert(timings), row)

    def timings(self, step: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The latest timings of a step, newest first."""
        query = select(timings).where(timings.c.step == step)
        return self._fetch(query.order_by(timings.c.id.desc()).limit(limit))

    def start_run(self) -> str:
        run_id = str(uuid.uuid4())
        with self._write() as conn:
            conn.execute(insert(runs), {"id": run_id, "started_at": utcnow(), "status": "running"})
        return run_id

    def finish_run(
        self, run_id: str, *, status: str, outcome: str, reason: str, evidence: Mapping[str, Any]
    ) -> None:
        evidence_json = json.dumps(evidence, default=str)
        self._finish(runs.c.id == run_id, status, outcome, reason, evidence=evidence_json)

    def close_interrupted_runs(self) -> int:
        """Mark runs still ``running`` as interrupted; return how many.

        Call only while holding the pipeline lock: then no run can be in progress,
        so a ``running`` record belongs to a process that died mid-run.
        """
        reason = "the process running it stopped before it finished"
        return self._finish(runs.c.status == "running", "interrupted", "interrupted", reason)

    def _finish(
        self, which: ColumnElement[bool], status: str, outcome: str, reason: str, **values: Any
    ) -> int:
        values.update(finished_at=utcnow(), status=status, outcome=outcome, reason=reason)
        with self._write() as conn:
            return int(conn.execute(update(runs).where(which).values(values)).rowcount or 0)

    def runs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Pipeline runs, newest first, with their evidence decoded."""
        return self._runs(select(runs).order_by(runs.c.started_at.desc()).limit(limit))

    def run(self, run_id: str) -> dict[str, Any] | None:
        found = self._runs(select(runs).where(runs.c.id == run_id))
        return found[0] if found else None

    def _runs(self, query: Executable) -> list[dict[str, Any]]:
        rows = self._fetch(query)
        for row in rows:
            row["evidence"] = json.loads(row["evidence"]) if row["evidence"] else None
        return rows
