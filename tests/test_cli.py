"""The command line: every subcommand, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitoring.cli import EXIT_BUSY, main
from monitoring.config import Settings
from monitoring.pipeline import pipeline_lock
from tests.conftest import write_config
from tests.helpers import free_port


def run(settings: Settings, *args: str) -> int:
    return main(["--config", str(settings.config_path), *args])


def test_each_step_in_order(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "ingest") == 0
    assert "read 36 rows, kept 26" in capsys.readouterr().err
    assert run(settings, "train") == 0
    capsys.readouterr()  # the training summary
    assert run(settings, "--json", "score") == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["f1"] == pytest.approx(4 / 7)
    assert "F1 0.5714 on 5 test rows" in out.err
    assert run(settings, "deploy") == 0
    assert run(settings, "report") == 0
    capsys.readouterr()
    for name in ("confusionmatrix.png", "report.json", "report.md"):
        assert (settings.output_model_path / name).is_file()
    png = (settings.output_model_path / "confusionmatrix.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert run(settings, "--json", "versions") == 0
    [version] = json.loads(capsys.readouterr().out)["versions"]
    assert version["live"] is True


def test_failures_exit_non_zero_with_a_message(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "train") == 1
    assert "error: " in capsys.readouterr().err
    assert run(settings, "rollback") == 1
    assert "no model is deployed yet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run(settings, "no-such-step")
    assert info.value.code == 2


def test_bad_config_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"target": 1}')
    assert main(["--config", str(path), "ingest"]) == 1
    assert "config key 'target' must be a column name" in capsys.readouterr().err


def test_setup_if_needed_and_a_busy_run(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "setup", "--if-needed") == 0
    assert "is already deployed; nothing to set up" in capsys.readouterr().err
    with pipeline_lock(settings):
        assert run(settings, "run") == EXIT_BUSY
    assert "already running" in capsys.readouterr().err


def test_versions_and_rollback_read_the_store(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = deployed["model_version"]
    write_config(settings.root, input_folder_path="data/sourcedata")
    for step in ("ingest", "train", "score", "deploy"):
        assert run(settings, step) == 0
    capsys.readouterr()
    assert run(settings, "--json", "versions") == 0
    versions = json.loads(capsys.readouterr().out)["versions"]
    second = versions[-1]["version"]
    assert [(v["version"], v["live"]) for v in versions] == [(first, False), (second, True)]
    assert run(settings, "rollback") == 0
    out = capsys.readouterr()
    assert f"rolled back to {first} (was {second})" in out.err
    assert out.out.splitlines() == [  # the readable summary
        f"Live now  {first}",
        f"Was       {second}",
        f"Test F1   {versions[0]['f1']:.4f}",
    ]
    assert run(settings, "rollback", "--to", "nope") == 1
    known = [first, second]
    assert f"error: model version 'nope' is not deployed; known: {known}" in capsys.readouterr().err
    assert run(settings, "setup", "--if-needed") == 0
    assert f"model {first} is already deployed; nothing to set up" in capsys.readouterr().err


def test_diagnose_times_in_a_scratch_folder(
    settings: Settings, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    final = settings.finaldata_file
    before = (
        final.stat().st_mtime_ns,
        (settings.output_model_path / "trainedmodel.pkl").stat().st_mtime_ns,
    )
    assert run(settings, "--json", "diagnose", "--runs", "3", "--offline") == 0
    result = json.loads(capsys.readouterr().out)
    for step in ("ingestion", "training"):
        timing = result["execution_time"][step]
        assert timing["runs"] == 3 and len(timing["samples"]) == 3
        assert timing["min"] <= timing["mean"] <= timing["max"]
    assert (
        final.stat().st_mtime_ns,
        (settings.output_model_path / "trainedmodel.pkl").stat().st_mtime_ns,
    ) == before
    statuses = {p["package"]: p["latest"] for p in result["dependencies"]["packages"]}
    assert statuses["flask"] == "unknown"


def test_an_unreachable_store_is_one_error_line_before_any_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nowhere"
    config = write_config(project, database_url=url)
    assert main(["--config", str(config), "ingest"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "[monitoring] error: cannot reach the record store at postgresql+psycopg://"
    )
    assert err.count("\n") == 1 and "secret" not in err and "Traceback" not in err
    assert not (project / "data" / "ingesteddata").exists()


def test_ingest_says_which_files_were_rejected_and_what_was_quarantined(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "corporation,lastmonth_activity,lastyear_activity,number_of_employees,exited\n"
    folder = project / "data" / "practicedata"
    (folder / "a_bad.csv").write_text(header + "q1,1,2,3,0\nq2,1,2,3,\n")
    (folder / "b_broken.csv").write_text("corporation\nx\n")
    config = write_config(project, ingestion={"bad_rows": "quarantine"})
    assert main(["--config", str(config), "--json", "ingest"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    rejects = f"data/ingesteddata/rejects/{result['batch_id']}-a_bad.csv"
    assert out.err.splitlines()[:3] == [
        f"[monitoring] a_bad.csv: 1 bad row quarantined to {rejects}",
        "[monitoring] rejected b_broken.csv: b_broken.csv: missing column(s) "
        "'lastmonth_activity', 'lastyear_activity', 'number_of_employees', 'exited'; "
        "expected ['corporation', 'lastmonth_activity', 'lastyear_activity', "
        "'number_of_employees', 'exited'], got 'corporation'",
        f"[monitoring] read 38 rows, kept 27 -> {project}/data/ingesteddata/finaldata.csv",
    ]
    assert (result["rows_read"], result["rows_quarantined"], result["rows_kept"]) == (38, 1, 27)
    assert result["duplicates_removed"] == 10
