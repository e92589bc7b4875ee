"""What each command prints without ``--json``, ``--json`` before or after the command,
progress bars on a terminal only, and the commands under ``flask --app app monitoring``."""

from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring import cli
from monitoring.config import Settings
from monitoring.storage.engine import MIGRATIONS, safe_url
from tests.conftest import write_config

VERSION = r"\d{8}T\d{12}Z-[0-9a-f]{8}"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
REPORT_FILES = ("confusionmatrix.png", "report.json", "report.md", "report.html", "report.pdf")
HEAD = max(path.name.split("_")[0] for path in (MIGRATIONS / "versions").glob("0*.py"))


def run(settings: Settings, *args: str) -> int:
    return cli.main(["--config", str(settings.config_path), *args])


def printed(
    settings: Settings, capsys: pytest.CaptureFixture[str], *args: str, status: int = 0
) -> list[str]:
    """The stdout lines of one command (which must exit with ``status``)."""
    assert run(settings, *args) == status
    return capsys.readouterr().out.splitlines()


def matches(lines: list[str], patterns: list[str]) -> None:
    """Each line matches its pattern (a regular expression, whole line)."""
    assert len(lines) == len(patterns), "\n".join(lines)
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} !~ {pattern!r}"


# -- readable output ---------------------------------------------------------------


