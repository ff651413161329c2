"""IRRAL-Net and its baselines as flags of one model (`ModelConfig`, `build_model`).

One module per component: `backbone` (CNNs), `visual` (multi-view encoder, Eq. 1), `fusion`
(multi-scale), `memory` (CMN), `attention` + `transformer` (encoder-decoder), `acl` (Eq. 5 and
the clinical head), `mfa` (Eq. 2-4), `text_encoder` (BERT, training only), `losses`, `config`
(ModelConfig, presets; torch-free) and `irral` (the assembled model and its decoding interface).
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: a torch-free submodule (a config) must not import torch through this package.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.model.config": ("BACKBONES", "PRESETS", "ModelConfig", "apply_preset"),
    "irralctl.model.irral": ("DecodeState", "Encoded", "IRRALNet", "ModelOutput", "build_model"),
    "irralctl.model.visual": ("TokenGrid",),
})
