"""Multi-scale adaptive fusion: the paper's "multi-scale adaptive attention" over CNN stages.

The stage-4 grid (stride 32 on a ResNet) sees large structures; the stage-3 grid (stride 16) keeps
finer detail (small opacities, lines and tubes). Both are projected to d_model (Eq. 1's W_E, one
per scale); the stage-3 grid is average-pooled onto the stage-4 grid so the token count stays
98 for two 224 px views. A learned, input-dependent softmax weight per token mixes the scales:

    w = softmax(MLP([P4; P3]))        (M, L, 2)
    V = w_4 * P4 + w_3 * P3
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiScaleFusion(nn.Module):
    def __init__(self, c3: int, d_model: int):
        super().__init__()
        self.proj3 = nn.Linear(c3, d_model)
        self.score = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.Tanh(), nn.Linear(d_model, 2))

    def forward(self, p4: torch.Tensor, s3: torch.Tensor) -> torch.Tensor:
        """p4: (M, L, d) projected stage-4 tokens; s3: (M, C3, H3, W3) stage-3 grid -> (M, L, d)."""
        m, length, d = p4.shape
        h = w = int(round(length ** 0.5))
        s3 = F.adaptive_avg_pool2d(s3, (h, w))                 # (M, C3, h, w)
        p3 = self.proj3(s3.flatten(2).transpose(1, 2))         # (M, h*w, d)
        weights = torch.softmax(self.score(torch.cat([p4, p3], dim=-1)), dim=-1)  # (M, L, 2)
        return weights[..., :1] * p4 + weights[..., 1:] * p3