def test_ingest_prints_each_file_and_the_totals(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = printed(settings, capsys, "ingest")
    assert lines[:5] == [
        "File           Status     Read   Kept   Duplicates   Quarantined   Message",
        "-" * 74,
        "dataset1.csv   accepted     17     17            0             0",
        "dataset2.csv   accepted     19      9           10             0",
        "",
    ]
    matches(
        lines[5:],
        [
            r"Ingested 36 rows from 2 file\(s\): kept 26, 10 duplicate\(s\) removed, "
            r"0 quarantined \(\d+\.\d\d s\)\."
        ],
    )


def test_train_score_and_deploy_print_summaries(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "ingest") == 0
    capsys.readouterr()
    lines = printed(settings, capsys, "train")
    version = lines[0].split()[-1]
    matches(
        lines[:6],
        [
            f"Model version  {VERSION}",
            "Estimator      LogisticRegression",
            f"Trained at     {STAMP}",
            "Training rows  26 of 26",
            "Features       lastmonth_activity, lastyear_activity, number_of_employees",
            "",
        ],
    )
    assert lines[6:] == [
        "Metric      Training   Cross-validation",
        "-" * 39,
        "F1            0.7647             0.7273",
        "Precision     0.6842             0.6667",
        "Recall        0.8667             0.8000",
        "Accuracy      0.6923             0.6538",
        "ROC AUC       0.8000             0.6606",
    ]
    assert printed(settings, capsys, "score") == [
        f"Model version  {version}",
        "Test rows      5",
        "",
        "Metric      Test data",
        "-" * 21,
        "F1             0.5714",
        "Precision      0.5000",
        "Recall         0.6667",
        "Accuracy       0.4000",
        "ROC AUC        0.0000",
        "",
        "           predicted 0   predicted 1",
        "-" * 36,
        "actual 0             0             2",
        "actual 1             1             2",
    ]
    assert printed(settings, capsys, "deploy") == [
        f"Deployed  {version}",
        "Previous  none",
        "Test F1   0.5714",
    ]


def test_versions_history_run_and_drift_print_tables(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    version = deployed["model_version"]
    lines = printed(settings, capsys, "versions")
    assert lines[:2] == [
        "Version                           Trained               Deployed              "
        "Estimator            Test F1   Live",
        "-" * 113,
    ]
    matches(lines[2:], [f"{version}   {STAMP}   {STAMP}   LogisticRegression    0\\.5714   live"])

    assert printed(settings, capsys, "history") == ["No pipeline run is recorded yet."]
    lines = printed(settings, capsys, "run")
    matches(
        lines,
        [
            "Outcome   no_new_data",
            "Reason    every file in the input folder has been seen",
            "Status    completed",
            f"Started   {STAMP}",
            f"Finished  {STAMP}",
            r"Run       [0-9a-f-]{36}",
        ],
    )
    lines = printed(settings, capsys, "history")
    assert lines[:2] == [
        "Started                 Took   Status      Outcome       Reason",
        "-" * 101,
    ]
    matches(
        lines[2:],
        [
            f"{STAMP}   \\d+\\.\\d\\d s   completed   no_new_data   "
            "every file in the input folder has been seen",
            "",
            "Delivery over the last 28 days",
            r"Deployments               1 \(0 rollbacks\)",
            "Per week                  0.25",
            r"Lead time \(median\)        \d+\.\d (s|min) \(1 deployment\)",
            "Change failure rate       0%",
            r"Time to restore \(median\)  -",
        ],
    )

    lines = printed(settings, capsys, "drift")
    assert lines[0] == (
        "Dataset drift: no drift (0 of 3 columns drifted; the dataset drifts when 50% do)"
    )
    matches(
        lines[1:2],
        [
            f"Model {version}, ingested data \\(26 rows\\) against the training data "
            f"\\(26 rows\\), {STAMP}"
        ],
    )
    assert lines[2:] == [
        "",
        "Column                Kind      Method   Statistic   p-value   Threshold   Drifted",
        "-" * 82,
        "lastmonth_activity    numeric   ks          0.0000    1.0000      0.0500",
        "lastyear_activity     numeric   ks          0.0000    1.0000      0.0500",
        "number_of_employees   numeric   ks          0.0000    1.0000      0.0500",
    ]


def test_versions_without_a_deployment_says_what_to_do(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert printed(settings, capsys, "versions") == [
        "No model is deployed yet: `python -m monitoring setup` deploys the first."
    ]


def test_db_prints_the_revisions(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    where = safe_url(settings.database_url)
    assert printed(settings, capsys, "db", "current") == [
        f"Record store  {where}",
        "Revision      none",
        f"Latest        {HEAD}",
        "Up to date    no",
    ]
    assert printed(settings, capsys, "db", "upgrade") == [
        f"Record store     {where}",
        "Revision before  none",
        f"Revision now     {HEAD}",
        f"Latest           {HEAD}",
    ]


def test_diagnose_prints_timings_data_and_dependencies(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = printed(settings, capsys, "diagnose", "--runs", "2", "--offline")
    seconds = r"\d+\.\d\d s"
    matches(
        lines[:5],
        [
            "Execution time",
            r"Step        Runs     Mean      Min      Max",
            "-" * 43,
            f"ingestion      2   {seconds}   {seconds}   {seconds}",
            f"training       2   {seconds}   {seconds}   {seconds}",
        ],
    )
    assert lines[5:13] == [
        "",
        "Ingested data",
        "Column                   Mean   Median       Std   Missing",
        "-" * 58,
        "lastmonth_activity     165.65    73.00    284.03         0",
        "lastyear_activity     1502.92   955.00   2192.64         0",
        "number_of_employees     26.88    14.00     31.35         0",
        "",
    ]
    assert lines[13] == "Dependencies"
    assert lines[14].split() == ["Package", "Required", "Installed", "Latest", "Status"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[16:]}
    assert rows["flask"] == ["==3.1.3", "3.1.3", "unknown", "unknown"]
    assert len(rows) == len(
        [x for x in settings.requirements_file.read_text().splitlines() if "==" in x]
    )


@pytest.mark.slow  # a whole setup or pipeline run with its report: seconds
def test_setup_prints_what_it_deployed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = printed(settings, capsys, "setup")
    folder = settings.output_model_path
    matches(
        lines,
        [
            f"Deployed       {VERSION}",
            "Test F1        0.5714",
            "Rows ingested  36, kept 26",
            f"Report         {re.escape(str(folder / 'confusionmatrix.png'))}",
            *(f"               {re.escape(str(folder / n))}" for n in ("report.json", "report.md")),
            *(
                f"               {re.escape(str(folder / n))}"
                for n in ("report.html", "report.pdf")
            ),
        ],
    )
    assert printed(settings, capsys, "setup", "--if-needed") == [
        f"Model {lines[0].split()[-1]} is already deployed; nothing to set up."
    ]


def test_capture_importer_says_it_stopped(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(project, capture={"enabled": False})  # the importer returns at once
    handler = signal.getsignal(signal.SIGTERM)
    try:  # (--parent-pid 1: it would stop at once anyway, not being a child of init)
        assert cli.main(["--config", str(config), "capture-importer", "--parent-pid", "1"]) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert capsys.readouterr().out == "The capture importer stopped.\n"


# -- --json before or after the command --------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["--json", "versions"], ["versions", "--json"]),
        (["--json", "history", "--limit", "5"], ["history", "--limit", "5", "--json"]),
        (["--json", "db", "current"], ["db", "current", "--json"]),
        (["db", "--json", "current"], ["db", "current", "--json"]),
        (["--json", "score"], ["score", "--json"]),
    ],
)
def test_json_before_or_after_the_command_is_the_same(
    settings: Settings,
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    before: list[str],
    after: list[str],
) -> None:
    assert run(settings, "run") == 0  # a recorded run for history
    capsys.readouterr()
    assert run(settings, *before) == 0
    first = capsys.readouterr().out
    assert run(settings, *after) == 0
    assert capsys.readouterr().out == first
    assert json.loads(first)  # one JSON document, nothing else on stdout


def test_drift_json_is_the_drift_record(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "drift", "--json") == 0
    after = json.loads(capsys.readouterr().out)
    assert run(settings, "--json", "drift") == 0
    before = json.loads(capsys.readouterr().out)
    for volatile in ("id", "computed_at"):  # each call records the drift anew
        after.pop(volatile), before.pop(volatile)
    assert after == before
    assert (after["n_columns"], after["n_drifted"], after["dataset_drift"]) == (3, 0, False)


def test_errors_are_the_same_with_json_after_the_command(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "rollback", "--json") == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("[monitoring] error: no model is deployed yet")


# -- progress bars -----------------------------------------------------------------


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.slow  # a whole setup or pipeline run with its report: seconds
def test_no_progress_output_when_stderr_is_not_a_terminal(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (["ingest"], ["diagnose", "--runs", "2", "--offline"], ["run"]):
        assert run(settings, *args) == 0
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\r" not in err, args
        assert all(line.startswith("[monitoring] ") for line in err.splitlines()), err
    assert run(settings, "report") == 0
    out = capsys.readouterr()
    folder = settings.output_model_path
    names = REPORT_FILES
    assert out.err.splitlines() == [f"[monitoring] wrote {folder / name}" for name in names]
    version = deployed["model_version"]
    assert out.out.splitlines() == [
        f"Report of model {version}:",
        *(f"  {folder / name}" for name in names),
    ]


def test_a_terminal_sees_the_progress_of_ingestion(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv("TERM", "xterm")
    assert run(settings, "ingest") == 0
    drawn = terminal.getvalue()
    assert "ingesting" in drawn and "2/2" in drawn
    assert "\x1b[" in drawn  # cursor movement: a live bar, erased at the end
    assert "[monitoring] read 36 rows, kept 26" in drawn  # the log line, above the bar
    assert capsys.readouterr().out.startswith("File ")  # the table is on stdout


# -- flask --app app monitoring ----------------------------------------------------


def test_the_commands_under_flask(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, {"TESTING": True})
    runner = app.test_cli_runner()
    config = ["--config", str(settings.config_path)]
    result = runner.invoke(args=["monitoring", *config, "versions"])
    assert result.exit_code == 0
    assert run(settings, "versions") == 0
    assert result.stdout == capsys.readouterr().out
    result = runner.invoke(args=["monitoring", *config, "versions", "--json"])
    [entry] = json.loads(result.stdout)["versions"]
    assert entry["version"] == deployed["model_version"] and entry["live"] is True
    result = runner.invoke(args=["monitoring", *config, "rollback", "--to", "nope"])
    assert result.exit_code == 1
    assert result.stderr.startswith("[monitoring] error: model version 'nope' is not deployed")
    result = runner.invoke(args=["monitoring", "no-such-step"])
    assert result.exit_code == 2
    assert "No such command 'no-such-step'" in result.stderr


def test_the_config_path_of_the_environment(
    settings: Settings,
    deployed: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = write_config(settings.root)  # the same project, found through the environment
    monkeypatch.setenv("MONITORING_CONFIG", str(other))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert cli.main(["versions", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["versions"]
    assert entry["version"] == deployed["model_version"]
