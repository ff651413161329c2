"""Rules of the CheXpert-style labeler, pinned on sentences written for these tests."""

from __future__ import annotations

import pytest

from irralctl.labeling import LABELER_NAME, LABELER_VERSION, OBSERVATIONS, Labeler

NF, EC, CM, LL, LO, ED, CO, PN, AT, PX, EF, PO, FX, SD = OBSERVATIONS


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler()


def labels(labeler: Labeler, text: str) -> dict[str, int]:
    """The mentioned observations of `text` as {name: value}."""
    return {name: v for name, v in zip(OBSERVATIONS, labeler.label(text)) if v is not None}


def test_public_constants():
    assert OBSERVATIONS == (
        "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity",
        "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
        "Pleural Other", "Fracture", "Support Devices",
    )
    assert LABELER_NAME == "irralctl-chexpert"
    assert LABELER_VERSION.count(".") == 2


def test_phrase_lists_load_with_the_generated_unmentions(labeler):
    mentions = {}
    for obs, phrase in labeler._mentions:
        mentions.setdefault(OBSERVATIONS[obs], []).append(phrase.text)
    assert set(mentions) == set(OBSERVATIONS)               # No Finding: the list of other findings
    assert " mediastinum" in mentions[EC] and " line " in mentions[SD]    # "_" is a space
    assert sum(len(v) for v in mentions.values()) == 148    # every line of the 14 files
    cardiac = {p.text for p in labeler._unmentions[2]}
    assert {"over the heart", "in the left cardiac silhouette", "overly the superior heart size"} <= cardiac
    assert "over the cardiomegaly" not in cardiac           # the original excludes the two findings
    assert "over the  mediastinum" in {p.text for p in labeler._unmentions[1]}


def test_label_shape_and_values(labeler):
    out = labeler.label("Mild cardiomegaly. Possible small left effusion. No pneumothorax.")
    assert len(out) == 14
    assert set(out) <= {1, 0, -1, None}
    assert labeler.label_many(["No pneumothorax.", "Cardiomegaly."]) == [
        labeler.label("No pneumothorax."), labeler.label("Cardiomegaly.")]


def test_empty_report_is_no_finding(labeler):
    # As the original: nothing positive or uncertain, so No Finding.
    assert labeler.label("") == [1] + [None] * 13


# --- mention extraction ----------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("Bibasilar atelectatic changes.", {AT: 1}),                       # substring match
    ("Right lower lobe collapse.", {AT: 1}),
    ("Small pericardial effusion.", {}),                               # unmention drops it
    ("Calcified nodule in the right apex.", {}),                       # unmention "calcified nodul"
    ("Massive right pleural effusion.", {EF: 1}),                      # "mass" inside "massive" dropped
    ("Left apical pleural scarring.", {PO: 1}),                        # pleural scar is not Lung Opacity
    ("Parenchymal scarring at the left base.", {LO: 1}),
    ("Surgical clips project over the heart.", {SD: 1}),               # positional unmention; clips: 1.1
    ("Opacity in the left cardiac silhouette region.", {LO: 1}),       # "in the left cardiac silhouette"
    ("The heart is enlarged.", {CM: 1}),
    ("Enlarged cardiac silhouette.", {CM: 1}),
    ("Right PICC line tip in the SVC.", {SD: 1}),
    ("Emphysema.", {}),                                                # an other finding: No Finding blank
])
def test_mentions(labeler, text, expected):
    got = labels(labeler, text)
    got.pop(NF, None)
    assert got == expected


def test_leading_space_phrase_does_not_match_at_sentence_start(labeler):
    # "_mediastinum" is " mediastinum": the original matched sentence by sentence, so a sentence
    # that starts with the word has no Enlarged Cardiomediastinum mention.
    assert EC not in labels(labeler, "Mediastinum is widened.")
    assert labels(labeler, "The mediastinum is widened.")[EC] == 1


def test_positional_unmention_quirk_for_mediastinum(labeler):
    # The original builds "over the  mediastinum" (two spaces) from "_mediastinum": it never matches,
    # so the original says Enlarged Cardiomediastinum; since 1.1 a structure with no size word is none.
    assert labels(labeler, "Clips over the mediastinum.") == {NF: 1, SD: 1}


