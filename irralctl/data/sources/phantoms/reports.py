"""IU X-Ray style findings paragraphs for phantom cases (`write_report`), from several templates and synonyms.

Every wording of a given finding state mentions the same CheXpert observations with the same
polarity, so `cases.case_labels` (the 14 observations) is a function of the case alone.

What the variants (cases.py) write:
* lateral-only findings name the view: "A small pleural effusion blunts the posterior
  costophrenic sulcus on the lateral view." (no side: a lateral view cannot tell it), "There is
  retrocardiac airspace opacity with consolidation in the left lower lobe.";
* a `subtle` case calls its nodule "small", its consolidation "a small focus ... faint airspace
  opacity" and its pneumothorax "small ... apical" with a "thin" edge or rim;
* `structured=True` (the `structured` variant) states three combinations in one sentence each,
  in place of the sentences of their parts, exactly when the combination is present:
  cardiomegaly + bilateral pleural effusions + edema -> "... consistent with congestive heart
  failure." (`HEART_FAILURE`); a right internal jugular catheter + a right pneumothorax -> the
  pneumothorax "after" or "following" the catheter's placement (`LINE_PNEUMOTHORAX`); a
  lower-lobe consolidation + a pleural effusion on its side only -> the consolidation "with an
  adjacent" effusion (`ADJACENT_EFFUSION`).
"""

from __future__ import annotations

import numpy as np

from irralctl.data.sources.phantoms.cases import PhantomCase

# --------------------------------------------------------------------------------------------
# Reports
#
# Wording rules (so a CheXpert-style rule labeler reads exactly `case_labels`): a sentence is
# either wholly positive or wholly negated; negated sentences use "no", "there is no", "without"
# or "normal"/"unremarkable"/"clear"; positive sentences contain none of those words nor any
# hedge ("may", "possible", "or"); phrases that the CheXpert lists map to another observation are
# never used ("the heart" only for heart size, no "line"/"lines" outside devices, no "collapse",
# "density", "contour", "prominent", "opacities" for edema, "vascular congestion" which CheXpert
# treats as uncertain edema).

