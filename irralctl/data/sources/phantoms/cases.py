"""The ground truth of a phantom study: which findings it has (`PhantomCase`), how cases are drawn
(`sample_case`), and the 14 CheXpert observations its report states (`case_labels`).

Findings: heart size, pleural effusion, lobar consolidation, pneumothorax, support device,
pulmonary edema, lung nodule. Reference for the observation order: the CheXpert labeler (Irvin
et al., AAAI 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irralctl.constants import OBSERVATIONS
from irralctl.errors import ConfigError, InputError

PHANTOM_VERSION = "1"

EFFUSIONS = ("none", "left", "right", "bilateral")
OPACITIES = ("none", "left_upper", "left_lower", "right_upper", "right_lower")
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
    effusion: str = "none"  # none | left | right | bilateral: fluid with a meniscus at the base
    opacity: str = "none"  # none | {left,right}_{upper,lower}: patchy lobar consolidation
    pneumothorax: str = "none"  # none | left | right: lucent apicolateral rim, visceral pleural edge
    device: str = "none"  # none | line (CVC) | tube (ETT) | pacemaker
    edema: bool = False  # bilateral perihilar haziness with interstitial markings
    nodule: str = "none"  # none | left | right: a round, sharply marginated mid-lung nodule

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
        for name in ("cardiomegaly", "edema"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{getattr(self, name)!r} is not a boolean", field=name)

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


def sample_case(rng: np.random.Generator, p_normal: float = 0.3) -> PhantomCase:
    """Draw one case: pathology-free with probability `p_normal`, else at least one finding.

    Findings are drawn independently of each other (so no finding predicts another and the
    image must be read); a support device is drawn independently in both branches
    (30 %: line, tube and pacemaker 10 % each).
    """
    if not 0.0 <= p_normal <= 1.0:
        raise ConfigError(f"p_normal must lie in [0, 1], got {p_normal}")
    normal = rng.random() < p_normal
    device = DEVICES[_weighted(rng, (0.7, 0.1, 0.1, 0.1))]
    if normal:
        return PhantomCase(device=device)
    while True:
        case = PhantomCase(
            cardiomegaly=bool(rng.random() < 0.35),
            effusion=EFFUSIONS[_weighted(rng, (0.65, 0.12, 0.12, 0.11))],
            opacity=OPACITIES[_weighted(rng, (0.64, 0.09, 0.09, 0.09, 0.09))],
            pneumothorax=PNEUMOTHORACES[_weighted(rng, (0.8, 0.1, 0.1))],
            device=device,
            edema=bool(rng.random() < 0.2),
            nodule=NODULES[_weighted(rng, (0.85, 0.075, 0.075))],
        )
        if not case.pathology_free:
            return case


def _weighted(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    """Index drawn with the given probabilities, from a single uniform draw (stable stream)."""
    u = rng.random()
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
