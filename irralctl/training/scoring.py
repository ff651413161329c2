"""The one place where training calls the scorer (`irralctl.metrics`) and the labeller.

Validation and test use the same functions `irralctl score` uses, with the field's published
protocol for the figures training selects on: NLG as coco-caption computes it, clinical efficacy
macro over the 14 observations with uncertain and blank as negative (R2Gen/CMN's convention).
When this build lacks the metrics or the labeller, `available()` says so and training refuses a
monitor that needs them (nothing is estimated in their place).
"""

from __future__ import annotations

import importlib
import logging

from irralctl.errors import ConfigError, IrralError

log = logging.getLogger(__name__)

NLG = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available() -> dict[str, bool]:
    return {"nlg": _import("irralctl.metrics") is not None and _import("irralctl.metrics.bleu") is not None,
            "clinical": _import("irralctl.labeling") is not None and _import("irralctl.metrics.clinical") is not None}


def check_monitor(monitor: str) -> None:
    have = available()
    if monitor in NLG + ("meteor",) and not have["nlg"]:
        raise ConfigError(f"--monitor {monitor} needs the NLG metrics (irralctl.metrics), which this build lacks",
                          hint="use --monitor val_loss")
    if monitor == "ce_f1" and not have["clinical"]:
        raise ConfigError("--monitor ce_f1 needs the CheXpert labeller (irralctl.labeling), which this build lacks",
                          hint="use --monitor val_loss")


def nlg_scores(predictions: dict[str, str], references: dict[str, str], *, meteor: bool = False) -> dict[str, float]:
    """Corpus BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR if asked and Java is there) of id -> text maps."""
    from irralctl.metrics import bleu, cider, rouge

    gts = {k: [references[k]] for k in predictions}
    res = {k: [predictions[k]] for k in predictions}
    out = dict(zip(bleu.NAMES, map(float, bleu.compute_score(gts, res)[0])))
    out["rouge_l"] = float(rouge.compute_score(gts, res)[0])
    out["cider"] = float(cider.compute_score(gts, res)[0])
    if meteor:
        try:
            from irralctl.metrics import meteor as meteor_mod

            with meteor_mod.MeteorJar() as jar:
                out["meteor"] = float(jar.compute_score(gts, res)[0])
        except IrralError as e:
            log.warning("METEOR skipped: %s", e.message)
    return out


def label_texts(texts: list[str]) -> list[list[int | None]]:
    from irralctl.metrics.clinical import label_texts as _label

    return _label(texts)


def clinical_scores(pred_labels: list, ref_labels: list) -> dict:
    """CE figures (R2Gen protocol: macro over 14, uncertain and blank negative) and per-observation F1."""
    from irralctl.metrics.clinical import clinical_efficacy

    ce = clinical_efficacy(pred_labels, ref_labels, uncertain="negative")
    macro, micro = ce["subsets"]["14"]["macro"], ce["subsets"]["14"]["micro"]
    per = ce["per_observation"]
    return {
        "ce_precision": macro["precision"], "ce_recall": macro["recall"], "ce_f1": macro["f1"],
        "ce_f1_micro": micro["f1"],
        # F1 of observations with a reference positive; None where the validation split has none.
        "ce_f1_per_observation": [row["f1"] if row["support"] > 0 else None for row in per],
    }
