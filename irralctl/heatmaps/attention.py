"""Word-to-image attention: the decoder's cross-attention over the visual tokens, per word or phrase.

`token_attention` teacher-forces a token sequence through the model's incremental decoder and
keeps, for every position t, the cross-attention weights of the step that predicts token t (its
query is the token before it): a (T, layers, heads, N) tensor over the study's N visual tokens.
A phrase is found as a run of its tokens in that sequence (its first occurrence); its map is the
mean over its tokens, of the mean over layers and heads (or the chosen ones). The N tokens split
back into one h x w grid per view with the model's `TokenGrid` (n = (v * h + i) * w + j), which is
what makes two-view studies drawable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from irralctl.errors import ConfigError
from irralctl.model import Encoded, IRRALNet, TokenGrid


@torch.inference_mode()
def token_attention(model: IRRALNet, encoded: Encoded, ids: Sequence[int]) -> torch.Tensor:
    """(len(ids), layers, heads, N) cross-attention of one study while each token of `ids` is predicted."""
    if encoded.memory.shape[0] != 1:
        raise ValueError("token_attention takes one study")
    state = model.init_decode_state(encoded, group=1)
    token = torch.tensor([model.cfg.bos_id], device=encoded.memory.device)
    maps = []
    for t in range(len(ids)):
        _, state, attention = model.decode_step(token, state, need_attention=True)
        maps.append(torch.stack([a[0].float() for a in attention]))     # (L, H, N)
        token = torch.tensor([int(ids[t])], device=token.device)
    if not maps:
        n = encoded.memory.shape[1]
        return torch.zeros(0, len(model.decoder_layers), model.cfg.n_heads, n)
    return torch.stack(maps).cpu()                                        # (T, L, H, N)


def find_phrase(ids: Sequence[int], phrase: Sequence[int],
                continues_word: Callable[[int], bool] | None = None) -> list[int] | None:
    """Positions of the first occurrence of `phrase` as consecutive tokens of `ids`, or None.

    With `continues_word(id)` (True for a sub-word piece that extends the word before it), an
    occurrence followed by such a piece is part of a longer word and is skipped: "lung" is not
    found in "lungs"."""
    ids, phrase = list(ids), list(phrase)
    if not phrase:
        return None
    n = len(phrase)
    for start in range(len(ids) - n + 1):
        if ids[start:start + n] == phrase:
            if continues_word is not None and start + n < len(ids) and continues_word(ids[start + n]):
                continue
            return list(range(start, start + n))
    return None


def pick_layer_head(attention: torch.Tensor, layer: int | None, head: int | None) -> torch.Tensor:
    """(T, L, H, N) -> (T, N): the chosen layer / head, or the mean over them."""
    n_layers, n_heads = attention.shape[1], attention.shape[2]
    if layer is not None:
        if not -n_layers <= layer < n_layers:
            raise ConfigError(f"--layer {layer}: the decoder has {n_layers} layer(s) (0 .. {n_layers - 1})")
        attention = attention[:, layer:layer + 1] if layer >= 0 else attention[:, [layer]]
    if head is not None:
        if not -n_heads <= head < n_heads:
            raise ConfigError(f"--head {head}: the decoder has {n_heads} head(s) (0 .. {n_heads - 1})")
        attention = attention[:, :, head:head + 1] if head >= 0 else attention[:, :, [head]]
    return attention.mean(dim=(1, 2))


def phrase_map(attention: torch.Tensor, positions: Sequence[int], layer: int | None = None,
               head: int | None = None) -> torch.Tensor:
    """The (N,) attention of a phrase at `positions`: mean over its tokens (and layers / heads)."""
    return pick_layer_head(attention[list(positions)], layer, head).mean(dim=0)


def split_views(weights: torch.Tensor, grid: TokenGrid, n_views: int) -> list[np.ndarray]:
    """(N,) weights -> one (h, w) grid per real view (the first n_views slots)."""
    grids = weights.reshape(grid.views, grid.height, grid.width).numpy()
    return [grids[v] for v in range(n_views)]


def normalize(grids: list[np.ndarray], mode: str = "view") -> list[np.ndarray]:
    """Min-max to [0, 1]: each view on its own (`view`) or all views of the study on one scale (`study`)."""
    def scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo)

    if mode == "study":
        lo = min(float(g.min()) for g in grids)
        hi = max(float(g.max()) for g in grids)
        return [scale(g, lo, hi) for g in grids]
    if mode != "view":
        raise ConfigError(f"unknown normalisation {mode!r}; choose view or study")
    return [scale(g, float(g.min()), float(g.max())) for g in grids]
