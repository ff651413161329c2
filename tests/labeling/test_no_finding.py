"""No Finding policies: "incidental" (default) against "chexpert" (the original labeler's rule).

Sentences written for these tests, paraphrasing the wording of chest radiograph reports; none is
copied from a report.
"""

from __future__ import annotations

from importlib import resources

import pytest

from irralctl.constants import NO_FINDING_POLICIES
from irralctl.errors import ConfigError
from irralctl.labeling import LABELER_NAME, LABELER_VERSION, Labeler

NF = 0
INCIDENTAL_FILE = resources.files("irralctl.labeling") / "additions" / "incidental.txt"


@pytest.fixture(scope="module")
def incidental() -> Labeler:
    return Labeler()


@pytest.fixture(scope="module")
def chexpert() -> Labeler:
    return Labeler(no_finding="chexpert")


def no_finding(labeler: Labeler, text: str) -> dict:
    return labeler.explain(text)[NF]


# Normal studies that also name an incidental finding outside the 13: No Finding under the default.
INCIDENTAL = [
    "The lungs are clear. Mild degenerative spurring along the thoracic spine.",
    "No acute disease. Multilevel degenerative disc disease with small osteophytes.",
    "Heart size normal. A calcified granuloma projects over the left mid lung.",
    "Clear lungs. Calcified hilar lymph nodes from old granulomatous disease.",
    "Normal heart size. Atherosclerotic calcification of the aortic arch.",
    "Tortuous, atherosclerotic thoracic aorta; clear lungs.",
    "No focal consolidation. Gentle dextroscoliosis in the mid thoracic spine.",
    "Accentuated kyphosis of the thoracic spine. No acute process in the chest.",
    "Diffuse osteopenia. Heart and lungs within normal limits.",
    "A small hiatal hernia is noted. The lungs are clear.",
    "A partial eventration of the right hemidiaphragm; no pleural effusion.",
    "Arthropathy of both shoulders. No acute findings in the chest.",
    "Left chest wall defibrillator with leads in the right heart. Clear lungs.",
    "Possible small calcified granuloma at the right base. Lungs otherwise clear.",   # uncertain too
]
# Findings outside the 13 that still blank No Finding under both policies, with the phrase that does.
SIGNIFICANT = [
    ("Hyperinflated lungs consistent with emphysema.", "emphysema"),
    ("Known cystic fibrosis; the lungs are otherwise clear.", "cystic fibrosis"),
    ("Small pneumomediastinum after the procedure.", "pneumomediastinum"),
    ("Changes of COPD.", "copd"),
    ("Large bullae in both upper lobes.", "bullae"),
    ("Known metastasis in the left humerus.", "metastasis"),
    ("Right hemidiaphragm elevation relative to the left.", "elevation"),
    ("Stable deformity of a midthoracic vertebral body.", "deformity"),   # most often a compression fracture
]


@pytest.mark.parametrize("text", INCIDENTAL)
def test_incidental_wording_keeps_no_finding_by_default(incidental, text):
    e = no_finding(incidental, text)
    assert e["value"] == 1, e
    assert e["rule"].startswith("incidental finding '") and "does not blank No Finding" in e["rule"]
    assert e["phrase"] in e["sentence"]


@pytest.mark.parametrize("text", INCIDENTAL)
def test_chexpert_policy_blanks_no_finding_on_incidental_wording(chexpert, text):
    e = no_finding(chexpert, text)
    assert e["value"] is None and e["rule"].startswith("blank: other finding is ")


@pytest.mark.parametrize("text, phrase", SIGNIFICANT)
def test_significant_findings_blank_no_finding_under_both_policies(incidental, chexpert, text, phrase):
    e = no_finding(incidental, text)
    assert (e["value"], e["phrase"]) == (None, phrase)
    assert e["rule"] == "blank: other finding is positive (not an incidental finding)"
    e = no_finding(chexpert, text)
    assert (e["value"], e["phrase"], e["rule"]) == (None, phrase, "blank: other finding is positive")


def test_an_incidental_finding_does_not_hide_a_significant_one(incidental):
    text = "Degenerative change of the spine. Calcified granuloma. Emphysema."
    e = no_finding(incidental, text)
    assert e["value"] is None and e["phrase"] == "emphysema"
    e = no_finding(incidental, "Calcified granuloma. Small left pleural effusion.")
    assert e["value"] is None and e["rule"] == "blank: Pleural Effusion is positive"


def test_policies_differ_only_in_no_finding(incidental, chexpert):
    for text in INCIDENTAL + [t for t, _ in SIGNIFICANT]:
        a, b = incidental.label(text), chexpert.label(text)
        assert a[1:] == b[1:], text


def test_negated_other_findings_never_blank(incidental, chexpert):
    for labeler in (incidental, chexpert):
        assert labeler.label("No emphysema. No hiatal hernia.")[NF] == 1


def test_old_healed_fracture_blanks_under_both(incidental, chexpert):
    for labeler in (incidental, chexpert):
        e = no_finding(labeler, "Clear lungs. Old healed fracture of a left rib.")
        assert e["value"] is None and e["rule"] == "blank: Fracture is positive"


def test_unknown_policy_is_refused():
    with pytest.raises(ConfigError, match="no_finding"):
        Labeler(no_finding="original")


def test_info_records_the_policy(incidental, chexpert):
    assert incidental.info() == {"name": LABELER_NAME, "version": LABELER_VERSION, "no_finding": "incidental"}
    assert chexpert.info()["no_finding"] == "chexpert"
    assert NO_FINDING_POLICIES[0] == "incidental" == Labeler().no_finding


def test_incidental_file_is_commented_and_names_phrases_of_the_lists(chexpert):
    lines = INCIDENTAL_FILE.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#")
    other_findings = {p.text for obs, p in chexpert._all_mentions if obs == NF}
    groups, phrases = [], []
    for i, line in enumerate(lines):
        line = line.strip()
        if line and not line.startswith("#"):
            phrases.append(line.replace("_", " "))
            if i and lines[i - 1].startswith("#"):
                groups.append(line)           # every group of phrases opens with its reason
            else:
                assert lines[i - 1].strip() and not lines[i - 1].startswith("#"), f"{line}: not in a commented group"
    assert len(groups) >= 5 and set(phrases) <= other_findings
    assert len(phrases) == len(set(phrases))
    # Significant ones stay off, and so do those left off on purpose.
    for significant in ("emphysema", "hyperinflation", "copd", "bullae", "pneumomediastinum", "metastasis",
                        "cystic fibrosis", "hemorrhage", "deformity", "elevation", "prominen"):
        assert significant not in phrases
    assert chexpert._incidental == frozenset() and Labeler()._incidental == frozenset(phrases)
