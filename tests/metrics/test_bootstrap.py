"""Bootstrap intervals and paired tests: resampled statistics equal metrics recomputed from text."""

from __future__ import annotations

import random

import numpy as np
import pytest

from irralctl.constants import CE_AVERAGES
from irralctl.metrics import bleu, clinical, rouge
from irralctl.metrics._ngrams import cook
from irralctl.metrics.bootstrap import Statistic, bootstrap_ci, bootstrap_p, mean_statistic, paired_test
from irralctl.metrics.scoring import ScoreConfig, _ce_statistics, score_reports
from tests.fixtures.metric_texts import pairs, report


def _bleu_statistics(gts, res):
    stats = bleu.bleu_stats(cook(gts, res))
    return [Statistic(name, stats, lambda t, n, k=k: bleu.bleu_from_totals(t)[:, k]) for k, name in enumerate(bleu.NAMES)]


def test_a_resample_equals_bleu_recomputed_on_the_resampled_texts():
    gts, res = pairs(1, 200)
    ids = list(gts)
    stats = _bleu_statistics(gts, res)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(ids), len(ids))
    weights = np.bincount(pick, minlength=len(ids)).astype(float)
    # the resample as texts: each drawn study becomes its own item
    g2 = {f"{j}": gts[ids[i]] for j, i in enumerate(pick)}
    r2 = {f"{j}": res[ids[i]] for j, i in enumerate(pick)}
    want, _ = bleu.compute_score(g2, r2)
    for k, s in enumerate(stats):
        got = s.from_totals((weights @ s.per_study)[None, :], len(ids))[0]
        assert got == pytest.approx(want[k], abs=1e-12)


def test_a_resample_equals_clinical_efficacy_on_the_resampled_labels():
    rng = random.Random(2)
    pl = [[rng.choice([1, 0, -1, None]) for _ in range(14)] for _ in range(120)]
    rl = [[rng.choice([1, 0, -1, None]) for _ in range(14)] for _ in range(120)]
    conf = clinical.confusion(clinical.binarize(pl), clinical.binarize(rl))
    stats = {s.name: s for s in _ce_statistics(conf)}
    pick = np.random.default_rng(1).integers(0, 120, 120)
    weights = np.bincount(pick, minlength=120).astype(float)
    direct = clinical.clinical_efficacy([pl[i] for i in pick], [rl[i] for i in pick])
    for subset in clinical.SUBSETS:
        for avg in CE_AVERAGES:
            for measure in ("precision", "recall", "f1"):
                s = stats[f"ce_{avg}_{measure}_{subset}"]
                got = s.from_totals((weights @ s.per_study)[None, :], 120)[0]
                assert got == pytest.approx(direct["subsets"][subset][avg][measure], abs=1e-12)


def test_point_values_equal_the_metrics():
    gts, res = pairs(2, 150)
    corpus, _ = bleu.compute_score(gts, res)
    assert [s.value() for s in _bleu_statistics(gts, res)] == pytest.approx(corpus, abs=1e-12)
    r, items = rouge.compute_score(gts, res)
    assert mean_statistic("rouge_l", items).value() == pytest.approx(r, abs=1e-12)


def test_intervals_are_seeded_and_bracket_the_value():
    gts, res = pairs(3, 400)
    stats = _bleu_statistics(gts, res)
    a = bootstrap_ci(stats, 300, seed=5)
    b = bootstrap_ci(stats, 300, seed=5)
    c = bootstrap_ci(stats, 300, seed=6)
    assert a == b and a != c
    for name, row in a.items():
        assert row["low"] <= row["value"] <= row["high"], name
        assert row["high"] - row["low"] > 0
    narrow = bootstrap_ci(stats, 300, seed=5, confidence=0.5)
    assert narrow["bleu_4"]["high"] - narrow["bleu_4"]["low"] < a["bleu_4"]["high"] - a["bleu_4"]["low"]


def test_paired_test_identical_systems():
    gts, res = pairs(4, 200)
    stats = _bleu_statistics(gts, res)
    out = paired_test(stats, stats, 200, seed=0)
    for row in out.values():
        assert row["difference"] == 0 and row["low"] == 0 and row["high"] == 0 and row["p_value"] == 1.0


def test_paired_test_detects_a_clearly_better_system():
    gts, res = pairs(5, 300)
    better = {k: [gts[k][0]] if i % 2 else res[k] for i, k in enumerate(gts)}  # half the studies perfect
    out = paired_test(_bleu_statistics(gts, better), _bleu_statistics(gts, res), 500, seed=0)
    row = out["bleu_4"]
    assert row["difference"] > 0 and row["low"] > 0
    assert row["p_value"] == pytest.approx(2 / 501)   # no resampled difference at or below 0


def test_paired_test_on_exchangeable_systems_is_not_significant():
    gts, _ = pairs(6, 300)
    rng = random.Random(7)
    r1 = {k: [report(rng)] for k in gts}  # two systems that ignore the reference alike
    r2 = {k: [report(rng)] for k in gts}
    out = paired_test(_bleu_statistics(gts, r1), _bleu_statistics(gts, r2), 500, seed=0)
    # both are random texts against the same references: no metric should be far in the tail
    assert min(row["p_value"] for row in out.values()) > 0.01


def test_bootstrap_p_is_twice_the_smaller_tail_at_zero():
    assert bootstrap_p(np.full(99, 0.3)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.full(99, -0.3)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.zeros(99)) == 1.0
    mixed = np.concatenate([np.full(10, -1.0), np.full(90, 1.0)])
    assert bootstrap_p(mixed) == pytest.approx(2 * 11 / 101)


@pytest.mark.parametrize("n_studies", [10, 30, 200])
def test_paired_interval_and_p_never_contradict(n_studies):
    """One set of resamples gives both: p < 0.05 exactly when the 95% interval leaves 0 out, up to
    one resample (the +1 that keeps p above 0). Before, the interval came from the bootstrap and p
    from randomisation, and 10 studies could give an interval above 0 beside p = 0.26."""
    rng = np.random.default_rng(n_studies)
    resamples = 999
    for case in range(40):
        a = rng.normal(0.5, 0.2, n_studies)
        b = a - rng.normal(0.05 * (case % 4), 0.2, n_studies)      # from no difference to a clear one
        row = paired_test([mean_statistic("m", a)], [mean_statistic("m", b)], resamples, seed=case)["m"]
        excludes_zero = row["low"] > 0 or row["high"] < 0
        if row["p_value"] < 0.05:
            assert excludes_zero, row
        if excludes_zero:
            assert row["p_value"] <= 0.05 + 2 / (resamples + 1), row


def test_score_reports_intervals_cover_every_metric():
    gts, res = pairs(8, 120)
    preds = {k: v[0] for k, v in res.items()}
    refs = {k: v[0] for k, v in gts.items()}
    rng = random.Random(0)
    labels = {k: [rng.choice([1, 0, None]) for _ in range(14)] for k in preds}
    out = score_reports(preds, refs, ScoreConfig(meteor="off", bootstrap=100, seed=3), labels, labels)
    assert set(out["intervals"]["metrics"]) == set(out["metrics"])
    assert out["intervals"]["metrics"]["ce_micro_f1_14"] == {"value": 1.0, "low": 1.0, "high": 1.0}
