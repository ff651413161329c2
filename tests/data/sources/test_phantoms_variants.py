"""Phantom variants: each changes only what it says, and its defining property holds on rendered data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from irralctl.data.sources.phantoms.cases import PhantomCase, case_labels, sample_case
from irralctl.data.sources.phantoms.config import VARIANTS
from irralctl.data.sources.phantoms.prepare import make_phantom, make_phantoms
from irralctl.data.sources.phantoms.render import (
    NODULE_R,
    SUBTLE_NODULE_R,
    render_study,
)
from irralctl.data.sources.phantoms.reports import (
    ADJACENT_EFFUSION,
    HEART_FAILURE,
    LINE_PNEUMOTHORAX,
    write_report,
)
from irralctl.errors import ConfigError
from tests.fixtures.marks import fast_few
from tests.data.sources.test_phantoms import LOW, SIZE, centroid, low, pair


def _render_rng(seed: int, index: int) -> np.random.Generator:
    """make_phantom's render stream: the second of three spawned from (seed, index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]).spawn(3)[1])


def _draw(variant: str, n: int, seed: int = 0) -> list[PhantomCase]:
    """`n` cases, each from its own stream (as make_phantom draws them)."""
    return [sample_case(np.random.default_rng([seed, i]), 0.3, variant) for i in range(n)]


# ------------------------------------------------------------------------------------------
# Every variant


@pytest.mark.slow  # renders 300 studies
def test_standard_is_the_set_drawn_before_variants_existed():
    # Cases, reports and labels of make_phantoms(300, seed=3) as phantom version 1 wrote them
    # (hash taken before variants were added); the images were checked byte for byte too.
    h = hashlib.sha256()
    for s in make_phantoms(300, seed=3, size=32):
        h.update(json.dumps([s["id"], s["case"], s["report"], s["labels"]]).encode())
    assert h.hexdigest() == "149e0633315632b033926192421403a92df09b70329f6d4b2e08ac3492f5056f"
    assert make_phantom(3, 5, 32)["case"] == make_phantom(3, 5, 32, variant="standard")["case"]
    assert "subtle" not in make_phantom(3, 5, 32)["case"]  # records keep version 1's keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_study_depends_only_on_seed_variant_and_index(variant):
    a = make_phantom(4, 17, 64, variant=variant)
    b = next(s for i, s in enumerate(make_phantoms(18, 4, 64, variant=variant)) if i == 17)
    assert a["report"] == b["report"] and a["case"] == b["case"] and a["labels"] == b["labels"]
    assert np.array_equal(a["frontal"], b["frontal"]) and np.array_equal(a["lateral"], b["lateral"])
    case = PhantomCase(**a["case"])
    assert a["labels"] == case_labels(case)


def test_unknown_variant_raises():
    with pytest.raises(ConfigError, match="variant"):
        make_phantom(0, 0, 32, variant="huge")
    with pytest.raises(ConfigError, match="variant"):
        sample_case(np.random.default_rng(0), 0.3, "huge")


@pytest.mark.parametrize("variant", fast_few(VARIANTS, {"structured"}))
def test_normal_share_and_devices_are_those_of_standard(variant):
    # A variant changes only the abnormal studies: p_normal and the device draw are untouched.
    cases = _draw(variant, 2000, seed=8)
    base = _draw("standard", 2000, seed=8)
    assert [c.pathology_free for c in cases] == [c.pathology_free for c in base]
    if variant != "structured":  # structured puts a line in its line pattern and pacemakers in heart failure
        assert [c.device for c in cases] == [c.device for c in base]


# ------------------------------------------------------------------------------------------
# lateral: findings seen on the lateral view only


def test_lateral_variant_draws_lateral_only_findings():
    cases = _draw("lateral", 2000, seed=1)
    small = np.mean([c.effusion == "small" for c in cases])
    retro = np.mean([c.opacity == "retrocardiac" for c in cases])
    assert 0.08 < small < 0.14 and 0.06 < retro < 0.12, (small, retro)
    # The findings seen on the frontal view keep their standard frequencies.
    base = _draw("standard", 2000, seed=1)
    for value in ("left", "right", "bilateral"):
        a = np.mean([c.effusion == value for c in cases])
        b = np.mean([c.effusion == value for c in base])
        assert abs(a - b) < 0.03, (value, a, b)
    for variant in ("standard", "rare", "small", "structured"):
        assert not any(c.effusion == "small" or c.opacity == "retrocardiac" for c in _draw(variant, 1000))


