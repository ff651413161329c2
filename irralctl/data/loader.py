"""PyTorch access to a prepared dataset: `ReportDataset` + `collate`, used by training and generation.

Images leave the loader as uint8 (4x less host-to-device traffic than float32); normalisation to
the backbone's mean/std happens on the device (`irralctl.model.visual.normalize_on_device`). Augmentation follows R2Gen:
training resizes each view to `resize` x `resize` and takes a random `image_size` crop (no flip by
default: a horizontal flip swaps the heart to the wrong side); evaluation resizes straight to
`image_size`. Crops are drawn from a generator seeded by (seed, epoch, index), so a resumed run
sees exactly the batches an uninterrupted one would.

With persistent worker processes, each worker holds its own copy of the dataset, so an epoch set
on the main process's copy never reaches them: `EpochSampler` wraps a sampler and yields
(index, epoch) keys instead, which `ReportDataset` accepts as well as plain indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from irralctl.constants import BLANK, N_OBSERVATIONS
from irralctl.data.prepared import PreparedDataset
from irralctl.data.tokenizers import ReportTokenizer


@dataclass(frozen=True)
class LoaderConfig:
    text_field: str = "target"      # target (cleaned) or legacy_target (R2Gen's cleaner)
    max_report_tokens: int = 60     # tokens kept per report, BOS/EOS excluded (R2Gen: 60 IU, 100 MIMIC)
    views: int = 2                  # views per study given to the model
    image_size: int = 224           # model input, pixels
    resize: int = 256               # training: resize to this square before the random crop
    train: bool = False             # random crops (and flips, if enabled) on
    hflip: bool = False             # random horizontal flip in training (off: it swaps anatomy)
    seed: int = 0
    no_image: bool = False          # skip image reading (language-prior runs, text-only datasets)


class ReportDataset(Dataset):
    """One item per study: its views (uint8), token ids and CheXpert labels."""

    def __init__(self, dataset: PreparedDataset, split: str, tokenizer: ReportTokenizer, cfg: LoaderConfig):
        self.dataset, self.split, self.tokenizer, self.cfg = dataset, split, tokenizer, cfg
        self.records = dataset.records(split)
        self.epoch = 0
        texts = [r[cfg.text_field] for r in self.records]
        enc = tokenizer.encode_batch(texts) if hasattr(tokenizer, "encode_batch") else [tokenizer.encode(t) for t in texts]
        self.tokens = [[tokenizer.bos_id, *ids[: cfg.max_report_tokens], tokenizer.eos_id] for ids in enc]
        # Label codes: CheXpert's 1 / 0 / -1, and BLANK where an observation is not mentioned.
        self.labels = np.full((len(self.records), N_OBSERVATIONS), BLANK, dtype=np.int64)
        for k, r in enumerate(self.records):
            values = (r.get("labels") or {}).get("chexpert")
            if values:
                self.labels[k] = [BLANK if v is None else int(v) for v in values]
        self.rows = [[im["row"] for im in r["images"] if "row" in im][: cfg.views] for r in self.records]
        self._store = None if cfg.no_image else dataset.images

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _view(self, row: int, gen: torch.Generator | None) -> torch.Tensor:
        cfg = self.cfg
        if gen is None:
            return eval_view(self._store[row], cfg.image_size)
        img = torch.from_numpy(np.array(self._store[row]))[None]  # (1, H, W) uint8, copied out of the memmap
        img = resize_square(img, cfg.resize)
        top, left = (int(torch.randint(0, cfg.resize - cfg.image_size + 1, (1,), generator=gen)) for _ in range(2))
        img = img[:, top:top + cfg.image_size, left:left + cfg.image_size]
        if cfg.hflip and torch.rand((), generator=gen) < 0.5:
            img = img.flip(-1)
        return img

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        cfg = self.cfg
        images = torch.zeros(cfg.views, cfg.image_size, cfg.image_size, dtype=torch.uint8)
        n_views = 0
        if self._store is not None:
            gen = None
            if cfg.train:
                gen = torch.Generator().manual_seed(_item_seed(cfg.seed, epoch, index))
            for v, row in enumerate(self.rows[index]):
                images[v] = self._view(row, gen)[0]
            n_views = len(self.rows[index])
        return {
            "index": index,
            "images": images,
            "n_views": n_views,
            "tokens": torch.tensor(self.tokens[index], dtype=torch.long),
            "labels": torch.from_numpy(self.labels[index]),
        }


def eval_view(image: np.ndarray, image_size: int) -> torch.Tensor:
    """The evaluation transform of one (H, W) uint8 view: -> (1, S, S) uint8, resized (antialiased) to a square.

    Shared by the loader and by `irralctl generate` on image files, so both feed the model alike.
    """
    img = torch.from_numpy(np.array(image))[None]  # (1, H, W), copied (out of a memmap, or a read-only array)
    return resize_square(img, image_size)


class EpochSampler(Sampler):
    """Yields (index, epoch) for every index of `sampler`; `set_epoch` reaches the wrapped sampler too."""

    def __init__(self, sampler: Sampler, epoch: int = 0):
        self.sampler, self.epoch = sampler, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((int(i), epoch) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def resize_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) uint8 -> (C, size, size) uint8, bilinear with antialiasing.

    torch's uint8 path gives exactly torchvision's `resize(..., antialias=True)` without importing
    torchvision, whose import alone costs about a second of a CLI call.
    """
    if img.shape[-2:] == (size, size):
        return img
    return torch.nn.functional.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)[0]


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


def collate(batch: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Stack items; tokens right-padded with `pad_id`; `view_mask[b, v]` is True for real views."""
    lengths = torch.tensor([len(b["tokens"]) for b in batch], dtype=torch.long)
    tokens = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
    for k, b in enumerate(batch):
        tokens[k, : len(b["tokens"])] = b["tokens"]
    images = torch.stack([b["images"] for b in batch])                      # (B, V, S, S) uint8
    n_views = torch.tensor([b["n_views"] for b in batch])
    view_mask = torch.arange(images.shape[1])[None, :] < n_views[:, None]   # (B, V)
    return {
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "images": images,
        "view_mask": view_mask,
        "tokens": tokens,
        "lengths": lengths,
        "labels": torch.stack([b["labels"] for b in batch]),
    }
