"""Runs and checkpoints, shared by training, generation, heatmaps and the demo.

Modules: `layout` (the run directory's files), `checkpoint` (save, load, verify: the one
checkpoint loader), `device` (the one device and precision policy), `loaded` (a run opened for
inference: `load_run`). Generation and heatmaps read runs only through this package; nothing
here imports training.
"""

from __future__ import annotations

from irralctl.runs.layout import BEST, LAST, RunLayout, checkpoint_file

__all__ = ["BEST", "LAST", "RunLayout", "checkpoint_file"]
