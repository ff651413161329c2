"""The cross-modal memory of CMN (Chen et al., ACL 2021): a shared matrix both modalities read.

A learned matrix M (slots x d_model, 2048 x 512 by default) is read with multi-head attention
restricted to the top-k (32) best-matching slots per query:

    q = x W_q,  K = M W_k,  V = M W_v                           (per head)
    r = sum_{i in topk(q K^T / sqrt(d_h))} softmax_i(q k_i / sqrt(d_h)) v_i

Visual tokens query it before the encoder and token embeddings before the decoder (the read-out
is added to the query, as in CMN); ACL reads it too (Eq. 5's T). K and V of the memory do not
depend on the input, so they are projected once per forward (`keys_values`) and, in decoding, once
per sequence; the anchor projected them again for every batch element on every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CrossModalMemory(nn.Module):
    def __init__(self, d_model: int, slots: int, topk: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.d_head, self.topk = n_heads, d_model // n_heads, topk
        self.memory = nn.Parameter(torch.empty(slots, d_model))  # rows of unit scale (irralctl.model.init)
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """K, V of the memory slots, each (H, S, dh)."""
        slots = self.memory.shape[0]
        k, v = self.kv_proj(self.memory).chunk(2, dim=-1)                     # (S, d) each
        return (k.view(slots, self.n_heads, self.d_head).transpose(0, 1),     # (H, S, dh)
                v.view(slots, self.n_heads, self.d_head).transpose(0, 1))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, L, d) queries -> (B, L, d) memory read-out. `kv` reuses `keys_values()`."""
        b, length, d = x.shape
        k, v = kv if kv is not None else self.keys_values()
        # Queries of every row share one axis per head, (H, B*L, dh): a (B, H, L, dh) @ (H, dh, S)
        # broadcast materialises K and V once per batch row (4x slower decoding at 3,000 beams).
        q = self.q_proj(x).view(b * length, self.n_heads, self.d_head).transpose(0, 1)  # (H, B*L, dh)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)        # (H, B*L, S)
        top = scores.topk(self.topk, dim=-1)                                # (H, B*L, k)
        weights = F.dropout(top.values.float().softmax(dim=-1), self.dropout, self.training)
        # Scatter the k weights back into a dense row so the read-out is one batched matmul.
        dense = torch.zeros_like(scores).scatter_(-1, top.indices, weights.to(scores.dtype))  # (H, B*L, S)
        out = (dense @ v).transpose(0, 1).reshape(b, length, d)            # (B, L, d)
        return self.out_proj(out)