_CARDIO_POS = (
    "The heart is enlarged.",
    "Cardiomegaly is present.",
    "There is cardiomegaly.",
    "The heart size is enlarged.",
    "Heart size is enlarged.",
    "The cardiac silhouette is enlarged.",
)
_CARDIO_NEG = (
    "The heart is normal in size.",
    "Heart size is normal.",
    "Normal heart size.",
    "The heart size is normal.",
    "The cardiac silhouette is normal in size.",
)
_MEDIASTINUM = (
    "The mediastinum is unremarkable.",
    "The mediastinum is normal.",
    "Unremarkable mediastinum.",
    "Normal mediastinum.",
)
_OPACITY_POS = (
    "There is patchy airspace opacity with consolidation in the {loc}.",
    "Patchy airspace opacity with consolidation is present in the {loc}.",
    "There is focal consolidation in the {loc}, seen as patchy airspace opacity.",
    "Consolidation and patchy airspace opacity are present in the {loc}.",
    "{Loc} consolidation with patchy airspace opacity.",
    "There is a patchy {loc} airspace opacity with consolidation.",
)
_CONSOLIDATION_NEG = (
    "No focal consolidation.",
    "There is no focal consolidation.",
    "No focal airspace consolidation.",
)
_CLEAR_LUNGS = (
    "The lungs are clear without focal consolidation.",
    "The lungs are clear, with no focal consolidation.",
    "Clear lungs without focal airspace consolidation.",
)
_EFFUSION_POS = (
    "There is a {side} pleural effusion.",
    "A {side} pleural effusion is present.",
    "{Side} pleural effusion with blunting of the {side} costophrenic angle.",
    "There is a {side} pleural effusion with a meniscus at the {side} lung base.",
    "{Side}-sided pleural effusion.",
)
_EFFUSION_BILATERAL = (
    "There are bilateral pleural effusions.",
    "Bilateral pleural effusions are present.",
    "Bilateral pleural effusions with blunting of both costophrenic angles.",
    "There are bilateral pleural effusions layering at the lung bases.",
)
_EFFUSION_NEG = (
    "No pleural effusion.",
    "There is no pleural effusion.",
    "No pleural effusion is seen.",
    "The costophrenic angles are sharp, without pleural effusion.",
)
_PTX_POS = (
    "There is a {side} pneumothorax.",
    "A {side} apical pneumothorax is present.",
    "{Side} pneumothorax with a visible visceral pleural edge.",
    "There is a {side}-sided pneumothorax.",
)
_PTX_NEG = ("No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax.")
_EDEMA_POS = (
    "There is pulmonary edema.",
    "Pulmonary edema is present with perihilar haziness.",
    "Bilateral perihilar haziness with interstitial pulmonary edema.",
    "Interstitial pulmonary edema is present.",
    "There is interstitial and perihilar pulmonary edema.",
)
_EDEMA_NEG = (
    "No pulmonary edema.",
    "There is no pulmonary edema.",
    "No edema.",
    "No evidence of pulmonary edema.",
)
_NODULE_POS = (
    "There is a nodule in the {side} mid lung.",
    "A well-circumscribed {side} mid lung nodule is present.",
    "{Side} mid lung nodule.",
    "A rounded nodule projects over the {side} mid lung.",
)
# Variant wordings (module docstring). "the heart" is avoided in the lateral-only sentences: it is
# a Cardiomegaly mention.
_EFFUSION_SMALL = (
    "A small pleural effusion blunts the posterior costophrenic sulcus on the lateral view.",
    "There is a small pleural effusion in the posterior costophrenic sulcus, seen on the lateral view.",
    "Small pleural effusion with blunting of the posterior costophrenic sulcus on the lateral view.",
)
_OPACITY_RETROCARDIAC = (
    "There is retrocardiac airspace opacity with consolidation in the left lower lobe.",
    "Retrocardiac consolidation with patchy airspace opacity in the left lower lobe, seen on the lateral view.",
    ("Left lower lobe consolidation with airspace opacity over the thoracic spine on the lateral view, "
     "in a retrocardiac location."),
)
_NODULE_SMALL = (
    "There is a small nodule in the {side} mid lung.",
    "A small well-circumscribed {side} mid lung nodule is present.",
    "Small {side} mid lung nodule.",
    "A small rounded nodule projects over the {side} mid lung.",
)
_OPACITY_FAINT = (
    "There is a small focus of consolidation with faint airspace opacity in the {loc}.",
    "A small focus of faint airspace opacity with consolidation is present in the {loc}.",
    "Small focal consolidation with faint airspace opacity in the {loc}.",
)
_PTX_SMALL = (
    "There is a small {side} apical pneumothorax.",
    "A small {side} apical pneumothorax is present with a thin visceral pleural edge.",
    "Small {side} apical pneumothorax with a thin lucent rim.",
)
# `structured` combinations (the marker phrase of each is what tests look for).
HEART_FAILURE = "congestive heart failure"
LINE_PNEUMOTHORAX = "placement"
ADJACENT_EFFUSION = "adjacent"
_HEART_FAILURE = (
    "Bilateral pleural effusions and pulmonary edema, consistent with congestive heart failure.",
    "Pulmonary edema and bilateral pleural effusions, in keeping with congestive heart failure.",
    "The cardiomegaly, pulmonary edema and bilateral pleural effusions are consistent with congestive heart failure.",
    "There are bilateral pleural effusions and interstitial pulmonary edema, consistent with congestive heart failure.",
)
_LINE_PTX = (
    ("A right internal jugular central venous catheter terminates in the superior vena cava, with a right apical "
     "pneumothorax after its placement."),
    ("There is a right apical pneumothorax following placement of a right internal jugular central venous "
     "catheter, whose tip is in the superior vena cava."),
    ("Right pneumothorax after placement of the right internal jugular central venous catheter, which terminates "
     "in the superior vena cava."),
)
_ADJACENT = (
    "{Loc} consolidation with patchy airspace opacity and an adjacent {side} pleural effusion.",
    "There is patchy airspace opacity with consolidation in the {loc} and an adjacent {side} pleural effusion.",
    "Consolidation and patchy airspace opacity in the {loc} with an adjacent {side} pleural effusion.",
)

_DEVICE_POS = {
    "line": (
        "A right internal jugular central venous catheter terminates in the superior vena cava.",
        "Right internal jugular central venous catheter with tip in the superior vena cava.",
        "A central venous catheter is present with tip projecting over the superior vena cava.",
    ),
    "tube": (
        "An endotracheal tube is in place with tip above the carina.",
        "Endotracheal tube terminates above the carina.",
        "The endotracheal tube tip lies above the carina.",
    ),
    "pacemaker": (
        "A left chest wall pacemaker is present with leads in the right atrium and right ventricle.",
        "Left-sided pacemaker with leads in the right atrium and right ventricle.",
        "A dual-chamber pacemaker projects over the left chest.",
    ),
}
_BONES = (
    "No acute bony abnormality.",
    "The osseous structures are intact.",
    "No acute osseous abnormality.",
    "Visualized osseous structures are unremarkable.",
)
_NORMAL_CLOSING = ("No acute cardiopulmonary abnormality.", "No acute cardiopulmonary process.")
# Noun phrases for a negated list ("No focal consolidation, pleural effusion, or pneumothorax.").
_NEG_NOUNS = {
    "consolidation": ("focal consolidation", "focal airspace consolidation"),
    "effusion": ("pleural effusion", "effusion"),
    "pneumothorax": ("pneumothorax",),
    "edema": ("pulmonary edema",),
}
_NEG_LIST = ("No {items}.", "There is no {items}.")
_CLEAR_LIST = ("The lungs are clear without {items}.",)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(template: str, **words: str) -> str:
    caps = {k.capitalize(): v.capitalize() for k, v in words.items()}
    return template.format(**words, **caps)


