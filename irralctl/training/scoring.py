"""The bridge from training to the scorer: validation scores exactly as `irralctl score` computes them.

Validation runs every epoch, so it skips METEOR and the bootstrap; reference labels are computed
once per run and passed in. The names are the registry's (`irralctl.constants.METRICS`), so
metrics.jsonl, `--monitor` and `irralctl score` speak of the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from irralctl.constants import CE_MEASURES, NLG_METRICS, OBSERVATION_SUBSETS, ce_metric_name

# What each epoch's validation records (as val_<name> in metrics.jsonl).
VALIDATION_METRICS: tuple[str, ...] = (
    *(m for m in NLG_METRICS if m != "meteor"),
    *(ce_metric_name(avg, measure, subset) for subset in OBSERVATION_SUBSETS for avg in ("macro", "micro")
      for measure in CE_MEASURES),
)


def label_texts(texts: Sequence[str]) -> list[list[int | None]]:
    """CheXpert labels of `texts` by irralctl's labeller (each distinct text labelled once)."""
    from irralctl.metrics.clinical import label_texts as _label

    unique = list(dict.fromkeys(texts))
    labels = dict(zip(unique, _label(unique)))
    return [labels[t] for t in texts]


def validation_scores(predictions: Mapping[str, str], references: Mapping[str, str],
                      ref_labels: Mapping[str, list]) -> tuple[dict[str, float], list[float | None]]:
    """(the figures of VALIDATION_METRICS, CE F1 per observation (None without a reference positive))."""
    from irralctl.metrics import ScoreConfig, score_reports

    result = score_reports(predictions, references, ScoreConfig(meteor="off", standard=False, clinical=True),
                           ref_labels=ref_labels)
    scores = {name: float(result["metrics"][name]) for name in VALIDATION_METRICS}
    per_observation = [row["f1"] if row["support"] > 0 else None for row in result["clinical"]["per_observation"]]
    return scores, per_observation
