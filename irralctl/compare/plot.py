"""`compare.png`: each group's mean of the headline metrics as bars, the std over seeds as error
bars (matplotlib's Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irralctl.compare.tables import PAPER_COLUMNS
from irralctl.utils.io import atomic_write


def bar_chart(result: dict, path: Path) -> None:
    """Grouped bars: one cluster per metric of the paper's Table 3 present, one bar per group."""
    metrics = [m for m in PAPER_COLUMNS if m in result["metrics"]]
    groups = result["groups"]
    width = 0.8 / max(1, len(groups))
    fig = Figure(figsize=(min(16.0, max(6.0, 1.2 + len(metrics) * (0.4 + 0.3 * len(groups)))), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(metrics))
    for k, g in enumerate(groups):
        means = [g["metrics"][m]["mean"] for m in metrics]
        stds = [g["metrics"][m]["std"] or 0.0 for m in metrics]  # one seed: no error bar
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=f"{g['name']} (n={g['n_seeds']})")
    ax.set_xticks(x, [PAPER_COLUMNS[m] for m in metrics])
    ax.set_ylabel("score (mean over seeds)")
    ax.set_title(f"{result['n_studies']} test studies; error bars: std over seeds", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
