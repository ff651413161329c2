"""Multi-head attention on torch's fused `scaled_dot_product_attention`, with explicit K/V.

Keys and values are projected by `keys_values` and passed to `forward` by the caller, so a decoder
can cache them: self-attention K/V grow by one position per decoding step, cross-attention K/V of
the encoder output are projected once per sequence. Attention weights are computed (by an explicit
softmax, which the fused kernel does not expose) only when asked for, and returned, never stored.

Masks are boolean with True meaning "may attend", broadcastable to (B, H, T, L).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)  # K and V in one matmul
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, dh)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, d) -> K, V, each (B, H, L, dh)."""
        k, v = self.kv_proj(x).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, d) queries; k, v: (B, H, L, dh) -> (B, T, d), and (B, H, T, L) weights on request."""
        b, t, d = x.shape
        q = self._heads(self.q_proj(x))                                   # (B, H, T, dh)
        p = self.dropout if self.training else 0.0
        # The fused kernel's is_causal aligns the triangle top-left, which is wrong when cached keys
        # precede the queries; build the mask explicitly in that case (and with weights or a mask).
        if causal and (need_weights or mask is not None or t != k.shape[2]):
            allowed = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
            mask = allowed if mask is None else mask & allowed
            causal = False
        if need_weights:
            scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(self.d_head)  # (B, H, T, L)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, p, self.training).to(v.dtype) @ v    # (B, H, T, dh)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        out = out.transpose(1, 2).reshape(b, t, d)                        # (B, T, d)
        return self.out_proj(out), weights
