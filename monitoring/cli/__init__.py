"""Command line: ``python -m monitoring COMMAND`` (or ``flask --app app monitoring
COMMAND``), a subcommand per step, built with click.

Each command prints a readable summary or table on stdout, or, with ``--json`` (before
or after the command), its result as JSON. What it does goes to stderr as
``[monitoring] ...`` lines; on a terminal, long steps also draw a progress bar there
(never in a pipe or a cron log). Heavy libraries (pandas, scikit-learn, scipy,
matplotlib, pyarrow) load inside the commands that use them, so ``--help`` and
``versions`` answer in a fraction of a second.

Exit status: 0 success, 1 a step failed (the message says why), 2 bad usage,
75 another pipeline run holds the lock (try again later). ``schedule`` runs until
a signal stops it, and exits 0 then.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from monitoring.cli.progress import progress
from monitoring.exceptions import AlreadyRunningError, MonitoringError

if TYPE_CHECKING:
    from monitoring.config import Settings

Result = dict[str, Any]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PROG = "python -m monitoring"

# The scheduler's clock and sleep; tests replace them (no real waits).
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


def _say(message: str) -> None:
    print(f"[monitoring] {message}", file=sys.stderr, flush=True)


# -- options shared by the group and every command ---------------------------------
@dataclass
class Options:
    """``--config`` and ``--json``, wherever on the command line they were given."""

    config: str | None = None
    json: bool = False


def _options(ctx: click.Context) -> Options:
    options: Options = ctx.meta.setdefault("monitoring.options", Options())
    return options


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _options(ctx).json = True


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _options(ctx).config = value


@dataclass
class Parsed:
    """What a command line would run, found by :func:`parse` (nothing runs)."""

    step: Callable[..., Result] | None = None
    options: dict[str, Any] = field(default_factory=dict)


json_option = click.option(
    "--json",
    is_flag=True,
    expose_value=False,
    callback=_set_json,
    help="Print the result as JSON on stdout (before or after the command).",
)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Commands(click.Group):
    """A group that lists its commands in the order they were added (the workflow's)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(name="monitoring", cls=Commands, context_settings=CONTEXT)
@click.option(
    "--config",
    metavar="FILE",
    expose_value=False,
    callback=_set_config,
    help="Config file (default: $MONITORING_CONFIG or config.json).",
)
@json_option
def cli() -> None:
    """Monitor, retrain and redeploy the churn-risk model."""


def _execute(
    ctx: click.Context,
    step: Callable[..., Result],
    show: str,
    kwargs: dict[str, Any],
    *,
    open_store: bool,
) -> None:
    """Load the settings, run ``step``, print its result; a failure is one stderr line
    and the exit status."""
    from sqlalchemy.exc import DBAPIError

    from monitoring.config import load_settings
    from monitoring.storage.engine import unavailable
    from monitoring.storage.store import Store

    options = _options(ctx)
    url = ""
    try:
        settings = load_settings(options.config)
        url = settings.database_url
        if open_store:  # fail before writing any file
            Store(settings.database_url).engine  # noqa: B018
        result = step(settings, **kwargs)
    except DBAPIError as exc:  # the store went away during the command
        _say(f"error: {unavailable(url, exc).message}")
        ctx.exit(EXIT_FAILED)
    except MonitoringError as exc:
        _say(f"error: {exc.message}")
        ctx.exit(EXIT_BUSY if isinstance(exc, AlreadyRunningError) else EXIT_FAILED)
    if options.json:
        print(json.dumps(result, indent=2, default=str), flush=True)
    else:
        from monitoring.cli import render  # rich: only for the readable output

        render.show(getattr(render, show)(result))


def command(
    name: str,
    help_text: str,
    show: str,
    *,
    group: click.Group = cli,
    open_store: bool = True,
    prelude: Callable[[], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register ``step(settings, **options)`` as the subcommand ``name`` of ``group``.

    Its result is printed by the function ``show`` of :mod:`monitoring.cli.render`, or
    as JSON. ``open_store=False``: the command opens the record store itself (or waits
    for it). ``prelude()`` runs first, before the settings and the libraries load; what
    it returns is passed to ``step`` as more keyword arguments.
    """

    def register(step: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(step)
        def callback(**kwargs: Any) -> None:
            ctx = click.get_current_context()
            parsed = ctx.find_object(Parsed)
            if parsed is not None:  # parse(): record, do not run
                parsed.step, parsed.options = step, kwargs
                return
            extra = prelude() if prelude else {}
            _execute(ctx, step, show, {**kwargs, **extra}, open_store=open_store)

        del callback.__wrapped__  # click reads the options from the wrapper, not step
        cmd = click.Command(
            name,
            callback=callback,
            params=list(reversed(getattr(step, "__click_params__", []))),
            help=help_text,
            short_help=help_text,
            context_settings=CONTEXT,
        )
        json_option(cmd)
        group.add_command(cmd)
        return step

    return register


# -- the steps ---------------------------------------------------------------------
@command("ingest", "Merge every data file of the input folder into finaldata.csv.", "ingest")
def cmd_ingest(settings: Settings) -> Result:
    from monitoring.data.ingestion import ingest
    from monitoring.storage.files import list_tables

    files = len(list_tables(settings.input_folder_path))
    with progress("ingesting", total=files) as update:

        def advance(name: str, done: int, rows: int) -> None:
            update(completed=done, description=f"ingesting {name}: {rows:,} rows read")

        result = ingest(settings, progress=advance)
        update(completed=files)
    for record in result.records:
        if record["status"] == "rejected":
            _say(f"rejected {record['file_name']}: {record['message']}")
        elif record.get("rows_quarantined"):
            _say(f"{record['file_name']}: {record['message']}")
    _say(f"read {result.rows_read} rows, kept {result.rows_kept} -> {settings.finaldata_file}")
    return result.to_dict()


@command("train", "Train the configured model on finaldata.csv.", "train")
def cmd_train(settings: Settings) -> Result:
    from monitoring.model.training import train

    with progress("training"):
        metadata = train(settings)
    _say(f"trained model {metadata['version']} -> {settings.output_model_path}")
    return metadata


@command("score", "Score the trained model on the test data.", "score")
def cmd_score(settings: Settings) -> Result:
    from monitoring.model.scoring import score

    metrics = score(settings)
    _say(f"F1 {metrics['f1']:.4f} on {metrics['n_rows']} test rows")
    return metrics


@command("deploy", "Deploy the trained, scored model.", "deploy")
def cmd_deploy(settings: Settings) -> Result:
    from monitoring.pipeline import publish
    from monitoring.storage.store import Store

    result = publish(settings, Store(settings.database_url))
    _say(f"deployed {result['model_version']} (previous: {result['previous_version']})")
    return result


@command("rollback", "Make an earlier deployed version live again.", "rollback")
@click.option("--to", metavar="VERSION", help="Version to restore (default: the previous one).")
def cmd_rollback(settings: Settings, to: str | None) -> Result:
    from monitoring.model.deployment import rollback
    from monitoring.storage.store import Store

    result = rollback(settings, to_version=to, store=Store(settings.database_url))
    _say(f"rolled back to {result['model_version']} (was {result['previous_version']})")
    return result


@command("versions", "List the deployed model versions.", "versions")
def cmd_versions(settings: Settings) -> Result:
    from monitoring.model.versions import list_versions
    from monitoring.storage.store import Store

    return {"versions": list_versions(Store(settings.database_url))}


@command(
    "diagnose",
    "Time ingestion and training, profile the data, check dependencies.",
    "diagnose",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    help="Timing repetitions (default: diagnostics.timing_runs).",
)
@click.option("--offline", is_flag=True, help="Do not ask PyPI for the latest versions.")
def cmd_diagnose(settings: Settings, runs: int | None, offline: bool) -> Result:
    from monitoring.data.profile import profile_frame
    from monitoring.diagnostics import dependencies
    from monitoring.diagnostics.timing import time_steps
    from monitoring.readmodels import DEPENDENCY_CACHE
    from monitoring.storage.files import read_table

    runs = runs or settings.diagnostics.timing_runs
    _say(f"timing ingestion and training, {runs} run(s) each")
    with progress("timing ingestion and training", total=runs) as update:

        def done(i: int, n: int) -> None:
            update(completed=i)
            _say(f"  run {i}/{n} done")

        timing = time_steps(settings, runs=runs, progress=done)
    out: Result = {"execution_time": timing}
    if settings.finaldata_file.is_file():
        profile = profile_frame(read_table(settings.finaldata_file), settings)
        out["summary"] = profile["summary"]
        out["missing_data"] = profile["missing"]
    _say("checking dependencies" + (" (offline)" if offline else ""))
    with progress("checking dependencies"):
        out["dependencies"] = dependencies.refresh_cache(
            settings.requirements_file,
            settings.output_model_path / DEPENDENCY_CACHE,
            fetch_latest=(lambda name: None) if offline else None,
            deadline=settings.diagnostics.dependency_deadline_seconds,
        )
    return out


def _start_chromium() -> dict[str, Any]:
    """Chromium for ``report.pdf``, started before the libraries load (it loads plotly.js
    meanwhile): ``chromium`` for :func:`~monitoring.reports.reporting.generate_report`."""
    from monitoring.reports.browser import launch

    return {"chromium": launch()}


@command(
    "report",
    "Write the confusion matrix and the combined report.",
    "report",
    prelude=_start_chromium,
)
def cmd_report(settings: Settings, chromium: Any) -> Result:
    from monitoring.reports.reporting import generate_report

    with progress("rendering the report"):
        result = generate_report(settings, chromium)
    for path in result["files"]:
        _say(f"wrote {path}")
    return result


@command("drift", "Data drift of the ingested data against the deployed model.", "drift")
def cmd_drift(settings: Settings) -> Result:
    from monitoring.readmodels import ReadModels

    report = ReadModels(settings).drift.record()
    _say(
        f"dataset drift: {report['dataset_drift']} "
        f"({report['n_drifted']}/{report['n_columns']} columns: {report['drifted_columns']})"
    )
    return report


def _stepper(update: Callable[..., None]) -> Callable[[str], None]:
    """The pipeline's progress callback: a stderr line, and the bar's caption."""

    def step(message: str) -> None:
        _say(message)
        update(description=message)

    return step


@command("setup", "Ingest, train, score, deploy and report (first deployment).", "setup")
@click.option("--if-needed", is_flag=True, help="Do nothing if a model is deployed.")
def cmd_setup(settings: Settings, if_needed: bool) -> Result:
    from monitoring.model.versions import current_version
    from monitoring.storage.store import Store

    store = Store(settings.database_url)
    live = current_version(store)
    if if_needed and live is not None:
        _say(f"model {live} is already deployed; nothing to set up")
        return {"model_version": live, "skipped": True}
    from monitoring.pipeline import bootstrap
    from monitoring.reports.reporting import generate_report

    with progress("setting up") as update:
        result = bootstrap(settings, store, progress=_stepper(update))
        update(description="rendering the report")
        result["report"] = generate_report(settings)
    _say(f"ready: model {result['model_version']} deployed")
    return result


def _after_deploy(settings: Settings, api_url: str | None) -> Callable[[], Result]:
    def after_deploy() -> Result:
        from monitoring.reports.reporting import generate_report

        report = generate_report(settings)
        if api_url:
            import apicalls  # the course's script at the project root, needed only here

            report["apicalls"] = apicalls.run(api_url, settings)
        return report

    return after_deploy


API_URL_HELP = "Also run apicalls against this running API after a deploy."


@command("run", "The full process: new data, drift, retrain, gate, redeploy, report.", "run")
@click.option("--force", is_flag=True, help="Retrain even without new data or drift.")
@click.option("--api-url", metavar="URL", help=API_URL_HELP)
def cmd_run(settings: Settings, force: bool, api_url: str | None) -> Result:
    from monitoring import pipeline

    after_deploy = _after_deploy(settings, api_url)
    with progress("running the full process") as update:
        return pipeline.run_full_process(
            settings, force=force, progress=_stepper(update), after_deploy=after_deploy
        )


@command(
    "history",
    "Recorded pipeline runs and their decisions, and the delivery metrics.",
    "history",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
def cmd_history(settings: Settings, limit: int) -> Result:
    from monitoring.diagnostics.delivery import delivery_metrics
    from monitoring.storage.store import Store

    store = Store(settings.database_url)
    return {"runs": store.runs(limit=limit), "delivery": delivery_metrics(store, settings)}


@command(
    "capture-importer",
    "Import captured predictions into the record store until stopped (gunicorn starts it).",
    "capture_importer",
    open_store=False,  # it waits for the store instead
)
@click.option("--parent-pid", type=int, help="Stop when this process is gone.")
def cmd_capture_importer(settings: Settings, parent_pid: int | None) -> Result:
    from monitoring.capture.importer import run_importer

    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))

    def stop() -> bool:
        return bool(stopping) or (parent_pid is not None and os.getppid() != parent_pid)

    # Idle CPU priority once set up: the workers answering requests come first.
    run_importer(settings, stop=stop, idle_priority=True)
    return {"stopped": True}


@cli.group(name="db", cls=Commands, context_settings=CONTEXT)
@json_option
def db() -> None:
    """The record store's schema (Alembic migrations)."""


@command(
    "upgrade",
    "Bring the schema up to date (revision before and after).",
    "db_upgrade",
    group=db,
    open_store=False,  # db shows the schema before upgrading it
)
def cmd_db_upgrade(settings: Settings) -> Result:
    from monitoring.storage.engine import head_revision, migrate, safe_url

    url, head = settings.database_url, head_revision()
    where = f"record store {safe_url(url)}"
    before, after = migrate(url)
    if before == after:
        _say(f"{where} is at revision {after}, the latest; nothing to do")
    else:
        _say(f"{where} upgraded from revision {before or 'none'} to {after}")
    return {"database_url": safe_url(url), "before": before, "after": after, "head": head}


@command(
    "current",
    "The schema's revision and the latest (changes nothing).",
    "db_current",
    group=db,
    open_store=False,
)
def cmd_db_current(settings: Settings) -> Result:
    from monitoring.storage.engine import head_revision, known_revisions, safe_url, schema_revision

    url, head = settings.database_url, head_revision()
    where = f"record store {safe_url(url)}"
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


class PositiveSeconds(click.ParamType):
    """A positive, finite number of seconds."""

    name = "SECONDS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"not a number of seconds: {value!r}", param, ctx)
        if not seconds > 0 or seconds == float("inf"):
            self.fail(f"must be a positive number of seconds: {value!r}", param, ctx)
        return seconds


@command(
    "schedule",
    "The full process every --every seconds until SIGTERM or SIGINT (a clock process).",
    "schedule",
)
@click.option(
    "--every",
    type=PositiveSeconds(),
    default=600.0,
    help="Seconds from the start of one run to the next (default: 600).",
)
@click.option("--api-url", metavar="URL", help=API_URL_HELP)
@click.option("--verbose", is_flag=True, help="Print each step, not only each outcome.")
def cmd_schedule(settings: Settings, every: float, api_url: str | None, verbose: bool) -> Result:
    from sqlalchemy.exc import DBAPIError

    from monitoring import pipeline
    from monitoring.storage.engine import unavailable

    step = _say if verbose else (lambda _: None)
    after_deploy = _after_deploy(settings, api_url)
    outcomes: Counter[str] = Counter()

    def once(n: int) -> None:
        started = _clock()
        try:
            record = pipeline.run_full_process(settings, progress=step, after_deploy=after_deploy)
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
        _say(f"running the full process every {every:g} s until SIGTERM or SIGINT")
        runs = run_every(every, once, stopping=lambda: bool(received), clock=_clock, sleep=_sleep)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    name = signal.Signals(received[0]).name
    _say(f"stopped by {name} after {runs} run(s)")
    return {"runs": runs, "outcomes": dict(outcomes), "stopped_by": name}


def parse(argv: Sequence[str]) -> Parsed:
    """The step and options ``argv`` (after ``python -m monitoring``) names, parsed by the
    real command line without running it; :class:`SystemExit` 2 for bad usage. For
    checking the commands of deployment files (Procfile, compose, cron)."""
    parsed = Parsed()
    try:
        cli.main(args=list(argv), prog_name=PROG, standalone_mode=False, obj=parsed)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the exit status (:class:`SystemExit` 2 for bad usage)."""
    try:
        status = cli.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name=PROG,
            standalone_mode=False,
        )
    except click.ClickException as exc:  # bad usage: the message and the usage line
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.Abort:  # Ctrl-C
        print("Aborted!", file=sys.stderr)
        return EXIT_FAILED
    return status if isinstance(status, int) else 0
