"""Group differences on the same test studies: paired bootstrap intervals, p-values, verdicts.

A group is a configuration trained with one or more seeds; its figure for a metric is the mean
over its seeds of each run's corpus metric. Every corpus metric is a function of per-study
statistics summed over studies (`irralctl.metrics.bootstrap.Statistic`), so resampling studies
never re-scores text:

* **Interval** (paired bootstrap over studies; Efron & Tibshirani 1993, Koehn 2004): B vectors of
  study multiplicities are drawn, each shared by every run of every group. For each, every run's
  metric is recomputed from its weighted totals, averaged over the group's seeds, and the
  reference group's average subtracted; the percentile interval of those B differences.
* **p-value**, two-sided, for group minus reference:
  - seeds paired (both groups trained with the same seeds): approximate randomisation (Riezler &
    Maxwell 2005) extended to seeds: for each study a coin decides whether the outputs of every
    pair (group seed k, reference seed k) are swapped; p = (1 + #{|d*| >= |d|}) / (1 + R);
  - otherwise (seeds pooled): the bootstrap p, twice the smaller share of the B differences on
    either side of 0 (each count + 1, over B + 1), capped at 1; below 1 - confidence exactly when
    the interval leaves 0 out.
* **Verdict** from the interval: better (it lies above 0, for a higher-is-better metric), worse
  (below 0), else not distinguishable.

Both condition on the trained seeds: they measure how much the difference depends on which test
studies were drawn, not how much it would move with other seeds (the std over seeds shows that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The bootstrap's own resampling: one multiplicity matrix per chunk, metrics as weighted totals.
from irralctl.metrics.bootstrap import CHUNK, Statistic, bootstrap_p, resample_weights, stack_statistics

BETTER, SAME, WORSE = "better", "not distinguishable", "worse"
P_RANDOMISATION = "paired approximate randomisation over studies (seed pairs swapped together)"
P_BOOTSTRAP = "bootstrap (twice the smaller tail of the resampled differences at 0)"

RunStats = Sequence[Statistic]  # one run's statistics, in the same metric order for every run


@dataclass(frozen=True)
class GroupSamples:
    point: dict[str, float]            # metric -> mean over the group's seeds, on the test set
    samples: dict[str, np.ndarray]     # metric -> (B,) that mean on each resample


def _values(stats: RunStats, totals: np.ndarray, slices: list[slice], n: int) -> list[np.ndarray]:
    return [s.from_totals(totals[:, sl], n) for s, sl in zip(stats, slices)]


def resample_groups(groups: Mapping[str, Sequence[RunStats]], resamples: int, seed: int) -> dict[str, GroupSamples]:
    """Each group's seed-mean of every metric on the same `resamples` bootstrap resamples of the studies."""
    runs = [r for g in groups.values() for r in g]
    names = [s.name for s in runs[0]]
    if any([s.name for s in r] != names for r in runs):
        raise ValueError("every run must have the same statistics in the same order")
    stacked = [stack_statistics(r) for r in runs]
    slices = stacked[0][1]
    n = stacked[0][0].shape[0]
    rng = np.random.default_rng(seed)
    chunks: list[list[list[np.ndarray]]] = [[] for _ in runs]   # run -> chunk -> metric -> (b,)
    for start in range(0, resamples, CHUNK):
        w = resample_weights(rng, min(CHUNK, resamples - start), n)
        for i, (matrix, _) in enumerate(stacked):
            chunks[i].append(_values(runs[i], w @ matrix, slices, n))
    out, i = {}, 0
    for name, group in groups.items():
        members = range(i, i + len(group))
        i += len(group)
        samples = {m: np.mean([np.concatenate([c[j] for c in chunks[r]]) for r in members], axis=0)
                   for j, m in enumerate(names)}
        point = {m: float(np.mean([runs[r][j].value() for r in members])) for j, m in enumerate(names)}
        out[name] = GroupSamples(point, samples)
    return out


def randomisation_p(group: Sequence[RunStats], reference: Sequence[RunStats], resamples: int,
                    seed: int) -> dict[str, float]:
    """Two-sided p of (group mean - reference mean) by swapping paired runs' outputs per study.

    `group[k]` and `reference[k]` are the runs of the same seed.
    """
    if len(group) != len(reference):
        raise ValueError("paired groups need the same number of runs")
    names = [s.name for s in group[0]]
    pairs = [(stack_statistics(a)[0], stack_statistics(b)[0]) for a, b in zip(group, reference)]
    slices = stack_statistics(group[0])[1]
    n = pairs[0][0].shape[0]
    observed = {m: np.mean([a[j].value() for a in group]) - np.mean([b[j].value() for b in reference])
                for j, m in enumerate(names)}
    rng = np.random.default_rng(seed)
    extreme = dict.fromkeys(names, 0)
    for start in range(0, resamples, CHUNK):
        b = min(CHUNK, resamples - start)
        swap = rng.integers(0, 2, size=(b, n)).astype(np.float64)   # one coin per study, for every pair
        diffs = [np.zeros(b) for _ in names]
        for (ma, mb), stats_a, stats_b in zip(pairs, group, reference):
            shift = swap @ (mb - ma)                                  # what swapping moves from B into A
            va = _values(stats_a, ma.sum(0) + shift, slices, n)
            vb = _values(stats_b, mb.sum(0) - shift, slices, n)
            for j in range(len(names)):
                diffs[j] += (va[j] - vb[j]) / len(pairs)
        for j, m in enumerate(names):
            d = abs(observed[m])
            # a tolerance so that float noise in an exactly equal permuted difference still counts
            extreme[m] += int(np.sum(np.abs(diffs[j]) >= d - 1e-12 * max(1.0, d)))
    return {m: (1 + extreme[m]) / (1 + resamples) for m in names}


def verdict(low: float, high: float, higher_is_better: bool = True) -> str:
    """better / worse when the interval leaves 0 out on that side, else not distinguishable."""
    if low > 0:
        return BETTER if higher_is_better else WORSE
    if high < 0:
        return WORSE if higher_is_better else BETTER
    return SAME


def difference(group: GroupSamples, reference: GroupSamples, metric: str, confidence: float) -> dict:
    """Point difference of the seed means, its percentile interval and the bootstrap p."""
    samples = group.samples[metric] - reference.samples[metric]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return {"mean": group.point[metric], "reference_mean": reference.point[metric],
            "difference": group.point[metric] - reference.point[metric], "low": float(low), "high": float(high),
            "bootstrap_p": bootstrap_p(samples)}
