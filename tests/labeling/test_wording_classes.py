"""Labeler 1.1 on the wording classes of real reports, pinned on sentences written for these tests.

Each class of the labeler issue gets one test: positive, negated and uncertain wording, and the
look-alikes that must not trigger. The sentences paraphrase what IU X-Ray reports say (including
their de-identification mark "XXXX"); none is copied from a report.
"""

from __future__ import annotations

import pytest

from irralctl.labeling import OBSERVATIONS, Labeler

NF, EC, CM, LL, LO, ED, CO, PN, AT, PX, EF, PO, FX, SD = OBSERVATIONS


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler()


def labels(labeler: Labeler, text: str) -> dict[str, int]:
    """The mentioned observations of `text` as {name: value}, No Finding left out."""
    return {name: v for name, v in zip(OBSERVATIONS, labeler.label(text)) if v is not None and name != NF}


def explained(labeler: Labeler, text: str, name: str) -> dict:
    return next(e for e in labeler.explain(text) if e["name"] == name)


# --- 1. devices ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("A stent projects over the left anterior descending artery.", {SD: 1}),
    ("Postoperative clips are present in the right upper abdomen.", {SD: 1}),
    ("Midline sternotomy wires are intact.", {SD: 1}),
    ("The patient is status post CABG.", {SD: 1}),
    ("A spinal cord stimulator overlies the lower thoracic spine.", {SD: 1}),
    ("Pacing leads end in the right atrium and right ventricle.", {SD: 1}),
    ("External monitoring leads overlie the chest.", {SD: 1}),
    ("Right chest XXXX with its tip at the cavoatrial junction.", {SD: 1}),     # masked noun with a tip
    ("The XXXX tip projects over the mid SVC.", {SD: 1}),
    ("A left-sided XXXX-a-XXXX is in place.", {SD: 1}),                         # masked port-a-cath
    ("Heart size is normal status post XXXX sternotomy.", {CM: 0, SD: 1}),      # "normal" stops at "status post"
    ("Monitor leads overlie the chest and show a normal cardiac silhouette.", {CM: 0, SD: 1}),
    ("The stimulator leads have been removed.", {SD: 0}),
    ("Interval removal of the coronary stent.", {SD: 0}),
    ("Possible retained wire fragment in the left chest.", {SD: -1}),
    # A borderline heart size does not make the tube after the comma uncertain.
    ("Borderline heart size, tracheostomy tube tip 5 cm above the carina.", {CM: -1, SD: 1}),
])
def test_devices(labeler, text, expected):
    assert labels(labeler, text) == expected


@pytest.mark.parametrize("text", [
    "Endplate degenerative change in the thoracic spine.",               # "plate"
    "Platelike atelectasis at the left base.",                            # "plate"
    "No evidence of active tuberculosis.",                                # "tube"
    "Findings consistent with mild edema.",                               # "stent" inside "consistent"
    "Kerley B lines at both bases.",                                      # "lines"
    "A few septal lines at the right base.",
    "No pleural line to suggest pneumothorax.",                           # " line "
    "These findings may lead to a repeat film.",                          # "lead" as a verb
    "Degenerative change of the spine.",                                  # "generat" is not "generator"
    "No evidence of a left-to-right shunt.",
    "Interval XXXX of the right lung.",                                   # a masked noun without a tip
])
def test_device_look_alikes(labeler, text):
    assert labeler.label(text)[OBSERVATIONS.index(SD)] is None


def test_added_phrase_is_named_by_explain(labeler):
    e = explained(labeler, "Left chest XXXX with tip projecting over the lower SVC.", SD)
    assert e["value"] == 1 and e["phrase"] == "xxxx"
    assert e["rule"] == "positive: no negation or uncertainty in scope (phrase added by irralctl)"
    # A phrase of the original list is not marked.
    assert "irralctl" not in explained(labeler, "Right PICC line tip in the SVC.", SD)["rule"]


