"""Clinical efficacy: conventions (uncertain, blank, 0/0) and sklearn's averages as the oracle."""

from __future__ import annotations

import random

import pytest

from irralctl.constants import CE_AVERAGES
from irralctl.errors import InputError, IrralError
from irralctl.metrics import clinical
from irralctl.metrics.scoring import ScoreConfig, score_reports

N_OBS = len(clinical.OBSERVATIONS)


def _random_labels(rng, n):
    return [[rng.choice([1, 0, -1, None]) for _ in range(N_OBS)] for _ in range(n)]


def test_binarize_conventions():
    row = [1, 0, -1, None] + [None] * 10
    neg = clinical.binarize([row], "negative")[0]
    pos = clinical.binarize([row], "positive")[0]
    assert neg[:4].tolist() == [True, False, False, False]
    assert pos[:4].tolist() == [True, False, True, False]


def test_hand_computed_example():
    # Cardiomegaly (index 2): pred +,+,- ref +,-,+  -> tp 1, fp 1, fn 1
    # Edema (index 5): pred +,-,- ref +,-,-         -> tp 1
    none = [None] * N_OBS
    preds, refs = [list(none) for _ in range(3)], [list(none) for _ in range(3)]
    preds[0][2] = preds[1][2] = refs[0][2] = refs[2][2] = 1
    preds[0][5] = refs[0][5] = 1
    ce = clinical.clinical_efficacy(preds, refs)
    micro = ce["subsets"]["14"]["micro"]
    assert micro == {"precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3)}
    macro = ce["subsets"]["14"]["macro"]  # per observation: cardiomegaly 0.5/0.5/0.5, edema 1/1/1, 12 others 0
    assert macro["f1"] == pytest.approx(1.5 / 14) and macro["precision"] == pytest.approx(1.5 / 14)
    ex = ce["subsets"]["14"]["example"]  # study 0: 2/2; study 1: P 0 (1 fp); study 2: 0 (fn) -> F1 mean 1/3
    assert ex["f1"] == pytest.approx(1 / 3) and ex["precision"] == pytest.approx(1 / 3)
    five = ce["subsets"]["5"]["macro"]  # cardiomegaly and edema are both among the 5
    assert five["f1"] == pytest.approx(1.5 / 5)
    card = ce["per_observation"][2]
    assert card["observation"] == "Cardiomegaly" and card["support"] == 2 and card["predicted"] == 2


def test_zero_division_is_zero():
    none = [[None] * N_OBS]
    ce = clinical.clinical_efficacy(none, none)
    for avg in CE_AVERAGES:
        assert ce["subsets"]["14"][avg] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


@pytest.mark.slow  # scikit-learn's import is most of it
@pytest.mark.parametrize("uncertain", ["negative", "positive"])
def test_matches_sklearn(uncertain):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(4)
    preds, refs = _random_labels(rng, 300), _random_labels(rng, 300)
    ce = clinical.clinical_efficacy(preds, refs, uncertain)
    yp, yt = clinical.binarize(preds, uncertain), clinical.binarize(refs, uncertain)
    for subset, idx in clinical.SUBSETS.items():
        for avg, sk_avg in (("micro", "micro"), ("macro", "macro"), ("example", "samples")):
            p, r, f, _ = metrics.precision_recall_fscore_support(yt[:, idx], yp[:, idx], average=sk_avg, zero_division=0)
            got = ce["subsets"][subset][avg]
            assert got["precision"] == pytest.approx(p, abs=1e-12)
            assert got["recall"] == pytest.approx(r, abs=1e-12)
            assert got["f1"] == pytest.approx(f, abs=1e-12), (subset, avg)


def test_validate_labels():
    assert clinical.validate_labels([1.0, 0, -1, None] + [0] * 10)[:4] == [1, 0, -1, None]
    for bad in ([1] * 13, [2] + [0] * 13, ["1"] + [0] * 13, [True] + [0] * 13, "x"):
        with pytest.raises(InputError):
            clinical.validate_labels(bad, path="f.jsonl", record=3, field="prediction_labels")


def test_r2gen_protocol_is_macro_14_uncertain_negative():
    rng = random.Random(9)
    ids = [str(i) for i in range(50)]
    texts = {i: "x" for i in ids}
    pl = dict(zip(ids, _random_labels(rng, 50)))
    rl = dict(zip(ids, _random_labels(rng, 50)))
    result = score_reports(texts, texts, ScoreConfig(meteor="off", protocol="r2gen"), pl, rl)
    assert result["protocol"]["clinical_headline"] == "ce_macro_f1_14"
    assert "macro" in result["protocol"]["clinical"] and "uncertain (-1) and blank as negative" in result["protocol"]["clinical"]
    direct = clinical.clinical_efficacy([pl[i] for i in ids], [rl[i] for i in ids], "negative")
    assert result["metrics"]["ce_macro_f1_14"] == pytest.approx(direct["subsets"]["14"]["macro"]["f1"], abs=1e-12)
    with pytest.raises(IrralError, match="r2gen"):
        score_reports(texts, texts, ScoreConfig(meteor="off", protocol="r2gen", uncertain="positive"), pl, rl)


def test_missing_labeller_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_labeling(name, *args, **kwargs):
        if name.startswith("irralctl.labeling"):
            raise ImportError("No module named 'irralctl.labeling'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_labeling)
    with pytest.raises(IrralError, match="labeller") as err:
        score_reports({"a": "no effusion"}, {"a": "small effusion"}, ScoreConfig(meteor="off"))
    assert "prediction_labels" in err.value.hint


def test_real_labeller_end_to_end():
    pytest.importorskip("irralctl.labeling")
    texts = {"a": "there is a large right pleural effusion .", "b": "the heart is enlarged . no pleural effusion ."}
    result = score_reports(texts, texts, ScoreConfig(meteor="off"))
    assert result["metrics"]["ce_micro_f1_14"] == 1.0
    assert "labelled here" in result["clinical"]["label_sources"]["predictions"]
    assert "No Finding incidental" in result["clinical"]["label_sources"]["predictions"]
    support = {r["observation"]: r["support"] for r in result["clinical"]["per_observation"]}
    assert support["Pleural Effusion"] == 1 and support["Cardiomegaly"] == 1
