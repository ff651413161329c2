"""Confidence intervals and paired significance tests by resampling studies.

Every corpus metric is written as a function of per-study statistics summed over the studies
(`Statistic`): BLEU from matched / candidate n-gram counts and lengths, METEOR from the jar's 23
statistics, micro / macro CE from TP/FP/FN counts, and mean-over-studies metrics (ROUGE-L, CIDEr-D,
example-based CE) from the per-study values. A resample is then a vector of study multiplicities,
and a thousand resamples are one matrix product: no metric is recomputed from text.

* `bootstrap_ci`: percentile bootstrap (Efron & Tibshirani 1993) over studies, seeded.
* `paired_test`: one paired bootstrap (Koehn 2004) gives both figures of A - B on the same
  studies: each resample draws studies with replacement and recomputes both systems on them; the
  interval is the percentile interval of the resampled differences and the p-value, two-sided,
  twice the smaller share of them on either side of 0 (`bootstrap_p`). Interval and p come from
  the same resamples, so they agree: p < 1 - confidence exactly when the interval leaves 0 out, up
  to one resample's worth (the +1 that keeps p above 0). With few studies (`FEW_STUDIES`) neither
  can be trusted: the resamples then take few distinct values.

CIDEr-D's document frequencies are those of the full scored set and are held fixed across
resamples (the per-study scores are resampled), which is how its per-study scores are defined.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from irralctl.errors import IrralError

CHUNK = 250  # resamples per matrix product: bounds memory at 250 x studies floats
FEW_STUDIES = 30  # fewer studies: a bootstrap's interval and p-value cannot be trusted
PAIRED_METHOD = ("paired bootstrap over studies: the percentile interval of the resampled differences A - B, "
                 "and p = twice the smaller share of them on either side of 0 (each count + 1, over resamples + 1), "
                 "from the same resamples")


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


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p from resampled differences: twice the smaller share on either side of 0.

    Each count is + 1 over resamples + 1, so p is never 0; capped at 1. A difference of exactly 0
    counts on both sides (identical systems give p = 1).
    """
    b = len(differences)
    below, above = int(np.sum(differences <= 0)), int(np.sum(differences >= 0))
    return min(1.0, 2 * (1 + min(below, above)) / (1 + b))


def paired_test(
    stats_a: Sequence[Statistic], stats_b: Sequence[Statistic], n_resamples: int, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict]:
    """{name: {a, b, difference, low, high, p_value}} for A - B on the same studies, interval and p
    from the same paired bootstrap resamples (`PAIRED_METHOD`)."""
    if [s.name for s in stats_a] != [s.name for s in stats_b]:
        raise IrralError("the two systems were scored with different metrics")
    if n_resamples < 1:
        raise IrralError("the number of bootstrap resamples must be at least 1")
    ma, slices = stack_statistics(stats_a)
    mb, _ = stack_statistics(stats_b)
    if ma.shape != mb.shape:
        raise IrralError("the two systems have different numbers of studies")
    n = ma.shape[0]
    rng = np.random.default_rng(seed)
    boot = {s.name: [] for s in stats_a}
    for start in range(0, n_resamples, CHUNK):
        w = resample_weights(rng, min(CHUNK, n_resamples - start), n)   # one draw of studies for both systems
        ta, tb = w @ ma, w @ mb
        for sa, sb, sl in zip(stats_a, stats_b, slices):
            boot[sa.name].append(sa.from_totals(ta[:, sl], n) - sb.from_totals(tb[:, sl], n))
    tail = (1 - confidence) / 2 * 100
    out = {}
    for sa, sb in zip(stats_a, stats_b):
        a, b_ = sa.value(), sb.value()
        samples = np.concatenate(boot[sa.name])
        lo, hi = np.percentile(samples, [tail, 100 - tail])
        out[sa.name] = {"a": a, "b": b_, "difference": a - b_, "low": float(lo), "high": float(hi),
                        "p_value": bootstrap_p(samples)}
    return out
