"""Training IRRAL-Net and its baselines: `train(TrainConfig) -> TrainResult`, resumable, distributed.

Modules: `config` (TrainConfig), `data` (loaders), `loop` (step and epoch), `evaluate`,
`scoring` (the bridge to irralctl.metrics), `optim` (AdamW split, warm-up, plateau), `feedback`
(Eq. 6 weights), `checkpoint` (save, load, `load_for_inference`), `distributed` (torchrun state),
`trainer` (the run).
"""

from __future__ import annotations

from irralctl.training.checkpoint import load_for_inference
from irralctl.training.config import TrainConfig
from irralctl.training.loop import Callbacks
from irralctl.training.trainer import TrainResult, resume_config, train

__all__ = ["Callbacks", "TrainConfig", "TrainResult", "load_for_inference", "resume_config", "train"]
