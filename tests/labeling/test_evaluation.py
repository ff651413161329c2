"""Scoring, drawing and README writing of the gold-set script, on data made up here."""

from __future__ import annotations

from pathlib import Path

import pytest

from irralctl.errors import ConfigError, InputError
from irralctl.labeling import OBSERVATIONS
from irralctl.labeling.evaluation import (
    GoldItem,
    Stratum,
    load_gold,
    positive_scores,
    stratified_sample,
)
from tests.fixtures.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


class _Fixed:
    """A stand-in labeler that returns preset labels per text."""

    def __init__(self, table: dict[str, list]):
        self.table = table

    def label(self, text: str) -> list:
        return self.table[text]


def _row(**values) -> tuple:
    return tuple(values.get(name) for name in OBSERVATIONS)


def test_positive_scores_counts_and_uncertain_conventions():
    items = [GoldItem("a", "a", _row(Cardiomegaly=1, Edema=-1)),
             GoldItem("b", "b", _row(Cardiomegaly=0, Edema=1)),
             GoldItem("c", "c", _row(**{"No Finding": 1}))]
    labeler = _Fixed({"a": list(_row(Cardiomegaly=1, Edema=-1)),
                      "b": list(_row(Cardiomegaly=1, Edema=None)),
                      "c": list(_row(**{"No Finding": 1}))})
    neg = positive_scores(labeler, items)
    cm, ed = neg["observations"]["Cardiomegaly"], neg["observations"]["Edema"]
    assert (cm["tp"], cm["fp"], cm["fn"]) == (1, 1, 0) and cm["precision"] == 0.5 and cm["recall"] == 1.0
    assert (ed["tp"], ed["fp"], ed["fn"]) == (0, 0, 1) and ed["f1"] == 0.0
    assert neg["micro"]["all"]["tp"] == 2 and neg["micro"]["findings"]["tp"] == 1   # No Finding only in "all"
    pos = positive_scores(labeler, items, uncertain="positive")
    assert (pos["observations"]["Edema"]["tp"], pos["observations"]["Edema"]["fn"]) == (1, 1)
    assert pos["observations"]["Pneumonia"]["gold_positive"] == 0
    with pytest.raises(ValueError):
        positive_scores(labeler, items, uncertain="ignore")


def test_stratified_sample_is_reproducible_and_alternates_parts():
    texts = {str(i): ("effusion" if i % 3 == 0 else "no effusion") + (" clips" if i % 5 == 0 else "")
             for i in range(1, 61)}
    strata = (Stratum("effusion", r"effusion", 6, affirmed=True), Stratum("clips", r"clip", 4),
              Stratum("random", r"", 5))
    draw = stratified_sample(texts, strata, seed=7, exclude=frozenset({"3"}))
    assert draw == stratified_sample(texts, strata, seed=7, exclude=frozenset({"3"}))
    assert draw != stratified_sample(texts, strata, seed=8, exclude=frozenset({"3"}))
    ids = [k for k, _, _ in draw]
    assert len(ids) == len(set(ids)) == 15 and "3" not in ids
    affirmed = [k for k, s, _ in draw if s == "effusion"]
    assert all(int(k) % 3 == 0 for k in affirmed)              # "no effusion" is not affirmed
    assert [p for _, s, p in draw if s == "clips"] == ["dev", "held-out", "dev", "held-out"]


def test_write_readme_replaces_only_the_marked_block(tmp_path):
    script = load_script("eval_label_gold")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{script.BEGIN}\nold table\n{script.END}\nafter\n", encoding="utf-8")
    script.write_readme("new table", readme)
    assert readme.read_text(encoding="utf-8") == f"# x\nbefore\n{script.BEGIN}\nnew table\n{script.END}\nafter\n"
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        script.write_readme("new table", readme)


def test_load_gold_reads_the_no_finding_column_of_the_policy(tmp_path):
    reports = {"7": {"findings": "Clear lungs.", "impression": "Degenerative change of the spine."}}
    both = tmp_path / "both.csv"
    both.write_text("report," + ",".join(OBSERVATIONS) + ",No Finding (incidental)\n7," + "," * 13 + ",1\n",
                    encoding="utf-8")
    (item,) = load_gold(both, reports, no_finding="incidental")
    assert item.text == "Clear lungs. Degenerative change of the spine."
    assert item.labels == _row(**{"No Finding": 1})
    assert load_gold(both, reports)[0].labels == _row()                  # default: the CheXpert column
    one = tmp_path / "one.csv"
    one.write_text("report," + ",".join(OBSERVATIONS) + "\n7," + "," * 13 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="No Finding \\(incidental\\)"):
        load_gold(one, reports, no_finding="incidental")
    with pytest.raises(ConfigError):
        load_gold(one, reports, no_finding="strict")


def test_v2_table_adds_the_other_policys_no_finding_row():
    script = load_script("eval_label_gold")
    items = [GoldItem("a", "a", _row(**{"No Finding": 1})), GoldItem("b", "b", _row(Cardiomegaly=1))]
    fixed = _Fixed({"a": list(_row(**{"No Finding": 1})), "b": list(_row(Cardiomegaly=1))})
    one = {part: positive_scores(fixed, items) for part in script.PARTS}
    table = script.v2_table({"incidental": one, "chexpert": one}, "incidental", "cmd")
    assert "No Finding policy `incidental`" in table and "column `No Finding (incidental)`" in table
    rows = [line for line in table.splitlines() if line.startswith("| No Finding")]
    assert len(rows) == 2 and rows[1].startswith("| No Finding, `--no-finding chexpert` (gold `No Finding`) |")
    assert len(script.v2_table({"chexpert": one}, "chexpert", "cmd").splitlines()) == len(table.splitlines()) - 1
