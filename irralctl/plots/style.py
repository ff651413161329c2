"""The look every irralctl figure shares: a figure on matplotlib's Agg canvas, tidy axes, atomic PNGs."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from irralctl.utils.io import atomic_write

DPI = 120
SMALL = 8     # legend and tick font size


def figure(width: float, height: float) -> Figure:
    """A figure of `width` x `height` inches drawn by Agg (thread-safe, nothing shown on screen)."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def grid(fig: Figure, n: int, columns: int = 3) -> list:
    """`n` axes in rows of at most `columns`."""
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    return [fig.add_subplot(rows, cols, k + 1) for k in range(n)]


def tidy(ax, *, legend: bool = False) -> None:
    """No top or right spine; a small frameless legend when asked and there is something to name."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=SMALL)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=SMALL, frameon=False)


def save(fig: Figure, path: str | Path) -> Path:
    """Lay the figure out and write it as a PNG under a temporary name, renamed into place."""
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    return Path(path)
