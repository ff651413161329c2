"""`irralctl heatmap --checkpoint RUN_DIR --study PATH --words "..." --out DIR`: word-to-image attention.

Every option comes from `irralctl.heatmaps.config.HeatmapConfig`.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.heatmaps.config import HeatmapConfig

EPILOG = """Examples:

  irralctl heatmap --checkpoint runs/irral --study xrays/CXR2384_IM-0942 --words "cardiac silhouette,pleural effusion" --out maps

  irralctl heatmap --checkpoint runs/irral --dataset data/iu --id CXR2384_IM-0942 --words "opacity,bilateral" --out maps

  irralctl heatmap --compare runs/base --compare runs/cmn --compare runs/irral --labels "Base,CMN,IRRAL" --study scan.dcm --words "heart,effusion" --text "the heart is enlarged . small left effusion ." --out fig3
"""


def _heatmap(*, values: dict[str, Any], given: set[str]) -> None:
    """Overlay the decoder's cross-attention for each word on each view of a study (the paper's Fig. 3)."""
    from rich.table import Table

    from irralctl.heatmaps import make_heatmaps

    config = build(HeatmapConfig, values, given)
    result = make_heatmaps(config)
    for rm in result.runs:
        console.print(f"[bold]{escape(rm.label)}[/] generated: {escape(rm.generated)}", highlight=False)
    table = Table(title_justify="left")
    for col in ("word", "checkpoint", "source", "view shares", "file"):
        table.add_column(col)
    for rm in result.runs:
        for wm in rm.words:
            shares = " / ".join(f"{s:.0%}" for s in wm.shares)
            table.add_row(escape(wm.word), escape(rm.label), wm.source or "[yellow]absent[/]", shares,
                          escape(wm.files.get("panel", "-")))
    console.print(table)
    if result.compare is not None:
        console.print(f"comparison: {escape(str(result.compare))}", highlight=False)
    console.print(f"wrote {escape(str(result.out))} (sources and files in {escape(str(result.sidecar))})", highlight=False)


heatmap = bind(HeatmapConfig, _heatmap)