def _join_items(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    return ", ".join(items[:-1]) + f", or {items[-1]}"


def write_report(case: PhantomCase, rng: np.random.Generator, *, structured: bool = False) -> str:
    """An IU X-Ray style findings paragraph stating exactly `case`'s findings.

    Heart size, mediastinum, consolidation, edema, pleural effusion and pneumothorax are always
    stated (positive or negated); nodules and devices only when present. Wording is drawn from
    several templates per finding state and sentence order is partly shuffled; lateralised
    findings name the side (and the lobe for consolidation). `structured` states the
    combinations of the module docstring in one sentence each; without it (and for cases without
    lateral-only or subtle findings) the draws and the text are those of phantom version 1.
    """
    head = [
        _pick(rng, _CARDIO_POS if case.cardiomegaly else _CARDIO_NEG),
        _pick(rng, _MEDIASTINUM),
    ]
    if rng.random() < 0.25:
        head.reverse()

    combos = _combinations(case) if structured else set()
    positives: list[str] = []
    if "adjacent" in combos:
        side, zone = case.opacity.split("_")
        positives.append(_fill(_pick(rng, _ADJACENT), loc=f"{side} {zone} lobe", side=side))
    elif case.opacity == "retrocardiac":
        positives.append(_pick(rng, _OPACITY_RETROCARDIAC))
    elif case.opacity != "none":
        side, zone = case.opacity.split("_")
        templates = _OPACITY_FAINT if case.subtle else _OPACITY_POS
        positives.append(_fill(_pick(rng, templates), loc=f"{side} {zone} lobe"))
    if "heart_failure" in combos:
        positives.append(_pick(rng, _HEART_FAILURE))
    elif case.edema:
        positives.append(_pick(rng, _EDEMA_POS))
    if case.nodule != "none":
        positives.append(_fill(_pick(rng, _NODULE_SMALL if case.subtle else _NODULE_POS), side=case.nodule))
    # A combined effusion was stated with the edema or the consolidation.
    if case.effusion == "bilateral" and "heart_failure" not in combos:
        positives.append(_pick(rng, _EFFUSION_BILATERAL))
    elif case.effusion == "small":
        positives.append(_pick(rng, _EFFUSION_SMALL))
    elif case.effusion in ("left", "right") and "adjacent" not in combos:
        positives.append(_fill(_pick(rng, _EFFUSION_POS), side=case.effusion))
    if "line" in combos:
        positives.append(_pick(rng, _LINE_PTX))
    elif case.pneumothorax != "none":
        positives.append(_fill(_pick(rng, _PTX_SMALL if case.subtle else _PTX_POS), side=case.pneumothorax))
    rng.shuffle(positives)

    negated = [
        name
        for name, absent in (
            ("consolidation", case.opacity == "none"),
            ("effusion", case.effusion == "none"),
            ("pneumothorax", case.pneumothorax == "none"),
            ("edema", not case.edema),
        )
        if absent
    ]
    negatives = _negative_sentences(case, negated, rng)

    body = positives + negatives
    if positives and negatives and rng.random() < 0.3:
        # Partly shuffled: usually positives first (as radiologists write), sometimes mixed.
        rng.shuffle(body)

    sentences = head + body
    if case.device != "none" and "line" not in combos:
        device = _pick(rng, _DEVICE_POS[case.device])
        where = rng.random()
        if where < 0.3:
            sentences.insert(0, device)
        elif where < 0.5:
            sentences.insert(2, device)
        else:
            sentences.append(device)
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _BONES))
    if case.pathology_free and rng.random() < 0.5:
        sentences.append(_pick(rng, _NORMAL_CLOSING))
    return " ".join(sentences)


def _combinations(case: PhantomCase) -> set[str]:
    """The `structured` combinations present in `case` (module docstring)."""
    found = set()
    if case.cardiomegaly and case.edema and case.effusion == "bilateral":
        found.add("heart_failure")
    if case.device == "line" and case.pneumothorax == "right":
        found.add("line")
    if case.opacity in ("left_lower", "right_lower") and case.effusion == case.opacity.split("_")[0]:
        found.add("adjacent")
    return found


def _negative_sentences(case: PhantomCase, negated: list[str], rng: np.random.Generator) -> list[str]:
    """Negations of the absent always-stated findings, singly or as "No A, B, or C." lists."""
    lungs_clear = case.opacity == "none" and not case.edema and case.nodule == "none" and (
        case.pneumothorax == "none" and case.effusion == "none"
    )
    single = {
        "consolidation": _CLEAR_LUNGS if lungs_clear else _CONSOLIDATION_NEG,
        "effusion": _EFFUSION_NEG,
        "pneumothorax": _PTX_NEG,
        "edema": _EDEMA_NEG,
    }
    out: list[str] = []
    remaining = list(negated)
    if len(remaining) >= 2 and rng.random() < 0.6:
        k = int(rng.integers(2, min(3, len(remaining)) + 1))
        listed = remaining[:k]
        remaining = remaining[k:]
        items = _join_items([_pick(rng, _NEG_NOUNS[n]) for n in listed])
        use_clear = lungs_clear and listed[0] == "consolidation" and rng.random() < 0.5
        out.append(_pick(rng, _CLEAR_LIST if use_clear else _NEG_LIST).format(items=items))
    out.extend(_pick(rng, single[n]) for n in remaining)
    if len(out) > 1 and rng.random() < 0.3:
        rng.shuffle(out)
    return out
