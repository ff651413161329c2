"""Group resampling: seed means on shared resamples, randomisation and bootstrap p-values, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from irralctl.compare import stats
from irralctl.metrics.bootstrap import CHUNK, mean_statistic, resample_weights


def _run(values) -> list:
    return [mean_statistic("score", np.asarray(values, dtype=float))]


def test_a_group_is_the_mean_of_its_seeds_on_the_same_resampled_studies():
    rng = np.random.default_rng(0)
    a = [_run(rng.normal(0.5, 0.1, 50)) for _ in range(3)]
    b = [_run(rng.normal(0.4, 0.1, 50)) for _ in range(2)]
    out = stats.resample_groups({"a": a, "b": b}, 300, seed=7)
    # The multiplicities the function drew, a chunk at a time: one set per resample, for every run of both groups.
    rng = np.random.default_rng(7)
    w = np.concatenate([resample_weights(rng, CHUNK, 50), resample_weights(rng, 300 - CHUNK, 50)])
    for name, group in (("a", a), ("b", b)):
        want = np.mean([(w @ r[0].per_study[:, 0]) / 50 for r in group], axis=0)
        np.testing.assert_allclose(out[name].samples["score"], want, rtol=0, atol=1e-12)
        assert out[name].point["score"] == pytest.approx(np.mean([r[0].value() for r in group]), abs=1e-12)


def test_identical_groups_give_p_one_and_a_zero_interval():
    rng = np.random.default_rng(1)
    runs = [_run(rng.random(40)) for _ in range(2)]
    out = stats.resample_groups({"a": runs, "b": runs}, 200, seed=0)
    d = stats.difference(out["a"], out["b"], "score", 0.95)
    assert d["difference"] == 0 and d["low"] == 0 == d["high"] and d["bootstrap_p"] == 1.0
    assert stats.randomisation_p(runs, runs, 200, seed=0) == {"score": 1.0}
    assert stats.verdict(d["low"], d["high"]) == stats.SAME


def test_randomisation_p_is_small_for_a_real_difference_and_large_for_noise():
    rng = np.random.default_rng(2)
    base = [_run(rng.random(100)) for _ in range(3)]
    shifted = [_run(r[0].per_study[:, 0] + 0.2) for r in base]
    noisy = [_run(r[0].per_study[:, 0] + rng.normal(0, 0.01, 100)) for r in base]
    assert stats.randomisation_p(shifted, base, 500, seed=0)["score"] == pytest.approx(1 / 501)
    assert stats.randomisation_p(noisy, base, 500, seed=0)["score"] > 0.05


def test_verdict_follows_the_interval():
    assert stats.verdict(0.01, 0.2) == stats.BETTER and stats.verdict(-0.2, -0.01) == stats.WORSE
    assert stats.verdict(-0.01, 0.2) == stats.SAME
    assert stats.verdict(0.01, 0.2, higher_is_better=False) == stats.WORSE
