"""The bias audit against the ``aequitas`` package on the same data.

Run from the project root (not in CI: it installs aequitas from PyPI)::

    .venv/bin/python benchmarks/bench_fairness.py                 # 200 random tables
    .venv/bin/python benchmarks/bench_fairness.py --tables 20 --keep-venv /tmp/aeq

It makes a virtual environment in a temporary folder (or ``--keep-venv DIR``, reused
when it exists), installs ``aequitas==AEQUITAS_VERSION`` there, and audits the same
tables with both: the hand-computed table of the tests, the planted FPR disparity, and
``--tables`` seeded random tables (2 to 6 groups of 1 to 400 rows, random prevalence
and error rates, so that empty cells and zero denominators occur). Aequitas is given
each table's reference group (``get_disparity_predefined_groups``) and tau 0.8.

Compared, per group and metric: the group metrics (prevalence, pprev, ppr,
precision, fdr, for, fpr, fnr, tpr, tnr), the disparities and the parity verdicts.
Where they must differ by design it says so: a ratio x/0 (x > 0) is ``null`` with
``infinite`` here and Aequitas' fill value 10.0 there (both fail); 0/0 and an
undefined metric are ``undefined`` here and NaN there.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitoring.reports.fairness import METRICS, audit_attribute  # noqa: E402

AEQUITAS_VERSION = "1.1.0"
TAU = 0.8
GROUP_METRICS = ("prevalence", *METRICS)
AEQUITAS_NAMES = {"prevalence": "prev"}
PARITY = {
    "ppr": "Statistical Parity",
    "pprev": "Impact Parity",
    "precision": "Precision Parity",
    "fdr": "FDR Parity",
    "for": "FOR Parity",
    "fpr": "FPR Parity",
    "fnr": "FNR Parity",
    "tpr": "TPR Parity",
    "tnr": "TNR Parity",
}

# Run inside the aequitas environment: tables (JSON on stdin) -> its figures (stdout).
CHILD = r"""
import json, sys, warnings
import numpy as np, pandas as pd
from aequitas.group import Group
from aequitas.bias import Bias
from aequitas.fairness import Fairness
warnings.filterwarnings("ignore")
out = []
for table in json.load(sys.stdin):
    df = pd.DataFrame({"attr": table["groups"], "score": table["predictions"],
                       "label_value": table["labels"]})
    xtab, _ = Group().get_crosstabs(df, attr_cols=["attr"])
    bdf = Bias().get_disparity_predefined_groups(
        xtab, original_df=df, ref_groups_dict={"attr": table["reference"]},
        alpha=0.05, check_significance=False, mask_significance=True)
    fdf = Fairness(tau=table["tau"]).get_group_value_fairness(bdf)
    rows = {}
    for _, r in fdf.iterrows():
        rows[str(r["attribute_value"])] = {
            k: (None if (isinstance(v, float) and np.isnan(v)) else
                (bool(v) if isinstance(v, (bool, np.bool_)) else
                 (float(v) if isinstance(v, (int, float, np.integer, np.floating)) else None)))
            for k, v in r.items() if k not in ("model_id", "score_threshold", "attribute_name",
                                               "attribute_value")
            and not str(k).endswith("_ref_group_value")
        }
    out.append(rows)
