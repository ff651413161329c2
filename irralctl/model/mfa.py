"""Multi-modal feature alignment (MFA, Eq. 2-4): the text space, the report embedding, the loss.

    E_txt = tanh(U T[CLS] + c)                         (Eq. 3; the paper's sigma taken as tanh so the
                                                        embedding, like Z_img, can take either sign)
    Z_img = mean over valid tokens of TextSpace(V)     (the pooled visual tokens, projected)
    L     = NLL(report | V) + lambda * max(0, tau - cos(Z_img, E_txt))    (Eq. 4)

`TextSpace(x) = W_T read(x)`: the memory read-out of x (x itself when there is no memory matrix)
projected by W_T. ACL's T (Eq. 5) is the same projection of each encoder layer's tokens, so what
MFA aligns with the report embedding is exactly what ACL mixes into the visual features.
T[CLS] comes from a frozen BERT-family encoder (`irralctl.model.text_encoder`), in training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
    """Eq. 3: E_txt = tanh(U T[CLS] + c), from the BERT hidden size to d_model."""

    def __init__(self, text_dim: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, d_model)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(cls))                               # (B, d)


def mfa_hinge(z_img: torch.Tensor, z_txt: torch.Tensor, margin: float) -> torch.Tensor:
    """Eq. 4's alignment term per study: max(0, tau - cos(Z_img, Z_txt)) -> (B,)."""
    return F.relu(margin - F.cosine_similarity(z_img.float(), z_txt.float(), dim=-1))
