"""`compare.png` of `irralctl compare`: each group's mean of the headline metrics as bars, the std
over seeds as error bars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irralctl.plots import style


def bar_chart(result: dict, path: Path, columns: Mapping[str, str]) -> Path:
    """Grouped bars: one cluster per metric of `columns` ({metric: label}) present, one bar per group."""
    metrics = [m for m in columns if m in result["metrics"]]
    groups = result["groups"]
    width = 0.8 / max(1, len(groups))
    fig = style.figure(min(16.0, max(6.0, 1.2 + len(metrics) * (0.4 + 0.3 * len(groups)))), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(metrics))
    for k, g in enumerate(groups):
        means = [g["metrics"][m]["mean"] for m in metrics]
        stds = [g["metrics"][m]["std"] or 0.0 for m in metrics]  # one seed: no error bar
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=f"{g['name']} (n={g['n_seeds']})")
    ax.set_xticks(x, [columns[m] for m in metrics])
    ax.set_ylabel("score (mean over seeds)")
    ax.set_title(f"{result['n_studies']} test studies; error bars: std over seeds", fontsize=10)
    style.tidy(ax, legend=True)
    return style.save(fig, path)
