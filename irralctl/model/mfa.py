"""Multi-modal feature alignment (MFA, Eq. 2-4): the text space, the report embedding, the loss.

    E_txt = tanh(U T + c)                              (Eq. 3; the paper's sigma taken as tanh so the
                                                        embedding, like Z_img, can take either sign)
    Z_img = mean over valid tokens of TextSpace(V)     (the pooled visual tokens, projected)
    L     = NLL(report | V) + lambda * max(0, tau - cos(Z_img, E_txt))    (Eq. 4)

`TextSpace(x) = W_T read(x)`: the memory read-out of x (x itself when there is no memory matrix)
projected by W_T. ACL's T (Eq. 5) is the same projection of each encoder layer's tokens, so what
MFA aligns with the report embedding is exactly what ACL mixes into the visual features. T comes
from a frozen BERT-family encoder (`irralctl.model.text_encoder`), in training only.

Read literally, Eq. 4 compares each image only with its own report, so constant embeddings
satisfy it: with the real MiniLM the hinge reaches 0 within a few steps and matched and mismatched
pairs end with the same cosine. `MFALoss` therefore has three modes (`--mfa-mode`):

* `centered` (default; still Eq. 4): both embeddings are centred on a running mean of the
  batches before the cosine, the text side is a fixed target (no gradient: E_txt cannot drift
  towards a constant), and T is the mean of the encoder's tokens, as MiniLM was trained to be
  read (not T[CLS]). A constant image embedding is centred to zero, so its hinge stays at tau:
  the loss can only fall by telling reports apart.
* `literal`: Eq. 4 as printed, T[CLS], both sides trained (for comparison; it collapses).
* `infonce`: in-batch negatives, symmetric cross-entropy of cosine similarities over a
  temperature: beyond the paper, separates far more; documented in docs/model.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irralctl.model.config import MFA_MODES
from irralctl.model.memory import CrossModalMemory


class TextSpace(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, d_model)  # W_T

    def forward(self, x: torch.Tensor, memory: CrossModalMemory | None,
                memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, N, d) -> T: (B, N, d)."""
        h = self.norm(x)
        return self.proj(memory(h, memory_kv) if memory is not None else h)


class TextHead(nn.Module):
    """Eq. 3: E_txt = tanh(U T + c), from the BERT hidden size to d_model."""

    def __init__(self, text_dim: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, d_model)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(text))                              # (B, d)


def mfa_hinge(z_img: torch.Tensor, z_txt: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 4's alignment term per study: max(0, tau - cos(Z_img, Z_txt)) -> (B,)."""
    return F.relu(margin - F.cosine_similarity(z_img.float(), z_txt.float(), dim=-1))


class MFALoss(nn.Module):
    """Eq. 4's alignment term per study, in one of `MFA_MODES` (see the module docstring).

    The running means (centred mode) are buffers: they go into checkpoints, so a resumed run
    continues with the same ones, and DistributedDataParallel keeps them equal on every process.
    """

    def __init__(self, d_model: int, mode: str = "centered", margin: float = 0.5, momentum: float = 0.9,
                 temperature: float = 0.1):
        super().__init__()
        if mode not in MFA_MODES:
            raise ValueError(f"unknown MFA mode {mode!r}")
        self.mode, self.margin, self.momentum, self.temperature = mode, margin, momentum, temperature
        self.register_buffer("mean_img", torch.zeros(d_model))
        self.register_buffer("mean_txt", torch.zeros(d_model))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def similarity(self, z_img: torch.Tensor, z_txt: torch.Tensor) -> torch.Tensor:
        """(B, B') cosine similarity of every image with every report, as this mode compares them."""
        a, b = z_img.float(), z_txt.float()
        if self.mode == "centered":
            a, b = a - self.mean_img, b - self.mean_txt
        return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    @torch.no_grad()
    def _update_means(self, z_img: torch.Tensor, z_txt: torch.Tensor) -> None:
        # The first batch sets the means; later ones move them (a running mean is what small
        # batches need: centring on a batch of 2 would leave little to compare). Under
        # DistributedDataParallel the batch is the global one: sums and counts are all-reduced, so
        # every process holds the means one process would (no host sync: `seen` is a 0/1 blend).
        stats = torch.cat([z_img.detach().float().sum(dim=0), z_txt.detach().float().sum(dim=0),
                           torch.full((1,), z_img.shape[0], dtype=torch.float32, device=z_img.device)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        d = self.mean_img.shape[0]
        n = stats[-1].clamp_min(1.0)
        m = self.momentum * (self.seen > 0).float()                         # 0 for the first batch
        self.mean_img.mul_(m).add_((1 - m) * stats[:d] / n)
        self.mean_txt.mul_(m).add_((1 - m) * stats[d:2 * d] / n)
        self.seen += 1

    def forward(self, z_img: torch.Tensor, z_txt: torch.Tensor) -> torch.Tensor:
        """z_img, z_txt: (B, d) -> per-study loss (B,)."""
        if self.mode == "literal":
            return mfa_hinge(z_img, z_txt, self.margin)
        if self.mode == "infonce":
            logits = F.normalize(z_img.float(), dim=-1) @ F.normalize(z_txt.float(), dim=-1).T / self.temperature
            target = torch.arange(logits.shape[0], device=logits.device)
            return 0.5 * (F.cross_entropy(logits, target, reduction="none")
                          + F.cross_entropy(logits.T, target, reduction="none"))
        z_txt = z_txt.detach()  # a fixed target: only the image side moves
        if self.training:
            self._update_means(z_img, z_txt)
        centred_img = z_img.float() - self.mean_img
        centred_txt = z_txt.float() - self.mean_txt
        return F.relu(self.margin - F.cosine_similarity(centred_img, centred_txt, dim=-1, eps=1e-6))
