"""`irralctl plot RUN... --out DIR`: PNG figures of training runs (losses, validation, test, clinical head).

Every option comes from `irralctl.plots.config.PlotConfig`.
"""

from __future__ import annotations

from typing import Any

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.plots.config import PlotConfig

EPILOG = """Examples:

  irralctl plot runs/irral --out figures/irral

  irralctl plot runs/baseline runs/cmn runs/irral --out figures/ablation --smooth 50
"""


def _plot(*, values: dict[str, Any], given: set[str]) -> None:
    """Draw training runs as PNGs: losses per step, validation per epoch, test CE F1, clinical head, lengths."""
    from irralctl.plots import plot_runs

    result = plot_runs(build(PlotConfig, values, given))
    console.print(f"wrote {', '.join(result.written) or 'nothing'} to {result.out}", markup=False, highlight=False,
                  soft_wrap=True)
    for name, why in result.skipped.items():
        console.print(f"  {name}: not drawn, {why}", markup=False, highlight=False, soft_wrap=True)


plot = bind(PlotConfig, _plot)
