"""ROUGE-L exactly as coco-caption (pycocoevalcap 1.2, `Rouge`) computes it.

Per item: tokens are `str.split(" ")` (so doubled, leading or trailing spaces give empty tokens,
and an empty text is one empty token, as in coco-caption); LCS length against each reference;
precision = LCS / |hypothesis|, recall = LCS / |reference|, each maximised over references
separately; F = (1 + b^2) P R / (R + b^2 P) with b = 1.2, or 0 when P or R is 0 (Lin 2004).
The corpus score is the mean over items.

The LCS is hand-written with the bit-parallel algorithm (Allison & Dix 1986; Hyyro 2004): one
big-integer update per hypothesis token instead of coco-caption's quadratic Python table, the
same lengths at a small fraction of the time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from irralctl.metrics._ngrams import check_pairs

NAME = "rouge_l"
BETA = 1.2


def _masks(tokens: list[str]) -> dict[str, int]:
    """Bit j of masks[w] is set when tokens[j] == w."""
    masks: dict[str, int] = {}
    for j, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << j)
    return masks


def _lcs(a: list[str], masks: dict[str, int], n_b: int) -> int:
    """LCS length of `a` and a text of `n_b` tokens given by its `_masks`."""
    full = (1 << n_b) - 1
    v = full  # bit j set = column j not yet matched by the LCS frontier
    for m in filter(None, map(masks.get, a)):  # tokens of `a` absent from the other text match nothing
        u = v & m
        v = ((v + u) | (v - u)) & full
    return n_b - v.bit_count()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a  # iterate over the longer one, keep the bit vector short
    return _lcs(a, _masks(b), len(b))


def rouge_l_item(hyp: str, refs: list[str], beta: float = BETA) -> float:
    """coco-caption's `Rouge.calc_score` for one hypothesis and its references."""
    tok_h = hyp.split(" ")
    return _f_measure(tok_h, [(len(t), _masks(t)) for t in (ref.split(" ") for ref in refs)], beta)


def _f_measure(tok_h: list[str], refs: list[tuple[int, dict[str, int]]], beta: float = BETA) -> float:
    """ROUGE-L of hypothesis tokens against references given as (token count, `_masks`)."""
    p = r = 0.0
    n_h = float(len(tok_h))
    for n_r, masks in refs:
        lcs = _lcs(tok_h, masks, n_r)
        p = max(p, lcs / n_h)   # coco-caption: max over references of precision and of recall, separately
        r = max(r, lcs / float(n_r))
    if p != 0 and r != 0:
        return ((1 + beta**2) * p * r) / float(r + beta**2 * p)
    return 0.0


def compute_score(gts: Mapping, res: Mapping) -> tuple[float, np.ndarray]:
    """coco-caption's `Rouge().compute_score`: (mean ROUGE-L, per-item array).

    Each distinct reference is split and its token masks built once (reference sets and
    generated reports repeat whole texts)."""
    ids = check_pairs(gts, res)
    refs_seen: dict[str, tuple[int, dict[str, int]]] = {}

    def prepared(ref: str) -> tuple[int, dict[str, int]]:
        entry = refs_seen.get(ref)
        if entry is None:
            tokens = ref.split(" ")
            entry = refs_seen[ref] = (len(tokens), _masks(tokens))
        return entry

    scores = np.fromiter((_f_measure(res[k][0].split(" "), [prepared(ref) for ref in gts[k]]) for k in ids),
                         dtype=np.float64, count=len(ids))
    return float(np.mean(scores)) if len(scores) else 0.0, scores
