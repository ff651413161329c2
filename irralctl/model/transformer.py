"""The transformer encoder-decoder of R2Gen/CMN (3 + 3 layers, d 512, 8 heads, d_ff 512, dropout 0.1).

Pre-norm residual blocks with a final LayerNorm, as the Annotated Transformer that R2Gen builds on.
The decoder layer takes its self-attention K/V cache and the encoder output's K/V explicitly, so
the same code runs teacher forcing (whole sequence, causal mask) and incremental decoding (one
token per step, cache appended). Cross-attention K/V are shared by the `group` consecutive rows
that decode one study (the beams of a beam search): queries are folded into the sequence axis so
the encoder's K/V are never copied per beam.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from irralctl.model.attention import MultiHeadAttention

KV = tuple[torch.Tensor, torch.Tensor]


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, N, d); mask: (B, 1, 1, N) True for real tokens."""
        h = self.norm1(x)
        a, _ = self.attn(h, *self.attn.keys_values(h), mask=mask)
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cross_kv: KV,
        cross_mask: torch.Tensor | None,
        past: KV | None = None,
        group: int = 1,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, KV, torch.Tensor | None]:
        """x: (B0*group, T, d); cross_kv: (B0, H, N, dh) each; cross_mask: (B0, 1, 1, N); past: (B0*group, H, t, dh).

        Returns the new x, the self-attention K/V including this call's positions, and the
        cross-attention weights (B0*group, H, T, N) when `need_weights`.
        """
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)                              # (B, H, T, dh)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, t+T, dh)
        # One new token attends to every cached position: no mask needed then.
        a, _ = self.self_attn(h, k, v, causal=past is None or x.shape[1] > 1)
        x = x + self.drop(a)

        h = self.norm2(x)
        b, t, d = h.shape
        q = h.reshape(b // group, group * t, d)                           # (B0, group*T, d): beams share K/V
        c, w = self.cross_attn(q, *cross_kv, mask=cross_mask, need_weights=need_weights)
        x = x + self.drop(c.reshape(b, t, d))
        if w is not None:
            heads, n = w.shape[1], w.shape[-1]
            w = w.view(b // group, heads, group, t, n).transpose(1, 2).reshape(b, heads, t, n)  # (B, H, T, N)
        return x + self.drop(self.ff(self.norm3(x))), (k, v), w


def sinusoid_1d(length: int, d: int) -> torch.Tensor:
    """(length, d) fixed positional codes of "Attention is all you need"."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(length, d)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return out


class TokenEmbedding(nn.Module):
    """Token ids -> scaled embeddings + sinusoidal positions (as the Annotated Transformer)."""

    def __init__(self, vocab_size: int, d_model: int, dropout: float, max_positions: int = 1024):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.scale = math.sqrt(d_model)
        self.max_positions = max_positions
        self.register_buffer("pos", sinusoid_1d(max_positions, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """tokens: (B, T) at positions start .. start+T-1 -> (B, T, d)."""
        t = tokens.shape[1]
        if start + t > self.max_positions:
            raise ValueError(f"sequence of {start + t} tokens exceeds {self.max_positions} positions")
        return self.drop(self.embed(tokens) * self.scale + self.pos[start:start + t])
