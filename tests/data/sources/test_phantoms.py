"""Synthetic phantoms: cases, images, reports and labels agree with each other."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from irralctl.constants import OBSERVATIONS as CHEXPERT_OBSERVATIONS
from irralctl.data.sources.phantoms.cases import (
    CTR_ENLARGED,
    CTR_NORMAL,
    PHANTOM_VERSION,
    PhantomCase,
    case_labels,
    sample_case,
)
from irralctl.data.sources.phantoms.config import VARIANTS
from irralctl.data.sources.phantoms.prepare import make_phantoms
from irralctl.data.sources.phantoms.render import _draw_nuisance, render_study
from irralctl.data.sources.phantoms.reports import write_report
from irralctl.errors import ConfigError, InputError
from tests.fixtures.marks import fast_few

OBS = {name: i for i, name in enumerate(CHEXPERT_OBSERVATIONS)}
SIZE = 256
LOW = 64


def low(img: np.ndarray, size: int = LOW) -> np.ndarray:
    """Block-mean resize to `size` px: what CI's small models see."""
    k = img.shape[0] // size
    return img.astype(np.float64).reshape(size, k, size, k).mean(axis=(1, 3))


def pair(case: PhantomCase, seed: int, base: PhantomCase | None = None):
    """Both views of `case` and of `base` (default: normal) rendered with the same generator."""
    with_f = render_study(case, np.random.default_rng(seed), SIZE)
    without = render_study(base or PhantomCase(), np.random.default_rng(seed), SIZE)
    return with_f, without


def centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


# ------------------------------------------------------------------------------------------
# API and determinism


def test_make_phantoms_records():
    studies = list(make_phantoms(4, seed=11, size=64))
    assert [s["id"] for s in studies] == ["PH00001", "PH00002", "PH00003", "PH00004"]
    for s in studies:
        assert set(s) == {"id", "group", "case", "report", "labels", "frontal", "lateral"}
        assert s["group"] == s["id"]
        case = PhantomCase(**s["case"])
        assert s["labels"] == case_labels(case)
        assert len(s["labels"]) == 14
        for view in ("frontal", "lateral"):
            assert s[view].dtype == np.uint8 and s[view].shape == (64, 64)
        assert s["report"].endswith(".")
    assert PHANTOM_VERSION == "1"
    assert list(make_phantoms(0, seed=1)) == []


def test_same_seed_same_studies_and_different_seed_differs():
    a = list(make_phantoms(6, seed=5, size=128))
    b = list(make_phantoms(6, seed=5, size=128))
    c = list(make_phantoms(6, seed=6, size=128))
    for x, y in zip(a, b):
        assert x["report"] == y["report"] and x["case"] == y["case"]
        assert np.array_equal(x["frontal"], y["frontal"]) and np.array_equal(x["lateral"], y["lateral"])
    assert [x["report"] for x in a] != [z["report"] for z in c]
    assert not np.array_equal(a[0]["frontal"], c[0]["frontal"])


def test_study_does_not_depend_on_the_number_requested():
    # Study i of a seed is fixed whatever n: datasets of different sizes share their prefix.
    few = list(make_phantoms(2, seed=9, size=64))
    many = list(make_phantoms(5, seed=9, size=64))
    assert few[1]["report"] == many[1]["report"]
    assert np.array_equal(few[1]["frontal"], many[1]["frontal"])


def test_render_is_deterministic_and_sized():
    case = PhantomCase(cardiomegaly=True, effusion="left", device="pacemaker")
    f1, l1 = render_study(case, np.random.default_rng(3), 96)
    f2, l2 = render_study(case, np.random.default_rng(3), 96)
    assert f1.shape == l1.shape == (96, 96)
    assert np.array_equal(f1, f2) and np.array_equal(l1, l2)
    with pytest.raises(ConfigError):
        render_study(case, np.random.default_rng(3), 16)


def test_invalid_cases_and_options_raise():
    with pytest.raises(InputError, match="effusion"):
        PhantomCase(effusion="middle")
    with pytest.raises(InputError, match="cardiomegaly"):
        PhantomCase(cardiomegaly="yes")
    with pytest.raises(ConfigError):
        sample_case(np.random.default_rng(0), p_normal=1.5)
    with pytest.raises(ConfigError):
        list(make_phantoms(-1, seed=0))


# ------------------------------------------------------------------------------------------
# Cases


