"""The ground truth of a phantom study: which findings it has (`PhantomCase`), how cases are drawn
(`sample_case`), and the 14 CheXpert observations its report states (`case_labels`).

Findings: heart size, pleural effusion, lobar consolidation, pneumothorax, support device,
pulmonary edema, lung nodule. Reference for the observation order: the CheXpert labeler (Irvin
et al., AAAI 2019).

Variants (`VARIANTS`, `irralctl prepare phantoms --variant`): each changes one thing of the
`standard` set, so that one component of the model should matter on it (docs/phantoms.md):

* `standard`: findings drawn independently of each other, each obvious at 64 px.
* `lateral`: adds findings visible on the lateral view only, as in real radiology: a small
  pleural effusion (`effusion="small"`, less than ~200 mL, which blunts only the posterior
  costophrenic sulcus) and a retrocardiac left lower lobe consolidation (`opacity="retrocardiac"`,
  hidden behind the heart on the PA view). Rewards multi-view fusion (both views against
  `--views 1`).
* `rare`: pneumothorax and lung nodule rare (about 2.5 % of studies each at `p_normal` 0.3, against
  17 % and 13 % in `standard`). Rewards Eq. 6's per-observation re-weighting of the clinical loss
  (ACL).
* `small`: every nodule, consolidation and pneumothorax drawn small or faint (`subtle=True`): a
  nodule of about 2 px at 64 px, a faint small patch, a thin apical rim. Rewards multi-scale fusion
  (the stage-3 grid).
* `structured`: abnormal studies drawn from clinical patterns (heart failure, lobar pneumonia-like
  consolidation, line placement), and the report states some combinations in one sentence
  (`reports.write_report(..., structured=True)`). Rewards the cross-modal memory and ACL's
  clinical context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from irralctl.constants import OBSERVATIONS
from irralctl.data.sources.phantoms.config import VARIANTS
from irralctl.errors import ConfigError, InputError

PHANTOM_VERSION = "1"

# "small" (effusion) and "retrocardiac" (opacity) are seen on the lateral view only; the `lateral`
# variant draws them, the others never do.
EFFUSIONS = ("none", "left", "right", "bilateral", "small")
OPACITIES = ("none", "left_upper", "left_lower", "right_upper", "right_lower", "retrocardiac")
PNEUMOTHORACES = ("none", "left", "right")
DEVICES = ("none", "line", "tube", "pacemaker")
NODULES = ("none", "left", "right")

# Cardiothoracic ratio ranges: normal adults ~0.40-0.47; cardiomegaly drawn well clear of the
# 0.5 threshold so heart size is separable on the image.
CTR_NORMAL = (0.40, 0.47)
CTR_ENLARGED = (0.56, 0.68)


@dataclass(frozen=True)
class PhantomCase:
    """The ground truth of one phantom study (defaults: a normal study)."""

    cardiomegaly: bool = False  # cardiothoracic ratio > 0.5
    # none | left | right | bilateral: fluid with a meniscus at the base; small: a small effusion
    # in the posterior costophrenic sulcus, seen on the lateral view only (its side is not stated)
    effusion: str = "none"
    # none | {left,right}_{upper,lower}: patchy lobar consolidation; retrocardiac: left lower lobe
    # consolidation behind the heart, seen on the lateral view only
    opacity: str = "none"
    pneumothorax: str = "none"  # none | left | right: lucent apicolateral rim, visceral pleural edge
    device: str = "none"  # none | line (CVC) | tube (ETT) | pacemaker
    edema: bool = False  # bilateral perihilar haziness with interstitial markings
    nodule: str = "none"  # none | left | right: a round, sharply marginated mid-lung nodule
    # The nodule, consolidation and pneumothorax (whichever are present) are small or faint: a
    # nodule of ~0.5 of the standard diameter, a smaller patch of a third of the density, a thin rim.
    subtle: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (
            ("effusion", EFFUSIONS),
            ("opacity", OPACITIES),
            ("pneumothorax", PNEUMOTHORACES),
            ("device", DEVICES),
            ("nodule", NODULES),
        ):
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"{getattr(self, name)!r} is not one of {', '.join(allowed)}", field=name
                )
        for name in ("cardiomegaly", "edema", "subtle"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{getattr(self, name)!r} is not a boolean", field=name)

    def record(self) -> dict:
        """The case as a JSON-ready dict (a study record's `case`); `PhantomCase(**record)` rebuilds it.

        `subtle`, added after phantom version 1, is left out while false, so `standard` datasets
        stay byte-identical to those written before variants existed.
        """
        out = asdict(self)
        if not self.subtle:
            del out["subtle"]
        return out

    @property
    def pathology_free(self) -> bool:
        """True when nothing but a support device is present (CheXpert's "No Finding")."""
        return not (
            self.cardiomegaly
            or self.edema
            or self.effusion != "none"
            or self.opacity != "none"
            or self.pneumothorax != "none"
            or self.nodule != "none"
        )


# --------------------------------------------------------------------------------------------
# Cases


# Per-draw probabilities of the findings of an abnormal study (order: the values of EFFUSIONS,
# OPACITIES, ...; a shorter tuple never draws the values after it). A variant overrides only
# what it changes.
_STANDARD = {
    "cardiomegaly": 0.35,
    "effusion": (0.65, 0.12, 0.12, 0.11),
    "opacity": (0.64, 0.09, 0.09, 0.09, 0.09),
    "pneumothorax": (0.8, 0.1, 0.1),
    "edema": 0.2,
    "nodule": (0.85, 0.075, 0.075),
}
# Lateral-only findings take their share from "none": the findings seen on the frontal view keep
# their standard frequencies.
_LATERAL = {**_STANDARD, "effusion": (0.50, 0.12, 0.12, 0.11, 0.15), "opacity": (0.52, 0.09, 0.09, 0.09, 0.09, 0.12)}
# 0.0285 per draw gives 2.5 % of studies at p_normal 0.3 (the redraw of pathology-free draws in
# the abnormal branch raises it from 0.7 x 0.0285 = 2.0 %).
_RARE_P = 0.0285
_RARE = {**_STANDARD, "pneumothorax": (1 - _RARE_P, _RARE_P / 2, _RARE_P / 2), "nodule": (1 - _RARE_P, _RARE_P / 2, _RARE_P / 2)}
_WEIGHTS = {"standard": _STANDARD, "lateral": _LATERAL, "rare": _RARE, "small": _STANDARD}

# `structured`: the clinical pattern of an abnormal study, and the probabilities within it.
_PATTERNS = ("heart_failure", "pneumonia", "line", "independent")
_PATTERN_P = (0.30, 0.30, 0.15, 0.25)
_HF_EFFUSION, _HF_EDEMA, _HF_PACEMAKER = 0.65, 0.65, 0.30
_PNEUMONIA_EFFUSION = 0.6  # an ipsilateral effusion beside a lower-lobe consolidation
_LINE_PNEUMOTHORAX = 0.5  # a right pneumothorax after the right internal jugular line


def sample_case(rng: np.random.Generator, p_normal: float = 0.3, variant: str = "standard") -> PhantomCase:
    """Draw one case: pathology-free with probability `p_normal`, else at least one finding.

    `standard`: findings are drawn independently of each other (so no finding predicts another
    and the image must be read); a support device is drawn independently in both branches
    (30 %: line, tube and pacemaker 10 % each). The other variants (module docstring) change the
    abnormal branch only, and `standard` draws exactly what it drew before variants existed.
    """
    if not 0.0 <= p_normal <= 1.0:
        raise ConfigError(f"p_normal must lie in [0, 1], got {p_normal}")
    if variant not in VARIANTS:
        raise ConfigError(f"phantom variant {variant!r} is not one of {', '.join(VARIANTS)}")
    normal = rng.random() < p_normal
    device = DEVICES[_weighted(rng, (0.7, 0.1, 0.1, 0.1))]
    if normal:
        return PhantomCase(device=device)
    if variant == "structured":
        return _structured_case(rng, device)
    case = _independent_case(rng, device, _WEIGHTS[variant])
    if variant == "small" and (case.nodule != "none" or case.opacity != "none" or case.pneumothorax != "none"):
        case = replace(case, subtle=True)
    return case


def _independent_case(
    rng: np.random.Generator, device: str, w: dict, pneumothorax: str | None = None
) -> PhantomCase:
    """Findings drawn independently with the probabilities `w` (the pneumothorax fixed when
    given), redrawn until one is present."""
    while True:
        case = PhantomCase(
            cardiomegaly=bool(rng.random() < w["cardiomegaly"]),
            effusion=EFFUSIONS[_weighted(rng, w["effusion"])],
            opacity=OPACITIES[_weighted(rng, w["opacity"])],
            pneumothorax=PNEUMOTHORACES[_weighted(rng, w["pneumothorax"])],
            device=device,
            edema=bool(rng.random() < w["edema"]),
            nodule=NODULES[_weighted(rng, w["nodule"])],
        )
        if pneumothorax is not None:
            case = replace(case, pneumothorax=pneumothorax)
        if not case.pathology_free:
            return case


def _structured_case(rng: np.random.Generator, device: str) -> PhantomCase:
    """An abnormal case of the `structured` variant: one clinical pattern, or independent findings.

    heart failure (30 %): cardiomegaly, bilateral effusions (65 %), edema (65 %), a pacemaker
    (30 %, else the device drawn); pneumonia (30 %): one lobar consolidation, an effusion on its
    side (60 %) when it is a lower lobe; line (15 %): a right internal jugular catheter, a right
    pneumothorax (50 %), other findings as standard; independent (25 %): as standard. Every
    combination therefore occurs with and without its partners.
    """
    u = rng.random(4)
    pattern = _PATTERNS[_weighted_u(u[0], _PATTERN_P)]
    if pattern == "heart_failure":
        return PhantomCase(
            cardiomegaly=True,
            effusion="bilateral" if u[1] < _HF_EFFUSION else "none",
            edema=bool(u[2] < _HF_EDEMA),
            device="pacemaker" if u[3] < _HF_PACEMAKER else device,
        )
    if pattern == "pneumonia":
        opacity = OPACITIES[1 + int(u[1] * 4)]  # the four lobes, equally often
        side, zone = opacity.split("_")
        effusion = side if zone == "lower" and u[2] < _PNEUMONIA_EFFUSION else "none"
        return PhantomCase(opacity=opacity, effusion=effusion, device=device)
    if pattern == "line":
        return _independent_case(rng, "line", _STANDARD, "right" if u[1] < _LINE_PNEUMOTHORAX else "none")
    return _independent_case(rng, device, _STANDARD)


def _weighted(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    """Index drawn with the given probabilities, from a single uniform draw (stable stream)."""
    return _weighted_u(rng.random(), probs)


def _weighted_u(u: float, probs: tuple[float, ...]) -> int:
    """Index of the interval of the cumulated `probs` that holds the uniform `u`."""
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    return len(probs) - 1


def case_labels(case: PhantomCase) -> list[int | None]:
    """The 14 CheXpert observations a correct labeler extracts from `write_report(case, ...)`.

    1 present, 0 explicitly negated, None not mentioned. Every report states heart size
    (Cardiomegaly), the mediastinum (Enlarged Cardiomediastinum, always 0), consolidation,
    edema, pleural effusion and pneumothorax, positive or negated; an opacity is written as
    "airspace opacity" with "consolidation" (Lung Opacity and Consolidation 1); a nodule gives
    Lung Lesion 1; a device gives Support Devices 1; absent nodules and devices are not mentioned.
    The same holds in every variant: lateral-only, rare, subtle and combined findings are stated
    as such (the `structured` heart failure sentence repeats three positive findings).
    No Finding is 1 only when nothing but a support device is positive, else None (never 0).
    """
    labels: list[int | None] = [None] * len(OBSERVATIONS)
    idx = {name: i for i, name in enumerate(OBSERVATIONS)}
    labels[idx["No Finding"]] = 1 if case.pathology_free else None
    labels[idx["Enlarged Cardiomediastinum"]] = 0
    labels[idx["Cardiomegaly"]] = int(case.cardiomegaly)
    labels[idx["Lung Lesion"]] = 1 if case.nodule != "none" else None
    labels[idx["Lung Opacity"]] = 1 if case.opacity != "none" else None
    labels[idx["Edema"]] = int(case.edema)
    labels[idx["Consolidation"]] = int(case.opacity != "none")
    labels[idx["Pneumothorax"]] = int(case.pneumothorax != "none")
    labels[idx["Pleural Effusion"]] = int(case.effusion != "none")
    labels[idx["Support Devices"]] = 1 if case.device != "none" else None
    return labels
