"""Screenshot of the trend dashboard after a few pipeline runs on the shipped data.

Run from the project root (needs chromium and chromedriver on PATH)::

    .venv/bin/python scripts/dashboard_screenshot.py            # writes docs/dashboard.png
    .venv/bin/python scripts/dashboard_screenshot.py --keep /tmp/demo   # keep the project

In a scratch copy of the project it runs, as a user would, ``python -m monitoring
setup`` on the practice data, sends the test data to ``/prediction`` a few times with
ground-truth labels for it (``POST /feedback``), drops each source-data file into the
input folder followed by ``python -m monitoring run`` (new data, drift check, retrain,
gate, redeploy), rolls back once, sends more predictions, then opens ``/dashboard`` in
headless Chromium at 1400 px and saves the page as a PNG of at most 256 colours.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from app import create_app  # noqa: E402
from monitoring.capture.importer import import_journals  # noqa: E402
from monitoring.config import load_settings  # noqa: E402
from monitoring.storage.store import Store  # noqa: E402

TOKEN = "demo-admin-token"


def cli(config: Path, *args: str) -> None:
    """``python -m monitoring --config config args`` in the project root; fails loudly."""
    subprocess.run(
        [sys.executable, "-m", "monitoring", "--config", str(config), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "MONITORING_PYPI_URL": "http://127.0.0.1:9"},
    )


def make_project(folder: Path) -> Path:
    """The shipped data and config in ``folder``; returns the config file."""
    for name in ("practicedata", "sourcedata", "testdata"):
        shutil.copytree(ROOT / "data" / name, folder / "data" / name)
    shutil.copy(ROOT / "requirements.txt", folder / "requirements.txt")
    config = json.loads((ROOT / "config.json").read_text())
    for key in ("input_folder_path", "output_folder_path", "test_data_path"):
        config[key] = str(folder / config[key])
    for key in ("output_model_path", "prod_deployment_path"):
        config[key] = str(folder / config[key])
    config["database_url"] = f"sqlite:///{folder / 'models' / 'monitoring.db'}"
    config["capture"]["journal_path"] = str(folder / "models" / "capture-journal")
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def traffic(client: Any, test_data: pd.DataFrame, target: str, rounds: int) -> None:
    """``rounds`` prediction requests of the test data, each labelled by feedback."""
    rows = test_data.drop(columns=[target]).to_dict(orient="records")
    for _ in range(rounds):
        answer = client.post("/prediction", json={"data": rows}).get_json()
        labels = [int(v) for v in test_data[target]]
        client.post(
            "/feedback",
            json={"request_id": answer["request_id"], "labels": labels},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        client.get("/scoring")
        client.get("/health")


def build(folder: Path) -> Any:
    """The scenario of the module docstring; returns the settings."""
    config = make_project(folder)
    cli(config, "setup")
    settings = load_settings(config, env={"MONITORING_API_TOKEN": TOKEN})
    app = create_app(settings, {"TESTING": True})
    client = app.test_client()
    test_data = pd.concat(
        [pd.read_csv(p) for p in sorted(settings.test_data_path.glob("*.csv"))], ignore_index=True
    )
    test_data = test_data[[*settings.features, settings.target]]
    traffic(client, test_data, settings.target, rounds=8)
    for source in sorted((folder / "data" / "sourcedata").glob("*.csv")):
        shutil.copy(source, settings.input_folder_path / source.name)
        cli(config, "run")
        traffic(client, test_data, settings.target, rounds=4)
    versions = Store(settings.database_url).deployments()
    if len({d["model_version"] for d in versions}) > 1:
        cli(config, "rollback")
    traffic(client, test_data, settings.target, rounds=4)
    store = Store(settings.database_url)
    import_journals(store, settings)
    app.extensions["latency"].flush()
    return settings


def screenshot(settings: Any, out: Path, width: int, scratch: Path) -> None:
    """``/dashboard`` in headless Chromium at ``width`` px, saved to ``out``."""
    app = create_app(settings, {"TESTING": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={scratch / 'profile'}",
        f"--window-size={width},1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/dashboard")
        driver.execute_async_script(
            "var done = arguments[0];"
            "(function wait() { document.body.dataset.charts === 'drawn' ? done() :"
            " setTimeout(wait, 50); })();"
        )
        # The trend panels: from the top of the page to the end of the ingested rows.
        bottom = driver.execute_script(
            "return document.getElementById('ingested').getBoundingClientRect().bottom"
            " + window.scrollY + 16"
        )
        driver.set_window_size(width, int(bottom) + 140)  # the window's frame
        driver.execute_script("window.scrollTo(0, 0)")
        raw = scratch / "raw.png"
        driver.save_screenshot(str(raw))
    finally:
        driver.quit()
        server.shutdown()
        thread.join(timeout=10)
    image = Image.open(raw).convert("RGB")
    image = image.crop((0, 0, image.width, min(image.height, int(bottom))))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dashboard-demo-", ignore_cleanup_errors=True) as tmp:
        folder = args.keep or Path(tmp) / "project"
        folder.mkdir(parents=True, exist_ok=True)
        settings = build(folder)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(settings, args.out, args.width, Path(tmp))
    print(f"{args.out}: {args.out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
