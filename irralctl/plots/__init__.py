"""Every figure irralctl draws, as PNG files on matplotlib's Agg canvas (no pyplot state, no display).

Modules: `style` (figures, axes, saving: the look every figure shares), `runs` (reading a run's
logs; training, validation, clinical-head figures; `plot_runs` for `irralctl plot`), `reports`
(per-observation CE F1 bars and report-length histograms, for runs and for `irralctl score
--plot`), `compare` (`irralctl compare`'s bar chart), `config` (PlotConfig).
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: the config is read by the CLI at start-up and must not import matplotlib.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.plots.config": ("PlotConfig",),
    "irralctl.plots.runs": ("plot_runs",),
    "irralctl.plots.reports": ("plot_scores",),
})
