"""The one place where training calls the scorer (`irralctl.metrics`) and the labeller.

Validation and test use `irralctl.metrics.score_reports`, what `irralctl score` runs, with the
field's published protocol for the figures training selects on (`protocol="r2gen"`): NLG as
coco-caption computes it; clinical efficacy macro over the 14 observations, uncertain and blank
negative. Reference labels are computed once per split and passed in. When this build lacks the
labeller, `available()` says so and training refuses a monitor that needs it (nothing is
estimated in its place).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping

from irralctl.errors import ConfigError

log = logging.getLogger(__name__)

NLG = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def available() -> dict[str, bool]:
    return {"nlg": _importable("irralctl.metrics.scoring"),
            "clinical": _importable("irralctl.metrics.clinical") and _importable("irralctl.labeling")}


def check_monitor(monitor: str) -> None:
    have = available()
    if monitor in NLG and not have["nlg"]:
        raise ConfigError(f"--monitor {monitor} needs the NLG metrics (irralctl.metrics), which this build lacks",
                          hint="use --monitor val_loss")
    if monitor == "ce_f1" and not have["clinical"]:
        raise ConfigError("--monitor ce_f1 needs the CheXpert labeller (irralctl.labeling), which this build lacks",
                          hint="use --monitor val_loss")


def label_texts(texts: list[str]) -> list[list[int | None]]:
    """CheXpert labels of `texts` by irralctl's labeller (each distinct text labelled once)."""
    from irralctl.metrics.clinical import label_texts as _label

    unique = list(dict.fromkeys(texts))
    labels = dict(zip(unique, _label(unique)))
    return [labels[t] for t in texts]


def score(predictions: Mapping[str, str], references: Mapping[str, str], *, clinical: bool,
          ref_labels: Mapping[str, list] | None = None, meteor: str = "off") -> tuple[dict, dict]:
    """(flat metrics, protocol) of id -> text maps.

    Metrics: bleu_1..4, rouge_l, cider (and meteor unless "off"); with `clinical`, ce_precision /
    ce_recall / ce_f1 (macro over 14, R2Gen's protocol), ce_f1_micro and ce_f1_per_observation
    (None for an observation without a reference positive).
    """
    from irralctl.metrics import ScoreConfig, score_reports

    cfg = ScoreConfig(meteor=meteor, standard=False, clinical=clinical, protocol="r2gen")
    result = score_reports(predictions, references, cfg, ref_labels=ref_labels if clinical else None)
    m = result["metrics"]
    out = {k: float(m[k]) for k in (*NLG, "meteor") if k in m}
    if clinical:
        out.update({"ce_precision": m["ce_macro_precision_14"], "ce_recall": m["ce_macro_recall_14"],
                    "ce_f1": m["ce_macro_f1_14"], "ce_f1_micro": m["ce_micro_f1_14"]})
        out["ce_f1_per_observation"] = [row["f1"] if row["support"] > 0 else None
                                        for row in result["clinical"]["per_observation"]]
    return out, result["protocol"]
