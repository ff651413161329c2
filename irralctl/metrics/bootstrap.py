"""Confidence intervals and paired significance tests by resampling studies.

Every corpus metric is written as a function of per-study statistics summed over the studies
(`Statistic`): BLEU from matched / candidate n-gram counts and lengths, METEOR from the jar's 23
statistics, micro / macro CE from TP/FP/FN counts, and mean-over-studies metrics (ROUGE-L, CIDEr-D,
example-based CE) from the per-study values. A resample is then a vector of study multiplicities,
and a thousand resamples are one matrix product: no metric is recomputed from text.

* `bootstrap_ci`: percentile bootstrap (Efron & Tibshirani 1993) over studies, seeded.
* `paired_test`: the same resamples applied to two systems on the same studies give the interval
  of the difference (Koehn 2004); the p-value is a paired approximate randomisation test
  (Riezler & Maxwell 2005): each study's two outputs are swapped with probability 1/2, and
  p = (1 + #{|diff*| >= |diff|}) / (1 + permutations), two-sided.

CIDEr-D's document frequencies are those of the full scored set and are held fixed across
resamples (the per-study scores are resampled), which is how its per-study scores are defined.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from irralctl.errors import IrralError

CHUNK = 250  # resamples per matrix product: bounds memory at 250 x studies floats


@dataclass(frozen=True)
class Statistic:
    """A corpus metric: per-study statistics (studies, d) and f(totals (B, d), n_studies) -> (B,)."""

    name: str
    per_study: np.ndarray
    from_totals: Callable[[np.ndarray, int], np.ndarray]

    def value(self) -> float:
        return float(self.from_totals(self.per_study.sum(axis=0)[None, :], len(self.per_study))[0])


def mean_statistic(name: str, values: np.ndarray) -> Statistic:
    return Statistic(name, np.asarray(values, dtype=np.float64).reshape(-1, 1), lambda t, n: t[:, 0] / n)


def resample_weights(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b, n) multiplicities of each study in b bootstrap resamples of size n."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def stack_statistics(stats: Sequence[Statistic]) -> tuple[np.ndarray, list[slice]]:
    cols, slices, start = [], [], 0
    for s in stats:
        cols.append(s.per_study)
        slices.append(slice(start, start + s.per_study.shape[1]))
        start += s.per_study.shape[1]
    return np.concatenate(cols, axis=1), slices


def bootstrap_ci(stats: Sequence[Statistic], n_resamples: int, seed: int = 0, confidence: float = 0.95) -> dict[str, dict]:
    """{name: {value, low, high}} with percentile intervals from `n_resamples` resamples."""
    if n_resamples < 1:
        raise IrralError("the number of bootstrap resamples must be at least 1")
    matrix, slices = stack_statistics(stats)
    n = matrix.shape[0]
    rng = np.random.default_rng(seed)
    samples = {s.name: [] for s in stats}
    for start in range(0, n_resamples, CHUNK):
        totals = resample_weights(rng, min(CHUNK, n_resamples - start), n) @ matrix
        for s, sl in zip(stats, slices):
            samples[s.name].append(s.from_totals(totals[:, sl], n))
    tail = (1 - confidence) / 2 * 100
    out = {}
    for s in stats:
        v = np.concatenate(samples[s.name])
        lo, hi = np.percentile(v, [tail, 100 - tail])
        out[s.name] = {"value": s.value(), "low": float(lo), "high": float(hi)}
    return out


def paired_test(
    stats_a: Sequence[Statistic], stats_b: Sequence[Statistic], n_resamples: int, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict]:
    """{name: {a, b, difference, low, high, p_value}} for A - B on the same studies."""
    if [s.name for s in stats_a] != [s.name for s in stats_b]:
        raise IrralError("the two systems were scored with different metrics")
    ma, slices = stack_statistics(stats_a)
    mb, _ = stack_statistics(stats_b)
    if ma.shape != mb.shape:
        raise IrralError("the two systems have different numbers of studies")
    n = ma.shape[0]
    rng = np.random.default_rng(seed)
    boot = {s.name: [] for s in stats_a}
    perm = {s.name: [] for s in stats_a}
    tot_a, tot_b, delta = ma.sum(0), mb.sum(0), mb - ma
    for start in range(0, n_resamples, CHUNK):
        b = min(CHUNK, n_resamples - start)
        w = resample_weights(rng, b, n)
        ta, tb = w @ ma, w @ mb
        swap = rng.integers(0, 2, size=(b, n)).astype(np.float64)
        shift = swap @ delta  # what swapping moves from B's totals into A's
        pa, pb = tot_a + shift, tot_b - shift
        for sa, sb, sl in zip(stats_a, stats_b, slices):
            boot[sa.name].append(sa.from_totals(ta[:, sl], n) - sb.from_totals(tb[:, sl], n))
            perm[sa.name].append(sa.from_totals(pa[:, sl], n) - sb.from_totals(pb[:, sl], n))
    tail = (1 - confidence) / 2 * 100
    out = {}
    for sa, sb in zip(stats_a, stats_b):
        a, b_ = sa.value(), sb.value()
        diff = a - b_
        lo, hi = np.percentile(np.concatenate(boot[sa.name]), [tail, 100 - tail])
        null = np.abs(np.concatenate(perm[sa.name]))
        # a tolerance so that float noise in an exactly equal permuted difference still counts
        extreme = int(np.sum(null >= abs(diff) - 1e-12 * max(1.0, abs(diff))))
        out[sa.name] = {"a": a, "b": b_, "difference": diff, "low": float(lo), "high": float(hi),
                        "p_value": (1 + extreme) / (1 + n_resamples)}
    return out
