"""BLEU-1..4 exactly as coco-caption (pycocoevalcap 1.2, `Bleu(4)`) computes it.

Semantics reproduced (Papineni et al. 2002, as modified in coco-caption's bleu_scorer.py):
* tokens are `str.split()`; n-gram matches are clipped by the largest count in any reference;
* the corpus score sums matches ("correct") and n-gram counts ("guess") over all items, then
  multiplies the running precision product `(correct_k + 1e-15) / (guess_k + 1e-9)` and takes its
  k-th root (the constants make an empty hypothesis score 0 instead of dividing by zero);
* the reference length of an item is the "closest" one: the reference length nearest to the
  hypothesis length, the shorter on a tie; brevity penalty `exp(1 - r/c)` with the same constants;
* per-item scores use the same formula on that item's counts alone.

Hand-written rather than calling pycocoevalcap: the counts come from whole-corpus numpy tables
(see `_ngrams`), several times faster, and the per-item sufficient statistics returned by
`bleu_stats` let the bootstrap recompute the corpus score for a thousand resamples in
milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from irralctl.metrics._ngrams import MAX_ORDER, CookedPairs, cook

NAMES = tuple(f"bleu_{k}" for k in range(1, MAX_ORDER + 1))
_TINY = 1e-15  # coco-caption's constants, kept bit for bit
_SMALL = 1e-9

# Columns of the per-item statistics: correct_1..4, guess_1..4, hypothesis length, reference length.
N_STATS = 2 * MAX_ORDER + 2


def _closest_ref_lengths(cooked: CookedPairs) -> np.ndarray:
    n = cooked.n_items
    hyp_len = cooked.lengths[:n]
    ref_len = cooked.lengths[n:]
    if np.all(cooked.n_refs == 1):
        return ref_len.copy()
    out = np.empty(n, dtype=np.int64)
    start = 0
    for i, r in enumerate(cooked.n_refs.tolist()):
        lens = ref_len[start:start + r].tolist()
        out[i] = min((abs(l - int(hyp_len[i])), l) for l in lens)[1]
        start += r
    return out


def bleu_stats(cooked: CookedPairs) -> np.ndarray:
    """Per-item sufficient statistics, float64 (items, N_STATS): see the column layout above."""
    n = cooked.n_items
    stats = np.zeros((n, N_STATS), dtype=np.float64)
    hyp_len = cooked.lengths[:n]
    for k, table in enumerate(cooked.tables):
        g = table.n_grams
        is_hyp = table.text < n
        # Largest count of each n-gram over an item's references ("maxcounts" in coco-caption).
        r_item = cooked.ref_item[table.text[~is_hyp] - n]
        r_key = r_item * g + table.gram[~is_hyp]
        r_cnt = table.count[~is_hyp]
        if not np.all(cooked.n_refs == 1):
            r_key, inv = np.unique(r_key, return_inverse=True)
            best = np.zeros(len(r_key), dtype=np.int64)
            np.maximum.at(best, inv, r_cnt)
            r_cnt = best
        h_item = table.text[is_hyp]
        h_key = h_item * g + table.gram[is_hyp]
        at = np.minimum(np.searchsorted(r_key, h_key), max(len(r_key) - 1, 0))
        found = (r_key[at] == h_key) if len(r_key) else np.zeros(len(h_key), dtype=bool)
        clipped = np.where(found, np.minimum(table.count[is_hyp], r_cnt[at] if len(r_cnt) else 0), 0)
        stats[:, k] = np.bincount(h_item, weights=clipped, minlength=n)
        stats[:, MAX_ORDER + k] = np.maximum(0, hyp_len - k)
    stats[:, 2 * MAX_ORDER] = hyp_len
    stats[:, 2 * MAX_ORDER + 1] = _closest_ref_lengths(cooked)
    return stats


def bleu_from_totals(totals: np.ndarray) -> np.ndarray:
    """BLEU-1..4 from summed statistics; `totals` (..., N_STATS) -> (..., 4)."""
    totals = np.asarray(totals, dtype=np.float64)
    correct = totals[..., :MAX_ORDER]
    guess = totals[..., MAX_ORDER:2 * MAX_ORDER]
    prec = np.cumprod((correct + _TINY) / (guess + _SMALL), axis=-1)
    scores = prec ** (1.0 / np.arange(1, MAX_ORDER + 1))
    ratio = (totals[..., 2 * MAX_ORDER] + _TINY) / (totals[..., 2 * MAX_ORDER + 1] + _SMALL)
    with np.errstate(over="ignore", divide="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * penalty[..., None]


def compute_score(gts: Mapping, res: Mapping) -> tuple[list[float], list[np.ndarray]]:
    """coco-caption's `Bleu(4).compute_score`: ([bleu_1..4], [per-item bleu_k arrays])."""
    stats = bleu_stats(cook(gts, res))
    corpus = bleu_from_totals(stats.sum(axis=0))
    per_item = bleu_from_totals(stats)
    return [float(v) for v in corpus], [per_item[:, k] for k in range(MAX_ORDER)]
