"""The bias audit: every figure of small tables computed by hand, undefined ratios,
grouping, a planted FPR disparity, GET /fairness, the model card and the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from app import create_app
from monitoring.config import FairnessSettings, GroupAttribute, Settings
from monitoring.model.deployment import load_deployed
from monitoring.reports.fairness import (
    audit_attribute,
    audit_frame,
    disparity,
    fairness_audit,
    fairness_gate,
    group_labels,
)
from monitoring.reports.modelcard import write_model_card
from monitoring.storage.schema import captured_predictions
from monitoring.storage.store import Store

# (group, label, prediction): region a has 6 rows, b 4, c 2.
#   a: TP 2, FN 1, FP 1, TN 2    b: TP 1, FP 2, TN 1    c: TN 2
# Predicted positives: a 3, b 3, c 0 -> 6 in all.
TABLE = [
    ("a", 1, 1), ("a", 1, 1), ("a", 0, 1), ("a", 1, 0), ("a", 0, 0), ("a", 0, 0),
    ("b", 1, 1), ("b", 0, 1), ("b", 0, 1), ("b", 0, 0),
    ("c", 0, 0), ("c", 0, 0),
]  # fmt: skip
EXPECTED = {
    "a": dict(size=6, tp=2, fp=1, tn=2, fn=1, prevalence=3 / 6, pprev=3 / 6, ppr=3 / 6,
              precision=2 / 3, fdr=1 / 3, **{"for": 1 / 3}, fpr=1 / 3, fnr=1 / 3, tpr=2 / 3,
              tnr=2 / 3),
    "b": dict(size=4, tp=1, fp=2, tn=1, fn=0, prevalence=1 / 4, pprev=3 / 4, ppr=3 / 6,
              precision=1 / 3, fdr=2 / 3, **{"for": 0 / 1}, fpr=2 / 3, fnr=0 / 1, tpr=1 / 1,
              tnr=1 / 3),
    "c": dict(size=2, tp=0, fp=0, tn=2, fn=0, prevalence=0 / 2, pprev=0 / 2, ppr=0 / 6,
              precision=None, fdr=None, **{"for": 0 / 2}, fpr=0 / 2, fnr=None, tpr=None,
              tnr=2 / 2),
}  # fmt: skip
# Disparity against a (the largest group): b / a and c / a, by hand.
RATIOS = {
    "b": dict(pprev=0.75 / 0.5, ppr=1.0, precision=(1 / 3) / (2 / 3), fdr=(2 / 3) / (1 / 3),
              **{"for": 0.0}, fpr=(2 / 3) / (1 / 3), fnr=0.0, tpr=1 / (2 / 3),
              tnr=(1 / 3) / (2 / 3)),
    "c": dict(pprev=0.0, ppr=0.0, precision=None, fdr=None, **{"for": 0.0}, fpr=0.0, fnr=None,
              tpr=None, tnr=1 / (2 / 3)),
}  # fmt: skip


def _audit(rows: list[tuple[str, int, int]], **kwargs: Any) -> dict[str, Any]:
    groups, labels, predictions = zip(*rows, strict=True)
    order = sorted(set(groups))
    return audit_attribute(labels, predictions, list(groups), order, tau=0.8, **kwargs)


def test_every_figure_of_a_small_table_by_hand() -> None:
    audit = _audit(TABLE)
    assert (audit["reference_group"], audit["reference_rule"]) == ("a", "largest")
    by_group = {g["group"]: g for g in audit["groups"]}
    for name, expected in EXPECTED.items():
        row = by_group[name]
        for key, value in expected.items():
            assert row[key] == value, (name, key)
    for name, ratios in RATIOS.items():
        for metric, ratio in ratios.items():
            assert by_group[name]["disparities"][metric]["ratio"] == ratio, (name, metric)
    # tau 0.8: pass within [0.8, 1.25]; b fails all but ppr (1.0).
    verdicts = {
        n: {m: d["verdict"] for m, d in g["disparities"].items()} for n, g in by_group.items()
    }
    assert set(verdicts["a"].values()) == {"pass"}
    assert [m for m, v in verdicts["b"].items() if v != "fail"] == ["ppr"]
    # c: no predicted positive (precision, fdr undefined) and no labelled positive
    # (fnr, tpr undefined); its tnr 1 / (2/3) = 1.5 fails.
    assert verdicts["c"] == {
        "pprev": "fail", "ppr": "fail", "precision": "undefined", "fdr": "undefined",
        "for": "fail", "fpr": "fail", "fnr": "undefined", "tpr": "undefined", "tnr": "fail",
    }  # fmt: skip
    assert by_group["c"]["disparities"]["precision"]["note"] == "this group's value is undefined"
    assert audit["verdict"] == "fail"
    assert len(audit["failing"]) == 8 + 5


def test_undefined_ratios_are_stated() -> None:
    # 0/0: both 0 -> undefined, as Aequitas' NaN; x/0 -> infinite, fails (Aequitas caps it
    # at 10, which fails); a metric with a zero denominator -> undefined.
    assert disparity(0.0, 0.0, 0.8) == {
        "ratio": None,
        "verdict": "undefined",
        "note": "0/0: both groups have 0",
    }
    assert disparity(0.25, 0.0, 0.8) == {
        "ratio": None,
        "verdict": "fail",
        "infinite": True,
        "note": "the reference group has 0: the ratio is infinite",
    }
    assert disparity(0.5, None, 0.8) == {
        "ratio": None,
        "verdict": "undefined",
        "note": "the reference group's value is undefined",
    }
    # The tau rule's bounds are inclusive.
    assert disparity(0.8, 1.0, 0.8)["verdict"] == "pass"
    assert disparity(1.25, 1.0, 0.8)["verdict"] == "pass"
    assert disparity(0.79, 1.0, 0.8)["verdict"] == "fail"
    assert disparity(1.0, 1.0, 1.0)["verdict"] == "pass"


def test_a_configured_reference_group_and_one_not_in_the_data() -> None:
    audit = _audit(TABLE, reference="b")
    assert (audit["reference_group"], audit["reference_rule"]) == ("b", "configured")
    a = next(g for g in audit["groups"] if g["group"] == "a")
    assert a["disparities"]["fpr"]["ratio"] == (1 / 3) / (2 / 3)
    # b has FOR 0 and a 1/3: infinite
    assert a["disparities"]["for"] == disparity(1 / 3, 0.0, 0.8)
    missing = _audit(TABLE, reference="zz")
    assert missing["error"] == (
        "the configured reference group 'zz' is not in the data; groups: ['a', 'b', 'c']"
    )
    assert (missing["verdict"], missing["failing"], missing["reference_group"]) == (
        "undefined",
        [],
        None,
    )


def test_metrics_left_out_are_reported_but_not_judged() -> None:
    audit = _audit(TABLE, judged=("ppr", "fpr"))
    b = next(g for g in audit["groups"] if g["group"] == "b")
    assert b["disparities"]["tpr"] == {"ratio": 1.5, "verdict": "not_judged"}
    assert audit["failing"] == [
        {"group": "b", "metric": "fpr", "ratio": 2.0},
        {"group": "c", "metric": "ppr", "ratio": 0.0},
        {"group": "c", "metric": "fpr", "ratio": 0.0},
    ]


def test_groups_of_numeric_and_categorical_columns() -> None:
    values = pd.Series([2, 10, 25, 99, 1000, None])
    labels, order, how = group_labels(values, GroupAttribute(cuts=(10.0, 99.0)))
    assert labels == ["(-inf, 10]", "(-inf, 10]", "(10, 99]", "(10, 99]", "(99, inf)", None]
    assert order == ["(-inf, 10]", "(10, 99]", "(99, inf)"]
    assert how == {"kind": "numeric", "cuts": [10.0, 99.0]}
    # Terciles of [2, 10, 25, 99, 1000]: numpy's linear quantiles 15 and 74.333...
    labels, order, how = group_labels(values, GroupAttribute(buckets=3))
    assert how["cuts"] == [15.0, pytest.approx(74 + 1 / 3)]
    assert order == ["(-inf, 15]", "(15, 74.3333]", "(74.3333, inf)"]
    assert labels[:5] == [order[0], order[0], order[1], order[2], order[2]]
    # No kind given: few distinct values are categories (1.0 reads as "1"), many are terciles.
    labels, order, how = group_labels(pd.Series([1.0, 0.0, 1.0, "x"]), GroupAttribute())
    assert (labels, order, how) == (["1", "0", "1", "x"], ["0", "1", "x"], {"kind": "categorical"})
    many = pd.Series(np.arange(30, dtype=float))
    assert group_labels(many, GroupAttribute())[2]["kind"] == "numeric"


def test_a_missing_attribute_column_is_reported() -> None:
    options = FairnessSettings(attributes={"region": GroupAttribute()})
    frame = pd.DataFrame({"x": [1, 2]})
    audit = audit_frame(frame, [0, 1], [0, 1], options, dataset="test data")
    assert audit["attributes"] == {
        "region": {
            "error": "column 'region' is not in the test data",
            "verdict": "undefined",
            "failing": [],
        }
    }
    assert audit["verdict"] == "undefined"


def planted_fpr_table() -> tuple[list[str], list[int], list[int]]:
    """1000 rows per region, 500 labelled positive: the same TPR 0.8, but FPR 0.05 in
    north (25 false positives of 500) and 0.2 in south (100 of 500)."""
    groups, labels, predictions = [], [], []
    for region, false_positives in (("north", 25), ("south", 100)):
        cells = [(1, 1, 400), (1, 0, 100), (0, 1, false_positives), (0, 0, 500 - false_positives)]
        for label, prediction, n in cells:
            groups += [region] * n
            labels += [label] * n
            predictions += [prediction] * n
    return groups, labels, predictions


def test_a_planted_fpr_disparity_is_flagged() -> None:
    groups, labels, predictions = planted_fpr_table()
    order = ["north", "south"]
    # The error-rate metrics: exactly FPR fails (0.2 / 0.05 = 4); TNR 0.8 / 0.95 passes.
    audit = audit_attribute(
        labels, predictions, groups, order, tau=0.8, judged=("fpr", "fnr", "tpr", "tnr")
    )
    assert audit["failing"] == [{"group": "south", "metric": "fpr", "ratio": 0.2 / 0.05}]
    # All metrics: FDR follows by arithmetic (false positives among the predicted
    # positives: 100/500 against 25/425); pprev 0.5/0.425, precision and FOR pass.
    audit = audit_attribute(labels, predictions, groups, order, tau=0.8)
    assert {(f["group"], f["metric"]) for f in audit["failing"]} == {
        ("south", "fdr"),
        ("south", "fpr"),
    }


def test_the_gate_refuses_only_a_disparity_the_champion_passes() -> None:
    def audit(*failing: tuple[str, str]) -> dict[str, Any]:
        listed = [{"group": g, "metric": m, "ratio": 2.0} for g, m in failing]
        return {"attributes": {"region": {"failing": listed}}}

    champion = audit(("b", "fpr"))
    assert fairness_gate(champion, audit(("b", "fpr")), enabled=True)["accepted"] is True
    verdict = fairness_gate(champion, audit(("b", "fpr"), ("c", "tpr")), enabled=True)
    assert verdict == {
        "enabled": True,
        "accepted": False,
        "introduced": [{"attribute": "region", "group": "c", "metric": "tpr"}],
        "champion_failing": [{"attribute": "region", "group": "b", "metric": "fpr"}],
        "challenger_failing": [
            {"attribute": "region", "group": "b", "metric": "fpr"},
            {"attribute": "region", "group": "c", "metric": "tpr"},
        ],
    }
    assert fairness_gate(champion, audit(("c", "tpr")), enabled=False)["accepted"] is True


# The practice model on the shipped test rows (number_of_employees 10, 99, 1000, 2, 25;
# labels 1, 0, 0, 1, 1) predicts 0, 1, 1, 1, 1. Terciles of the test data: 15 and 74.333.
#   (-inf, 15]:      rows 10 (FN) and 2 (TP)   -> the largest (first of two of size 2)
#   (15, 74.3333]:   row 25 (TP)
#   (74.3333, inf):  rows 99 and 1000 (FP, FP)
SHIPPED = {
    "(-inf, 15]": dict(size=2, prevalence=1.0, pprev=0.5, ppr=0.25, precision=1.0, fdr=0.0,
                       **{"for": 1.0}, fpr=None, fnr=0.5, tpr=0.5, tnr=None),
    "(15, 74.3333]": dict(size=1, prevalence=1.0, pprev=1.0, ppr=0.25, precision=1.0, fdr=0.0,
                          **{"for": None}, fpr=None, fnr=0.0, tpr=1.0, tnr=None),
    "(74.3333, inf)": dict(size=2, prevalence=0.0, pprev=1.0, ppr=0.5, precision=0.0, fdr=1.0,
                           **{"for": None}, fpr=1.0, fnr=None, tpr=None, tnr=0.0),
}  # fmt: skip
SHIPPED_VERDICTS = {
    "(-inf, 15]": dict(pprev="pass", ppr="pass", precision="pass", fdr="undefined",
                       **{"for": "pass"}, fpr="undefined", fnr="pass", tpr="pass",
                       tnr="undefined"),
    "(15, 74.3333]": dict(pprev="fail", ppr="pass", precision="pass", fdr="undefined",
                          **{"for": "undefined"}, fpr="undefined", fnr="fail", tpr="fail",
                          tnr="undefined"),
    "(74.3333, inf)": dict(pprev="fail", ppr="fail", precision="fail", fdr="fail",
                           **{"for": "undefined"}, fpr="undefined", fnr="undefined",
                           tpr="undefined", tnr="undefined"),
}  # fmt: skip


def test_get_fairness_on_the_shipped_data(api: Any, deployed: dict[str, Any]) -> None:
    body = api.get("/fairness").get_json()
    assert body["model_version"] == deployed["model_version"]
    assert (body["tau"], body["metrics"][:2]) == (0.8, ["pprev", "ppr"])
    test = body["test"]
    assert (test["dataset"], test["n_rows"], test["verdict"]) == ("test data", 5, "fail")
    attribute = test["attributes"]["number_of_employees"]
    assert attribute["kind"] == "numeric" and attribute["buckets"] == 3
    assert attribute["reference_group"] == "(-inf, 15]"
    groups = {g["group"]: g for g in attribute["groups"]}
    assert list(groups) == list(SHIPPED)
    for name, expected in SHIPPED.items():
        assert {k: groups[name][k] for k in expected} == expected
        verdicts = {m: d["verdict"] for m, d in groups[name]["disparities"].items()}
        assert verdicts == SHIPPED_VERDICTS[name]
    # FDR 1/0: infinite; FDR of (15, 74.3333] 0/0: undefined.
    assert groups["(74.3333, inf)"]["disparities"]["fdr"]["infinite"] is True
    assert groups["(15, 74.3333]"]["disparities"]["fdr"]["note"] == "0/0: both groups have 0"
    assert body["traffic"] == {
        "dataset": "labelled captured traffic",
        "n_rows": 0,
        "verdict": "undefined",
        "error": f"0 labelled captured rows of {deployed['model_version']}; the audit "
        "needs fairness.min_labelled_rows = 100",
    }


def test_labelled_traffic_is_audited_with_the_served_predictions(
    make_settings: Any, store: Store, deployed: dict[str, Any]
) -> None:
    settings = make_settings(
        fairness={"attributes": {"region": {}}, "min_labelled_rows": 4, "tau": 0.8}
    )
    version = deployed["model_version"]
    rows = [("a", 1, 1), ("a", 0, 0), ("b", 0, 1), ("b", 0, 0), ("b", 1, 1)]
    with store.engine.begin() as conn:
        conn.execute(
            insert(captured_predictions),
            [
                {
                    "request_id": "r",
                    "row_index": i,
                    "captured_at": "2026-01-01T00:00:00+00:00",
                    "model_version": version,
                    "inputs": json.dumps({"region": region}),
                    "prediction": prediction,
                    "label": label,
                }
                for i, (region, label, prediction) in enumerate(rows)
            ],
        )
    audit = fairness_audit(settings, store, load_deployed(store))["traffic"]
    assert (audit["dataset"], audit["n_rows"]) == ("labelled captured traffic", 5)
    b = next(g for g in audit["attributes"]["region"]["groups"] if g["group"] == "b")
    assert (b["tp"], b["fp"], b["tn"], b["fn"], b["fpr"]) == (1, 1, 1, 0, 0.5)
    assert audit["attributes"]["region"]["reference_group"] == "b"  # the largest


def planted_test_data(settings: Settings, store: Store, path: Path) -> None:
    """Write test data where the live model's FPR is 0.05 in north and 0.2 in south.

    Rows are drawn from two pools of feature rows, those the model predicts positive
    and those it predicts negative; each region gets the counts of
    :func:`planted_fpr_table`."""
    model = load_deployed(store)
    rng = np.random.default_rng(7)
    candidates = pd.DataFrame(
        {
            "lastmonth_activity": rng.integers(0, 300, 4000),
            "lastyear_activity": rng.integers(0, 3000, 4000),
            "number_of_employees": rng.integers(1, 200, 4000),
        }
    )
    predicted = np.asarray(model.predict(candidates)["predictions"])
    pools = {1: candidates[predicted == 1], 0: candidates[predicted == 0]}
    groups, labels, predictions = planted_fpr_table()
    taken = {0: 0, 1: 0}
    rows = []
    for region, label, prediction in zip(groups, labels, predictions, strict=True):
        row = pools[prediction].iloc[taken[prediction] % len(pools[prediction])]
        taken[prediction] += 1
        rows.append({"corporation": f"c{len(rows)}", **row.to_dict(), "region": region,
                     settings.target: label})  # fmt: skip
    pd.DataFrame(rows).to_csv(path / "testdata.csv", index=False)


def test_a_planted_disparity_end_to_end(
    make_settings: Any, store: Store, deployed: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "planted"
    folder.mkdir()
    settings = make_settings(
        test_data_path=str(folder),
        fairness={"attributes": {"region": {}}, "metrics": ["fpr", "fnr", "tpr", "tnr"]},
    )
    planted_test_data(settings, store, folder)
    with create_app(settings, {"TESTING": True}).test_client() as client:
        body = client.get("/fairness").get_json()
    region = body["test"]["attributes"]["region"]
    assert (region["kind"], region["reference_group"]) == ("categorical", "north")
    assert region["failing"] == [{"group": "south", "metric": "fpr", "ratio": 4.0}]
    south = region["groups"][1]
    assert (south["group"], south["fpr"], south["tpr"]) == ("south", 0.2, 0.8)


def test_the_model_card_shows_the_audit(settings: Settings, store: Store, deployed: Any) -> None:
    card = write_model_card(settings, store, deployed["model_version"])
    assert card["fairness"]["tau"] == 0.8
    groups = card["fairness"]["attributes"]["number_of_employees"]["groups"]
    assert [g["group"] for g in groups] == list(SHIPPED)
    markdown = store.model_card(deployed["model_version"])["markdown"]
    assert "## Bias audit (test data)" in markdown
    assert "### number_of_employees: fail" in markdown
    row = "| (74.3333, inf) | 2 | 0 | 1 | 0.5 | 0 | 1 | n/a | 1 | n/a | n/a | 0 |"
    assert f"{row} pprev, ppr, precision, fdr |" in markdown
    assert any(
        c.startswith("failing disparities on the test data (tau 0.8)") for c in card["caveats"]
    )
