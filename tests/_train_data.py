"""A tiny prepared dataset written by the tests themselves, for model and training tests.

Each study has two 8-bit views with a bright disc on the left or right lung field or none, and a
report saying which; CheXpert labels follow (Lung Lesion positive when a disc is drawn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import torch

from irralctl.data.prepared import finish_dataset, open_staging
from irralctl.data.store import build_image_store

FINDINGS = ("none", "left", "right")
REPORTS = {
    "none": "the lungs are clear . no focal lesion is seen . the heart is normal .",
    "left": "there is a round lesion in the left lung . the heart is normal .",
    "right": "there is a round lesion in the right lung . the heart is normal .",
}


def _view(rng: np.random.Generator, finding: str, size: int) -> np.ndarray:
    img = rng.normal(90, 12, (size, size))
    yy, xx = np.mgrid[0:size, 0:size] / size
    if finding != "none":
        cx = 0.3 if finding == "left" else 0.7
        cy = rng.uniform(0.35, 0.65)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 0.012] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def _labels(finding: str) -> list:
    out: list = [None] * 14
    if finding == "none":
        out[0] = 1
        out[3] = 0
    else:
        out[3] = 1
    out[2] = 0
    return out


def make_dataset(root: Path, *, n_train: int = 24, n_val: int = 8, n_test: int = 8, size: int = 64,
                 seed: int = 0, one_view_every: int = 5, name: str = "toy", bpe_vocab_size: int = 300) -> Path:
    """Write a prepared dataset under root/name; every `one_view_every`-th study has a single view."""
    rng = np.random.default_rng(seed)
    out = root / name
    png = root / f"{name}_png"
    png.mkdir(parents=True, exist_ok=True)
    staging = open_staging(out, {"toy": seed}, overwrite=True)
    items, splits, k = [], {"train": [], "val": [], "test": []}, 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for _ in range(n):
            finding = FINDINGS[k % 3]
            views = 1 if one_view_every and k % one_view_every == one_view_every - 1 else 2
            images = []
            for v in range(views):
                image_id = f"T{k:04d}-{v}"
                Image.fromarray(_view(rng, finding, size)).save(png / f"{image_id}.png")
                items.append((image_id, png / f"{image_id}.png"))
                images.append({"id": image_id, "view": "PA" if v == 0 else "LATERAL"})
            text = REPORTS[finding]
            splits[split].append({"id": f"T{k:04d}", "group": str(k), "images": images, "sections": {"findings": text},
                                  "mesh": [], "report": text.capitalize(), "target": text, "legacy_target": text,
                                  "labels": {"chexpert": _labels(finding)}})
            k += 1
    result = build_image_store(items, staging / "images", shorter=None)
    for rows in splits.values():
        for r in rows:
            for im in r["images"]:
                im["row"] = result.rows[im["id"]]
    return finish_dataset(
        staging, out, name=name, splits=splits, options={"seed": seed}, sources=[],
        cleaner={"name": "default", "version": "1"}, legacy_cleaner={"name": "legacy", "version": "1"},
        images={"count": len(items), "size": size, "views_per_study": 2}, labeler=None, counts={}, problems=[],
        bpe_vocab_size=bpe_vocab_size, legacy_threshold=1,
    )


BERT_WORDS = ["the", "heart", "is", "normal", "no", "effusion", "lung", "lungs", "clear", ".", "left", "right",
              "there", "a", "round", "lesion", "in", "are", "focal", "seen"]


def make_tiny_bert(directory: Path) -> Path:
    """A 1-layer BERT (hidden 16) with its own word-piece vocabulary, saved as a local HF model directory."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(directory)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(BERT_WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(directory)
    torch.random.set_rng_state(state)
    return directory
