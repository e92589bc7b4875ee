"""The two WSGI apps the HTTP benchmark compares our service with.

* ``ceiling``: a minimal Flask app answering every path and method with a
  constant JSON object: the most a Flask app can do under the same gunicorn
  settings (the framework ceiling).
* ``naive``: the course's way: every request reloads the pickled model and
  re-reads the CSV files it needs (``/prediction``: reads the CSV, loads the pickle,
  predicts, as the course app does); no caching. It reads the project named by
  ``$MONITORING_CONFIG`` (the same deployed model and data as our service).

Run with gunicorn, e.g. ``gunicorn --pythonpath benchmarks http_apps:ceiling``.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, request
from sklearn.metrics import f1_score

CONSTANT = {"status": "ok", "value": 42}

ceiling = Flask("ceiling")


@ceiling.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@ceiling.route("/<path:path>", methods=["GET", "POST"])
def constant(path: str) -> Any:
    """The same small JSON object for every request."""
    return CONSTANT


naive = Flask("naive")


def _config() -> tuple[Path, dict[str, Any]]:
    path = Path(os.environ.get("MONITORING_CONFIG", "config.json")).resolve()
    return path.parent, json.loads(path.read_text())


def _model() -> Any:
    """Unpickle the deployed model from disk (on every call, as the course does)."""
    root, config = _config()
    with open(root / config["prod_deployment_path"] / "trainedmodel.pkl", "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - our own benchmark artifact


def _final_data() -> pd.DataFrame:
    root, config = _config()
    return pd.read_csv(root / config["output_folder_path"] / "finaldata.csv")


@naive.post("/prediction")
def naive_prediction() -> Any:
    """The course app's per-request work: read the CSV (the ``?dataset_path=`` file, or
    the rows of the body: a CSV body or JSON rows), load the pickle, predict.

    No capture, no validation beyond pandas' and scikit-learn's, predictions only.
    """
    root, config = _config()
    path = request.args.get("dataset_path")
    if path is not None:
        frame = pd.read_csv(root / path)
    elif request.mimetype == "text/csv":
        frame = pd.read_csv(io.BytesIO(request.get_data()))
    else:
        frame = pd.DataFrame(request.get_json()["data"])
    model = _model()
    return {"predictions": [int(v) for v in model.predict(frame[config["features"]])]}


@naive.get("/scoring")
def naive_scoring() -> Any:
    """Reload the model, re-read the test CSV, compute F1."""
    root, config = _config()
    model = _model()
    test = pd.read_csv(root / config["test_data_path"] / "testdata.csv")
    predicted = model.predict(test[config["features"]])
    return {"model_score": float(f1_score(test[config["target"]], predicted))}


@naive.get("/summarystats")
def naive_summarystats() -> Any:
    """Re-read the ingested CSV and describe every feature."""
    _, config = _config()
    frame = _final_data()
    return {c: frame[c].describe().to_dict() for c in config["features"]}


@naive.get("/diagnostics")
def naive_diagnostics() -> Any:
    """Re-read the ingested CSV for missing data; look up installed versions."""
    root, _ = _config()
    frame = _final_data()
    names = [
        line.split("==")[0].strip()
        for line in (root / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    ]
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"missing": frame.isna().mean().to_dict(), "installed": versions}


@naive.get("/health")
def naive_health() -> Any:
    """Liveness."""
    return {"status": "ok"}
