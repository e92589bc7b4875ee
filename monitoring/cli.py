"""Command line: one entry point, a subcommand per step.

Exit status: 0 success, 1 a step failed (the message says why), 2 bad usage,
75 another pipeline run holds the lock (try again later).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from monitoring.capture.importer import run_importer
from monitoring.config import Settings, load_settings
from monitoring.data.ingestion import ingest
from monitoring.data.profile import profile_frame
from monitoring.diagnostics import dependencies
from monitoring.diagnostics.timing import time_steps
from monitoring.exceptions import AlreadyRunningError, MonitoringError
from monitoring.model.deployment import current_version, list_versions, rollback
from monitoring.model.scoring import score
from monitoring.model.training import train
from monitoring.pipeline import bootstrap, publish, run_full_process
from monitoring.readmodels import DEPENDENCY_CACHE, ReadModels
from monitoring.reports.reporting import generate_report
from monitoring.storage.engine import unavailable
from monitoring.storage.files import read_table
from monitoring.storage.store import Store

EXIT_FAILED = 1
EXIT_BUSY = 75


def _say(message: str) -> None:
    print(f"[monitoring] {message}", file=sys.stderr, flush=True)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    result = ingest(settings)
    for record in result.rejected:
        _say(f"rejected {record['file_name']}: {record['message']}")
    _say(f"read {result.rows_read} rows, kept {result.rows_kept} -> {settings.finaldata_file}")
    return result.to_dict()


def cmd_train(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    metadata = train(settings)
    _say(f"trained model {metadata['version']} -> {settings.output_model_path}")
    return metadata


def cmd_score(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    metrics = score(settings)
    _say(f"F1 {metrics['f1']:.4f} on {metrics['n_rows']} test rows")
    return metrics


def cmd_deploy(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    result = publish(settings, Store(settings.database_url))
    _say(f"deployed {result['model_version']} (previous: {result['previous_version']})")
    return result


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    result = rollback(settings, to_version=args.to)
    _say(f"rolled back to {result['model_version']} (was {result['previous_version']})")
    return result


def cmd_versions(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    return {"versions": list_versions(settings)}


def cmd_diagnose(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    runs = args.runs or settings.diagnostics.timing_runs
    _say(f"timing ingestion and training, {runs} run(s) each")
    timing = time_steps(settings, runs=runs, progress=lambda i, n: _say(f"  run {i}/{n} done"))
    out: dict[str, Any] = {"execution_time": timing}
    if settings.finaldata_file.is_file():
        profile = profile_frame(read_table(settings.finaldata_file), settings)
        out["summary"] = profile["summary"]
        out["missing_data"] = profile["missing"]
    _say("checking dependencies" + (" (offline)" if args.offline else ""))
    out["dependencies"] = dependencies.refresh_cache(
        settings.root / "requirements.txt",
        settings.output_model_path / DEPENDENCY_CACHE,
        fetch_latest=(lambda name: None) if args.offline else None,
        deadline=settings.diagnostics.dependency_deadline_seconds,
    )
    return out


def cmd_report(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    result = generate_report(settings)
    for path in result["files"]:
        _say(f"wrote {path}")
    return result


def cmd_drift(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    report = ReadModels(settings).drift.record()
    _say(
        f"dataset drift: {report['dataset_drift']} "
        f"({report['n_drifted']}/{report['n_columns']} columns: {report['drifted_columns']})"
    )
    return report


def cmd_setup(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    live = current_version(settings)
    if args.if_needed and live is not None:
        _say(f"model {live} is already deployed; nothing to set up")
        return {"model_version": live, "skipped": True}
    result = bootstrap(settings, Store(settings.database_url), progress=_say)
    result["report"] = generate_report(settings)
    _say(f"ready: model {result['model_version']} deployed")
    return result


def cmd_run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    def after_deploy() -> dict[str, Any]:
        report = generate_report(settings)
        if args.api_url:
            import apicalls  # the course's script at the project root, needed only here

            report["apicalls"] = apicalls.run(args.api_url, settings)
        return report

    return run_full_process(settings, force=args.force, progress=_say, after_deploy=after_deploy)


def cmd_history(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    return {"runs": Store(settings.database_url).runs(limit=args.limit)}


def cmd_capture_importer(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    parent = args.parent_pid

    def stop() -> bool:
        return bool(stopping) or (parent is not None and os.getppid() != parent)

    # Idle CPU priority once set up: the workers answering requests come first.
    run_importer(settings, stop=stop, idle_priority=True)
    return {"stopped": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring",
        description="Monitor, retrain and redeploy the churn-risk model.",
    )
    parser.add_argument("--config", help="config file (default: $MONITORING_CONFIG or config.json)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., Any], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("ingest", cmd_ingest, "merge every data file of the input folder into finaldata.csv")
    add("train", cmd_train, "train the configured model on finaldata.csv")
    add("score", cmd_score, "score the trained model on the test data")
    add("deploy", cmd_deploy, "deploy the trained, scored model")
    p = add("rollback", cmd_rollback, "make an earlier deployed version live again")
    p.add_argument("--to", metavar="VERSION", help="version to restore (default: the previous one)")
    add("versions", cmd_versions, "list the deployed model versions")
    p = add(
        "diagnose", cmd_diagnose, "time ingestion and training, profile data, check dependencies"
    )
    p.add_argument("--runs", type=int, help="timing repetitions (default: diagnostics.timing_runs)")
    p.add_argument("--offline", action="store_true", help="do not ask PyPI for latest versions")
    add("report", cmd_report, "write the confusion matrix and the combined report")
    add("drift", cmd_drift, "data drift of the ingested data against the deployed model")
    p = add("setup", cmd_setup, "ingest, train, score, deploy and report (first deployment)")
    p.add_argument("--if-needed", action="store_true", help="do nothing if a model is deployed")
    p = add("run", cmd_run, "the full process: new data, drift, retrain, gate, redeploy, report")
    p.add_argument("--force", action="store_true", help="retrain even without new data or drift")
    p.add_argument("--api-url", help="also run apicalls against this running API after a deploy")
    p = add("history", cmd_history, "recorded pipeline runs and their decisions")
    p.add_argument("--limit", type=int, default=20)
    p = add(
        "capture-importer",
        cmd_capture_importer,
        "import captured predictions into the record store until stopped (gunicorn starts it)",
    )
    p.add_argument("--parent-pid", type=int, help="stop when this process is gone")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.func is not cmd_capture_importer:  # it waits for the store instead
            Store(settings.database_url).engine  # noqa: B018 - fail before writing any file
        result = args.func(settings, args)
    except DBAPIError as exc:  # the store went away during the command
        _say(f"error: {unavailable(settings.database_url, exc).message}")
        return EXIT_FAILED
    except MonitoringError as exc:
        _say(f"error: {exc.message}")
        return EXIT_BUSY if isinstance(exc, AlreadyRunningError) else EXIT_FAILED
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0