def test_cleaning_turns_slash_and_and_or_into_or(labeler):
    assert labels(labeler, "Effusion/atelectasis at the right base.") == {EF: -1, AT: -1}
    assert labels(labeler, "Atelectasis and/or consolidation.") == {AT: -1, CO: -1}


# --- negation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, name", [
    ("No pneumothorax.", PX),
    ("There is no evidence of pneumothorax.", PX),
    ("Lungs are clear without focal consolidation.", CO),
    ("Lungs are free of focal airspace disease.", LO),
    ("The lungs are clear of consolidation.", CO),
    ("Negative for pneumonia.", PN),
    ("Interval resolution of the right pleural effusion.", EF),
    ("Resolved interstitial edema.", ED),
    ("The left pneumothorax has resolved.", PX),
    ("The right chest tube has been removed.", SD),
    ("Pneumothorax is not seen.", PX),
    ("The nodule is no longer visualized.", LL),
    ("History of pneumonia.", PN),
    ("Heart size is not enlarged.", CM),
    ("Atelectasis rather than pneumonia.", PN),
])
def test_negation(labeler, text, name):
    assert labels(labeler, text)[name] == 0


@pytest.mark.parametrize("text, expected", [
    ("Heart size is normal.", {CM: 0}),
    ("Heart size normal.", {CM: 0}),
    ("The heart is normal in size and contour.", {CM: 0, EC: 0}),
    ("Normal heart size and mediastinal contours.", {CM: 0, EC: 0}),
    ("The mediastinal contours are within normal limits.", {EC: 0}),
    ("The cardiomediastinal silhouette is unremarkable.", {EC: 0}),
    ("The cardiac silhouette is at the upper limits of normal.", {CM: 0}),
    ("Heart size XXXX within normal limits.", {CM: 0}),
    ("The heart, hila and mediastinum are within normal limits.", {CM: 0, EC: 0}),
])
def test_negated_normal_statements(labeler, text, expected):
    got = labels(labeler, text)
    assert got.pop(NF) == 1
    assert got == expected


def test_normal_before_a_noun_does_not_reach_back(labeler):
    assert labels(labeler, "Cardiomegaly and normal pulmonary vascularity.") == {CM: 1}
    assert labels(labeler, "Heart size is enlarged, pulmonary vascularity within normal limits.") == {CM: 1}


@pytest.mark.parametrize("text", [
    "No pneumothorax, pleural effusion, or focal consolidation.",
    "No focal consolidation, large pleural effusion, or pneumothorax is seen.",
    "There is no evidence of focal consolidation, pneumothorax or pleural effusion.",
    "The lungs are clear without evidence of focal consolidation, effusion, or pneumothorax.",
])
def test_negated_lists(labeler, text):
    assert labels(labeler, text) == {NF: 1, CO: 0, PX: 0, EF: 0}


@pytest.mark.parametrize("text", [
    "No pneumothorax, but there is a small left pleural effusion.",
    "No pneumothorax; small left pleural effusion.",
    "No pneumothorax. Small left pleural effusion.",
    "No pneumothorax is seen and there is a small left pleural effusion.",
    "Lungs are clear without pneumothorax, there is a small left pleural effusion.",
    "No pneumothorax with small left pleural effusion.",
])
def test_negation_scope_ends_at_clause_boundaries(labeler, text):
    assert labels(labeler, text) == {PX: 0, EF: 1}


@pytest.mark.parametrize("text, expected", [
    ("No increase in the left pleural effusion.", {EF: 1}),
    ("No change in the small left pleural effusion.", {EF: 1}),
    ("No significant change in cardiomegaly.", {CM: 1}),
    ("Not only a pneumothorax but also an effusion.", {PX: 1, EF: 1}),
    ("Left pleural effusion without change.", {EF: 1}),
    ("A 9 mm nodule, not seen on the prior exam.", {LL: 1}),
])
def test_pseudo_triggers(labeler, text, expected):
    assert labels(labeler, text) == expected


