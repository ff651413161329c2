"""Multi-view visual encoder (Eq. 1: V = CNN(Img) W_E) with multi-scale fusion.

All views of all studies go through the CNN in one call (views folded into the batch, channels_last
memory layout); each view's stage-4 grid becomes h*w tokens of width d_model, and the tokens of a
study's views are concatenated: token n belongs to view n // (h*w), row (n % (h*w)) // w,
column n % w (`TokenGrid`). Missing views (single-view studies) are zero images whose tokens are
masked out everywhere downstream.

Positions: a fixed 2-D sinusoidal code of the grid cell plus a learned embedding of the view slot,
so the encoder knows where a token lies and which view it comes from (R2Gen adds neither).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from irralctl.constants import IMAGENET_GREY_MEAN, IMAGENET_GREY_STD
from irralctl.model.backbone import ResNetTrunk, TinyCNN, build_backbone
from irralctl.model.config import ModelConfig
from irralctl.model.fusion import MultiScaleFusion
from irralctl.model.transformer import sinusoid_1d


@dataclass(frozen=True)
class TokenGrid:
    """How the N visual tokens of a study map back to per-view grids: n = (v * height + i) * width + j."""

    views: int
    height: int
    width: int

    @property
    def tokens(self) -> int:
        return self.views * self.height * self.width

    def position(self, n: int) -> tuple[int, int, int]:
        """(view, row, column) of token n."""
        v, rest = divmod(n, self.height * self.width)
        return (v, *divmod(rest, self.width))


def grid_size(cfg: ModelConfig) -> int:
    """Side of each view's token grid for `cfg` (7 for a ResNet at 224 px)."""
    return (TinyCNN if cfg.backbone == "tiny" else ResNetTrunk).grid_size(cfg.image_size)


def sinusoid_2d(h: int, w: int, d: int) -> torch.Tensor:
    """(h*w, d) fixed positions: the first d/2 channels code the row, the last d/2 the column."""
    rows, cols = sinusoid_1d(h, d // 2), sinusoid_1d(w, d // 2)
    return torch.cat([rows[:, None, :].expand(h, w, -1), cols[None, :, :].expand(h, w, -1)], dim=-1).reshape(h * w, d)


def normalize_on_device(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 255] float) (..., S, S) -> ImageNet-normalised float, on the images' device."""
    return images.float().div(255.0).sub(IMAGENET_GREY_MEAN).div(IMAGENET_GREY_STD)


class VisualEncoder(nn.Module):
    """(B, V, S, S) uint8 views -> (B, V*h*w, d) tokens (Eq. 1, with multi-scale fusion)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.tiny_width, cfg.tiny_norm)
        c3, c4 = self.backbone.channels
        self.proj = nn.Linear(c4, cfg.d_model)  # W_E
        self.fusion = MultiScaleFusion(c3, cfg.d_model) if cfg.multiscale else None
        side = grid_size(cfg)
        self.grid = TokenGrid(cfg.views, side, side)
        self.register_buffer("cell_pos", sinusoid_2d(side, side, cfg.d_model), persistent=False)
        self.view_embed = nn.Parameter(torch.zeros(cfg.views, cfg.d_model))
        self.dropout = nn.Dropout(cfg.dropout)
        self._batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in self.backbone.modules())

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None) -> torch.Tensor:
        """images: (B, V, S, S) uint8; view_mask: (B, V) True for real views."""
        b, v, s, _ = images.shape
        x = normalize_on_device(images).reshape(b * v, 1, s, s)          # (B*V, 1, S, S): views folded
        real = None
        if self.training and self._batch_norm and view_mask is not None and not bool(view_mask.all()):
            # The blank images that stand for missing views must not enter BatchNorm's batch
            # statistics: only real views go through the CNN (a host sync, paid only when a
            # batch has a missing view and the CNN has BatchNorm).
            real = view_mask.reshape(-1).nonzero().squeeze(1)           # (R,)
            x = x.index_select(0, real)                                   # (R, 1, S, S)
        x = x.contiguous(memory_format=torch.channels_last)
        s3, s4 = self.backbone(x)                                         # (M, C3, 2h, 2w), (M, C4, h, w)
        h, w = s4.shape[-2:]
        if (v, h, w) != (self.grid.views, self.grid.height, self.grid.width):
            raise ValueError(f"images give a {v} x {h} x {w} token grid; the model was built for "
                             f"{self.grid.views} x {self.grid.height} x {self.grid.width} (image_size {self.cfg.image_size})")
        tokens = self.proj(s4.flatten(2).transpose(1, 2))                 # (M, h*w, d)
        if self.fusion is not None:
            tokens = self.fusion(tokens, s3)                              # (M, h*w, d)
        if real is not None:                                              # missing views: zero tokens, masked later
            tokens = tokens.new_zeros(b * v, *tokens.shape[1:]).index_copy(0, real, tokens)  # (B*V, h*w, d)
        tokens = tokens.reshape(b, v, h * w, -1) + self.cell_pos + self.view_embed[:, None, :]  # (B, V, h*w, d)
        return self.dropout(tokens.reshape(b, v * h * w, -1))           # (B, N, d)
