"""CIDEr-D exactly as coco-caption (pycocoevalcap 1.2, `Cider`) computes it.

Vedantam et al. 2015, with coco-caption's choices reproduced:
* document frequency of an n-gram = number of items whose references contain it, counted over the
  scored set itself; idf = log(number of items) - log(max(1, df));
* per order n = 1..4: tf-idf vectors of hypothesis and reference, "clipped" dot product
  sum(min(h, r) * r) divided by both norms (left undivided when a norm is 0);
* Gaussian length penalty exp(-delta^2 / (2 sigma^2)), sigma = 6, where delta is the difference
  of the two texts' *bigram* counts (coco-caption's `length` counts 2-grams, not tokens);
* item score = mean over orders of the sum over references, / number of references, x 10;
  corpus score = mean over items.

Hand-written: one set of numpy operations over the whole corpus (see `_ngrams`) instead of
per-sentence dicts, for speed, with the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from irralctl.metrics._ngrams import CookedPairs, cook

NAME = "cider"
SIGMA = 6.0


def cider_items(cooked: CookedPairs, sigma: float = SIGMA) -> np.ndarray:
    """Per-item CIDEr-D, float64 (items,), with document frequencies from this scored set."""
    n = cooked.n_items
    n_ref_texts = len(cooked.ref_item)
    log_docs = np.log(float(n))
    n_orders = len(cooked.tables)
    val = np.zeros((n_ref_texts, n_orders))  # clipped dot product per (reference, order)
    norm_h = np.zeros((n, n_orders))
    norm_r = np.zeros((n_ref_texts, n_orders))
    # Hypothesis rows are repeated once per reference of their item; reference j's rows are keyed by j.
    ref_start = np.cumsum(cooked.n_refs) - cooked.n_refs
    single_ref = bool(np.all(cooked.n_refs == 1))  # the usual case: skip the per-reference expansion
    for k, table in enumerate(cooked.tables):
        g = table.n_grams
        is_hyp = table.text < n
        r_text = table.text[~is_hyp] - n
        r_gram = table.gram[~is_hyp]
        # df: items (not reference texts) containing the n-gram in any reference.
        if single_ref:
            df = np.bincount(r_gram, minlength=g).astype(np.float64)  # rows are already unique per item
        else:
            item_gram = np.unique(cooked.ref_item[r_text] * g + r_gram)
            df = np.bincount(item_gram % g, minlength=g).astype(np.float64)
        idf = log_docs - np.log(np.maximum(1.0, df))
        w = table.count * idf[table.gram]
        w_h, w_r = w[is_hyp], w[~is_hyp]
        h_item = table.text[is_hyp]
        norm_h[:, k] = np.sqrt(np.bincount(h_item, weights=w_h**2, minlength=n))
        norm_r[:, k] = np.sqrt(np.bincount(r_text, weights=w_r**2, minlength=n_ref_texts))

        if single_ref:
            h_row, ref_j = np.arange(len(h_item)), h_item
        else:
            reps = cooked.n_refs[h_item]
            h_row = np.repeat(np.arange(len(h_item)), reps)
            ref_j = np.repeat(ref_start[h_item] - np.cumsum(reps) + reps, reps) + np.arange(len(h_row))
        h_key = ref_j * g + table.gram[is_hyp][h_row]
        r_key = r_text * g + r_gram  # sorted: rows are sorted by (text, gram)
        if len(r_key) == 0:
            continue
        at = np.minimum(np.searchsorted(r_key, h_key), len(r_key) - 1)
        found = r_key[at] == h_key
        wr = w_r[at[found]]
        contrib = np.minimum(w_h[h_row[found]], wr) * wr
        val[:, k] = np.bincount(ref_j[found], weights=contrib, minlength=n_ref_texts)

    nh = norm_h[cooked.ref_item]
    both = (nh != 0) & (norm_r != 0)
    val = np.where(both, val / np.where(both, nh * norm_r, 1.0), val)
    # coco-caption's `length` counts bigrams: 2-gram tf summed = max(0, tokens - 1).
    bigrams = np.maximum(cooked.lengths - 1, 0)
    delta = (bigrams[:n][cooked.ref_item] - bigrams[n:]).astype(np.float64)
    val *= (np.e ** (-(delta**2) / (2 * sigma**2)))[:, None]
    per_item = np.zeros((n, n_orders))
    np.add.at(per_item, cooked.ref_item, val)
    return per_item.mean(axis=1) / cooked.n_refs * 10.0


def compute_score(gts: Mapping, res: Mapping) -> tuple[float, np.ndarray]:
    """coco-caption's `Cider().compute_score`: (mean CIDEr-D, per-item array)."""
    scores = cider_items(cook(gts, res))
    return float(np.mean(scores)), scores
