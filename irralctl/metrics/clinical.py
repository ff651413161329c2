"""Clinical efficacy (CE): agreement of CheXpert observations between generated and reference reports.

Both reports are labelled with the same labeller (or labels are given); each of the 14 observations
becomes a binary "present" decision:

* 1 (positive) -> present; 0 (negative) and blank (not mentioned) -> absent;
* -1 (uncertain) -> absent with `uncertain="negative"` (the default, and R2Gen/CMN's choice),
  present with `uncertain="positive"`.

Then precision, recall and F1 with the reference as truth, averaged three ways as scikit-learn's
`precision_recall_fscore_support` does with `zero_division=0` (every 0/0 is 0):

* micro: true/false positives and false negatives summed over all studies and observations;
* macro: P, R and F1 per observation, then their unweighted mean (macro F1 is the mean of
  per-observation F1, not the F1 of macro P and R);
* example: P, R and F1 per study, then their mean (sklearn's "samples"); a study with no present
  observation in either report scores 0, as sklearn's zero_division=0 gives.

F1 = 2 TP / (2 TP + FP + FN), which equals 2PR/(P+R) whenever it is defined.
Over the 14 observations and over the 5 common ones (Atelectasis, Cardiomegaly, Consolidation,
Edema, Pleural Effusion). R2Gen/CMN's published CE numbers are macro, 14 observations, uncertain
and blank as negative (`--protocol r2gen`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irralctl.constants import OBSERVATION_SUBSETS as SUBSETS
from irralctl.constants import OBSERVATIONS
from irralctl.constants import SCORE_UNCERTAIN as UNCERTAIN_POLICIES
from irralctl.errors import InputError, IrralError


def validate_labels(value, *, path=None, record=None, field=None) -> list[int | None]:
    """Check one 14-list of CheXpert values (1, 0, -1 or null); floats like 1.0 are accepted."""
    if not isinstance(value, list) or len(value) != len(OBSERVATIONS):
        raise InputError(f"expected a list of {len(OBSERVATIONS)} CheXpert values (1, 0, -1 or null)", path=path, record=record, field=field)
    out: list[int | None] = []
    for v in value:
        if v is None:
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v in (1, 0, -1):
            out.append(int(v))
        else:
            raise InputError(f"invalid CheXpert value {v!r} (allowed: 1, 0, -1, null)", path=path, record=record, field=field)
    return out


def binarize(labels: Sequence[Sequence[int | None]], uncertain: str = "negative") -> np.ndarray:
    """(studies, 14) bool: observation present. Blank is absent; uncertain per `uncertain`."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise IrralError(f"uncertain must be one of {UNCERTAIN_POLICIES}, not {uncertain!r}")
    arr = np.array([[(-2 if v is None else v) for v in row] for row in labels], dtype=np.int8).reshape(-1, len(OBSERVATIONS))
    return (arr == 1) | ((arr == -1) if uncertain == "positive" else False)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def prf(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts (any shape), 0/0 -> 0."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)


def confusion(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-study, per-observation counts (studies, 14, 3): tp, fp, fn as 0/1."""
    return np.stack([pred & ref, pred & ~ref, ~pred & ref], axis=-1).astype(np.float64)


def ce_from_confusion(conf: np.ndarray, subset: Sequence[int]) -> dict:
    """Micro, macro and example-based P/R/F1 over `subset` from (studies, 14, 3) counts."""
    c = conf[:, list(subset), :]
    out = {}
    p, r, f = prf(*c.sum(axis=(0, 1)).T)
    out["micro"] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f = prf(*c.sum(axis=0).T)
    out["macro"] = {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean())}
    p, r, f = prf(*c.sum(axis=1).T)
    out["example"] = {"precision": float(p.mean()), "recall": float(r.mean()), "f1": float(f.mean())}
    return out


def per_observation(conf: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> list[dict]:
    """One row per observation: P, R, F1, support (reference positives) and predicted positives."""
    p, r, f = prf(*conf.sum(axis=0).T)
    return [
        {"observation": name, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
         "support": int(ref[:, i].sum()), "predicted": int(pred[:, i].sum())}
        for i, name in enumerate(OBSERVATIONS)
    ]


def clinical_efficacy(pred_labels, ref_labels, uncertain: str = "negative") -> dict:
    """All CE figures for two label matrices (14 values per study, CheXpert order)."""
    if len(pred_labels) != len(ref_labels):
        raise IrralError(f"{len(pred_labels)} prediction label rows but {len(ref_labels)} reference rows")
    pred, ref = binarize(pred_labels, uncertain), binarize(ref_labels, uncertain)
    conf = confusion(pred, ref)
    return {
        "uncertain": uncertain,
        "blank": "negative",
        "subsets": {name: ce_from_confusion(conf, idx) for name, idx in SUBSETS.items()},
        "per_observation": per_observation(conf, pred, ref),
    }


def label_texts(texts: Sequence[str]) -> list[list[int | None]]:
    """Label report texts with irralctl's CheXpert labeller (imported here, when needed)."""
    try:
        from irralctl.labeling import Labeler
    except ImportError as e:
        raise IrralError(
            f"the CheXpert labeller (irralctl.labeling) cannot be imported: {e}",
            hint="give prediction_labels / reference_labels in the input file, or pass --no-clinical",
        ) from None
    return Labeler().label_many(list(texts))


def labeler_info() -> dict:
    """Name, version and No Finding policy of the labeller `label_texts` uses (its default policy)."""
    try:
        import irralctl.labeling as lab
    except ImportError:
        return {"name": "irralctl.labeling", "available": False}
    from irralctl.constants import NO_FINDING_POLICIES

    return {"name": "irralctl.labeling", "version": getattr(lab, "__version__", getattr(lab, "VERSION", None)),
            "no_finding": NO_FINDING_POLICIES[0]}
