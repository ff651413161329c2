"""The version-2 gold set (331 IU X-Ray reports labelled by hand) against the labeler.

Reads the report texts from ../shared/data and is skipped without it. Floors sit a little under
the F1 measured when labeler 1.1.0 was made (tests/data/labeling_gold.md): a rule change that
loses agreement fails here, and so does a README.md whose table the script did not write. Both No
Finding policies are scored, each against its own gold column.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from irralctl.constants import NO_FINDING_POLICIES
from irralctl.labeling import OBSERVATIONS, Labeler
from irralctl.labeling.evaluation import (
    GOLD_V2_SEED,
    GOLD_V2_STRATA,
    NO_FINDING_COLUMNS,
    iter_iu_reports,
    load_gold,
    positive_scores,
    report_text,
    stratified_sample,
)
from tests.fixtures.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
V2 = DATA / "labeling_gold_reports_v2.csv"

# Per observation: minimum F1 of the positive class (uncertain as negative) on the whole set.
F1_FLOORS = {
    "No Finding": 0.90, "Enlarged Cardiomediastinum": 0.60, "Cardiomegaly": 0.95, "Lung Lesion": 0.70,
    "Lung Opacity": 0.90, "Edema": 0.90, "Consolidation": 0.88, "Pneumonia": 0.88, "Atelectasis": 0.88,
    "Pneumothorax": 0.92, "Pleural Effusion": 0.87, "Pleural Other": 0.93, "Fracture": 0.90,
    "Support Devices": 0.97,
}
# No Finding per policy, against the gold column of that policy (the others are the same for both).
NO_FINDING_FLOORS = {"incidental": 0.92, "chexpert": 0.90}
MICRO_FLOOR = 0.92          # micro F1 over the 14 observations, whole set and held-out part alike
# Rows whose No Finding the incidental convention turns from blank to 1 (tests/data/labeling_gold.md).
INCIDENTAL_CHANGES = 40


# Slow: the tests that read the real reports (`iu_reports`: 3,955 of them) and label them twice (`scored`).
@pytest.fixture(scope="module")
def iu_reports(shared_data) -> dict[str, dict[str, str]]:
    return dict(iter_iu_reports(shared_data / "iu_xray" / "NLMCXR_reports.tgz"))


@pytest.fixture(scope="module")
def scored(iu_reports):
    """(the script module, {policy: {part: positive_scores}})."""
    script = load_script("eval_label_gold")
    part_of = {k: part for k, _, part in script.v2_draw(iu_reports)}
    scores = {}
    for policy in NO_FINDING_POLICIES:
        items = load_gold(V2, iu_reports, no_finding=policy)
        labeler = Labeler(no_finding=policy)
        by_part = {"all": items, **{p: [i for i in items if part_of[i.key] == p] for p in ("dev", "held-out")}}
        scores[policy] = {p: positive_scores(labeler, its) for p, its in by_part.items()}
    return script, scores


def _rows() -> list[dict]:
    with open(V2, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_incidental_column_differs_only_where_the_convention_does():
    # "No Finding (incidental)" equals "No Finding" except where the CheXpert convention left it
    # blank for findings outside the 12 pathologies alone: there a reader may make it 1.
    pathologies = [o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]
    changed = 0
    for row in _rows():
        old, new = row[NO_FINDING_COLUMNS["chexpert"]], row[NO_FINDING_COLUMNS["incidental"]]
        if old != new:
            changed += 1
            assert (old, new) == ("", "1"), row["report"]
            assert not any(row[o] in ("1", "-1") for o in pathologies), row["report"]
    assert changed == INCIDENTAL_CHANGES


@pytest.mark.slow
def test_csv_is_the_seeded_draw(iu_reports):
    rows = _rows()
    assert list(rows[0]) == ["report", *OBSERVATIONS, NO_FINDING_COLUMNS["incidental"]]
    v1 = set()
    for kind in ("sentences", "reports"):
        with open(DATA / f"labeling_gold_{kind}.csv", newline="", encoding="utf-8") as f:
            v1 |= {row["report"] for row in csv.DictReader(f)}
    texts = {k: report_text(s) for k, s in iu_reports.items()}
    draw = stratified_sample(texts, GOLD_V2_STRATA, GOLD_V2_SEED, frozenset(v1))
    assert sorted(r["report"] for r in rows) == sorted(k for k, _, _ in draw)
    assert len(rows) == 331 and not {r["report"] for r in rows} & v1
    assert sum(p == "dev" for _, _, p in draw) == 173
    items = load_gold(V2, iu_reports)                       # every cell 1, 0, -1 or empty
    for j, name in enumerate(OBSERVATIONS):
        assert any(item.labels[j] == 1 for item in items), name


@pytest.mark.slow
@pytest.mark.parametrize("policy", NO_FINDING_POLICIES)
def test_gold_v2_f1_floors(scored, policy):
    _, by_policy = scored
    scores = by_policy[policy]
    floors = {**F1_FLOORS, "No Finding": NO_FINDING_FLOORS[policy]}
    low = {name: round(o["f1"], 3) for name, o in scores["all"]["observations"].items() if o["f1"] < floors[name]}
    assert not low, f"{policy}: below the floor: {low}"
    assert scores["all"]["micro"]["all"]["f1"] >= MICRO_FLOOR
    assert scores["held-out"]["micro"]["all"]["f1"] >= MICRO_FLOOR


@pytest.mark.slow
def test_policies_differ_only_in_no_finding(scored):
    _, by_policy = scored
    a, b = (by_policy[p]["all"]["observations"] for p in NO_FINDING_POLICIES)
    assert all(a[name] == b[name] for name in OBSERVATIONS[1:])
    assert a["No Finding"]["gold_positive"] > b["No Finding"]["gold_positive"]


@pytest.mark.slow
def test_readme_table_is_the_scripts_output(scored):
    script, scores = scored
    block = script.v2_table(scores, NO_FINDING_POLICIES[0], "python scripts/eval_label_gold.py --write-readme")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{script.BEGIN}\n{block}\n{script.END}" in readme, \
        "README.md is stale: run python scripts/eval_label_gold.py --write-readme"