def test_sample_case_respects_p_normal_and_covers_every_finding():
    rng = np.random.default_rng(0)
    cases = [sample_case(rng, p_normal=0.3) for _ in range(3000)]
    normal = np.mean([c.pathology_free for c in cases])
    assert 0.26 < normal < 0.34
    seen = {(k, v) for c in cases for k, v in asdict(c).items()}
    for value in ("left", "right", "bilateral"):
        assert ("effusion", value) in seen
    for value in ("left_upper", "left_lower", "right_upper", "right_lower"):
        assert ("opacity", value) in seen
    for value in ("line", "tube", "pacemaker"):
        assert ("device", value) in seen
    assert ("cardiomegaly", True) in seen and ("edema", True) in seen
    assert ("pneumothorax", "left") in seen and ("nodule", "right") in seen
    # Devices occur in normal studies too (No Finding stays 1 with a device).
    assert any(c.pathology_free and c.device != "none" for c in cases)
    assert all(c.pathology_free for c in (sample_case(rng, 1.0) for _ in range(50)))
    assert not any(c.pathology_free for c in (sample_case(rng, 0.0) for _ in range(200)))


def test_heart_size_ranges_are_separable():
    rng = np.random.default_rng(1)
    normal = [_draw_nuisance(rng, False).ctr for _ in range(500)]
    enlarged = [_draw_nuisance(rng, True).ctr for _ in range(500)]
    assert CTR_NORMAL[0] <= min(normal) and max(normal) <= CTR_NORMAL[1] < 0.5
    assert 0.5 < CTR_ENLARGED[0] <= min(enlarged) and max(enlarged) <= CTR_ENLARGED[1]


# ------------------------------------------------------------------------------------------
# Images


def test_image_statistics_stay_in_range():
    for study in make_phantoms(12, seed=2, size=SIZE):
        for view in ("frontal", "lateral"):
            img = study[view]
            assert 70 < img.mean() < 190, (study["id"], view, img.mean())
            assert img.std() > 30
            assert np.percentile(img, 2) < 40  # air outside the body / dark lungs
            assert np.percentile(img, 98) > 160  # mediastinum, bone, abdomen
            assert (img == 255).mean() < 0.05  # no blown-out exposure


