"""BLEU, ROUGE-L and CIDEr-D equal pycocoevalcap 1.2 (the oracle) to 1e-9 on any input."""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest

from irralctl.errors import InputError
from irralctl.metrics import bleu, cider, rouge
from irralctl.metrics._ngrams import count_ngrams
from tests.fixtures.metric_texts import pairs

coco_bleu = pytest.importorskip("pycocoevalcap.bleu.bleu")
coco_rouge = pytest.importorskip("pycocoevalcap.rouge.rouge")
coco_cider = pytest.importorskip("pycocoevalcap.cider.cider")

TOL = 1e-9


def _oracle(gts, res):
    with contextlib.redirect_stdout(io.StringIO()):  # coco-caption's Bleu prints its counts
        b = coco_bleu.Bleu(4).compute_score(gts, res)
    return {"bleu": b, "rouge": coco_rouge.Rouge().compute_score(gts, res), "cider": coco_cider.Cider().compute_score(gts, res)}


def _assert_parity(gts, res):
    want = _oracle(gts, res)
    got_b = bleu.compute_score(gts, res)
    np.testing.assert_allclose(got_b[0], want["bleu"][0], rtol=0, atol=TOL)
    np.testing.assert_allclose(np.array(got_b[1]), np.array(want["bleu"][1]), rtol=0, atol=TOL)
    for name, mod in (("rouge", rouge), ("cider", cider)):
        corpus, items = mod.compute_score(gts, res)
        assert abs(corpus - want[name][0]) <= TOL, name
        np.testing.assert_allclose(items, want[name][1], rtol=0, atol=TOL, err_msg=name)


@pytest.mark.slow  # 1,500 pairs through pycocoevalcap each (the edge cases below are the fast subset's)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_on_generated_texts(seed):
    gts, res = pairs(seed, 1500)
    _assert_parity(gts, res)


@pytest.mark.slow  # 3,000 real pairs through pycocoevalcap
def test_parity_on_real_iu_reports(shared_data):
    from irralctl.data.cleaning import default_clean, legacy_iu_xray

    ann = json.loads((shared_data / "iu_xray" / "r2gen_annotation.json").read_text())
    reports = [r["report"] for split in ann.values() for r in split]
    rng = random.Random(7)
    gts, res = {}, {}
    for i in range(3000):
        clean = legacy_iu_xray if i % 2 else default_clean
        ref, hyp = clean(rng.choice(reports)), clean(rng.choice(reports))
        if i % 5 == 0:  # a truncated copy of the reference: high-overlap pairs
            words = ref.split()
            hyp = " ".join(words[: rng.randint(1, len(words))])
        gts[i], res[i] = [ref], [hyp]
    _assert_parity(gts, res)


EDGE_CASES = {
    "empty prediction": (["the heart is normal ."], [""]),
    "empty both": ([""], [""]),
    "one word each": (["normal"], ["normal"]),
    "one word mismatch": (["normal"], ["clear"]),
    "repeated ngrams": (["a b a b a b c"], ["a b a b a b a b a b"]),
    "repeated single word": (["a"], ["a a a a a"]),
    "prediction longer": (["the heart is normal ."], ["the heart is normal . the lungs are clear . no effusion ."]),
    "unicode": (["größe des herzens normal ø 肺"], ["größe normal 肺 ø naïve"]),
    "double and edge spaces": (["the  heart is normal "], [" the heart  is normal"]),
    "tabs and newlines": (["the heart\tis\nnormal"], ["the heart is normal"]),
}


def test_parity_on_edge_cases_together():
    gts = {k: v[0] for k, v in EDGE_CASES.items()}
    res = {k: v[1] for k, v in EDGE_CASES.items()}
    _assert_parity(gts, res)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_parity_on_edge_case_alone_with_a_partner(case):
    # CIDEr's idf needs more than one item to be non-zero; pair each case with a fixed one.
    gts = {"case": EDGE_CASES[case][0], "other": ["lungs are clear ."]}
    res = {"case": EDGE_CASES[case][1], "other": ["the lungs are clear ."]}
    _assert_parity(gts, res)


def test_parity_with_several_references():
    rng = random.Random(3)
    g1, r1 = pairs(11, 300)
    gts = {}
    for k, refs in g1.items():
        extra = [pairs(rng.randint(0, 10**6), 1)[0]["study0"][0] for _ in range(rng.randint(0, 3))]
        gts[k] = refs + extra
    # ties in "closest" reference length: the shorter one wins in coco-caption
    gts["tie"], r1["tie"] = ["a b", "a b c d"], ["a b c"]
    _assert_parity(gts, r1)


def test_single_item_cider_is_zero_as_in_coco():
    gts, res = {"x": ["the heart is normal"]}, {"x": ["the heart is normal"]}
    assert cider.compute_score(gts, res)[0] == 0.0  # log(1 document) idf: coco-caption gives 0 too
    _assert_parity(gts, res)


def test_identical_texts_give_bleu_and_rouge_one():
    gts = {i: [t] for i, t in enumerate(["the heart is normal in size .", "no pleural effusion is seen ."])}
    corpus, _ = bleu.compute_score(gts, gts)
    np.testing.assert_allclose(corpus, 1.0, atol=1e-9)
    assert rouge.compute_score(gts, gts)[0] == pytest.approx(1.0)


def test_lcs_matches_dynamic_programming():
    rng = random.Random(5)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
        assert rouge.lcs_length(a, b) == table[-1][-1]


def test_ngram_tables_count_what_coco_counts():
    from collections import Counter

    texts = ["a b a b", "", "b a", "c"]
    lengths, tables = count_ngrams(texts)
    assert lengths.tolist() == [4, 0, 2, 1]
    # text 0 has bigrams (a b) x2 and (b a) x1; text 2 has (b a) x1; (b a) is one id across texts
    t2 = tables[1]
    rows = {(int(t), int(g)): int(c) for t, g, c in zip(t2.text, t2.gram, t2.count)}
    assert sorted(Counter(rows.values()).elements()) == [1, 1, 2]
    ba_ids = {g for (t, g), c in rows.items() if t == 2}
    assert len(ba_ids) == 1 and (0, next(iter(ba_ids))) in rows
    assert tables[3].text.tolist() == [0]  # only text 0 has a 4-gram


@pytest.mark.parametrize("bad", [
    ({"a": ["x"]}, {"b": ["x"]}),
    ({"a": ["x"]}, {"a": ["x", "y"]}),
    ({"a": []}, {"a": ["x"]}),
    ({"a": ["x"]}, {"a": "x"}),
    ({}, {}),
])
def test_bad_shapes_are_explained(bad):
    for mod in (bleu, rouge, cider):
        with pytest.raises(InputError):
            mod.compute_score(*bad)
