"""Scoring generated radiology reports: the field's NLG metrics, clinical efficacy, uncertainty.

One module per metric family, each NLG scorer with coco-caption's call
`compute_score(gts: {id: [reference, ...]}, res: {id: [hypothesis]}) -> (corpus, per_item)`
and the stable names `bleu_1`..`bleu_4`, `meteor`, `rouge_l`, `cider`:

* `bleu`, `rouge`, `cider`: equal to pycocoevalcap 1.2 to 1e-9, vectorised;
* `meteor`: METEOR 1.5 (the jar pycocoevalcap ships; `MeteorJar` is a context manager holding one
  JVM per run) or nltk's implementation;
* `standard`: sacreBLEU BLEU / chrF and rouge-score, with signatures;
* `clinical`: CheXpert-label precision / recall / F1 (micro, macro, example-based);
* `bootstrap`: confidence intervals and paired tests from per-study statistics;
* `scoring.score_reports` / `score_files`: everything together, as `irralctl score` reports it.
"""

from irralctl.utils.lazy import lazy_exports

# Imported on first use: a torch-free submodule (a config) must not import torch through this package.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.metrics.config": ("ScoreConfig",),
    "irralctl.metrics.scoring": ("score_files", "score_reports"),
})
