"""Command line: one entry point, a subcommand per step.

Exit status: 0 success, 1 a step failed (the message says why), 2 bad usage,
75 another pipeline run holds the lock (try again later). ``schedule`` runs until
a signal stops it, and exits 0 then.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from types import FrameType
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
from monitoring.storage.engine import (
    head_revision,
    known_revisions,
    migrate,
    safe_url,
    schema_revision,
    unavailable,
)
from monitoring.storage.files import read_table
from monitoring.storage.store import Store

EXIT_FAILED = 1
EXIT_BUSY = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The scheduler's clock and sleep; tests replace them (no real waits).
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


def _say(message: str) -> None:
    print(f"[monitoring] {message}", file=sys.stderr, flush=True)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    result = ingest(settings)
    for record in result.records:
        if record["status"] == "rejected":
            _say(f"rejected {record['file_name']}: {record['message']}")
        elif record.get("rows_quarantined"):
            _say(f"{record['file_name']}: {record['message']}")
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
    result = rollback(settings, to_version=args.to, store=Store(settings.database_url))
    _say(f"rolled back to {result['model_version']} (was {result['previous_version']})")
    return result


def cmd_versions(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    return {"versions": list_versions(Store(settings.database_url))}


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
        settings.requirements_file,
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
    store = Store(settings.database_url)
    live = current_version(store)
    if args.if_needed and live is not None:
        _say(f"model {live} is already deployed; nothing to set up")
        return {"model_version": live, "skipped": True}
    result = bootstrap(settings, store, progress=_say)
    result["report"] = generate_report(settings)
    _say(f"ready: model {result['model_version']} deployed")
    return result


def _after_deploy(settings: Settings, api_url: str | None) -> Callable[[], dict[str, Any]]:
    def after_deploy() -> dict[str, Any]:
        report = generate_report(settings)
        if api_url:
            import apicalls  # the course's script at the project root, needed only here

            report["apicalls"] = apicalls.run(api_url, settings)
        return report

    return after_deploy


def cmd_run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    after_deploy = _after_deploy(settings, args.api_url)
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


def cmd_db(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    url, head = settings.database_url, head_revision()
    where = f"record store {safe_url(url)}"
    if args.db_command == "upgrade":
        before, after = migrate(url)
        if before == after:
            _say(f"{where} is at revision {after}, the latest; nothing to do")
        else:
            _say(f"{where} upgraded from revision {before or 'none'} to {after}")
        return {"database_url": safe_url(url), "before": before, "after": after, "head": head}
    revision = schema_revision(url)
    if revision == head:
        _say(f"{where} is at revision {revision}, the latest")
    elif revision is not None and revision not in known_revisions():
        _say(f"{where} is at revision {revision}, which this release does not know (newer?)")
    else:
        _say(
            f"{where} is at revision {revision or 'none'}, the latest is {head}: "
            "`python -m monitoring db upgrade` brings it up to date"
        )
    return {
        "database_url": safe_url(url),
        "revision": revision,
        "head": head,
        "up_to_date": revision == head,
    }


def run_every(
    seconds: float,
    job: Callable[[int], None],
    *,
    stopping: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tick: float = 1.0,
) -> int:
    """Call ``job(n)`` every ``seconds``, start to start, until ``stopping()``; return the runs.

    ``stopping`` is checked between runs and every ``tick`` seconds of a wait, so a
    stop request ends a wait promptly and never interrupts a run. A run that lasts
    longer than ``seconds`` is followed by the next one at once.
    """
    runs = 0
    while not stopping():
        started = clock()
        runs += 1
        job(runs)
        while not stopping():
            left = started + seconds - clock()
            if left <= 0:
                break
            sleep(min(left, tick))
    return runs


def cmd_schedule(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    progress = _say if args.verbose else (lambda _: None)
    after_deploy = _after_deploy(settings, args.api_url)
    outcomes: Counter[str] = Counter()

    def once(n: int) -> None:
        started = _clock()
        try:
            record = run_full_process(settings, progress=progress, after_deploy=after_deploy)
            outcome, reason = record["outcome"], record["reason"]
        except AlreadyRunningError as exc:  # another run holds the lock: try next time
            outcome, reason = "busy", exc.message
        except MonitoringError as exc:
            outcome, reason = "failed", exc.message
        except DBAPIError as exc:  # the store went away; it may be back next time
            outcome, reason = "failed", unavailable(settings.database_url, exc).message
        except Exception as exc:  # a bug: recorded as a failed run, shown, and the next run tried
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        outcomes[outcome] += 1
        _say(f"run {n}: {outcome} in {_clock() - started:.1f} s: {reason}")

    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    previous = {s: signal.SIG_DFL if h is None else h for s, h in previous.items()}  # not Python's

    def stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for each in STOP_SIGNALS:  # a second signal stops at once
            signal.signal(each, previous[each])

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        _say(f"running the full process every {args.every:g} s until SIGTERM or SIGINT")
        runs = run_every(
            args.every, once, stopping=lambda: bool(received), clock=_clock, sleep=_sleep
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    name = signal.Signals(received[0]).name
    _say(f"stopped by {name} after {runs} run(s)")
    return {"runs": runs, "outcomes": dict(outcomes), "stopped_by": name}


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


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
    p = add("db", cmd_db, "the record store's schema (Alembic migrations)")
    db = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="bring the schema up to date (revision before and after)")
    db.add_parser("current", help="the schema's revision and the latest (changes nothing)")
    p = add(
        "schedule",
        cmd_schedule,
        "the full process every --every seconds until SIGTERM or SIGINT (a clock process)",
    )
    p.add_argument(
        "--every",
        type=_positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="seconds from the start of one run to the next (default: 600)",
    )
    p.add_argument("--api-url", help="also run apicalls against this running API after a deploy")
    p.add_argument("--verbose", action="store_true", help="print each step, not only each outcome")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        # The importer waits for the store instead; db shows the schema before upgrading it.
        if args.func not in (cmd_capture_importer, cmd_db):
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