@pytest.mark.slow  # renders 80 studies, and each finding's study again without it
def test_lateral_only_findings_change_the_lateral_view_only_in_rendered_studies():
    seed, found = 2, 0
    for i, study in enumerate(make_phantoms(80, seed, SIZE, variant="lateral")):
        case = PhantomCase(**study["case"])
        if case.effusion != "small" and case.opacity != "retrocardiac":
            continue
        found += 1
        without = replace(
            case,
            effusion="none" if case.effusion == "small" else case.effusion,
            opacity="none" if case.opacity == "retrocardiac" else case.opacity,
        )
        f0, l0 = render_study(without, _render_rng(seed, i), SIZE)
        assert np.array_equal(study["frontal"], f0), study["id"]  # the frontal view shows nothing
        d = low(study["lateral"]) - low(l0)
        assert (d > 15).sum() >= 15 and d.max() > 50, (study["id"], (d > 15).sum(), d.max())
        # Posterior (image right) and below the hilum: the posterior sulcus, or the lower lobe
        # over the spine.
        row, col = centroid(d > 15)
        assert row > LOW * 0.4 and col > LOW * 0.55, (study["id"], row, col)
    assert found >= 10


@pytest.mark.parametrize("finding", [{"effusion": "small"}, {"opacity": "retrocardiac"}])
def test_lateral_only_findings_across_anatomies(finding):
    for seed in range(4):
        (frontal, lateral), (f0, l0) = pair(PhantomCase(**finding), seed)
        assert np.array_equal(frontal, f0)
        d = low(lateral) - low(l0)
        assert (d > 15).sum() >= 15 and d.max() > 50
    # The small effusion stays small: far less fluid than a standard effusion on the lateral view.
    (_, small), (_, l0) = pair(PhantomCase(effusion="small"), 0)
    (_, big), _ = pair(PhantomCase(effusion="right"), 0)
    assert ((low(small) - low(l0)) > 15).sum() * 4 < ((low(big) - low(l0)) > 15).sum()


def test_lateral_only_findings_are_reported_as_such():
    rng = np.random.default_rng(0)
    for _ in range(30):
        text = write_report(PhantomCase(effusion="small"), rng).lower()
        assert "small pleural effusion" in text and "posterior costophrenic sulcus" in text
        assert "lateral view" in text
        assert "left" not in text and "right" not in text  # a lateral view cannot tell the side
        text = write_report(PhantomCase(opacity="retrocardiac"), rng).lower()
        assert "retrocardiac" in text and "left lower lobe" in text and "consolidation" in text


# ------------------------------------------------------------------------------------------
# rare: pneumothorax and nodule in about 2.5 % of studies


def test_rare_variant_frequencies():
    rare = _draw("rare", 2000, seed=3)
    base = _draw("standard", 2000, seed=3)
    for name in ("pneumothorax", "nodule"):
        share = np.mean([getattr(c, name) != "none" for c in rare])
        assert 0.015 <= share <= 0.035, (name, share)
        assert np.mean([getattr(c, name) != "none" for c in base]) > 0.08
        # Both sides still occur.
        assert {getattr(c, name) for c in rare} == {"none", "left", "right"}
    # The others keep (nearly) their standard frequencies: the abnormal branch redraws a little
    # more often when pneumothorax and nodule are rare.
    for name, present in (("cardiomegaly", lambda c: c.cardiomegaly), ("edema", lambda c: c.edema),
                          ("effusion", lambda c: c.effusion != "none"), ("opacity", lambda c: c.opacity != "none")):
        a, b = np.mean([present(c) for c in rare]), np.mean([present(c) for c in base])
        assert b - 0.02 < a < b + 0.06, (name, a, b)


# ------------------------------------------------------------------------------------------
# small: small or faint lesions


def test_small_variant_makes_every_nodule_opacity_and_pneumothorax_subtle():
    for case in _draw("small", 1000, seed=4):
        lesion = case.nodule != "none" or case.opacity != "none" or case.pneumothorax != "none"
        assert case.subtle == lesion
    assert not any(c.subtle for v in ("standard", "lateral", "rare", "structured") for c in _draw(v, 500))
    assert SUBTLE_NODULE_R[1] * 1.5 < NODULE_R[0]


def test_subtle_nodule_is_a_few_pixels_at_64px():
    for seed in range(4):
        for side in ("right", "left"):
            (small, _), (f0, _) = pair(PhantomCase(nodule=side, subtle=True), seed)
            (big, _), _ = pair(PhantomCase(nodule=side), seed)
            full = small.astype(float) - f0
            # At 256 px: a disc of radius 3.2-4.5 px (area 32-64 px) that stands out clearly.
            assert 20 <= (full > 15).sum() <= 80 and full.max() > 50, (seed, (full > 15).sum())
            assert ((big.astype(float) - f0) > 15).sum() >= 3 * (full > 15).sum()
            # At 64 px: a few pixels.
            assert 1 <= ((low(small) - low(f0)) > 15).sum() <= 8
            _, col = centroid(full > 15)
            assert (col < SIZE / 2) == (side == "right")


