"""``db upgrade`` / ``db current`` and ``schedule`` (fake clock and sleep, real signals)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from monitoring import cli, pipeline
from monitoring.config import Settings
from monitoring.exceptions import IntegrityError
from monitoring.pipeline import pipeline_lock
from monitoring.storage.engine import MIGRATIONS, alembic_config, safe_url, sqlite_file
from monitoring.storage.store import Store
from tests.helpers import free_port

BOTH_STORES = pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
# The latest migration file's revision (files are numbered 0001_..., 0002_..., ...).
HEAD = max(path.name.split("_")[0] for path in (MIGRATIONS / "versions").glob("0*.py"))
NO_NEW_DATA = "no_new_data in 0.0 s: every file in the input folder has been seen"


def run(settings: Settings, *args: str) -> int:
    """The command line on the store of ``settings`` (PostgreSQL ones too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", settings.database_url)
        return cli.main(["--config", str(settings.config_path), *args])


def tables(settings: Settings) -> set[str]:
    engine = create_engine(settings.database_url)  # its own engine: the store's would upgrade
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -- db ----------------------------------------------------------------------------


@BOTH_STORES
def test_db_current_and_upgrade_on_a_fresh_store(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    where = f"[monitoring] record store {safe_url(settings.database_url)}"
    assert run(settings, "--json", "db", "current") == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {
        "database_url": safe_url(settings.database_url),
        "revision": None,
        "head": HEAD,
        "up_to_date": False,
    }
    assert out.err == (
        f"{where} is at revision none, the latest is {HEAD}: "
        "`python -m monitoring db upgrade` brings it up to date\n"
    )
    assert tables(settings) == set()  # current changes nothing

    assert run(settings, "--json", "db", "upgrade") == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {
        "database_url": safe_url(settings.database_url),
        "before": None,
        "after": HEAD,
        "head": HEAD,
    }
    assert out.err == f"{where} upgraded from revision none to {HEAD}\n"
    assert {"alembic_version", "runs", "model_versions", "live_model"} <= tables(settings)

    assert run(settings, "db", "upgrade") == 0
    assert capsys.readouterr().err == f"{where} is at revision {HEAD}, the latest; nothing to do\n"
    assert run(settings, "db", "current") == 0
    assert capsys.readouterr().err == f"{where} is at revision {HEAD}, the latest\n"


@BOTH_STORES
def test_db_upgrade_from_an_older_revision(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    file = sqlite_file(settings.database_url)
    if file is not None:
        file.parent.mkdir(parents=True)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    engine.dispose()
    assert run(settings, "--json", "db", "upgrade") == 0
    out = capsys.readouterr()
    assert (json.loads(out.out)["before"], json.loads(out.out)["after"]) == ("0001", HEAD)
    assert out.err.endswith(f"upgraded from revision 0001 to {HEAD}\n")


def test_the_store_still_upgrades_itself_after_db_current(settings: Settings) -> None:
    assert run(settings, "db", "current") == 0  # opens the store without upgrading it
    assert Store(settings.database_url).runs() == []  # the first real use upgrades


def test_a_store_from_a_newer_release(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "db", "upgrade") == 0
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    capsys.readouterr()
    assert run(settings, "db", "current") == 0
    assert capsys.readouterr().err.endswith(
        "is at revision 0999, which this release does not know (newer?)\n"
    )
    assert run(settings, "db", "upgrade") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"[monitoring] error: cannot upgrade the record store at {safe_url(settings.database_url)}:"
    )
    assert err.endswith("'0999'; is it used by a newer release?\n")


@pytest.mark.parametrize("action", ["current", "upgrade"])
def test_db_on_an_unreachable_store_is_one_line(
    make_settings: Callable[..., Settings], action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    settings = make_settings(database_url=f"postgresql://monitoring:pw@127.0.0.1:{port}/x")
    assert run(settings, "db", action) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "[monitoring] error: cannot reach the record store at "
        f"postgresql+psycopg://monitoring:***@127.0.0.1:{port}/x: "
    )
    assert err.count("\n") == 1 and "pw" not in err


# -- schedule ----------------------------------------------------------------------


class FakeTime:
    """A clock that only sleeping moves; ``at(t, action)`` runs ``action`` once t is reached."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.actions: list[tuple[float, Callable[[], None]]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for when, action in [a for a in self.actions if a[0] <= self.now]:
            self.actions.remove((when, action))
            action()

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.actions.append((when, action))


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(cli, "_clock", fake.clock)
    monkeypatch.setattr(cli, "_sleep", fake.sleep)
    return fake


def send(signum: int) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), signum)


def test_run_every_keeps_start_to_start_cadence() -> None:
    fake, starts = FakeTime(), []

    def job(n: int) -> None:
        starts.append((n, fake.now))
        fake.now += 100.0  # each run takes 100 s

    runs = cli.run_every(
        600, job, stopping=lambda: len(starts) == 3, clock=fake.clock, sleep=fake.sleep
    )
    assert runs == 3
    assert starts == [(1, 1000.0), (2, 1600.0), (3, 2200.0)]
    assert fake.slept == [1.0] * 1000  # 500 s after each of the first two runs, 1 s at a time


def test_run_every_starts_a_late_run_at_once_and_stops_during_a_wait() -> None:
    fake, starts = FakeTime(), []

    def job(n: int) -> None:
        starts.append(fake.now)
        fake.now += 700.0 if n == 1 else 1.0

    runs = cli.run_every(
        600, job, stopping=lambda: fake.now >= 1703, clock=fake.clock, sleep=fake.sleep
    )
    assert (runs, starts) == (2, [1000.0, 1700.0])
    assert fake.slept == [1.0, 1.0]  # no wait after the late run; stopped 2 s into the next


def test_run_every_sleeps_the_last_fraction_of_a_wait() -> None:
    fake = FakeTime()
    runs = cli.run_every(
        2.5, lambda n: None, stopping=lambda: fake.now > 1003, clock=fake.clock, sleep=fake.sleep
    )
    assert (runs, fake.slept) == (2, [1.0, 1.0, 0.5, 1.0])


@BOTH_STORES
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_schedule_runs_until_a_signal(
    settings: Settings,
    deployed: dict[str, Any],
    fake_time: FakeTime,
    signum: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signum)
    fake_time.at(1000 + 600 + 300, send(signum))  # halfway through the second wait
    assert run(settings, "--json", "schedule") == 0
    out = capsys.readouterr()
    name = signal.Signals(signum).name
    assert json.loads(out.out) == {
        "runs": 2,
        "outcomes": {"no_new_data": 2},
        "stopped_by": name,
    }
    assert out.err.splitlines() == [
        "[monitoring] running the full process every 600 s until SIGTERM or SIGINT",
        f"[monitoring] run 1: {NO_NEW_DATA}",
        f"[monitoring] run 2: {NO_NEW_DATA}",
        f"[monitoring] stopped by {name} after 2 run(s)",
    ]
    assert sum(fake_time.slept) == 900.0 and max(fake_time.slept) == 1.0
    assert [r["outcome"] for r in Store(settings.database_url).runs()] == ["no_new_data"] * 2
    assert signal.getsignal(signum) is before


def test_a_signal_during_a_run_lets_it_finish_then_stops(
    settings: Settings,
    deployed: dict[str, Any],
    fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real, calls = pipeline.run_full_process, []

    def signalled_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            send(signal.SIGTERM)()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_full_process", signalled_run)
    assert run(settings, "schedule", "--every", "60") == 0
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"[monitoring] run 2: {NO_NEW_DATA}",
        "[monitoring] stopped by SIGTERM after 2 run(s)",
    ]
    assert sum(fake_time.slept) == 60.0  # no wait after the second run
    [last, _] = Store(settings.database_url).runs()
    assert (last["status"], last["outcome"]) == ("completed", "no_new_data")


@BOTH_STORES
def test_a_run_refused_by_the_lock_does_not_stop_the_schedule(
    settings: Settings,
    deployed: dict[str, Any],
    fake_time: FakeTime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    held = contextlib.ExitStack()
    held.enter_context(pipeline_lock(settings))  # another run holds the lock
    fake_time.at(1000 + 1, held.close)  # ... and finishes during the first wait
    fake_time.at(1000 + 600 + 1, send(signal.SIGTERM))
    assert run(settings, "--json", "schedule") == 0
    out = capsys.readouterr()
    assert out.err.splitlines()[1:3] == [
        "[monitoring] run 1: busy in 0.0 s: a pipeline run is already running; try again later",
        f"[monitoring] run 2: {NO_NEW_DATA}",
    ]
    assert json.loads(out.out)["outcomes"] == {"busy": 1, "no_new_data": 1}
    assert [r["outcome"] for r in Store(settings.database_url).runs()] == ["no_new_data"]


def test_failed_runs_do_not_stop_the_schedule(
    settings: Settings,
    deployed: dict[str, Any],
    fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real, calls = pipeline.run_full_process, []

    def failing_then_real(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("model v1 does not match its checksum")
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_full_process", failing_then_real)
    fake_time.at(1000 + 2 * 600 + 1, send(signal.SIGTERM))
    assert run(settings, "--json", "schedule", "--verbose") == 0
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert "[monitoring] run 1: failed in 0.0 s: model v1 does not match its checksum" in lines
    assert "[monitoring] run 2: failed in 0.0 s: RuntimeError: a bug" in lines
    assert "RuntimeError: a bug" in lines  # the traceback's last line, for a bug
    assert "[monitoring] no new data" in lines  # --verbose: each step
    assert f"[monitoring] run 3: {NO_NEW_DATA}" in lines
    assert json.loads(out.out)["outcomes"] == {"failed": 2, "no_new_data": 1}


def test_schedule_prints_a_summary_when_it_stops(
    settings: Settings,
    deployed: dict[str, Any],
    fake_time: FakeTime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_time.at(1000 + 1, send(signal.SIGTERM))  # during the first wait
    assert run(settings, "schedule") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Runs        1",
        "Outcomes    no_new_data 1",
        "Stopped by  SIGTERM",
    ]


@pytest.mark.parametrize(
    ("every", "why"),
    [
        ("0", "must be a positive number of seconds: '0'"),
        ("-5", "must be a positive number of seconds: '-5'"),
        ("nan", "must be a positive number of seconds: 'nan'"),
        ("inf", "must be a positive number of seconds: 'inf'"),
        ("ten", "not a number of seconds: 'ten'"),
    ],
)
def test_schedule_needs_a_positive_interval(
    settings: Settings, every: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(settings, "schedule", "--every", every)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"Error: Invalid value for '--every': {why}"
