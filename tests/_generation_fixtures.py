"""Small trained runs for the generation and heatmap tests, built with the trainer's own API.

The toy dataset of `_train_data` (a bright disc in the left or right lung field, or none, and a
report saying which) is learnt in a few seconds by a tiny model, so decoded reports are the real
thing: peaked distributions, EOS where the report ends, different reports for different images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from irralctl.training import TrainConfig, train
from tests._train_data import make_dataset

TINY = dict(backbone="tiny", tiny_width=8, image_size=64, resize=72, d_model=32, n_heads=4, d_ff=32, enc_layers=1,
            dec_layers=2, memory_slots=32, memory_topk=4, batch_size=8, eval_batch_size=16, workers=0, warmup_steps=2,
            monitor="val_loss", max_len=24, mfa=False, meteor="off", dropout=0.0, lr=5e-3, lr_visual=5e-3)


def toy_dataset(root: Path, name: str = "toy") -> Path:
    return make_dataset(root, name=name)


def tiny_run(dataset: Path, out: Path, *, epochs: int = 16, **overrides) -> Path:
    """Train the tiny model on `dataset` into run directory `out`; returns `out`."""
    train(TrainConfig(dataset=dataset, out=out, epochs=epochs, **{**TINY, **overrides}))
    return out


def write_png(path: Path, height: int, width: int, seed: int = 0, disc: str | None = None) -> Path:
    """A toy-like radiograph of any size (a disc on the left or right when asked)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(90, 12, (height, width))
    if disc:
        yy, xx = np.mgrid[0:height, 0:width]
        cx = (0.3 if disc == "left" else 0.7) * width
        img[((xx - cx) / width) ** 2 + ((yy - height / 2) / height) ** 2 < 0.012] += 120
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path