json.dump(out, sys.stdout)
"""


def hand_table() -> dict[str, Any]:
    rows = [("a", 1, 1), ("a", 1, 1), ("a", 0, 1), ("a", 1, 0), ("a", 0, 0), ("a", 0, 0)]
    rows += [("b", 1, 1), ("b", 0, 1), ("b", 0, 1), ("b", 0, 0), ("c", 0, 0), ("c", 0, 0)]
    groups, labels, predictions = (list(x) for x in zip(*rows, strict=True))
    return {"name": "hand-computed", "groups": groups, "labels": labels, "predictions": predictions}


def planted_table() -> dict[str, Any]:
    groups: list[str] = []
    labels: list[int] = []
    predictions: list[int] = []
    for region, false_positives in (("north", 25), ("south", 100)):
        cells = [(1, 1, 400), (1, 0, 100), (0, 1, false_positives), (0, 0, 500 - false_positives)]
        for label, prediction, n in cells:
            groups += [region] * n
            labels += [label] * n
            predictions += [prediction] * n
    return {"name": "planted FPR", "groups": groups, "labels": labels, "predictions": predictions}


def random_table(rng: np.random.Generator, i: int) -> dict[str, Any]:
    groups: list[str] = []
    labels: list[int] = []
    predictions: list[int] = []
    for g in range(int(rng.integers(2, 7))):
        n = int(rng.integers(1, 401))
        prevalence, tpr, fpr = rng.choice([0.0, 0.02, 0.3, 0.5, 0.9, 1.0], 3)
        y = (rng.random(n) < prevalence).astype(int)
        p = np.where(y == 1, rng.random(n) < tpr, rng.random(n) < fpr).astype(int)
        groups += [f"g{g}"] * n
        labels += y.tolist()
        predictions += p.tolist()
    return {"name": f"random {i}", "groups": groups, "labels": labels, "predictions": predictions}


def ours(table: dict[str, Any]) -> dict[str, Any]:
    order = sorted(set(table["groups"]))
    audit = audit_attribute(table["labels"], table["predictions"], table["groups"], order, tau=TAU)
    table["reference"] = audit["reference_group"]
    return {g["group"]: g for g in audit["groups"]}


def environment(folder: Path) -> Path:
    """The python of a virtual environment in ``folder`` with aequitas installed."""
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
    check = subprocess.run(
        [str(python), "-c", "import aequitas.version as v; print(v.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"aequitas=={AEQUITAS_VERSION}"],
            check=True,
        )
    return python


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def compare(mine: dict[str, Any], theirs: dict[str, Any], counts: dict[str, list[int]]) -> None:
    """Tally agreement of one table into ``counts`` ([agree, total] by kind)."""
    assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
    for group, row in mine.items():
        other = theirs[group]
        for metric in GROUP_METRICS:
            tally = counts["group metrics"]
            tally[1] += 1
            tally[0] += close(row[metric], other[AEQUITAS_NAMES.get(metric, metric)])
        for metric in METRICS:
            d = row["disparities"][metric]
            theirs_ratio = other[f"{metric}_disparity"]
            tally = counts["disparities"]
            tally[1] += 1
            if d.get("infinite"):
                tally[0] += theirs_ratio == 10.0  # Aequitas' fill value for x/0
                counts["x/0 (infinite here, 10.0 there)"][1] += 1
                counts["x/0 (infinite here, 10.0 there)"][0] += theirs_ratio == 10.0
            else:
                tally[0] += close(d["ratio"], theirs_ratio)
            if d["verdict"] == "undefined":
                counts["undefined (0/0 or no value; NaN there)"][1] += 1
                counts["undefined (0/0 or no value; NaN there)"][0] += theirs_ratio is None
            verdict = {"pass": True, "fail": False, "undefined": None}[d["verdict"]]
            tally = counts["verdicts"]
            tally[1] += 1
            tally[0] += verdict == other[PARITY[metric]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=200, help="random tables (default 200)")
    parser.add_argument("--keep-venv", type=Path, help="a folder for the environment, kept")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(20261202)
    tables = [hand_table(), planted_table(), *(random_table(rng, i) for i in range(args.tables))]
    started = time.perf_counter()
    mine = [ours(t) for t in tables]
    our_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep_venv or Path(scratch) / "venv"
        print(f"environment: {folder} (aequitas=={AEQUITAS_VERSION})", flush=True)
        python = environment(folder)
        payload = [
            {k: t[k] for k in ("groups", "labels", "predictions", "reference")} | {"tau": TAU}
            for t in tables
        ]
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "-c", CHILD],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            check=True,
        )
        their_seconds = time.perf_counter() - started
    theirs = json.loads(done.stdout)

    kinds = (
        "group metrics",
        "disparities",
        "verdicts",
        "x/0 (infinite here, 10.0 there)",
        "undefined (0/0 or no value; NaN there)",
    )
    counts: dict[str, list[int]] = {kind: [0, 0] for kind in kinds}
    for m, t in zip(mine, theirs, strict=True):
        compare(m, t, counts)
    rows = sum(len(t["groups"]) for t in tables)
    print(f"tables: {len(tables)} ({rows} rows, {sum(len(m) for m in mine)} groups)")
    print(f"{'compared':42} {'agree':>8} {'of':>8}")
    for kind, (agree, total) in counts.items():
        print(f"{kind:42} {agree:>8} {total:>8}")
    print(
        f"time: ours {our_seconds:.3f} s; aequitas {their_seconds:.3f} s "
        "(its process start and import included)"
    )
    planted = {g: r["disparities"]["fpr"] for g, r in mine[1].items()}
    print(f"planted table, FPR disparity of south: {planted['south']}")
    return 0 if all(a == t for a, t in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
