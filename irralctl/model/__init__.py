"""IRRAL-Net and its baselines as flags of one model (`ModelConfig`, `build_model`).

One module per component: `backbone` (CNNs), `visual` (multi-view encoder, Eq. 1), `fusion`
(multi-scale), `memory` (CMN), `attention` + `transformer` (encoder-decoder), `acl` (Eq. 5 and
the clinical head), `mfa` (Eq. 2-4), `text_encoder` (BERT, training only), `losses`, and `irral`
(the assembled model and its decoding interface).
"""

from __future__ import annotations

from pathlib import Path

from irralctl.model.config import BACKBONES, PRESETS, ModelConfig, apply_preset
from irralctl.model.irral import DecodeState, Encoded, IRRALNet, ModelOutput
from irralctl.model.visual import TokenGrid

__all__ = [
    "BACKBONES", "PRESETS", "DecodeState", "Encoded", "IRRALNet", "ModelConfig", "ModelOutput", "TokenGrid",
    "apply_preset", "build_model",
]


def build_model(cfg: ModelConfig, visual_weights: str | Path | None = None) -> IRRALNet:
    """The model for `cfg`; `visual_weights` is a torchvision ResNet state_dict (ImageNet weights)."""
    model = IRRALNet(cfg)
    if visual_weights is not None and model.visual is not None:
        from irralctl.model.backbone import load_visual_weights

        load_visual_weights(model.visual.backbone, visual_weights)
    return model
