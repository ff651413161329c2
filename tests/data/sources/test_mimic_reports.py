"""The MIMIC-CXR report section parser, on every heading variant of the fixture reports."""

from __future__ import annotations

import pytest

from irralctl.data.sources.mimic.reports import canonical_section, is_section_heading, parse_report, target_text
from tests.fixtures.mimic import REPORTS


def test_headings_on_their_own_lines():
    s = parse_report(REPORTS["50000001"])
    assert s.findings == ("The lungs are well expanded and clear. No pleural effusion or pneumothorax is seen. "
                          "The cardiomediastinal silhouette is within normal limits. Degenerative changes are "
                          "noted in the thoracic spine.")
    assert s.impression == "No acute cardiopulmonary abnormality."
    assert s.comparison == "Chest radiograph from ___."
    assert s.indication == "___M with cough and low-grade fever for three days, evaluate for pneumonia."
    assert s.headings == ("EXAMINATION", "INDICATION", "TECHNIQUE", "COMPARISON", "FINDINGS", "IMPRESSION")


def test_headings_inline_with_their_text_and_history_as_indication():
    s = parse_report(REPORTS["50000002"])
    assert s.findings.startswith("Portable AP upright view of the chest. There is mild enlargement")
    assert s.findings.endswith("likely atelectasis. No pneumothorax.")
    assert s.impression == "Mild cardiomegaly and small bilateral pleural effusions."
    assert s.indication == "___-year-old woman with shortness of breath."
    assert s.comparison == "None."


def test_combined_findings_and_impression_fills_both_and_is_used_once():
    s = parse_report(REPORTS["50000003"])
    text = ("Interval improvement of the right lower lobe consolidation, with residual patchy opacity. "
            "Heart size is normal. No pleural effusion.")
    assert s.findings == s.impression == text
    assert target_text(s.as_dict(), "findings+impression") == text
    assert target_text(s.as_dict(), "impression") == text


def test_combined_section_and_a_separate_impression_do_not_repeat():
    report = (" FINAL REPORT\n FINDINGS AND IMPRESSION: Clear lungs.\n\n IMPRESSION: Normal study.\n")
    s = parse_report(report)
    assert s.findings == "Clear lungs."
    assert s.impression == "Normal study."
    assert target_text(s.as_dict(), "findings+impression") == "Clear lungs. Normal study."


def test_impression_only_has_empty_findings():
    s = parse_report(REPORTS["50000004"])
    assert s.findings == ""
    assert s.impression == ("1. Right internal jugular central venous catheter terminates in the mid SVC. "
                            "2. No pneumothorax.")
    assert target_text(s.as_dict(), "findings") == ""


def test_wet_read_is_ignored_and_notification_ends_the_impression():
    s = parse_report(REPORTS["51000005"])
    assert "WET READ" not in s.headings
    assert s.findings.startswith("A small left apical pneumothorax is new since the prior study.")
    assert s.impression == "Small left apical pneumothorax."
    assert s.comparison == "___ at 06:10."
    assert s.indication == "___ year old man after left chest tube removal // ?pneumothorax"
    assert s.headings[-1] == "NOTIFICATION"


def test_no_headings_at_all_keeps_only_the_last_paragraph():
    s = parse_report(REPORTS["52000006"])
    assert (s.findings, s.impression, s.comparison, s.indication) == ("", "", "", "")
    assert s.headings == ()
    assert s.last_paragraph == "No acute intrathoracic process."


def test_known_heading_in_the_middle_of_a_line():
    s = parse_report(REPORTS["52000007"])
    assert s.findings.endswith("Low lung volumes with bibasilar atelectasis.")
    assert "IMPRESSION" not in s.findings
    assert s.impression == "Lines and tubes in standard position."


def test_last_paragraph_loses_its_opening_heading():
    assert parse_report(REPORTS["50000001"]).last_paragraph == "No acute cardiopulmonary abnormality."
    assert parse_report(" FINDINGS: Lungs clear.\n\n IMPRESSION: Normal.\n").last_paragraph == "Normal."


def test_times_and_deidentification_are_not_headings():
    s = parse_report(" FINAL REPORT\n FINDINGS: Seen at 10:30 by ___: lungs clear.\n ___: no change.\n")
    assert s.headings == ("FINDINGS",)
    assert s.findings == "Seen at 10:30 by ___: lungs clear. ___: no change."


def test_a_long_upper_case_phrase_is_text_not_a_heading():
    s = parse_report(" FINDINGS:\n PA AND LATERAL VIEWS OF THE CHEST WERE OBTAINED TODAY: lungs clear.\n")
    assert s.findings == "PA AND LATERAL VIEWS OF THE CHEST WERE OBTAINED TODAY: lungs clear."


def test_structured_findings_keep_their_labels_as_text():
    report = (" FINAL REPORT\n EXAMINATION:  CHEST (PORTABLE AP)\n\n FINDINGS:\n"
              " LUNGS: Clear.\n HEART: Normal size.\n ET TUBE: 4 cm above the carina.\n\n"
              " IMPRESSION:  No acute process.\n\n RECOMMENDATION(S):  None.\n")
    s = parse_report(report)
    assert s.findings == "LUNGS: Clear. HEART: Normal size. ET TUBE: 4 cm above the carina."
    assert s.impression == "No acute process."
    assert s.headings == ("EXAMINATION", "FINDINGS", "IMPRESSION", "RECOMMENDATION(S)")
    assert s.last_paragraph == "None."


def test_windows_line_endings():
    s = parse_report(REPORTS["50000001"].replace("\n", "\r\n"))
    assert s.impression == "No acute cardiopulmonary abnormality."


@pytest.mark.parametrize("heading, sections", [
    ("FINDINGS", ("findings",)),
    ("FINDING", ("findings",)),
    ("FINDINGS AND IMPRESSION", ("findings", "impression")),
    ("FINDINGS/IMPRESSION", ("findings", "impression")),
    ("IMPRESSIONS", ("impression",)),
    ("CONCLUSION", ("impression",)),
    ("COMPARISON", ("comparison",)),
    ("COMPARISONS", ("comparison",)),
    ("CLINICAL HISTORY", ("indication",)),
    ("INDICATIONS", ("indication",)),
    ("REASON FOR EXAMINATION", ("indication",)),
    ("TECHNIQUE", ()),
    ("RECOMMENDATION(S)", ()),
])
def test_canonical_section(heading, sections):
    assert canonical_section(heading) == sections


@pytest.mark.parametrize("heading, boundary", [
    ("TECHNIQUE", True), ("NOTIFICATION", True), ("EXAMINATION", True), ("ADDENDUM", True),
    ("FINDINGS", True), ("CLINICAL INFORMATION", True),
    ("LUNGS", False), ("HEART", False), ("ET TUBE", False), ("LINES/TUBES", False),
])
def test_section_heading_or_label(heading, boundary):
    assert is_section_heading(heading) is boundary


def test_target_text_rejects_an_unknown_choice():
    with pytest.raises(ValueError):
        target_text({}, "history")
