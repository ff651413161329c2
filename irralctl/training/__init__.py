"""Training IRRAL-Net and its baselines: `train(TrainConfig) -> TrainResult`, resumable, distributed.

Modules: `config` (TrainConfig and its nested groups), `data` (loaders), `loop` (step and epoch),
`evaluate` (validation), `scoring` (validation scores through irralctl.metrics), `optim` (AdamW
split, warm-up, plateau), `feedback` (Eq. 6 weights), `distributed` (torchrun state), `trainer`
(the run: build, epochs, checkpoints, the final test). Checkpoints and devices are
`irralctl.runs`'; decoding is `irralctl.generation.decoding`'s.
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: a torch-free submodule (a config) must not import torch through this package.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.training.config": ("TrainConfig",),
    "irralctl.training.trainer": ("TrainResult", "resume_config", "saved_config", "train"),
})
