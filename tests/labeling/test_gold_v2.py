"""The version-2 gold set (331 IU X-Ray reports labelled by hand) against the labeler.

Reads the report texts from ../shared/data and is skipped without it. Floors sit a little under
the F1 measured when labeler 1.1.0 was made (tests/data/labeling_gold.md): a rule change that
loses agreement fails here, and so does a README.md whose table the script did not write.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from irralctl.labeling import OBSERVATIONS, Labeler
from irralctl.labeling.evaluation import (
    GOLD_V2_SEED,
    GOLD_V2_STRATA,
    iter_iu_reports,
    load_gold,
    positive_scores,
    report_text,
    stratified_sample,
)

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
MICRO_FLOOR = 0.92          # micro F1 over the 14 observations, whole set and held-out part alike


def _script():
    spec = importlib.util.spec_from_file_location("eval_label_gold", ROOT / "scripts" / "eval_label_gold.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def iu_reports(shared_data) -> dict[str, dict[str, str]]:
    return dict(iter_iu_reports(shared_data / "iu_xray" / "NLMCXR_reports.tgz"))


@pytest.fixture(scope="module")
def scored(iu_reports):
    script = _script()
    part_of = {k: part for k, _, part in script.v2_draw(iu_reports)}
    items = load_gold(V2, iu_reports)
    labeler = Labeler(no_finding="chexpert")   # the gold's No Finding convention
    by_part = {"all": items, **{p: [i for i in items if part_of[i.key] == p] for p in ("dev", "held-out")}}
    return script, {p: positive_scores(labeler, its) for p, its in by_part.items()}


def test_csv_is_the_seeded_draw(iu_reports):
    with open(V2, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["report", *OBSERVATIONS]
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


def test_gold_v2_f1_floors(scored):
    _, scores = scored
    low = {name: round(o["f1"], 3) for name, o in scores["all"]["observations"].items() if o["f1"] < F1_FLOORS[name]}
    assert not low, f"below the floor: {low}"
    assert scores["all"]["micro"]["all"]["f1"] >= MICRO_FLOOR
    assert scores["held-out"]["micro"]["all"]["f1"] >= MICRO_FLOOR


def test_readme_table_is_the_scripts_output(scored):
    script, scores = scored
    block = script.v2_table(scores, "python scripts/eval_label_gold.py --write-readme")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{script.BEGIN}\n{block}\n{script.END}" in readme, \
        "README.md is stale: run python scripts/eval_label_gold.py --write-readme"
