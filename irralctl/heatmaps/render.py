"""Drawing attention maps over radiographs with matplotlib (Agg, no pyplot state).

The colour scale is the paper's Fig. 3: 0 to 1 on a jet colour map, each map min-max normalised.
A view's h x w grid is upsampled bilinearly to the image's own size (the grid covers the whole
image: the model saw it squeezed to a square), so overlays keep the radiograph's aspect.

* `overlay_png`: one view, exactly the image's pixel size, a slim colour bar inside its right edge;
* `panel_png`: one word, its views side by side at their aspects, a title and a colour bar;
* `compare_png`: the paper's layout: one row per word, one column per (checkpoint, view).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from irralctl.utils.io import atomic_write

CMAP = "jet"
ALPHA = 0.5          # opacity of the heat map over the radiograph
DPI = 100
_NORM = Normalize(vmin=0.0, vmax=1.0)


@dataclass
class Panel:
    image: np.ndarray          # (H, W) uint8, the view at its own aspect
    heat: np.ndarray | None    # (h, w) in [0, 1]; None: no map (word absent)
    label: str = ""


def _scale() -> ScalarMappable:
    return ScalarMappable(norm=_NORM, cmap=CMAP)


def upsample(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) -> (height, width), bilinear, cell centres aligned (align_corners=False)."""
    t = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


def _draw(ax, panel: Panel):
    ax.imshow(panel.image, cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
    mappable = None
    if panel.heat is not None:
        h, w = panel.image.shape
        mappable = ax.imshow(upsample(panel.heat, h, w), cmap=CMAP, norm=_NORM, alpha=ALPHA, interpolation="nearest")
    ax.set_axis_off()
    return mappable


def _save(fig: Figure, path: Path, dpi: int = DPI) -> None:
    FigureCanvasAgg(fig)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)


def overlay_png(path: Path, panel: Panel) -> None:
    """The view with its map at exactly the image's pixel size, colour bar inside the right edge."""
    h, w = panel.image.shape
    fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    if _draw(ax, panel) is not None:
        cax = ax.inset_axes((0.93, 0.1, 0.025, 0.8))
        bar = fig.colorbar(_scale(), cax=cax, ticks=[0, 0.5, 1])
        size = max(5.0, h / 60)
        bar.ax.tick_params(labelsize=size, colors="white", length=2)
        bar.outline.set_edgecolor("white")
    _save(fig, path)


def _row_widths(panels: list[Panel], height: float) -> list[float]:
    return [height * p.image.shape[1] / p.image.shape[0] for p in panels]


def panel_png(path: Path, title: str, panels: list[Panel], height: float = 4.0) -> None:
    """One word: its views side by side (each at its aspect), a title, one colour bar."""
    gap, bar_w, top, bottom = 0.15, 0.5, 0.7, 0.35
    widths = _row_widths(panels, height)
    fig_w = sum(widths) + gap * (len(panels) + 1) + bar_w + gap
    fig_h = height + top + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    x = gap
    for panel, w in zip(panels, widths):
        ax = fig.add_axes((x / fig_w, bottom / fig_h, w / fig_w, height / fig_h))
        _draw(ax, panel)
        ax.set_title(panel.label, fontsize=9)
        x += w + gap
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / fig_h, va="top")
    _colorbar(fig, x / fig_w, bottom / fig_h, 0.15 / fig_w, height / fig_h)
    _save(fig, path)


def _colorbar(fig: Figure, x: float, y: float, w: float, h: float) -> None:
    cax = fig.add_axes((x, y, w, h))
    # The scale itself, opaque (the overlays' own mappable would carry their transparency).
    bar = fig.colorbar(_scale(), cax=cax, ticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    bar.ax.tick_params(labelsize=8)


def compare_png(path: Path, words: list[str], columns: list[str], cells: list[list[Panel]],
                notes: list[list[str]], height: float = 2.2) -> None:
    """Fig. 3's layout: cells[r][c] is word r in column c (a checkpoint's view); notes under each cell."""
    gap, label_w, head_h, note_h, bar_w = 0.12, 1.5, 0.45, 0.25, 0.45
    widths = _row_widths(cells[0], height) if cells else []
    fig_w = label_w + sum(widths) + gap * len(widths) + bar_w + 2 * gap
    row_h = height + note_h + gap
    fig_h = head_h + row_h * len(words) + gap
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    for r, word in enumerate(words):
        y = fig_h - head_h - (r + 1) * row_h + note_h
        fig.text(0.5 * label_w / fig_w, (y + height / 2) / fig_h, word, ha="center", va="center", fontsize=10,
                 wrap=True)
        x = label_w
        for c, (panel, w) in enumerate(zip(cells[r], widths)):
            ax = fig.add_axes((x / fig_w, y / fig_h, w / fig_w, height / fig_h))
            _draw(ax, panel)
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            fig.text((x + w / 2) / fig_w, (y - 0.05) / fig_h, notes[r][c], ha="center", va="top", fontsize=7,
                     color="dimgray")
            x += w + gap
    bottom = fig_h - head_h - len(words) * row_h + note_h
    _colorbar(fig, (fig_w - bar_w - gap + 0.1) / fig_w, bottom / fig_h, 0.15 / fig_w,
              (fig_h - head_h - bottom) / fig_h)
    _save(fig, path)
