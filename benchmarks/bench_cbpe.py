"""Accuracy of the label-free performance estimate (CBPE) under covariate shift, and its
agreement with NannyML's CBPE on the same chunks.

Run from the project root::

    .venv/bin/python benchmarks/bench_cbpe.py                 # also NannyML (own venv)
    .venv/bin/python benchmarks/bench_cbpe.py --no-nannyml    # ours only
    .venv/bin/python benchmarks/bench_cbpe.py --quick --no-nannyml
    .venv/bin/python benchmarks/bench_cbpe.py --nannyml-venv /tmp/nml   # reuse a venv

Each scenario has data with known labels. The reference is what the service has at
training time: out-of-fold predictions (5 stratified folds) on the training rows, from
which :func:`monitoring.model.estimation.fit_reference` fits the calibration and the
sampling-error components; the model is then fitted on all training rows. Analysis
chunks are drawn with covariate shift: rows are sampled with weights
``exp(strength * feature)`` (P(X) moves, P(y|X) does not), several strengths and
features per chunk size. For each chunk: our estimate and band
(:func:`~monitoring.model.estimation.estimate`), the realised F1 from the labels, and
NannyML's CBPE (``nannyml==0.13.1`` with pandas 2.3.3, installed by this script into a virtual
environment in a temporary folder, fitted on the same reference and run on the same
chunks with ``chunk_size``).

Scenarios: a generated logistic P(y|X) with an under-confident model (a strongly
regularised logistic regression: calibration needed and valid everywhere); a random
forest on ``make_classification`` data (calibration needed; its miscalibration differs
between regions, so a strong shift breaks CBPE's assumption); the breast-cancer data
of scikit-learn (real, 569 rows: chunks are resampled from the held-out half).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitoring.model.estimation import estimate, fit_reference  # noqa: E402
from monitoring.model.scoring import compute_metrics  # noqa: E402

# nannyml 0.13.1 imports statsmodels without requiring it, and needs pandas < 3.
NANNYML = ("nannyml==0.13.1", "statsmodels==0.14.6", "pandas==2.3.3")
METRICS = ("f1", "precision", "recall")
TOLERANCE = 0.05


# -- scenarios -------------------------------------------------------------------------
class Scenario:
    """Training rows, a model, and a pool to draw shifted chunks from."""

    def __init__(
        self,
        name: str,
        model: ClassifierMixin,
        train: tuple[np.ndarray, np.ndarray],
        draw: Callable[[np.random.Generator, int, int, float], tuple[np.ndarray, np.ndarray]],
        shifts: list[tuple[int, float]],
    ) -> None:
        self.name, self.model, self.draw, self.shifts = name, model, draw, shifts
        X, y = train
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        held_out = cross_val_predict(clone(model), X, y, cv=folds, method="predict_proba")
        self.reference_proba, self.reference_y = held_out[:, 1], y
        self.reference = fit_reference(self.reference_proba, y)
        self.fitted = clone(model).fit(X, y)


def _logistic() -> Scenario:
    w, b = np.array([1.5, -1.0, 0.8, 0.0]), -1.0

    def sample(rng: np.random.Generator, n: int, feature: int, strength: float) -> Any:
        shift = np.zeros(4)
        shift[feature] = strength
        X = rng.normal(0.0, 1.0, (n, 4)) + shift
        y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-(X @ w + b)))).astype(int)
        return X, y

    train = sample(np.random.default_rng(1), 5000, 0, 0.0)
    shifts = [(0, 0.0), (0, 0.5), (0, 1.0), (0, -0.5), (1, 1.0), (1, -1.0), (3, 2.0)]
    return Scenario(
        "logistic, under-confident model", LogisticRegression(C=0.0005), train, sample, shifts
    )


def _weighted_pool(
    X: np.ndarray, y: np.ndarray, *, replace: bool
) -> Callable[[np.random.Generator, int, int, float], tuple[np.ndarray, np.ndarray]]:
    scale = X.std(axis=0)
    centred = (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)

    def sample(rng: np.random.Generator, n: int, feature: int, strength: float) -> Any:
        weights = np.exp(strength * centred[:, feature])
        rows = rng.choice(len(X), n, replace=replace, p=weights / weights.sum())
        return X[rows], y[rows]

    return sample


def _forest() -> Scenario:
    X, y = make_classification(
        n_samples=60_000,
        n_features=6,
        n_informative=4,
        n_redundant=0,
        class_sep=0.8,
        flip_y=0.05,
        weights=[0.7],
        random_state=0,
    )
    rng = np.random.default_rng(0)
    train = rng.choice(len(X), 5000, replace=False)
    pool = np.setdiff1d(np.arange(len(X)), train)
    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=0)
    shifts = [(0, 0.0), (0, 0.75), (1, 0.75), (1, -0.75), (2, 1.5), (3, -1.5), (2, -1.5)]
    return Scenario(
        "random forest, make_classification",
        model,
        (X[train], y[train]),
        _weighted_pool(X[pool], y[pool], replace=False),
        shifts,
    )


def _breast_cancer() -> Scenario:
    X, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # class 1: malignant, the rarer one
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, pool = order[: len(X) // 2], order[len(X) // 2 :]
    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=3, random_state=0)
    shifts = [(0, 0.0), (0, 0.5), (0, -0.5), (7, 0.5), (7, -0.5), (20, 0.5), (20, -0.5)]
    return Scenario(
        "breast cancer (real), random forest",
        model,
        (X[train], y[train]),
        _weighted_pool(X[pool], y[pool], replace=True),  # 284 rows: resampled
        shifts,
    )


# -- our estimate and the realised values -------------------------------------------------
def run_ours(
    scenario: Scenario, size: int, repeats: int, seed: int
) -> tuple[list[dict[str, Any]], pd.DataFrame, float]:
    """Chunks of ``size`` rows for every shift, ``repeats`` times; our estimate, the
    realised metrics, and the rows (for NannyML); seconds spent estimating."""
    rng = np.random.default_rng(seed)
    rows, frames, spent = [], [], 0.0
    for _ in range(repeats):
        for feature, strength in scenario.shifts:
            X, y = scenario.draw(rng, size, feature, strength)
            p = scenario.fitted.predict_proba(X)[:, 1]
            predictions = (p > 0.5).astype(int)
            started = time.perf_counter()
            got = estimate(p, predictions, scenario.reference)
            spent += time.perf_counter() - started
            real = compute_metrics(y, predictions)
            rows.append(
                {
                    "shift": f"x{feature}{strength:+.2f}",
                    **{f"est_{m}": got[m] for m in METRICS},
                    **{f"real_{m}": real[m] for m in METRICS},
                    "lower": got["lower"]["f1"],
                    "upper": got["upper"]["f1"],
                    "sampling_error": got["sampling_error"]["f1"],
                }
            )
            frames.append(pd.DataFrame({"p": p, "pred": predictions, "y": y}))
    return rows, pd.concat(frames, ignore_index=True), spent


# -- NannyML in its own virtual environment ------------------------------------------------
RUNNER = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.filterwarnings("ignore")
    import pandas as pd
    import nannyml as nml
    folder, size = sys.argv[1], int(sys.argv[2])
    reference = pd.read_csv(f"{folder}/reference.csv")
    analysis = pd.read_csv(f"{folder}/analysis.csv")
    estimator = nml.CBPE(
        y_pred_proba="p", y_pred="pred", y_true="y", problem_type="classification_binary",
        metrics=["f1", "precision", "recall"], chunk_size=size,
    ).fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    out = {}
    for metric in ("f1", "precision", "recall"):
        for column in ("value", "sampling_error", "lower_confidence_boundary",
                       "upper_confidence_boundary"):
            out[f"{metric}_{column}"] = frame[(metric, column)].astype(float).tolist()
    out["n_chunks"] = len(frame)
    out["version"] = nml.__version__
    print(json.dumps(out))
    """
)


