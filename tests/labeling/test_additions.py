"""irralctl's phrase additions: kept apart from the original CheXpert lists, loaded beside them."""

from __future__ import annotations

from importlib import resources

import pytest

from irralctl.labeling import LABELER_VERSION, OBSERVATIONS, Labeler
from irralctl.labeling.labeler import _required_literal

ADDITIONS = resources.files("irralctl.labeling") / "additions"
STEMS = {name.lower().replace(" ", "_") for name in OBSERVATIONS}


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler()


def test_version_is_bumped():
    assert tuple(int(x) for x in LABELER_VERSION.split(".")) >= (1, 1, 0)


def test_addition_files_are_named_after_observations_and_say_why():
    files = [f for kind in ("mention", "unmention") for f in (ADDITIONS / kind).iterdir()]
    assert files and (ADDITIONS / "README.md").is_file()
    for f in files:
        assert f.name.endswith(".txt") and f.name[:-4] in STEMS, f.name
        lines = f.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("#"), f"{f.name}: the first line says why the phrases are there"


def test_additions_load_apart_from_the_originals(labeler):
    assert len(labeler._mentions) == 148                      # the original lists, as before
    assert labeler._added_mentions and all(p.added for _, p in labeler._added_mentions)
    assert not any(p.added for _, p in labeler._mentions)
    added = [p.text for _, p in labeler._added_mentions] + \
        [p.text for ps in labeler._added_unmentions.values() for p in ps]
    assert not any(t.startswith("#") for t in added)          # comments skipped
    assert "loop recorder" in added and "pleural line" in added   # "_" read as a space
    for obs, stops in labeler._stops.items():                 # original unmentions kept, added ones beside
        assert set(labeler._unmentions.get(obs, ())) <= set(stops)
    assert set(labeler._stops[OBSERVATIONS.index("Support Devices")]) - set(labeler._unmentions.get(13, ()))


@pytest.mark.parametrize("pattern, key", [
    (r"\bstent", "stent"),
    (r"\bleads?\b(?! to\b)", "lead"),                          # "s?" is optional, the lookahead ignored
    (r"(?<=tip of the )xxxx\b", "xxxx"),
    (r"pleural thickening (?:or|and) scar", "pleural thickening "),
    (r"ab{0,5}cdef", "cdef"),                                  # a repeat count is no literal
    (r"(?:prior|old) infection|tb", ""),                       # top-level alternatives: nothing required
    (r"\btb\b", ""),                                           # too short to be worth testing
])
def test_required_literal(pattern, key):
    assert _required_literal(pattern) == key


def test_every_regex_phrase_key_is_in_its_matches(labeler):
    # The prefilter key must be part of every match, or the phrase would be skipped on a report
    # that contains it. A sample where most added regular expressions match:
    sample = ("status post cabg. coronary stents. pacing leads end in the atrium. left chest xxxx with its tip "
              "in the svc. the xxxx tip projects over the svc. the tip of the xxxx is in the atrium. a port. "
              "pleural thickening or scarring. lung cavity. prominent epicardial fat pad. old tb infection. "
              "b lines at the bases. surgical clips.")
    phrases = [p for _, p in labeler._added_mentions] + [u for us in labeler._added_unmentions.values() for u in us]
    matched = 0
    for phrase in (p for p in phrases if p.pattern is not None):
        for m in phrase.pattern.finditer(sample):
            assert phrase.key in m.group(), phrase.text
            matched += 1
    assert matched >= 8


@pytest.mark.parametrize("text, name, value", [
    ("There is stable prominence of the pulmonary interstitium.", "Lung Opacity", 1),
    ("Anterior wedge deformity of a lower thoracic vertebral body.", "Fracture", 1),
    ("Mild anterior wedging of T11.", "Fracture", 1),
    ("Stable right apical cavity.", "Lung Lesion", 1),
    ("Redemonstrated right chest wall mass.", "Lung Lesion", None),       # not of the lung
])
def test_other_added_phrases(labeler, text, name, value):
    assert labeler.label(text)[OBSERVATIONS.index(name)] == value
