"""Comparing trained runs: mean ± std over seeds per preset, and paired tests against a reference.

Modules: `config` (CompareConfig), `runs` (reading and checking run directories, grouping),
`stats` (paired bootstrap intervals, randomisation p-values, verdicts over groups of seeds),
`compare` (`compare_runs`, `write_outputs`), `tables` (Markdown, CSV, LaTeX); its PNG is drawn by
`irralctl.plots.compare`.
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: the config is read by the CLI at start-up and must not import numpy.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.compare.config": ("CompareConfig",),
    "irralctl.compare.compare": ("OUTPUT_FILES", "compare_runs", "write_outputs"),
})
