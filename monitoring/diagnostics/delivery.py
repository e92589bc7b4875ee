"""Delivery metrics of the model, the four DORA metrics adapted, from the store's records.

Over the ``delivery.window_days`` before ``now`` (README, *Delivery metrics*):

deployment frequency
    deployments (``deploy`` rows of the deployment history; rollbacks are not
    deployments) per week.
lead time
    for each deployment in the window, from the arrival of the new data its model was
    trained on to the deployment: the model's training data is the latest accepted
    ingestion batch at or before its training time; the files of that batch that the
    previously live model's batch did not have (by name and content hash) are the new
    data, and a file arrives when it was first ingested. A deployment without new data
    (a scheduled or forced retrain) has no lead time.
change failure rate
    failed deployments over deployments: a deployment fails when the next change of
    the live model is a rollback away from it, or a pipeline run fails (status
    ``failed``, by its finish time) within ``delivery.failure_window_hours`` after it
    while it is still the latest change.
time to restore
    for each failed deployment that was rolled back, from the deployment to that
    rollback.

Medians (DORA's summary) and means are given with the number of values; every
figure is ``None`` when it has no value.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitoring.config import Settings
from monitoring.storage.store import Store


def as_time(text: str) -> datetime:
    """An ISO time of the store as an aware datetime (UTC when it names no zone)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """``{"n", "median", "mean"}`` of ``values`` (None without values)."""
    if not values:
        return {"n": 0, "median": None, "mean": None}
    return {
        "n": len(values),
        "median": float(statistics.median(values)),
        "mean": float(statistics.fmean(values)),
    }


Files = set[tuple[str, str]]  # (file name, SHA-256) of an ingestion batch


def _training_batches(
    store: Store,
) -> tuple[list[tuple[datetime, Files]], dict[tuple[str, str], datetime]]:
    """Accepted ingestion batches in time order (time, files), and each file's first arrival."""
    batches: dict[str, tuple[datetime, Files]] = {}
    arrival: dict[tuple[str, str], datetime] = {}
    for row in store.ingested_files():
        when = as_time(row["ingested_at"])
        key = (row["file_name"], row["sha256"] or "")
        arrival[key] = min(arrival.get(key, when), when)
        batch = batches.setdefault(row["batch_id"], (when, set()))
        batch[1].add(key)
    return sorted(batches.values(), key=lambda b: b[0]), arrival


def _trained_on(
    batches: list[tuple[datetime, set[tuple[str, str]]]], trained_at: datetime | None
) -> set[tuple[str, str]]:
    """The files of the latest batch ingested at or before ``trained_at``."""
    if trained_at is None:
        return set()
    found: set[tuple[str, str]] = set()
    for when, files in batches:
        if when > trained_at:
            break
        found = files
    return found


def delivery_metrics(
    store: Store, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """The delivery metrics over the ``delivery.window_days`` before ``now`` (default: now).

    Returns ``{"window_days", "since", "until", "deployments", "rollbacks",
    "deployment_frequency_per_week", "lead_time_seconds": {"n", "median", "mean"},
    "change_failure_rate", "failed_deployments", "failure_window_hours",
    "time_to_restore_seconds": {...}, "details": [one per deployment]}``.
    """
    options = settings.delivery
    until = now or datetime.now(UTC)
    since = until - timedelta(days=float(options.window_days))
    window = timedelta(hours=float(options.failure_window_hours))
    changes = [
        row
        for row in store.deployments_since(since.isoformat(timespec="microseconds"))
        if as_time(row["deployed_at"]) <= until
    ]
    failed_runs = [
        run
        for run in store.run_statuses(since.isoformat(timespec="microseconds"))
        if run["status"] == "failed" and run["finished_at"] is not None
    ]
    trained = {row["version"]: as_time(row["trained_at"]) for row in store.deployed_models()}
    batches, arrival = _training_batches(store)

    details = []
    for i, change in enumerate(changes):
        if change["action"] != "deploy":
            continue
        deployed_at = as_time(change["deployed_at"])
        version = change["model_version"]
        detail: dict[str, Any] = {"model_version": version, "deployed_at": change["deployed_at"]}
        files = _trained_on(batches, trained.get(version))
        before = _trained_on(batches, trained.get(change["previous_version"] or ""))
        new = files - before
        detail["new_files"] = len(new)
        detail["lead_time_seconds"] = (
            (deployed_at - min(arrival[f] for f in new)).total_seconds() if new else None
        )
        following = changes[i + 1] if i + 1 < len(changes) else None
        rolled_back = (
            following is not None
            and following["action"] == "rollback"
            and following["previous_version"] == version
        )
        detail["rolled_back_at"] = following["deployed_at"] if rolled_back and following else None
        # A failed run counts against the deployment that was live when it failed.
        end = deployed_at + window
        if following is not None:
            end = min(end, as_time(following["deployed_at"]))
        failed_run = next(
            (run for run in failed_runs if deployed_at < as_time(run["finished_at"]) <= end),
            None,
        )
        detail["failed_run"] = None if failed_run is None else failed_run["id"]
        detail["failed"] = bool(rolled_back or failed_run is not None)
        detail["time_to_restore_seconds"] = (
            (as_time(following["deployed_at"]) - deployed_at).total_seconds()
            if rolled_back and following
            else None
        )
        details.append(detail)

    n = len(details)
    failed = sum(d["failed"] for d in details)
    lead = [d["lead_time_seconds"] for d in details if d["lead_time_seconds"] is not None]
    restore = [
        d["time_to_restore_seconds"] for d in details if d["time_to_restore_seconds"] is not None
    ]
    return {
        "window_days": float(options.window_days),
        "since": since.isoformat(timespec="seconds"),
        "until": until.isoformat(timespec="seconds"),
        "deployments": n,
        "rollbacks": sum(1 for c in changes if c["action"] == "rollback"),
        "deployment_frequency_per_week": n / (float(options.window_days) / 7.0),
        "lead_time_seconds": summary(lead),
        "change_failure_rate": failed / n if n else None,
        "failed_deployments": failed,
        "failure_window_hours": float(options.failure_window_hours),
        "time_to_restore_seconds": summary(restore),
        "details": details,
    }
