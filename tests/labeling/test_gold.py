"""The labeler against the original's own examples and our hand-labelled IU X-Ray gold set.

Needs ../shared/data (the texts are not in the repository); skipped without it. The floors are
set a little under the agreement measured when the gold set was made (see tests/data/labeling_gold.md
and scripts/eval_label_gold.py): a rule change that loses agreement fails here. This version-1 set
has only the CheXpert-convention No Finding, so it is scored with `--no-finding chexpert`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from irralctl.labeling import OBSERVATIONS, Labeler
from irralctl.labeling.evaluation import agreement, iter_iu_reports, load_gold

DATA = Path(__file__).parents[1] / "data"

# Per observation: minimum accuracy over all items (sentences, reports).
FLOORS = {
    "No Finding": (0.91, 0.89),
    "Enlarged Cardiomediastinum": (0.97, 0.91),
    "Cardiomegaly": (0.95, 0.72),
    "Lung Lesion": (0.97, 0.96),
    "Lung Opacity": (0.955, 0.94),
    "Edema": (0.98, 0.97),
    "Consolidation": (0.99, 0.99),
    "Pneumonia": (0.98, 0.96),
    "Atelectasis": (0.99, 0.99),
    "Pneumothorax": (0.99, 0.99),
    "Pleural Effusion": (0.98, 0.96),
    "Pleural Other": (0.97, 0.95),
    "Fracture": (0.99, 0.97),
    "Support Devices": (0.94, 0.88),
}
EXACT_FLOORS = (0.73, 0.48)   # every one of the 14 values right, per item
# Where gold and labeler both give a value to one of the 13 findings: the same value.
VALUE_FLOORS = (0.97, 0.955)


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler(no_finding="chexpert")


@pytest.fixture(scope="module")
def iu_reports(shared_data) -> dict[str, dict[str, str]]:
    return dict(iter_iu_reports(shared_data / "iu_xray" / "NLMCXR_reports.tgz"))


@pytest.mark.parametrize("policy", ["incidental", "chexpert"])
def test_original_sample_reports(shared_data, policy):
    labeler = Labeler(no_finding=policy)
    folder = shared_data / "chexpert"
    with open(folder / "sample_reports.csv", newline="") as f:
        reports = [row[0] for row in csv.reader(f)]
    with open(folder / "labeled_reports.csv", newline="") as f:
        expected = list(csv.DictReader(f))
    assert len(reports) == len(expected) == 4
    for text, row in zip(reports, expected):
        want = [None if row[name] == "" else int(float(row[name])) for name in OBSERVATIONS]
        assert labeler.label(text) == want, text


def test_packaged_phrase_lists_are_the_originals(shared_data):
    packaged = Path(__file__).parents[2] / "irralctl" / "labeling" / "chexpert"
    original = shared_data / "chexpert"
    for kind in ("mention", "unmention"):
        names = sorted(p.name for p in (original / "phrases" / kind).glob("*.txt"))
        assert names == sorted(p.name for p in (packaged / kind).glob("*.txt"))
        for name in names:
            assert (packaged / kind / name).read_bytes() == (original / "phrases" / kind / name).read_bytes(), name


def test_gold_files_are_well_formed(iu_reports):
    sentences = load_gold(DATA / "labeling_gold_sentences.csv", iu_reports)
    reports = load_gold(DATA / "labeling_gold_reports.csv", iu_reports)
    assert len(sentences) >= 300 and len(reports) >= 100
    assert len({s.key for s in sentences}) == len(sentences)
    # Every observation has at least one positive, and one negative or uncertain, in the set.
    for j, name in enumerate(OBSERVATIONS):
        values = {item.labels[j] for item in sentences + reports}
        assert 1 in values, name
        assert name == "No Finding" or values & {0, -1}, name


@pytest.mark.parametrize("kind, column", [("sentences", 0), ("reports", 1)])
def test_gold_agreement_floors(iu_reports, labeler, kind, column):
    items = load_gold(DATA / f"labeling_gold_{kind}.csv", iu_reports)
    result = agreement(labeler, items)
    low = {name: round(result["observations"][name]["accuracy"], 3)
           for name in OBSERVATIONS if result["observations"][name]["accuracy"] < FLOORS[name][column]}
    assert not low, f"{kind}: below the floor: {low}"
    assert result["exact_match"] >= EXACT_FLOORS[column]
    assert result["value_agreement"] >= VALUE_FLOORS[column]
