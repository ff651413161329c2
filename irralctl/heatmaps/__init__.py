"""Word-to-image attention heatmaps (`irralctl heatmap`): the paper's Fig. 3, for one- and two-view studies.

Modules: `config` (HeatmapConfig), `attention` (teacher-forced cross-attention, phrase lookup,
per-view grids), `render` (matplotlib overlays, panels, the comparison figure), `run`
(`make_heatmaps`: the whole command).
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: a torch-free submodule (a config) must not import torch through this package.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.heatmaps.config": ("HeatmapConfig",),
    "irralctl.heatmaps.run": ("HeatmapResult", "make_heatmaps"),
    "irralctl.heatmaps.attention": ("find_phrase", "normalize", "phrase_map", "split_views", "token_attention"),
})