def nannyml_python(venv: Path | None, folder: Path) -> Path:
    """The Python of a virtual environment with NannyML (made in ``folder`` if needed)."""
    if venv is not None and (venv / "bin" / "python").exists():
        return venv / "bin" / "python"
    venv = venv or folder / "nannyml-venv"
    print(f"creating a virtual environment with {' '.join(NANNYML)} in {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *NANNYML], check=True)
    return venv / "bin" / "python"


def run_nannyml(
    python: Path, folder: Path, scenario: Scenario, analysis: pd.DataFrame, size: int
) -> dict[str, Any]:
    reference = pd.DataFrame(
        {
            "p": scenario.reference_proba,
            "pred": (scenario.reference_proba > 0.5).astype(int),
            "y": scenario.reference_y,
        }
    )
    reference.to_csv(folder / "reference.csv", index=False)
    analysis[["p", "pred"]].to_csv(folder / "analysis.csv", index=False)
    (folder / "runner.py").write_text(RUNNER)
    done = subprocess.run(
        [str(python), str(folder / "runner.py"), str(folder), str(size)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the table ------------------------------------------------------------------------------
def summarise(rows: list[dict[str, Any]], theirs: dict[str, Any] | None) -> dict[str, Any]:
    errors = np.array([r["real_f1"] - r["est_f1"] for r in rows])
    within = np.array([r["lower"] <= r["real_f1"] <= r["upper"] for r in rows])
    realised = [r["real_f1"] for r in rows]
    out: dict[str, Any] = {
        "chunks": len(rows),
        "real_f1_range": [float(min(realised)), float(max(realised))],
        "mean_abs_error": float(np.mean(np.abs(errors))),
        "max_abs_error": float(np.max(np.abs(errors))),
        "share_within_tolerance": float(np.mean(np.abs(errors) <= TOLERANCE)),
        "band_coverage": float(np.mean(within)),
        "mean_band_half_width": float(np.mean([(r["upper"] - r["lower"]) / 2 for r in rows])),
    }
    if theirs is not None:
        assert theirs["n_chunks"] == len(rows), theirs["n_chunks"]
        for metric in METRICS:
            ours = np.array([r[f"est_{metric}"] for r in rows], dtype=float)
            diff = np.abs(ours - np.array(theirs[f"{metric}_value"]))
            out[f"max_abs_diff_nannyml_{metric}"] = float(np.nanmax(diff))
        error = np.array([r["sampling_error"] for r in rows], dtype=float)
        out["max_abs_diff_nannyml_f1_sampling_error"] = float(
            np.nanmax(np.abs(error - np.array(theirs["f1_sampling_error"])))
        )
        real = np.array(realised)
        out["nannyml_max_abs_error"] = float(np.nanmax(np.abs(real - theirs["f1_value"])))
        out["nannyml_version"] = theirs["version"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, chunks of 500 only")
    parser.add_argument("--repeats", type=int, default=5, help="chunks per shift and size")
    parser.add_argument("--no-nannyml", action="store_true", help="skip the NannyML comparison")
    parser.add_argument("--nannyml-venv", type=Path, help="a venv with NannyML to (re)use")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [500] if args.quick else [500, 1000, 2000]
    repeats = 1 if args.quick else args.repeats
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cbpe-") as temp:
        folder = Path(temp)
        python = None if args.no_nannyml else nannyml_python(args.nannyml_venv, folder)
        for make in (_logistic, _forest, _breast_cancer):
            scenario = make()
            calibration = scenario.reference["calibration"]["method"]
            for size in sizes:
                rows, analysis, spent = run_ours(scenario, size, repeats, seed=size)
                theirs = None
                if python is not None:
                    theirs = run_nannyml(python, folder, scenario, analysis, size)
                summary = summarise(rows, theirs)
                summary.update(
                    scenario=scenario.name,
                    calibration=calibration,
                    chunk_rows=size,
                    ms_per_chunk=1000 * spent / len(rows),
                )
                results.append(summary)
    header = (
        f"{'scenario':38} {'cal.':8} {'rows':>5} {'chunks':>6} {'real F1':>13} "
        f"{'mean|e|':>7} {'max|e|':>7} {'<=0.05':>6} {'in band':>7} {'±band':>6}"
    )
    if not args.no_nannyml:
        header += f" {'Δnml F1':>8} {'Δnml P':>8} {'Δnml R':>8} {'Δnml SE':>8} {'nml max|e|':>10}"
    print(header)
    for r in results:
        line = (
            f"{r['scenario']:38} {r['calibration']:8} {r['chunk_rows']:>5} {r['chunks']:>6} "
            f"{r['real_f1_range'][0]:.3f}-{r['real_f1_range'][1]:.3f} "
            f"{r['mean_abs_error']:>7.4f} {r['max_abs_error']:>7.4f} "
            f"{r['share_within_tolerance']:>6.0%} {r['band_coverage']:>7.0%} "
            f"{r['mean_band_half_width']:>6.3f}"
        )
        if "max_abs_diff_nannyml_f1" in r:
            line += (
                f" {r['max_abs_diff_nannyml_f1']:>8.2e} {r['max_abs_diff_nannyml_precision']:>8.2e}"
                f" {r['max_abs_diff_nannyml_recall']:>8.2e}"
                f" {r['max_abs_diff_nannyml_f1_sampling_error']:>8.2e}"
                f" {r['nannyml_max_abs_error']:>10.4f}"
            )
        print(line)
    print(
        "e = realised F1 - estimated F1 per chunk; '<=0.05': share of chunks with |e| <= 0.05; "
        "'in band': share with the realised F1 inside estimate ± 3 standard errors; "
        "Δnml: largest |ours - NannyML| over the chunks."
    )
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
