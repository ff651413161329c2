"""Opening a trained run for inference: model, tokeniser, training config and the cleaner of its texts.

Like `irralctl.training.load_for_inference`, but the checkpoint is memory-mapped (a checkpoint
also holds optimiser state, two or three times the weights, which inference never reads: mapping
saves most of a second per start on a full-size model), and what `generate` and `heatmap` need
besides the model is kept: the checkpoint's path, epoch and step, the tokeniser's kind and the
cleaner that produced the training targets (phrases and `--text` are normalised with it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from irralctl.data.cleaning import get_cleaner
from irralctl.data.prepared import PreparedDataset
from irralctl.data.tokenizers import ReportTokenizer
from irralctl.errors import InputError
from irralctl.model import IRRALNet
from irralctl.training.checkpoint import (
    BEST,
    LAST,
    load_checkpoint,
    model_from_checkpoint,
    tokenizer_of,
    train_config_of,
)
from irralctl.training.config import TrainConfig
from irralctl.training.distributed import resolve_device

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    model: IRRALNet               # eval mode, on `device`
    tokenizer: ReportTokenizer
    train_config: TrainConfig
    checkpoint: Path              # the .pt file read
    epoch: int | None
    step: int | None
    cleaner: dict | None          # {name, version} of the cleaner behind the training targets
    dataset: dict | None          # {name, fingerprint} of the training dataset
    device: torch.device

    @property
    def text_field(self) -> str:
        """The record field the run was trained on (`target` or `legacy_target`)."""
        return self.train_config.text_field

    @property
    def default_max_len(self) -> int:
        """Report tokens generated at most by default: as in the run's validation and test."""
        return self.train_config.gen_len - 1

    def describe(self) -> dict:
        return {"path": str(self.checkpoint), "epoch": self.epoch, "step": self.step,
                "tokenizer": self.train_config.tokenizer, "text_field": self.text_field,
                "cleaner": self.cleaner, "dataset": self.dataset}

    def normalizer(self) -> Callable[[str], str]:
        """The run's cleaner as a phrase normaliser (no sentence-final ' .' added to a bare phrase)."""
        fn = str.lower
        name = (self.cleaner or {}).get("name")
        if name:
            try:
                fn = get_cleaner(name)[2]
            except ValueError:
                log.warning("unknown cleaner %r in the checkpoint; phrases are only lower-cased", name)

        def normalize(text: str) -> str:
            out = fn(text).strip()
            if out.endswith(" .") and not text.rstrip().endswith("."):
                out = out[:-2].rstrip()
            return " ".join(out.split())

        return normalize

    def check_dataset(self, ds: PreparedDataset) -> None:
        """Refuse a prepared dataset whose tokeniser (of this run's kind) differs from the run's."""
        kind = self.train_config.tokenizer
        theirs = ds.tokenizer(kind)
        if theirs.to_json() != self.tokenizer.to_json():
            raise InputError(
                f"the {kind} tokeniser of this dataset differs from the one the checkpoint was trained with "
                f"({theirs.vocab_size} vs {self.tokenizer.vocab_size} tokens): another dataset or another preparation",
                path=ds.dir,
                hint=f"use the dataset the run was trained on (config.json: dataset.path; fingerprint "
                     f"{(self.dataset or {}).get('fingerprint', '?')[:12]}), or give its images as INPUT instead of --dataset")


def load_run(checkpoint: str | Path, device: str | torch.device = "auto") -> LoadedRun:
    """The run at `checkpoint` (a run directory: its best.pt, else last.pt; or a .pt file) on `device`."""
    path = Path(checkpoint)
    if not path.exists():
        raise InputError("checkpoint not found", path=path,
                         hint="give a run directory written by `irralctl train` (or one of its .pt files)")
    if path.is_dir() and not any((path / name).is_file() for name in (BEST, LAST)):
        raise InputError(f"no checkpoint ({BEST} or {LAST}) in this directory", path=path,
                         hint="train one first: `irralctl train DATASET --out RUN_DIR` (an interrupted run "
                              "continues with `irralctl train DATASET --resume RUN_DIR`)")
    ckpt = load_checkpoint(path, mmap=True)
    model = model_from_checkpoint(ckpt)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = model.to(dev).eval()
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return LoadedRun(model=model, tokenizer=tokenizer_of(ckpt), train_config=train_config_of(ckpt),
                     checkpoint=Path(ckpt["path"]), epoch=ckpt.get("epoch"), step=ckpt.get("step"),
                     cleaner=ckpt.get("cleaner"), dataset=ckpt.get("dataset"), device=dev)