# --- 2. enlarged cardiomediastinum ---------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("The cardiomediastinal silhouette is enlarged.", {EC: 1}),
    ("The mediastinum is widened.", {EC: 1}),
    ("Enlargement of the mediastinal contour.", {EC: 1}),
    ("Widened mediastinal XXXX.", {EC: 1}),                              # masked noun, stated size
    ("Stable enlarged cardiomediastinal silhouette.", {EC: 1}),
    ("Normal cardiomediastinal silhouette.", {EC: 0}),
    ("There is no mediastinal widening.", {EC: 0}),
    ("Mediastinal width is within normal limits.", {EC: 0}),
    ("The mediastinal contour is stable.", {EC: -1}),                    # CheXpert: stable structure
    ("Mild prominence of the superior mediastinum.", {EC: -1}),
    # The heart is Cardiomegaly only, never Enlarged Cardiomediastinum.
    ("The cardiac contour is enlarged.", {CM: 1}),
    ("Mild cardiomegaly.", {CM: 1}),
    ("Borderline enlarged heart.", {CM: -1}),                           # a hedged size, before ...
    ("Heart size borderline enlarged.", {CM: -1}),                      # ... or after the structure
])
def test_enlarged_cardiomediastinum(labeler, text, expected):
    assert labels(labeler, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Surgical clips overlie the mediastinum.", {SD: 1}),               # a position
    ("A calcified lymph node in the right mediastinum.", {}),
    ("Postsurgical changes of the mediastinum.", {}),
    ("Contour irregularity of a left lower rib.", {}),
    ("Calcified mediastinal XXXX.", {}),
])
def test_mediastinum_without_a_size_word_is_no_finding(labeler, text, expected):
    assert labels(labeler, text) == expected


def test_set_aside_structure_is_explained(labeler):
    e = explained(labeler, "Surgical clips overlie the mediastinum.", EC)
    assert e["value"] is None and e["phrase"] == " mediastinum"
    assert e["sentence"] == "surgical clips overlie the mediastinum."
    assert e["rule"].startswith("not mentioned: a mediastinal structure with no size word")


# --- 3. pleural other ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("Bilateral apical pleural capping.", {PO: 1}),
    ("Calcified pleural plaques along both hemidiaphragms.", {PO: 1}),
    ("Right apical pleural-parenchymal scarring.", {PO: 1}),            # not Lung Opacity
    ("Chronic fibrotic change in both lung bases.", {PO: 1}),
    ("Left lateral pleural thickening or scarring.", {PO: 1}),          # no alternative: both pleural
    ("Stable left apical pleural thickening.", {PO: 1}),
    ("No pleural thickening.", {PO: 0}),
    ("Blunting of the right costophrenic angle, pleural thickening versus a small effusion.", {PO: -1, EF: -1}),
    ("Small left pleural effusion/hemothorax.", {EF: 1}),               # both are pleural fluid
])
def test_pleural_other(labeler, text, expected):
    assert labels(labeler, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Cystic fibrosis with bronchiectasis.", {}),
    ("Apical scarring.", {LO: 1}),
    ("Atherosclerotic plaque in the aortic arch.", {}),
])
def test_pleural_other_look_alikes(labeler, text, expected):
    assert labels(labeler, text) == expected


def test_cystic_fibrosis_still_blanks_no_finding(labeler):
    # As the original's Pleural Other mention of "fibrosis" did, through the other-findings list now.
    e = explained(labeler, "Cystic fibrosis with bronchiectasis.", NF)
    assert e["value"] is None and e["phrase"] == "cystic fibrosis"


# --- 4. pneumonia and airspace disease ------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("Right basilar infiltrate consistent with pneumonia.", {LO: 1, PN: 1}),
    ("Focal pneumonitis in the lingula.", {PN: 1}),
    ("Left lower lobe consolidation concerning for infection.", {CO: 1, PN: -1}),
    ("No focal airspace disease to suggest pneumonia.", {LO: 0, PN: 0}),
    ("The lungs are free of infiltrates.", {LO: 0}),
    ("No evidence of active tuberculosis.", {PN: 0}),
    ("Pneumonia cannot be excluded.", {PN: -1}),
    ("Airspace disease in the right base could represent infection.", {LO: 1, PN: -1}),
    ("Atypical infection is another consideration.", {PN: -1}),
    ("Infection is in the differential.", {PN: -1}),
    ("Tuberculosis should be excluded clinically.", {PN: -1}),
    ("Possibility of early pneumonia.", {PN: -1}),
])
def test_pneumonia(labeler, text, expected):
    assert labels(labeler, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Patchy airspace disease in the right base.", {LO: 1}),             # opacity, not pneumonia
    ("Dense consolidation of the left lower lobe.", {CO: 1}),
    ("Calcified granulomas from prior granulomatous infection.", {}),    # a past infection
    ("Right apical scarring from old tuberculosis.", {LO: 1}),
])
def test_pneumonia_look_alikes(labeler, text, expected):
    assert labels(labeler, text) == expected


# --- 5. No Finding with incidental wording --------------------------------------------------------
# Normal variants and devices: No Finding under both policies.
@pytest.mark.parametrize("policy", ["incidental", "chexpert"])
@pytest.mark.parametrize("text", [
    "Heart size is normal. Lungs are clear. Surgical clips in the right upper quadrant.",
    "Normal heart and lungs. Prominent epicardial fat pad.",
    "Clear lungs. Calcified costal cartilages.",
    "Normal chest. Tortuous thoracic aorta.",
    "Lungs are clear. Clips overlie the mediastinum.",
    "Lungs are clear. Left chest XXXX with tip in the SVC.",
])
def test_incidental_wording_keeps_no_finding(text, policy):
    assert Labeler(no_finding=policy).label(text)[0] == 1


