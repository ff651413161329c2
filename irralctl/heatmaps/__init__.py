"""Word-to-image attention heatmaps (`irralctl heatmap`): the paper's Fig. 3, for one- and two-view studies.

Modules: `attention` (teacher-forced cross-attention, phrase lookup, per-view grids), `render`
(matplotlib overlays, panels, the comparison figure), `run` (`make_heatmaps`: the whole command).
"""

from __future__ import annotations

from irralctl.heatmaps.attention import find_phrase, normalize, phrase_map, split_views, token_attention
from irralctl.heatmaps.run import HeatmapConfig, HeatmapResult, make_heatmaps

__all__ = ["HeatmapConfig", "HeatmapResult", "find_phrase", "make_heatmaps", "normalize", "phrase_map", "split_views",
           "token_attention"]
