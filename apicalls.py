"""Call every endpoint of a running API and save the combined responses.

Usage::

    python apicalls.py [BASE_URL]      # default $MONITORING_API_URL or http://127.0.0.1:8000

Writes ``apireturns.txt`` (readable) and ``apireturns.json`` to the configured
``output_model_path``. Exits 1 if any endpoint fails or cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import requests

from monitoring.config import Settings, load_settings
from monitoring.storage.files import atomic_write_json, atomic_write_text
from monitoring.storage.store import utcnow

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = 30.0


def calls(settings: Settings) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, JSON body) of every call; the prediction uses the test data."""
    test_file = settings.test_data_file
    try:
        dataset = str(test_file.relative_to(settings.root))
    except ValueError:
        dataset = str(test_file)
    return [
        ("POST", "/prediction", {"dataset_path": dataset}),
        ("GET", "/scoring", None),
        ("GET", "/summarystats", None),
        ("GET", "/diagnostics", None),
        ("GET", "/drift", None),
        ("GET", "/health", None),
    ]


def call_all(
    base_url: str, settings: Settings, session: requests.Session | None = None
) -> list[dict[str, Any]]:
    """Call each endpoint; a failure is recorded, not raised."""
    session = session or requests.Session()
    headers = {}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    results = []
    for method, path, body in calls(settings):
        entry: dict[str, Any] = {"method": method, "endpoint": path}
        try:
            response = session.request(
                method, base_url.rstrip("/") + path, json=body, headers=headers, timeout=TIMEOUT
            )
            entry["status"] = response.status_code
            try:
                entry["response"] = response.json()
            except ValueError:
                entry["response"] = response.text
            entry["ok"] = response.ok
        except requests.RequestException as exc:
            entry.update(status=None, ok=False, response=f"request failed: {exc}")
        results.append(entry)
    return results


def format_text(base_url: str, results: list[dict[str, Any]], when: str) -> str:
    """The readable ``apireturns.txt``."""
    lines = [f"API returns from {base_url} at {when}", ""]
    for entry in results:
        lines.append(f"== {entry['method']} {entry['endpoint']} -> {entry['status']} ==")
        response = entry["response"]
        lines.append(response if isinstance(response, str) else json.dumps(response, indent=2))
        lines.append("")
    return "\n".join(lines)


def run(base_url: str, settings: Settings) -> dict[str, Any]:
    """Call every endpoint and write both report files; return a summary."""
    when = utcnow()
    results = call_all(base_url, settings)
    folder = settings.output_model_path
    text_path = atomic_write_text(folder / "apireturns.txt", format_text(base_url, results, when))
    json_path = atomic_write_json(
        folder / "apireturns.json", {"base_url": base_url, "called_at": when, "calls": results}
    )
    failed = [f"{e['method']} {e['endpoint']} ({e['status']})" for e in results if not e["ok"]]
    return {"files": [str(text_path), str(json_path)], "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "base_url", nargs="?", default=os.environ.get("MONITORING_API_URL", DEFAULT_URL)
    )
    parser.add_argument("--config", help="config file (default: $MONITORING_CONFIG or config.json)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    summary = run(args.base_url, settings)
    for path in summary["files"]:
        print(f"wrote {path}")
    if summary["failed"]:
        print("failed: " + ", ".join(summary["failed"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