# Incidental findings of the original's other-findings list: No Finding under the default policy
# only (more in test_no_finding.py).
@pytest.mark.parametrize("text, phrase", [
    ("Clear lungs. Calcified granuloma in the right lower lobe.", "calcifi"),
    ("Clear lungs. Degenerative change of the thoracic spine.", "degenera"),
])
def test_incidental_other_findings_keep_no_finding(labeler, text, phrase):
    e = explained(labeler, text, NF)
    assert e["value"] == 1 and e["phrase"] == phrase and "does not blank No Finding" in e["rule"]


@pytest.mark.parametrize("text, reason", [
    ("Clear lungs. Old healed left rib fractures.", FX),                 # one of the findings
    ("Clear lungs. Possible small left effusion.", EF),
    ("Clear lungs. Emphysema.", "other finding"),                        # not incidental
])
def test_findings_still_blank_no_finding(labeler, text, reason):
    e = explained(labeler, text, NF)
    assert e["value"] is None and reason in e["rule"]


@pytest.mark.parametrize("text, reason", [
    ("Clear lungs. Old healed left rib fractures.", FX),
    ("Clear lungs. Possible small left effusion.", EF),
    # The original's rule: every finding of its list of other findings counts.
    ("Clear lungs. Calcified granuloma in the right lower lobe.", "other finding"),
    ("Clear lungs. Degenerative change of the thoracic spine.", "other finding"),
])
def test_findings_still_blank_no_finding_chexpert_policy(text, reason):
    e = explained(Labeler(no_finding="chexpert"), text, NF)
    assert e["value"] is None and reason in e["rule"]


@pytest.mark.parametrize("text", [
    "Nodule in the right lower lobe, likely a calcified granuloma.",
    "Dense nodule at the left base suggests prior granulomatous disease.",
    "Calcified right lung nodules from old granulomatous disease.",
    "Nodular opacities consistent with chronic granulomatous disease.",
])
def test_granulomas_are_no_lesion_or_opacity(labeler, text):
    got = labels(labeler, text)
    assert LL not in got and LO not in got


def test_nodules_that_are_not_granulomas_stay_lesions(labeler):
    assert labels(labeler, "A 9 mm nodule at the left base, not definitively calcified.") == {LL: 1}
    assert labels(labeler, "Right upper lobe opacity and a small calcified granuloma at the left base.") == {LO: 1}


# --- 6. masked words ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("Large right upper lobe XXXX.", {}),                                # a masked noun creates nothing
    ("The XXXX are intact.", {}),
    ("XXXX deformity of a midthoracic vertebral body.", {}),
    ("Calcified mediastinal XXXX.", {}),
    ("No XXXX focal consolidation.", {CO: 0}),                           # nor hides a negation
    ("There are no XXXX of a pleural effusion.", {EF: 0}),
    ("Streaky opacity at the left base, XXXX atelectasis.", {LO: 1, AT: -1}),   # the masked "likely"
    ("Heart size XXXX within normal limits.", {CM: 0}),
    ("Left chest XXXX with tip in the SVC.", {SD: 1}),                   # the tip, not the mask, makes it
    ("Widened mediastinal XXXX.", {EC: 1}),                              # the size word, not the mask
])
def test_masked_words(labeler, text, expected):
    assert labels(labeler, text) == expected


# --- the original's example ---------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["incidental", "chexpert"])
def test_original_four_sample_reports_still_exact(policy):
    # The four reports of the Stanford labeler's README and the labels it documents for them.
    reports = [
        "Heart size normal and lungs are clear. No edema or pneumonia. No effusion",
        "1. Left pleural effusion with adjacent atelectasis. Right effusion is also present.\n\n"
        "2. Cardiomegaly without overt edema.",
        "Minimal patchy airspace disease within the lingula, may reflect atelectasis or consolidation.",
        "1. Stable mild cardiomegaly. 2. Hyperexpanded but clear lungs.",
    ]
    expected = [
        [1, None, 0, None, None, 0, None, 0, None, None, 0, None, None, None],
        [None, None, 1, None, None, 0, None, None, 1, None, 1, None, None, None],
        [None, None, None, None, 1, None, -1, None, -1, None, None, None, None, None],
        [None, None, 1, None, None, None, None, None, None, None, None, None, None, None],
    ]
    assert Labeler(no_finding=policy).label_many(reports) == expected
