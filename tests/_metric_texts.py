"""Report-like texts for metric tests, generated from a small vocabulary written for these tests."""

from __future__ import annotations

import random

WORDS = (
    "the heart size is normal within limits lungs are clear no pleural effusion or pneumothorax . "
    "there is mild cardiomegaly with small left basilar opacity consistent atelectasis focal airspace "
    "disease stable mediastinal contour degenerative changes of thoracic spine xxxx right upper lobe "
    "nodule calcified granuloma hyperexpanded emphysema tube catheter tip in svc unchanged compared prior"
).split()
UNICODE = ("naïve", "größe", "ø", "x‐ray", "肺", "é", "—")


def sentence(rng: random.Random, n: int, words=WORDS) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


def report(rng: random.Random, max_len: int = 60) -> str:
    """A random text: sometimes empty, often with repeated n-grams and sentence marks."""
    kind = rng.random()
    if kind < 0.03:
        return ""
    if kind < 0.08:
        return rng.choice(WORDS)
    if kind < 0.15:
        w = rng.choice(WORDS)
        return " ".join([w] * rng.randint(2, 8))
    if kind < 0.2:
        return sentence(rng, rng.randint(1, 12), WORDS[:20] + list(UNICODE))
    return sentence(rng, rng.randint(2, max_len))


def pairs(seed: int, n: int) -> tuple[dict, dict]:
    """n (references, hypothesis) items; hypotheses often copy, cut or extend their reference."""
    rng = random.Random(seed)
    gts, res = {}, {}
    for i in range(n):
        ref = report(rng)
        r = rng.random()
        if r < 0.3:
            words = ref.split()
            hyp = " ".join(words[: rng.randint(0, len(words))])
        elif r < 0.4:
            hyp = ref + " " + report(rng, 20)  # longer than the reference
        elif r < 0.45:
            hyp = ref
        else:
            hyp = report(rng)
        gts[f"study{i}"] = [ref]
        res[f"study{i}"] = [hyp]
    return gts, res
