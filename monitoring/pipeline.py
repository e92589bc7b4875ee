"""The full process: check for new data, detect drift, retrain, gate, redeploy, report.

One run at a time (an exclusive lock), recorded with what it found, did and why
(steps: README, *The full process*). Files count as new by name and content hash
unless the live version's ingestion record (in the store) or an earlier run that did not deploy has
seen them; a challenger is deployed unless its test F1 is worse than the
champion's by more than ``thresholds.gate_margin``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from monitoring.capture import live_performance
from monitoring.capture.estimation import estimated_performance
from monitoring.config import Settings
from monitoring.data.ingestion import find_new_files, ingest
from monitoring.drift import detect_data_drift
from monitoring.drift.model_drift import baseline_f1, batch_f1_drift, live_model_drift
from monitoring.exceptions import MonitoringError
from monitoring.model.artifact import Artifact, load_artifact
from monitoring.model.deployment import deploy, load_deployed
from monitoring.model.scoring import evaluate, read_test_data, score, score_record
from monitoring.model.tracking import log_deployment, log_gate
from monitoring.model.training import train, training_matrix
from monitoring.readmodels import ReadModels
from monitoring.reports.fairness import fairness_gate, safe_audit_test
from monitoring.reports.modelcard import read_model_card, write_model_card
from monitoring.storage.engine import exclusive
from monitoring.storage.files import read_table, sha256_file
from monitoring.storage.store import Store

Progress = Callable[[str], None]

SKIP_OUTCOMES = ("no_drift", "drift_ignored", "rejected")


def pipeline_lock(settings: Settings) -> Any:
    """The lock that lets one pipeline operation run at a time on every host of the store."""
    return exclusive(settings.database_url, "pipeline", what="a pipeline run")


def new_data(settings: Settings, store: Store) -> list[dict[str, str]]:
    """Files the live model has not seen and no earlier run decided not to deploy on."""
    evaluated = {
        (f["file_name"], f["sha256"])
        for run in store.runs(limit=200)
        if run["status"] == "completed" and run["outcome"] in SKIP_OUTCOMES
        for f in (run["evidence"] or {}).get("new_files", [])
    }
    live = store.live_version()
    row = None if live is None else store.model_version(live, with_bytes=False)
    record = (row or {}).get("ingestion_record") or ""
    out = []
    for path in find_new_files(settings, record):
        entry = {"file_name": path.name, "sha256": sha256_file(path)}
        if (entry["file_name"], entry["sha256"]) not in evaluated:
            out.append(entry)
    return out


def schedule_due(settings: Settings, store: Store) -> bool:
    """Whether the live model is older than ``policy.retrain_every_hours``."""
    hours = settings.policy.retrain_every_hours
    if not hours:
        return False
    deployments = [d for d in store.deployments() if d["action"] == "deploy"]
    if not deployments:
        return True
    last = datetime.fromisoformat(deployments[-1]["deployed_at"])
    return datetime.now(UTC) - last >= timedelta(hours=float(hours))


def check_model_drift(
    settings: Settings, store: Store, champion: Artifact, frame: pd.DataFrame, digest: str
) -> dict[str, Any]:
    """Score the deployed model on the ingested data and compare like with like.

    The baseline is the deployed model's F1 on the data it was trained on; the new
    value is its F1 on the newly ingested data (complete rows). Both are F1 on
    ingested batches, so the comparison is of the same metric on the same kind of
    data, with ``thresholds.model_drift_tolerance``.
    """
    name = settings.finaldata_file.name
    X, y, dropped = training_matrix(frame, settings, input_name=name)
    labelled = X.assign(**{settings.target: y})
    metrics = evaluate(champion, labelled, settings.target, input_name=name)
    store.add_score(score_record(champion, metrics, dataset="ingested", dataset_sha256=digest))
    baseline, baseline_dataset = baseline_f1(champion.metadata)
    assert baseline is not None  # every trained model records its scores
    return {
        **batch_f1_drift(
            baseline,
            metrics["confusion_matrix"],
            tolerance=settings.thresholds.model_drift_tolerance,
            baseline_dataset=baseline_dataset,
        ),
        "new_dataset": "newly ingested data",
        "rows_dropped_missing": dropped,
        "new_metrics": metrics,
    }


def check_data_drift(
    settings: Settings, store: Store, champion: Artifact, frame: pd.DataFrame, digest: str
) -> dict[str, Any]:
    """Data drift of the ingested data against the deployed model's training data.

    Each column carries the model's ``importance`` of it; ``key_features`` are the
    policy's (named, and the ``key_features_top`` most important), ``key_drifted``
    those that drifted.
    """
    report = detect_data_drift(
        champion.reference,
        frame,
        columns=champion.features,
        options=settings.drift,
    )
    importance: dict[str, float] = champion.metadata.get("feature_importance") or {}
    for column in report["columns"]:
        column["importance"] = importance.get(column["column"])
    key = key_features(settings, importance)
    report["key_features"] = key
    report["key_drifted"] = [name for name in report["drifted_columns"] if name in key]
    store.add_drift_report(
        report, model_version=champion.version, source="pipeline", dataset_sha256=digest
    )
    return report


def key_features(settings: Settings, importance: dict[str, float]) -> list[str]:
    """The features whose drift alone is data drift: ``policy.key_features`` and the
    ``policy.key_features_top`` most important to the model, in feature order."""
    policy = settings.policy
    ranked = sorted(importance, key=lambda name: -importance[name])
    chosen = set(policy.key_features) | set(ranked[: policy.key_features_top])
    return [name for name in settings.features if name in chosen]


def estimated_summary(settings: Settings, store: Store, champion: Artifact) -> dict[str, Any]:
    """The deployed model's estimated performance (CBPE) as run evidence: the verdict
    and the chunk it is about (the newest with ``min_chunk_rows`` rows), not every chunk."""
    found = estimated_performance(store, settings, champion.version, champion.metadata)
    latest = found["latest"]
    keep = ("key", "start", "end", "n_rows", "f1", "lower", "upper", "n_labelled")
    return {
        **{k: found[k] for k in ("method", "calibration", "chunking", "baseline_f1", "tolerance")},
        "drop": found["drop"],
        "latest": None if latest is None else {k: latest[k] for k in keep},
        "retrain_on_estimated_f1_drop": settings.policy.retrain_on_estimated_f1_drop,
    }


def decide(
    settings: Settings,
    *,
    model_drift: bool,
    data_drift: bool,
    scheduled: bool,
    forced: bool,
    key_drift: Sequence[str] = (),
    estimated_drop: bool = False,
) -> list[str]:
    """Reasons to retrain under the configured policy (empty: do not retrain).

    Drift in a key feature (``key_drift``) is data drift on its own, even when too few
    columns drifted for the dataset to count as drifted. ``estimated_drop`` (the newest
    chunk's estimated F1 is below the baseline by more than the tolerance) is a reason
    only with ``policy.retrain_on_estimated_f1_drop``.
    """
    policy = settings.policy
    key = f"key feature drift ({', '.join(key_drift)})"
    due = {
        "estimated F1 drop (no labels: CBPE)": estimated_drop
        and policy.retrain_on_estimated_f1_drop,
        "model drift": model_drift and policy.retrain_on_model_drift,
        "data drift": data_drift and policy.retrain_on_data_drift,
        key: bool(key_drift) and not data_drift and policy.retrain_on_data_drift,
        "scheduled retrain": scheduled,
        "forced": forced,
    }
    return [reason for reason, yes in due.items() if yes]


def gate(
    champion_f1: float,
    challenger_f1: float,
    *,
    margin: float,
    fairness: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Champion/challenger gate: accept unless the challenger is worse by > margin, or
    ``fairness`` (:func:`~monitoring.reports.fairness.fairness_gate`) refuses it."""
    f1_accepted = bool(challenger_f1 >= champion_f1 - margin)
    verdict: dict[str, Any] = {
        "accepted": f1_accepted,
        "champion_f1": champion_f1,
        "challenger_f1": challenger_f1,
        "margin": margin,
        "metric": "f1",
    }
    if fairness is not None:
        verdict["f1_accepted"] = f1_accepted
        verdict["accepted"] = f1_accepted and bool(fairness["accepted"])
        verdict["fairness"] = fairness
    return verdict


def fairness_evidence(
    settings: Settings, champion: Artifact, challenger: Artifact
) -> dict[str, Any] | None:
    """The fairness criterion of the gate (None when no group attribute is configured):
    both models audited on the test data; it refuses only with ``fairness.gate``."""
    if not settings.fairness.attributes:
        return None
    return fairness_gate(
        safe_audit_test(settings, champion),
        safe_audit_test(settings, challenger),
        enabled=settings.fairness.gate,
    )


def publish(settings: Settings, store: Store) -> dict[str, Any]:
    """Deploy the trained, scored model, then write its model card.

    The model is live once deployed: a model card that cannot be written is reported
    in the answer (``model_card_error``), not raised as if the deployment had failed.
    """
    deployed = deploy(settings, store=store)
    try:
        write_model_card(settings, store, deployed["model_version"])
    except (MonitoringError, OSError) as exc:
        deployed["model_card_error"] = exc.message if isinstance(exc, MonitoringError) else str(exc)
    tracked = log_deployment(
        settings,
        action="deploy",
        version=deployed["model_version"],
        previous=deployed["previous_version"],
        f1=deployed["f1"],
        model_card=read_model_card(store, deployed["model_version"]),
    )
    if tracked is not None:  # MLflow on
        deployed["mlflow"] = tracked
    return deployed


def bootstrap(
    settings: Settings, store: Store, progress: Progress = lambda _: None
) -> dict[str, Any]:
    """First deployment: ingest, train, score and deploy with no gate."""
    progress("ingesting")
    ingestion = ingest(settings, store=store)
    progress(f"ingested {ingestion.rows_read} rows, kept {ingestion.rows_kept}")
    progress("training")
    metadata = train(settings, store=store)
    progress("scoring")
    metrics = score(settings, store=store)
    progress(f"F1 on test data {metrics['f1']:.4f}; deploying")
    deployed = publish(settings, store)
    return {
        "ingestion": ingestion.to_dict(),
        "model_version": metadata["version"],
        "score": metrics,
        "deployment": deployed,
    }


def run_full_process(
    settings: Settings,
    *,
    store: Store | None = None,
    force: bool = False,
    progress: Progress = lambda _: None,
    after_deploy: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the full process once; return the run record (``outcome``, ``reason``, ...).

    ``force`` retrains even without new data or drift (the gate still applies);
    ``after_deploy`` (the report) runs after a deployment, its result kept as
    evidence. :class:`AlreadyRunningError` if another run holds the lock.
    """
    store = store or Store(settings.database_url)
    with pipeline_lock(settings):
        store.close_interrupted_runs()
        run_id = store.start_run()
        evidence: dict[str, Any] = {}
        try:
            outcome, reason = _run(settings, store, evidence, force=force, progress=progress)
        except BaseException as exc:
            reason = (
                exc.message if isinstance(exc, MonitoringError) else f"{type(exc).__name__}: {exc}"
            )
            store.finish_run(
                run_id, status="failed", outcome="failed", reason=reason, evidence=evidence
            )
            raise
        if outcome in ("deployed", "initial_deploy") and after_deploy is not None:
            # The new model is live whatever happens now: a report that fails is
            # noted in the run, never recorded as a failed run.
            try:
                evidence["report"] = after_deploy()
            except Exception as exc:  # noqa: BLE001 - any failure of the report
                message = exc.message if isinstance(exc, MonitoringError) else str(exc)
                evidence["report_error"] = message
                reason = f"{reason}; the report after it failed: {message}"
        elif outcome != "no_new_data":
            # New data and the same model: the drift of the new data against it is
            # computed and recorded now, so the next dashboard or report reads it back.
            progress("recording the drift of the new data for the dashboard")
            try:
                ReadModels(settings, store).drift.keep_latest()
            except Exception as exc:  # noqa: BLE001 - never fails the run
                evidence["dashboard_drift_error"] = str(exc)
        store.finish_run(
            run_id, status="completed", outcome=outcome, reason=reason, evidence=evidence
        )
    progress(f"{outcome}: {reason}")
    record = store.run(run_id)
    assert record is not None
    return record


def _run(
    settings: Settings, store: Store, evidence: dict[str, Any], *, force: bool, progress: Progress
) -> tuple[str, str]:
    if store.live_version() is None:
        progress("no model deployed yet: bootstrapping")
        evidence.update(bootstrap(settings, store, progress))
        return "initial_deploy", "no model was deployed; trained and deployed the first one"

    new = new_data(settings, store)
    scheduled = schedule_due(settings, store)
    evidence["new_files"] = new
    evidence["scheduled"] = scheduled
    if not new and not scheduled and not force:
        progress("no new data")
        return "no_new_data", "every file in the input folder has been seen"

    progress(f"{len(new)} new file(s); ingesting")
    evidence["ingestion"] = ingest(settings, store=store).to_dict()
    champion = load_deployed(store)
    evidence["champion"] = champion.version

    # Both checks look at the data just ingested: read and hash it once.
    frame, digest = read_table(settings.finaldata_file), sha256_file(settings.finaldata_file)
    progress("checking model drift of the deployed model on the new data")
    model_drift = check_model_drift(settings, store, champion, frame, digest)
    evidence["model_drift"] = model_drift
    progress("checking data drift against the training data")
    data_drift = check_data_drift(settings, store, champion, frame, digest)
    evidence["data_drift"] = data_drift

    live = live_model_drift(  # labelled captured traffic
        live_performance(store).get(champion.version),
        baseline=baseline_f1(champion.metadata)[0],
        tolerance=settings.thresholds.model_drift_tolerance,
        min_labelled_rows=int(settings.capture.min_labelled_rows),
    )
    evidence["live_model_drift"] = live
    estimated = estimated_summary(settings, store, champion)
    evidence["estimated_performance"] = estimated

    reasons = decide(
        settings,
        model_drift=bool(model_drift["drift"] or live["drift"]),
        data_drift=data_drift["dataset_drift"],
        scheduled=scheduled,
        forced=force,
        key_drift=data_drift["key_drifted"],
        estimated_drop=estimated["drop"],
    )
    evidence["retrain_reasons"] = reasons
    any_model_drift = bool(model_drift["drift"] or live["drift"])
    inputs_drifted = bool(data_drift["dataset_drift"] or data_drift["key_drifted"])
    concept = any_model_drift and not inputs_drifted
    evidence["concept_drift_suspected"] = concept
    found = (
        f"model drift {any_model_drift}"
        + (" (concept drift suspected: the inputs did not drift)" if concept else "")
        + f", data drift {data_drift['dataset_drift']} "
        f"({data_drift['n_drifted']}/{data_drift['n_columns']} columns"
        + (
            f"; key features drifted: {', '.join(data_drift['key_drifted'])}"
            if data_drift["key_drifted"]
            else ""
        )
        + ")"
    )
    if not reasons:
        if any_model_drift or inputs_drifted:
            return "drift_ignored", f"drift found but the policy does not retrain on it: {found}"
        return "no_drift", f"no retrain warranted: {found}"

    if concept:
        reasons = [
            r if r != "model drift" else "model drift (concept drift suspected)" for r in reasons
        ]
    progress(f"retraining ({', '.join(reasons)})")
    challenger = train(settings, store=store)
    challenger_metrics = score(settings, store=store)
    test = read_test_data(settings)
    champion_metrics = evaluate(
        champion, test, settings.target, input_name=settings.test_data_file.name
    )
    fairness = fairness_evidence(settings, champion, load_artifact(store, challenger["version"]))
    verdict = gate(
        champion_metrics["f1"],
        challenger_metrics["f1"],
        margin=settings.thresholds.gate_margin,
        fairness=fairness,
    )
    evidence["challenger"] = challenger["version"]
    evidence["gate"] = verdict
    tracked = log_gate(settings, challenger["version"], verdict)
    if tracked is not None:  # MLflow on
        evidence["mlflow_gate"] = tracked
    if not verdict["accepted"]:
        progress("challenger rejected by the gate; champion stays")
        if fairness is not None and not fairness["accepted"] and verdict["f1_accepted"]:
            introduced = ", ".join(
                f"{d['metric']} of {d['attribute']} group {d['group']}"
                for d in fairness["introduced"]
            )
            return "rejected", (
                f"retrain for {', '.join(reasons)}, but the challenger fails disparities "
                f"the champion passes (fairness.gate): {introduced}"
            )
        return "rejected", (
            f"retrain for {', '.join(reasons)}, but the challenger's F1 "
            f"{verdict['challenger_f1']:.4f} is worse than the champion's "
            f"{verdict['champion_f1']:.4f} by more than {verdict['margin']}"
        )
    progress("challenger accepted; deploying")
    evidence["deployment"] = publish(settings, store)
    return "deployed", (
        f"retrained for {', '.join(reasons)}; challenger F1 {verdict['challenger_f1']:.4f} "
        f"vs champion {verdict['champion_f1']:.4f}"
    )
