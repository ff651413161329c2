"""Standard MT / summarisation metrics for readers outside report generation, with signatures.

* sacreBLEU BLEU and chrF (Post 2018; Popovic 2015), corpus level, sacreBLEU's defaults
  (13a tokenisation, exponential smoothing; chrF2 with character 6-grams), on a 0-100 scale.
  `force=True` only silences sacreBLEU's "looks tokenised" warning: our texts are cleaned and
  tokenised on purpose, and the setting does not change the score or the signature.
  Per-study statistics come from sacreBLEU's own `_extract_corpus_statistics` /
  `_compute_score_from_stats`, the pair its significance tests use, so bootstrap resamples give
  exactly sacreBLEU's corpus score.
* rouge-score (Google's reimplementation of Lin 2004) ROUGE-1, ROUGE-2 and ROUGE-L F-measure,
  default tokeniser, no stemming, mean over studies (best reference when there are several).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence

import numpy as np

from irralctl.metrics.bootstrap import Statistic, mean_statistic

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _sacre_statistic(name: str, metric, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[Statistic, str]:
    # sacreBLEU wants references as streams: one list per reference position.
    n_ref = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else "" for r in refs] for i in range(n_ref)]
    if any(len(r) != n_ref for r in refs):
        streams = [[r[i] if i < len(r) else None for r in refs] for i in range(n_ref)]
    stats = np.array(metric._extract_corpus_statistics(list(hyps), streams), dtype=np.float64)

    def from_totals(totals: np.ndarray, n: int) -> np.ndarray:
        return np.array([metric._compute_score_from_stats([int(round(x)) for x in row]).score for row in totals])

    return Statistic(name, stats, from_totals), metric.get_signature().format()


def sacrebleu_statistics(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[Statistic], dict[str, str]]:
    from sacrebleu.metrics import BLEU, CHRF

    bleu, bleu_sig = _sacre_statistic("sacrebleu", BLEU(force=True), hyps, refs)
    chrf, chrf_sig = _sacre_statistic("chrf", CHRF(), hyps, refs)
    return [bleu, chrf], {"sacrebleu": bleu_sig, "chrf": chrf_sig}


def rouge_score_statistics(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[Statistic], dict[str, str]]:
    from rouge_score import rouge_scorer

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.WARNING)  # rouge-score logs "Using default tokenizer." at INFO on every construction
    try:
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    finally:
        absl.setLevel(level)
    values = {t: np.empty(len(hyps)) for t in ROUGE_TYPES}
    for i, (h, rs) in enumerate(zip(hyps, refs)):
        # rouge-score's argument order is (target, prediction)
        s = scorer.score(rs[0], h) if len(rs) == 1 else scorer.score_multi(rs, h)
        for t in ROUGE_TYPES:
            values[t][i] = s[t].fmeasure
    version = importlib.metadata.version("rouge-score")
    sig = f"rouge-score {version}|tokenizer:default|stemmer:no|score:fmeasure|mean over studies"
    stats = [mean_statistic(f"rs_{t}", values[t]) for t in ROUGE_TYPES]
    return stats, {s.name: sig for s in stats}
