"""MFA diagnostics on the validation split: would a collapse of Eq. 4's embeddings show?

Logged every epoch (metrics.jsonl) when MFA trains:

* `val_mfa`: the alignment loss on validation (the running means of training, not updated);
* `val_mfa_text_cos`, `val_mfa_image_cos`: mean cosine between the embeddings of two different
  studies, text side and image side. Near 1: every report (or image) maps to the same point;
* `val_mfa_matched_cos` / `val_mfa_mismatched_cos`: mean similarity (as the MFA mode compares)
  of an image with its own report and with the others' reports;
* `val_mfa_recall_at_1`: how often an image's most similar report is its own (chance: 1/n).

A collapsed alignment has matched = mismatched and recall at chance, however low its loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from irralctl.model import IRRALNet
from irralctl.model.mfa import MFALoss
from irralctl.model.text_encoder import TextEncoder


@torch.no_grad()
def text_features(encoder: TextEncoder, texts: Sequence[str], device: torch.device, chunk: int = 64) -> torch.Tensor:
    """T of every text (n, hidden), in fp32, in eval mode (for validation only)."""
    was_training = encoder.training
    encoder.eval()
    out = []
    with torch.autocast(device.type, enabled=False):
        for start in range(0, len(texts), chunk):
            enc = encoder.tokenize(list(texts[start:start + chunk]))
            out.append(encoder(**{k: v.to(device) for k, v in enc.items()}).float())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, encoder.hidden_size, device=device)


def _mean_pairwise_cos(z: torch.Tensor) -> float:
    n = z.shape[0]
    z = F.normalize(z.float(), dim=-1)
    sim = z @ z.T
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def mfa_diagnostics(model: IRRALNet, mfa: MFALoss, z_img: np.ndarray, features: torch.Tensor) -> dict[str, float]:
    """z_img: (n, d) validation images in the text space; features: (n, hidden) their reports' T."""
    n = z_img.shape[0]
    if n < 2:
        return {}
    was_training = mfa.training
    mfa.eval()
    img = torch.from_numpy(z_img).to(features.device).float()          # (n, d)
    txt = model.text_head(features.to(model.text_head.proj.weight.dtype)).float()  # (n, d)
    sim = mfa.similarity(img, txt)                                      # (n, n)
    matched = sim.diagonal()
    loss = mfa(img, txt)
    mfa.train(was_training)
    return {
        "val_mfa": float(loss.mean()),
        "val_mfa_text_cos": _mean_pairwise_cos(txt),
        "val_mfa_image_cos": _mean_pairwise_cos(img),
        "val_mfa_matched_cos": float(matched.mean()),
        "val_mfa_mismatched_cos": float((sim.sum() - matched.sum()) / (n * (n - 1))),
        "val_mfa_recall_at_1": float((sim.argmax(dim=1) == torch.arange(n, device=sim.device)).float().mean()),
    }
