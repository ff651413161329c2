"""Facts every stage shares, defined once: CheXpert observations and label codes, view positions,
image statistics, and the registry of metrics.

This module imports nothing heavy (no numpy, no torch): the CLI reads it at start-up to build its
help, and the labeller, the scorer, the model and the data loader all read it.

Adding a metric is one entry in `METRICS`: the scorer's tables, training's `--monitor` choices,
the demo and `compare` tables all read this list.
"""

from __future__ import annotations

from dataclasses import dataclass

# The splits of a prepared dataset.
SPLITS = ("train", "val", "test")

# -- CheXpert ----------------------------------------------------------------------------------

# The 14 observations of the CheXpert labeler, in its column order (every `labels.*` list).
OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)
N_OBSERVATIONS = len(OBSERVATIONS)
# The five observations most CE tables also report (CheXpert's competition tasks).
COMMON_5: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
# Observation subsets the clinical-efficacy scores are averaged over: name -> column indices.
OBSERVATION_SUBSETS: dict[str, tuple[int, ...]] = {
    "14": tuple(range(N_OBSERVATIONS)),
    "5": tuple(OBSERVATIONS.index(o) for o in COMMON_5),
}
# Label codes. CheXpert writes 1 / 0 / -1 and leaves "not mentioned" blank (None in JSON);
# tensors need a number for blank, and BLANK is it.
POSITIVE, NEGATIVE, UNCERTAIN, BLANK = 1, 0, -1, -2
# What an uncertain (-1) label counts as: when scoring clinical efficacy, and as a target of the
# model's clinical head (where it may also be left out of the loss).
SCORE_UNCERTAIN = ("negative", "positive")
HEAD_UNCERTAIN = ("mask", "negative", "positive")
# How the labeller decides No Finding when a report names only findings outside the 13 (the
# first is the default): "incidental" lets incidental ones (degenerative change, granulomas, aortic
# atherosclerosis, ...) keep it; "chexpert" lets every finding of the original's list blank it.
NO_FINDING_POLICIES = ("incidental", "chexpert")

# -- views -------------------------------------------------------------------------------------

FRONTAL_VIEWS = frozenset({"PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "PA RLD", "AP RLD",
                           "POSTEROANTERIOR", "ANTEROPOSTERIOR"})
LATERAL_VIEWS = frozenset({"LATERAL", "LL", "RL", "LAT", "LEFT LATERAL", "RIGHT LATERAL"})


def view_kind(position: str | None) -> str:
    """frontal, lateral or other (unknown included)."""
    p = (position or "").upper().strip()
    return "frontal" if p in FRONTAL_VIEWS else "lateral" if p in LATERAL_VIEWS else "other"


# Order of a study's views everywhere (the prepared records, hence the loader's slots; generation's
# choice among files): PA, AP, other frontal positions, LATERAL, LL, other laterals, other named
# positions, then UNKNOWN. A two-view model thus sees a frontal view first and a lateral second.
_RANKED = {"PA": 0, "AP": 1, "LATERAL": 3, "LL": 4}


def view_rank(position: str | None) -> int:
    """Sort key of a view position (see the order above)."""
    p = (position or "").upper().strip()
    if p in _RANKED:
        return _RANKED[p]
    if not p or p == "UNKNOWN":
        return 7
    return {"frontal": 2, "lateral": 5, "other": 6}[view_kind(p)]


# -- hardware ----------------------------------------------------------------------------------

# Numeric precision of training and inference (irralctl.runs.device applies it).
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

# -- images ------------------------------------------------------------------------------------

# ImageNet's RGB mean and std folded to one grey channel (the mean of the three), as the CNN's
# first convolution sums the RGB kernels of ImageNet weights.
IMAGENET_GREY_MEAN, IMAGENET_GREY_STD = 0.449, 0.226

# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One reported figure. `family`: nlg | standard | semantic | clinical; `monitor`: a training --monitor choice."""

    name: str
    family: str
    higher_is_better: bool = True
    monitor: bool = False
    label: str = ""            # a short display name for tables (defaults to the name)
    aliases: tuple[str, ...] = ()  # other spellings users type (coco-caption's, papers')


METRICS: tuple[Metric, ...] = (
    Metric("bleu_1", "nlg", monitor=True, aliases=("Bleu_1", "BLEU-1", "bleu1", "BL-1")),
    Metric("bleu_2", "nlg", monitor=True, aliases=("Bleu_2", "BLEU-2", "bleu2", "BL-2")),
    Metric("bleu_3", "nlg", monitor=True, aliases=("Bleu_3", "BLEU-3", "bleu3", "BL-3")),
    Metric("bleu_4", "nlg", monitor=True, aliases=("Bleu_4", "BLEU-4", "bleu4", "BL-4")),
    Metric("meteor", "nlg", aliases=("METEOR", "MTR")),
    Metric("rouge_l", "nlg", monitor=True, aliases=("ROUGE_L", "ROUGE-L", "rougeL", "RG-L")),
    Metric("cider", "nlg", monitor=True, aliases=("CIDEr", "CIDEr-D", "cider_d")),
    Metric("sacrebleu", "standard"),
    Metric("chrf", "standard"),
    Metric("rs_rouge1", "standard"),
    Metric("rs_rouge2", "standard"),
    Metric("rs_rougeL", "standard"),
    # BERTScore (score --bertscore): mean over studies of greedy-matched token cosines.
    Metric("bertscore_p", "semantic", aliases=("BERTScore-P",)),
    Metric("bertscore_r", "semantic", aliases=("BERTScore-R",)),
    Metric("bertscore_f1", "semantic", aliases=("BERTScore", "BERTScore-F1", "bertscore")),
    # Clinical efficacy: the headline figures; every average x measure x subset is computed.
    Metric("ce_macro_f1_14", "clinical", monitor=True, aliases=("ce_f1", "CE-F1")),
    Metric("ce_micro_f1_14", "clinical", monitor=True),
    Metric("ce_macro_f1_5", "clinical"),
    Metric("ce_micro_f1_5", "clinical"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
NLG_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family == "nlg")
STANDARD_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family == "standard")
SEMANTIC_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family == "semantic")
CE_AVERAGES = ("micro", "macro", "example")
CE_MEASURES = ("precision", "recall", "f1")
# The figures tables of several runs show (demo, compare), in this order.
HEADLINE_METRICS: tuple[str, ...] = ("bleu_1", "bleu_4", "meteor", "rouge_l", "cider",
                                     "ce_macro_f1_14", "ce_micro_f1_14", "ce_macro_f1_5")


def ce_metric_name(average: str, measure: str, subset: str) -> str:
    """`ce_<average>_<measure>_<subset>`, e.g. ce_macro_f1_14."""
    return f"ce_{average}_{measure}_{subset}"


def canonical_metric(name: str) -> str | None:
    """The registry name of `name` or one of its aliases (case-insensitive), else None."""
    if name in METRIC_BY_NAME:
        return name
    folded = name.strip().lower()
    for m in METRICS:
        if folded == m.name.lower() or folded in (a.lower() for a in m.aliases):
            return m.name
    return None