# --- uncertainty -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, name", [
    ("Opacity may represent pneumonia.", PN),
    ("There is possible left lower lobe pneumonia.", PN),
    ("Probable small left pleural effusion.", EF),
    ("Findings suggestive of pulmonary edema.", ED),
    ("Findings suggest pneumonia.", PN),
    ("Questionable right apical pneumothorax.", PX),
    ("Likely bibasilar atelectasis.", AT),
    ("Consolidation is likely.", CO),
    ("Opacity concerning for pneumonia.", PN),
    ("Opacity compatible with pneumonia.", PN),
    ("Pneumonia is suspected.", PN),
    ("Borderline cardiomegaly.", CM),
    ("The cardiac silhouette is borderline enlarged.", CM),
    ("Pneumothorax is not well visualized.", PX),
    ("The differential diagnosis includes pneumonia.", PN),
    ("Atelectasis versus pneumonia.", AT),
    ("Atelectasis versus pneumonia.", PN),
    ("Atelectasis or pneumonia.", AT),
    ("Atelectasis or pneumonia.", PN),
    ("Vascular congestion.", ED),
])
def test_uncertainty(labeler, text, name):
    assert labels(labeler, text)[name] == -1


@pytest.mark.parametrize("text", [
    "Cannot exclude a small left pleural effusion.",
    "A small left pleural effusion cannot be excluded.",
    "Left pleural effusion is not excluded.",
    "Cannot rule out a small left pleural effusion.",
    "No new pleural effusion.",
    "A small pleural effusion is difficult to exclude.",
])
def test_uncertainty_that_wins_over_negation(labeler, text):
    assert labels(labeler, text) == {EF: -1}


def test_no_new_covers_a_list(labeler):
    assert labels(labeler, "No new focal consolidation, effusion or pneumothorax.") == {CO: -1, EF: -1, PX: -1}


def test_negation_wins_over_alternatives(labeler):
    assert labels(labeler, "No pneumothorax or pleural effusion.") == {NF: 1, PX: 0, EF: 0}
    assert labels(labeler, "No vascular congestion.") == {NF: 1, ED: 0}


def test_alternatives_stay_inside_the_noun_phrase(labeler):
    assert labels(labeler, "Airspace disease may represent infection or edema.") == {LO: 1, PN: -1, ED: -1}
    assert labels(labeler, "Opacities, atelectasis versus pneumonia.") == {LO: 1, AT: -1, PN: -1}
    # Two alternatives of one observation leave it certain.
    assert labels(labeler, "Left chest pacemaker or ICD.") == {NF: 1, SD: 1}


def test_hedge_does_not_reach_back_to_the_subject(labeler):
    assert labels(labeler, "Left basilar opacity, likely atelectasis.") == {LO: 1, AT: -1}
    assert labels(labeler, "Possible pneumonia with a small left pleural effusion.") == {PN: -1, EF: 1}


def test_age_indeterminate_is_not_uncertain(labeler):
    assert labels(labeler, "Age-indeterminate right rib fracture.") == {FX: 1}


@pytest.mark.parametrize("text, expected", [
    ("Stable cardiomediastinal silhouette.", {EC: -1}),
    ("The mediastinum is stable.", {EC: -1}),
    ("Heart size is unchanged.", {CM: -1}),
    ("No change in heart size.", {CM: -1}),
    ("Stable cardiomegaly.", {CM: 1}),                   # a finding, not a structure
    ("Enlarged cardiac silhouette, stable.", {CM: 1}),
    ("Heart size is stable and normal.", {NF: 1, CM: 0}),
    ("Mediastinal contours are stable and within normal limits.", {NF: 1, EC: 0}),
])
def test_stability_of_heart_and_mediastinum(labeler, text, expected):
    assert labels(labeler, text) == expected


def test_range_from_normal_to_enlarged_is_uncertain(labeler):
    assert labels(labeler, "The heart is at the upper limits of normal to borderline enlarged.") == {CM: -1}


@pytest.mark.parametrize("text, expected", [
    ("Opacity most XXXX representing atelectasis.", {LO: 1, AT: -1}),
    ("Streaky basilar opacities, XXXX atelectasis.", {LO: 1, AT: -1}),
    ("Blunting XXXX secondary to a small effusion.", {EF: -1}),
    ("The heart and lungs have XXXX XXXX in the interval.", {CM: -1}),
    ("There are no XXXX of a pleural effusion.", {NF: 1, EF: 0}),
])
def test_iu_deidentification_marks(labeler, text, expected):
    assert labels(labeler, text) == expected


# --- aggregation ---------------------------------------------------------------------------------
def test_several_mentions_combine_as_the_original(labeler):
    assert labels(labeler, "Small left effusion. No right effusion.")[EF] == 1              # + and -
    assert labels(labeler, "Possible right effusion. Small left effusion.")[EF] == 1        # ? and +
    assert labels(labeler, "No right effusion. Possible left effusion.")[EF] == -1          # - and ?
    # The original's quirk: negative and uncertain give uncertain even beside a positive.
    assert labels(labeler, "No right effusion. Possible left effusion. Small basal effusion.")[EF] == -1


