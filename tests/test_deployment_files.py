"""Procfile, Dockerfile, docker-compose.yml and cronjob.txt: each command they run exists.

Docker is not run here; these tests read the files and check every command against
the CLI's real parser, every path against the project, and the wiring between them.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import make_url

from monitoring.cli import cmd_db_upgrade, cmd_run, cmd_schedule, cmd_setup, parse
from monitoring.config import PROJECT_ROOT, load_settings

MONITORING = ["python", "-m", "monitoring"]
GUNICORN = ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
WEB_SCRIPT = (
    "python -m monitoring db upgrade && python -m monitoring setup --if-needed"
    " && exec gunicorn -c gunicorn.conf.py wsgi:app"
)
APP_DIR = "/opt/risk-monitoring"
PLACEHOLDER = "/path/to/risk-monitoring"


def commands(script: str) -> list[list[str]]:
    """The commands of a ``a && b && exec c`` shell line, without env assignments or exec."""
    out = []
    for part in script.split("&&"):
        words = shlex.split(part)
        while words and (re.fullmatch(r"[A-Z_]+=\S*", words[0]) or words[0] == "exec"):
            words.pop(0)
        out.append(words)
    return out


def check_command(argv: list[str]) -> Any:
    """Parse a ``python -m monitoring`` command with the real parser; check gunicorn's files."""
    if argv[:3] == MONITORING:
        return parse(argv[3:])  # SystemExit(2) on anything it does not know
    assert argv == GUNICORN
    assert (PROJECT_ROOT / "gunicorn.conf.py").is_file()
    tree = ast.parse((PROJECT_ROOT / "wsgi.py").read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert "app" in assigned
    return None


def test_commands_splits_a_shell_line() -> None:
    assert commands("HOST=0.0.0.0 exec gunicorn -c g.py w:app && python -m m 'a b'") == [
        ["gunicorn", "-c", "g.py", "w:app"],
        ["python", "-m", "m", "a b"],
    ]
    with pytest.raises(SystemExit):
        check_command([*MONITORING, "db", "downgrade"])


# -- Heroku ------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_release_migrates_then_makes_the_first_deployment() -> None:
    release = commands(procfile()["release"])
    assert release == [[*MONITORING, "db", "upgrade"], [*MONITORING, "setup", "--if-needed"]]
    upgrade, setup = (check_command(argv) for argv in release)
    assert (upgrade.step, upgrade.options) == (cmd_db_upgrade, {})
    assert (setup.step, setup.options) == (cmd_setup, {"if_needed": True})


def test_procfile_web_serves_gunicorn_on_all_interfaces_and_heroku_port() -> None:
    web = procfile()["web"]
    assert commands(web) == [GUNICORN]
    check_command(GUNICORN)
    assert web.startswith("HOST=0.0.0.0 ")
    assert "PORT" not in web  # gunicorn.conf.py binds to $PORT, which Heroku sets
    namespace: dict[str, Any] = {}
    source = (PROJECT_ROOT / "gunicorn.conf.py").read_text()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOST", "0.0.0.0")
        mp.setenv("PORT", "31337")
        exec(source, namespace)  # noqa: S102
    assert namespace["bind"] == "0.0.0.0:31337"


def test_procfile_clock_runs_the_scheduler_every_ten_minutes() -> None:
    procs = procfile()
    assert set(procs) == {"release", "web", "clock"}
    [clock] = commands(procs["clock"])
    assert clock == [*MONITORING, "schedule"]
    args = check_command(clock)
    assert (args.step, args.options["every"]) == (cmd_schedule, 600.0)


def test_heroku_runs_the_python_of_the_image() -> None:
    version = (PROJECT_ROOT / ".python-version").read_text().strip()
    assert version == "3.11"
    assert f"FROM python:{version}-slim" in (PROJECT_ROOT / "Dockerfile").read_text()


# -- Docker ------------------------------------------------------------------------


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def instruction(name: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in dockerfile() if line.split(" ", 1)[0] == name]


def test_the_image_serves_gunicorn_after_migrating_and_setting_up() -> None:
    [cmd] = instruction("CMD")
    assert json.loads(cmd) == ["sh", "-c", WEB_SCRIPT]
    for argv in commands(WEB_SCRIPT):
        check_command(argv)
    assert instruction("ENTRYPOINT") == []
    assert instruction("WORKDIR") == [APP_DIR]
    assert instruction("USER") == ["monitor"]
    [healthcheck] = instruction("HEALTHCHECK")
    assert "/health" in healthcheck


def test_the_image_has_no_venv_and_no_cron() -> None:
    for line in dockerfile():
        assert ".venv" not in line
        assert "cron" not in line
    for line in instruction("COPY"):
        source = line.split()[-2]
        assert (PROJECT_ROOT / source).exists()
    assert instruction("RUN")[-1] == "install -d -o monitor -g monitor models data/ingesteddata"
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", ".git", "models/*", "data/ingesteddata"} <= set(ignored)


def compose() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def expand(value: str) -> str:
    """``${NAME:-default}`` as compose expands it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_has_postgres_web_proxy_and_scheduler() -> None:
    spec = compose()
    assert set(spec["services"]) == {"postgres", "web", "proxy", "scheduler"}
    assert set(spec["volumes"]) == {"pgdata", "models"}
    postgres = spec["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert postgres["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert postgres["healthcheck"]["test"] == [
        "CMD-SHELL",
        "pg_isready -U monitoring -d monitoring",
    ]
    assert "ports" not in postgres  # reachable from the other services only


def test_compose_web_migrates_sets_up_and_serves_once_postgres_is_healthy() -> None:
    web = compose()["services"]["web"]
    assert web["build"] == "."
    assert web["command"] == ["sh", "-c", WEB_SCRIPT]
    assert "ports" not in web and web["expose"] == ["8000"]  # behind the proxy
    assert web["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    test = web["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "'http://127.0.0.1:8000/health'" in test[3]
    compile(test[3], "healthcheck", "exec")


def test_compose_proxy_serves_the_shipped_nginx_conf_in_front_of_web() -> None:
    proxy = compose()["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    mount, target, mode = proxy["volumes"][0].split(":")
    assert (PROJECT_ROOT / mount).is_file() and (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    conf = (PROJECT_ROOT / mount).read_text()
    assert "server web:8000;" in conf  # the web service's exposed port
    listen = re.search(r"listen (\d+);", conf)
    assert listen is not None and proxy["ports"] == [f"8000:{listen.group(1)}"]
    max_body = re.search(r"client_max_body_size (\d+)m;", conf)
    settings = load_settings(PROJECT_ROOT / "config.json", env={})
    assert max_body is not None and int(max_body.group(1)) << 20 == settings.api.max_content_length
    assert proxy["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_compose_scheduler_runs_the_schedule_command_after_web() -> None:
    services = compose()["services"]
    scheduler = services["scheduler"]
    assert scheduler["image"] == services["web"]["image"] == "risk-monitoring"
    args = check_command(scheduler["command"])
    assert (args.step, args.options["every"]) == (cmd_schedule, 600.0)
    assert scheduler["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "web": {"condition": "service_healthy"},
    }
    assert scheduler["healthcheck"] == {"disable": True}
    assert "ports" not in scheduler


def test_compose_wires_both_app_services_to_postgres_and_the_models_volume() -> None:
    spec = compose()
    postgres = spec["services"]["postgres"]["environment"]
    for name in ("web", "scheduler"):
        service = spec["services"][name]
        env = {key: expand(value) for key, value in service["environment"].items()}
        url = make_url(env["DATABASE_URL"])
        assert (url.drivername, url.host, url.port) == ("postgresql", "postgres", 5432)
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == expand(postgres["POSTGRES_PASSWORD"])
        assert url.database == postgres["POSTGRES_DB"]
        assert service["volumes"] == [f"models:{APP_DIR}/models"]
        settings = load_settings(PROJECT_ROOT / "config.json", env=env)
        assert settings.database_url == (
            "postgresql+psycopg://monitoring:monitoring@postgres:5432/monitoring"
        )
        assert settings.output_folder_path == PROJECT_ROOT / "models" / "ingesteddata"
        assert settings.api_token is None  # MONITORING_API_TOKEN unset: admin endpoints refuse


# -- cron --------------------------------------------------------------------------


def test_cronjob_runs_the_full_process_every_ten_minutes_from_the_checkout_venv() -> None:
    [line] = (PROJECT_ROOT / "cronjob.txt").read_text().splitlines()
    fields = line.split(maxsplit=5)
    assert fields[:5] == ["*/10", "*", "*", "*", "*"]
    assert fields[5] == (
        f"cd {PLACEHOLDER} && {PLACEHOLDER}/.venv/bin/python -m monitoring run"
        f" >> {PLACEHOLDER}/models/cron.log 2>&1"
    )
    script = fields[5].split(">>")[0]
    [cd, run] = commands(script)
    assert cd == ["cd", PLACEHOLDER]
    args = check_command(["python", *run[1:]])
    assert (args.step, args.options["force"]) == (cmd_run, False)
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert PLACEHOLDER in readme and "make -s cron" in readme
    assert "service cron start" not in readme  # the image has no cron


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_cron_prints_the_line_for_this_checkout(tmp_path: Path) -> None:
    done = subprocess.run(
        ["make", "-s", "-C", str(PROJECT_ROOT), "cron", f"VENV={tmp_path}/venv"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    root = PROJECT_ROOT
    assert done.stdout == (
        f"*/10 * * * * cd {root} && {tmp_path}/venv/bin/python -m monitoring run"
        f" >> {root}/models/cron.log 2>&1\n"
    )