def _rim_width(frontal: np.ndarray, base: np.ndarray) -> float:
    """Median width, in 256 px pixels, of the darkened rim over the rows of the mid and upper lung."""
    dark = (frontal.astype(float) - base) < -15
    return float(np.median(dark[SIZE * 5 // 16 : SIZE * 5 // 8].sum(axis=1)))


@pytest.mark.parametrize("side", ["right", "left"])
def test_subtle_pneumothorax_is_a_thin_rim(side):
    for seed in range(3):
        (thin, lat), (f0, l0) = pair(PhantomCase(pneumothorax=side, subtle=True), seed)
        (wide, _), _ = pair(PhantomCase(pneumothorax=side), seed)
        assert 1 <= _rim_width(thin, f0) <= 5 and _rim_width(wide, f0) >= 12
        d = thin.astype(float) - f0
        assert d.min() < -30  # still visible at full resolution
        row, col = centroid(d < -15)
        assert (col < SIZE / 2) == (side == "right") and row < SIZE * 0.5
        assert np.array_equal(lat, l0)


def test_subtle_opacity_is_smaller_and_fainter():
    for seed in range(3):
        for zone in ("right_lower", "left_upper"):
            (faint, _), (f0, _) = pair(PhantomCase(opacity=zone, subtle=True), seed)
            (full, _), _ = pair(PhantomCase(opacity=zone), seed)
            d_faint, d_full = low(faint) - low(f0), low(full) - low(f0)
            assert 10 < d_faint.max() < 0.5 * d_full.max(), (seed, zone, d_faint.max(), d_full.max())
            assert (d_faint > 10).sum() < 0.5 * (d_full > 10).sum()
            _, col = centroid(d_faint > 10)
            assert (col < LOW / 2) == zone.startswith("right")


def test_subtle_findings_are_reported_as_small_or_faint():
    rng = np.random.default_rng(1)
    for _ in range(20):
        text = write_report(PhantomCase(nodule="left", opacity="right_upper", pneumothorax="left", subtle=True), rng)
        text = text.lower()
        assert "small" in text and "faint" in text and "left mid lung" in text and "right upper lobe" in text
        assert "left apical pneumothorax" in text


# ------------------------------------------------------------------------------------------
# structured: clinical patterns, combinations in one sentence


def _combos(case: PhantomCase) -> dict[str, bool]:
    return {
        HEART_FAILURE: case.cardiomegaly and case.edema and case.effusion == "bilateral",
        LINE_PNEUMOTHORAX: case.device == "line" and case.pneumothorax == "right",
        ADJACENT_EFFUSION: case.opacity in ("right_lower", "left_lower") and case.effusion == case.opacity.split("_")[0],
    }


@pytest.mark.slow  # renders 400 studies
def test_combination_sentence_appears_iff_the_combination_is_present():
    counts = dict.fromkeys(_combos(PhantomCase()), 0)
    for study in make_phantoms(400, seed=5, size=32, variant="structured"):
        case, text = PhantomCase(**study["case"]), study["report"]
        for marker, present in _combos(case).items():
            assert (marker in text) == present, (marker, case, text)
            counts[marker] += present
        if _combos(case)[LINE_PNEUMOTHORAX]:
            assert text.count("catheter") == 1 and text.count("pneumothorax") == 1  # one sentence for both
        if _combos(case)[HEART_FAILURE]:
            assert text.count("edema") == 1 and text.count("effusion") == 1
    assert all(n >= 12 for n in counts.values()), counts


def test_standard_reports_never_combine():
    rng = np.random.default_rng(2)
    chf = PhantomCase(cardiomegaly=True, edema=True, effusion="bilateral")
    for _ in range(30):
        assert HEART_FAILURE not in write_report(chf, rng)
        assert HEART_FAILURE in write_report(chf, rng, structured=True)
        text = write_report(PhantomCase(device="line", pneumothorax="right"), rng)
        assert LINE_PNEUMOTHORAX not in text and ADJACENT_EFFUSION not in text


def test_structured_findings_co_occur_in_clinical_patterns():
    structured, standard = _draw("structured", 2000, seed=6), _draw("standard", 2000, seed=6)

    def conditional(cases, given, then):
        chosen = [c for c in cases if given(c)]
        return np.mean([then(c) for c in chosen])

    def edema_given_heart(cases):
        return conditional(cases, lambda c: c.cardiomegaly, lambda c: c.edema) - conditional(
            cases, lambda c: not c.cardiomegaly, lambda c: c.edema)

    assert edema_given_heart(structured) > 0.3 and abs(edema_given_heart(standard)) < 0.1
    ptx_given_line = conditional(structured, lambda c: c.device == "line", lambda c: c.pneumothorax == "right")
    ptx_otherwise = conditional(structured, lambda c: c.device != "line", lambda c: c.pneumothorax == "right")
    assert ptx_given_line > 0.2 and ptx_given_line > 4 * ptx_otherwise, (ptx_given_line, ptx_otherwise)
    # Each combination also occurs incomplete, so its sentence must be earned by all its parts.
    assert any(c.cardiomegaly and c.effusion == "bilateral" and not c.edema for c in structured)
    assert any(c.cardiomegaly and c.edema and c.effusion == "none" for c in structured)
    assert any(c.device == "line" and c.pneumothorax == "none" for c in structured)
    assert any(c.opacity.endswith("lower") and c.effusion == "none" for c in structured)