def test_chf_adds_uncertain_cardiomegaly(labeler):
    assert labels(labeler, "Findings consistent with CHF.") == {ED: 1, CM: -1}
    assert labels(labeler, "Mild cardiomegaly. Findings consistent with heart failure.") == {ED: 1, CM: 1}
    assert labels(labeler, "No evidence of CHF.") == {NF: 1, ED: 0}


def test_no_finding(labeler):
    assert labels(labeler, "The lungs are clear.") == {NF: 1}
    assert labels(labeler, "No pneumothorax. Right IJ catheter tip in the SVC.") == {NF: 1, PX: 0, SD: 1}
    assert NF not in labels(labeler, "Possible small left effusion.")
    # The default policy: an incidental finding outside the 13 keeps No Finding, others blank it.
    assert labels(labeler, "Calcified granuloma in the right upper lobe.") == {NF: 1}
    assert NF not in labels(labeler, "Emphysema.")
    assert labels(labeler, "No hiatal hernia.") == {NF: 1}


def test_no_finding_chexpert_policy():
    # The original's rule: every finding of its other-findings list blanks No Finding.
    labeler = Labeler(no_finding="chexpert")
    assert labels(labeler, "The lungs are clear.") == {NF: 1}
    assert labels(labeler, "No pneumothorax. Right IJ catheter tip in the SVC.") == {NF: 1, PX: 0, SD: 1}
    assert NF not in labels(labeler, "Possible small left effusion.")
    assert NF not in labels(labeler, "Calcified granuloma in the right upper lobe.")
    assert labels(labeler, "No hiatal hernia.") == {NF: 1}


@pytest.mark.parametrize("policy", ["incidental", "chexpert"])
def test_original_sample_reports_without_shared_data(policy):
    # The four reports of the original's README, typed from its documentation, with its labels.
    labeler = Labeler(no_finding=policy)
    assert labeler.label("Heart size normal and lungs are clear. No edema or pneumonia. No effusion") == \
        [1, None, 0, None, None, 0, None, 0, None, None, 0, None, None, None]
    assert labeler.label("Minimal patchy airspace disease within the lingula, may reflect atelectasis or "
                         "consolidation.") == [None, None, None, None, 1, None, -1, None, -1, None, None, None, None, None]


# --- explain -------------------------------------------------------------------------------------
def test_explain_matches_label_and_says_why(labeler):
    text = "No pneumothorax. Possible small left effusion. Small left effusion is unchanged."
    explained = labeler.explain(text)
    assert [e["name"] for e in explained] == list(OBSERVATIONS)
    assert [e["value"] for e in explained] == labeler.label(text)
    by_name = {e["name"]: e for e in explained}
    assert by_name[PX] == {"name": PX, "value": 0, "phrase": "pneumothorax", "sentence": "no pneumothorax.",
                           "rule": "negation: 'no'"}
    assert by_name[EF]["value"] == 1
    assert by_name[EF]["sentence"] == "small left effusion is unchanged."
    assert "positive + uncertain -> positive" in by_name[EF]["rule"]
    assert by_name[NF]["value"] is None and "Pleural Effusion" in by_name[NF]["rule"]
    assert by_name[CM] == {"name": CM, "value": None, "phrase": None, "sentence": None, "rule": "not mentioned"}


def test_explain_chf_rule(labeler):
    cm = labeler.explain("Findings consistent with CHF.")[2]
    assert cm["value"] == -1 and cm["phrase"] == "chf" and "CheXpert rule" in cm["rule"]


def test_a_huge_record_is_cut_with_a_warning_not_a_stall(labeler, caplog):
    """Labelling is linear in report length; a record far longer than any report (a whole file in
    one CSV cell, say) is labelled on its first 100 kB, with a warning."""
    text = "Mild cardiomegaly. " + "No pleural effusion or pneumothorax. " * 200_000
    with caplog.at_level("WARNING"):
        values = labeler.label(text)
    assert values[2] == 1 and values[10] == 0 and values[9] == 0
    assert "labelled on its first" in caplog.text and "7,400,019" in caplog.text