def _ctr_on_image(frontal: np.ndarray) -> float:
    """Cardiothoracic ratio read off a 64 px frontal view: widest central bright run (the heart)
    over the widest span of the lungs flanking it, in the rows above the diaphragm."""
    a = low(frontal)
    n, c = a.shape[0], a.shape[0] // 2
    lung = np.percentile(a[n // 4 : 5 * n // 8, n // 8 : 7 * n // 8], 10)
    centre = np.median(a[15 * n // 32 : 5 * n // 8, c - 2 : c + 2])
    bright_thr = (lung + centre) / 2
    heart = thorax = 0
    for r in range(int(0.3 * n), int(0.63 * n)):
        bright = a[r] >= bright_thr
        if not bright[c]:
            continue
        lo = c
        while lo > 0 and bright[lo - 1]:
            lo -= 1
        hi = c
        while hi < n - 1 and bright[hi + 1]:
            hi += 1
        lo_lung, hi_lung = lo, hi
        while lo_lung > 0 and not bright[lo_lung - 1]:
            lo_lung -= 1
        while hi_lung < n - 1 and not bright[hi_lung + 1]:
            hi_lung += 1
        heart = max(heart, hi - lo + 1)
        thorax = max(thorax, hi_lung - lo_lung + 1)
    return heart / thorax


def test_cardiomegaly_widens_the_heart_shadow_on_the_image():
    for seed in range(8):
        (big, _), (normal, _) = pair(PhantomCase(cardiomegaly=True), seed)
        ctr_big, ctr_normal = _ctr_on_image(big), _ctr_on_image(normal)
        assert ctr_normal < 0.48 < ctr_big, (seed, ctr_normal, ctr_big)
        assert ctr_big - ctr_normal > 0.08
        # The heart grows on both sides of the midline.
        d = low(big) - low(normal)
        grown = d > 15
        assert grown[:, : LOW // 2].sum() > 5 and grown[:, LOW // 2 :].sum() > 5


@pytest.mark.parametrize("side", ["right", "left"])
def test_effusion_whitens_that_costophrenic_region(side):
    for seed in range(3):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(effusion=side), seed)
        d = low(frontal) - low(f0)
        whiter = d > 15
        assert whiter.sum() > 80 and d.max() > 50  # a large, obvious change at 64 px
        row, col = centroid(whiter)
        assert row > LOW * 0.55  # the base of the lung
        # The patient's right is on the image's left.
        assert (col < LOW / 2) == (side == "right")
        # The other hemithorax is untouched, pixel for pixel.
        other = slice(0, int(SIZE * 0.4)) if side == "left" else slice(int(SIZE * 0.6), SIZE)
        assert np.array_equal(frontal[:, other], f0[:, other])
        # Lateral view: fluid in the posterior (image right) costophrenic sulcus.
        dl = low(lateral) - low(l0)
        row, col = centroid(dl > 15)
        assert (dl > 15).sum() > 80 and row > LOW * 0.55 and col > LOW * 0.45


def test_bilateral_effusion_whitens_both_bases():
    (frontal, _), (f0, _) = pair(PhantomCase(effusion="bilateral"), 4)
    whiter = (low(frontal) - low(f0)) > 15
    assert whiter[LOW // 2 :, : LOW // 2].sum() > 60 and whiter[LOW // 2 :, LOW // 2 :].sum() > 60


@pytest.mark.parametrize("zone", ["right_upper", "right_lower", "left_upper", "left_lower"])
def test_opacity_brightens_its_lobe_zone(zone):
    side, level = zone.split("_")
    for seed in range(3):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(opacity=zone), seed)
        d = low(frontal) - low(f0)
        patch = d > 15
        assert patch.sum() > 60 and d.max() > 45
        row, col = centroid(patch)
        assert (col < LOW / 2) == (side == "right")
        assert (row < LOW * 0.42) if level == "upper" else (LOW * 0.45 < row < LOW * 0.65)
        # Also seen on the lateral: anterosuperior (upper) or posteroinferior (lower).
        dl = low(lateral) - low(l0)
        row, col = centroid(dl > 15)
        assert (dl > 15).sum() > 60
        assert (row < LOW * 0.42) if level == "upper" else (row > LOW * 0.45 and col > LOW * 0.5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pneumothorax_darkens_an_apicolateral_rim(side):
    for seed in range(3):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(pneumothorax=side), seed)
        d = low(frontal) - low(f0)
        darker = d < -12
        assert darker.sum() > 100 and d.min() < -30
        row, col = centroid(darker)
        assert (col < LOW / 2) == (side == "right")
        assert row < LOW * 0.5  # apex and upper lateral chest
        # Lucent rim lies lateral to the collapsed lung: further out than the lung's centre.
        assert abs(col - LOW / 2) > LOW * 0.25
        assert np.array_equal(lateral, l0)  # visible mainly on the frontal view, by design


def test_edema_hazes_both_perihilar_regions():
    for seed in range(3):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(edema=True), seed)
        whiter = (low(frontal) - low(f0)) > 12
        assert whiter[:, : LOW // 2].sum() > 200 and whiter[:, LOW // 2 :].sum() > 200
        row, _ = centroid(whiter)
        assert LOW * 0.3 < row < LOW * 0.6  # perihilar, not basal
        assert ((low(lateral) - low(l0)) > 12).sum() > 200


def test_nodule_is_a_small_bright_spot_on_its_side():
    for seed in range(3):
        for side in ("right", "left"):
            (frontal, _), (f0, _) = pair(PhantomCase(nodule=side), seed)
            d = low(frontal) - low(f0)
            spot = d > 15
            assert 4 <= spot.sum() <= 40 and d.max() > 40
            _, col = centroid(spot)
            assert (col < LOW / 2) == (side == "right")


@pytest.mark.parametrize(
    "device,where",
    [
        # (row range, column range) of the bright device pixels' centroid at 64 px
        ("line", ((0, 24), (14, 32))),
        ("tube", ((0, 20), (26, 38))),
        ("pacemaker", ((10, 34), (32, 50))),
    ],
)
def test_devices_are_bright_and_where_they_belong(device, where):
    for seed in range(3):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(device=device), seed)
        d = low(frontal) - low(f0)
        bright = d > 25
        assert bright.sum() >= 15 and d.max() > 60
        row, col = centroid(bright)
        (r0, r1), (c0, c1) = where
        assert r0 <= row <= r1 and c0 <= col <= c1, (device, seed, row, col)
        assert ((low(lateral) - low(l0)) > 25).sum() >= 15


def test_findings_are_distinct_from_each_other_at_64px():
    # Different findings must change different pixels: the 64 px difference images of any two
    # findings are far from identical.
    findings = {
        "cardiomegaly": PhantomCase(cardiomegaly=True),
        "effusion": PhantomCase(effusion="right"),
        "opacity": PhantomCase(opacity="right_lower"),
        "pneumothorax": PhantomCase(pneumothorax="right"),
        "edema": PhantomCase(edema=True),
        "nodule": PhantomCase(nodule="right"),
    }
    diffs = {}
    for name, case in findings.items():
        (frontal, _), (f0, _) = pair(case, 7)
        diffs[name] = (low(frontal) - low(f0)).ravel()
    names = list(diffs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            corr = np.corrcoef(diffs[a], diffs[b])[0, 1]
            assert corr < 0.6, (a, b, corr)


# ------------------------------------------------------------------------------------------
# Reports and labels


def test_labels_of_explicit_cases():
    null = None
    assert case_labels(PhantomCase()) == [1, 0, 0, null, null, 0, 0, null, null, 0, 0, null, null, null]
    assert case_labels(PhantomCase(device="tube")) == [1, 0, 0, null, null, 0, 0, null, null, 0, 0, null, null, 1]
    labels = case_labels(PhantomCase(cardiomegaly=True, effusion="right"))
    assert labels[OBS["No Finding"]] is None
    assert labels[OBS["Cardiomegaly"]] == 1 and labels[OBS["Pleural Effusion"]] == 1
    assert labels[OBS["Pneumothorax"]] == 0 and labels[OBS["Edema"]] == 0
    labels = case_labels(PhantomCase(opacity="left_lower", nodule="right", pneumothorax="left", edema=True))
    assert labels[OBS["Lung Opacity"]] == labels[OBS["Consolidation"]] == 1
    assert labels[OBS["Lung Lesion"]] == labels[OBS["Pneumothorax"]] == labels[OBS["Edema"]] == 1
    assert labels[OBS["Pleural Effusion"]] == labels[OBS["Cardiomegaly"]] == 0
    for never in ("Pneumonia", "Atelectasis", "Pleural Other", "Fracture"):
        assert labels[OBS[never]] is None


def test_reports_state_the_findings_with_side_and_lobe():
    rng = np.random.default_rng(0)
    for _ in range(20):
        text = write_report(PhantomCase(opacity="left_upper", effusion="right", pneumothorax="left"), rng).lower()
        assert "left upper lobe" in text and "consolidation" in text and "opacity" in text
        assert re.search(r"right(-sided)? pleural effusion", text)
        assert re.search(r"left (apical |-sided )?pneumothorax|left-sided pneumothorax", text)
        assert "edema" in text and ("heart" in text or "cardiac" in text) and "mediastinum" in text
        text = write_report(PhantomCase(cardiomegaly=True, effusion="bilateral", device="line"), rng).lower()
        assert "bilateral pleural effusions" in text and "central venous catheter" in text
        assert "cardiomegaly" in text or "enlarged" in text
        text = write_report(PhantomCase(), rng).lower()
        assert "enlarged" not in text and "present" not in text
        for word in ("heart", "mediastinum", "consolidation", "effusion", "pneumothorax", "edema"):
            assert word in text.replace("cardiac silhouette", "heart")


def test_reports_vary_in_wording_and_order():
    case = PhantomCase(cardiomegaly=True, opacity="right_lower", device="tube")
    reports = [write_report(case, np.random.default_rng(s)) for s in range(40)]
    assert len(set(reports)) >= 30
    assert len({r.split(". ")[0] for r in reports}) >= 5  # first sentence varies too


def test_reports_differ_exactly_where_the_cases_differ():
    # With the same generator, cases that differ only in a side or a lobe give the same report
    # up to that word.
    for seed in range(20):
        a = write_report(PhantomCase(effusion="right", opacity="right_upper", cardiomegaly=True), np.random.default_rng(seed))
        b = write_report(PhantomCase(effusion="left", opacity="left_upper", cardiomegaly=True), np.random.default_rng(seed))
        assert a != b and a.replace("right", "left").replace("Right", "Left") == b
        c = write_report(PhantomCase(opacity="right_lower", cardiomegaly=True, effusion="right"), np.random.default_rng(seed))
        assert a.replace("upper", "lower") == c


def test_lungs_are_called_clear_only_without_lung_findings():
    rng = np.random.default_rng(4)
    for _ in range(400):
        case = sample_case(rng, p_normal=0.3)
        text = write_report(case, rng).lower()
        if "clear" in text and "lungs" in text:
            assert case.opacity == case.pneumothorax == case.effusion == case.nodule == "none"
            assert not case.edema
        if "cardiopulmonary" in text:
            assert case.pathology_free


# A small CheXpert-style rule labeler: mention phrases per observation, a negation cue before the
# mention or a "normal/unremarkable/clear" in the sentence makes it negative, a hedge makes it
# uncertain (-1), otherwise positive. The built-in phrases are a subset written for this test;
# the official CheXpert phrase lists are used as well when ../shared/data is present.
BUILTIN_MENTIONS = {
    "Enlarged Cardiomediastinum": [" mediastinum", "cardiomediastinum", "contour"],
    "Cardiomegaly": ["cardiomegaly", "the heart", "heart size", "cardiac silhouette", "enlarged heart"],
    "Lung Lesion": ["nodule", "mass", "tumor"],
    "Lung Opacity": ["opaci", "airspace disease", "infiltrat", "interstitial marking"],
    "Edema": ["edema", "vascular congestion", "heart failure"],
    "Consolidation": ["consolidat"],
    "Pneumonia": ["pneumonia", "infecti"],
    "Atelectasis": ["atelecta", "collapse"],
    "Pneumothorax": ["pneumothora"],
    "Pleural Effusion": ["effusion", "pleural fluid"],
    "Pleural Other": ["pleural thickening", "fibrosis", "scar"],
    "Fracture": ["fracture"],
    "Support Devices": ["catheter", "tube", "pacemaker", " line ", "lines", "device", "picc"],
    "No Finding": ["blunt", "density", "prominen", "thickening", "calcifi"],
}
NEGATION_BEFORE = re.compile(r"\b(no|without|not|negative for|free of)\b")
NEGATION_ANYWHERE = re.compile(r"\b(normal|unremarkable|clear)\b")
HEDGE = re.compile(r"\b(may|might|could|possible|possibly|probable|likely|suspect\w*|questionable|or|versus|cannot)\b")


def _official_mentions(shared: Path) -> dict[str, list[str]]:
    files = {name: name.lower().replace(" ", "_") for name in CHEXPERT_OBSERVATIONS}
    out = {}
    for name, stem in files.items():
        path = shared / "chexpert" / "phrases" / "mention" / f"{stem}.txt"
        out[name] = [ln.strip().replace("_", " ") for ln in path.read_text().splitlines() if ln.strip()]
    return out


def rule_label(report: str, mentions: dict[str, list[str]]) -> tuple[list[int | None], dict[str, set[int]]]:
    """Labels of `report` and the set of mention polarities seen per observation."""
    polarities: dict[str, set[int]] = {name: set() for name in CHEXPERT_OBSERVATIONS}
    for sentence in re.split(r"(?<=\.)\s+", report.lower()):
        text = " " + sentence.replace(",", " ,").rstrip(".") + " "
        for name, phrases in mentions.items():
            for phrase in phrases:
                for m in re.finditer(phrase, text):
                    before = text[: m.start()]
                    if NEGATION_BEFORE.search(before) or NEGATION_ANYWHERE.search(text):
                        polarities[name].add(0)
                    elif HEDGE.search(text):
                        polarities[name].add(-1)
                    else:
                        polarities[name].add(1)
    labels: list[int | None] = [None] * len(CHEXPERT_OBSERVATIONS)
    finding = False
    for name, seen in polarities.items():
        if name != "Support Devices" and (1 in seen or -1 in seen):
            finding = True
        if name == "No Finding" or not seen:
            continue
        labels[OBS[name]] = 1 if 1 in seen else (-1 if -1 in seen else 0)
    labels[OBS["No Finding"]] = None if finding else 1
    return labels, polarities


def _check_reports(mentions: dict[str, list[str]], n: int, variant: str = "standard") -> None:
    rng = np.random.default_rng(123)
    for _ in range(n):
        case = sample_case(rng, p_normal=0.3, variant=variant)
        report = write_report(case, rng, structured=variant == "structured")
        labels, polarities = rule_label(report, mentions)
        assert labels == case_labels(case), (report, case)
        for name, seen in polarities.items():
            assert len(seen) <= 1, f"{name} both stated and negated: {report}"
            assert -1 not in seen, f"{name} hedged: {report}"


@pytest.mark.parametrize("variant", fast_few(VARIANTS, {"standard", "structured"}))
def test_rule_labeler_reads_exactly_case_labels(variant):
    _check_reports(BUILTIN_MENTIONS, 600, variant)


@pytest.mark.parametrize("variant", fast_few(VARIANTS, {"standard"}))  # CheXpert's phrase lists: slower
def test_official_chexpert_phrases_read_exactly_case_labels(shared_data, variant):
    _check_reports(_official_mentions(shared_data), 600, variant)
