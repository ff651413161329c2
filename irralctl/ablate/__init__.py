"""`irralctl ablate`: a grid of training runs (presets x seeds) and its comparison table, resumable.

Modules: `config` (AblateConfig: the grid's options and the shared TrainConfig), `grid`
(`run_ablation`: plan, train or resume each run in this process, then `irralctl.compare`).
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: the config is read by the CLI at start-up and must not import torch.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.ablate.config": ("AblateConfig",),
    "irralctl.ablate.grid": ("AblateResult", "grid_runs", "run_ablation"),
})
