"""`irralctl export DATASET|RUN --to hf|r2gen|safetensors DIR`: datasets and runs for other tools.

Every option comes from `irralctl.export.config.ExportConfig`.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.export.config import ExportConfig

EPILOG = """Examples:

  irralctl export data/iu_xray --to hf exports/iu_xray_hf

  irralctl export data/iu_xray --to r2gen exports/iu_xray_r2gen

  irralctl export runs/irral --to safetensors exports/irral
"""


def _export(*, values: dict[str, Any], given: set[str]) -> None:
    """Export a prepared dataset (Hugging Face datasets, R2Gen's layout) or a run (safetensors and a model card)."""
    from irralctl.cli._progress import progress_bars
    from irralctl.export import export

    cfg = build(ExportConfig, values, given)
    with progress_bars(transient=True) as progress:
        result = export(cfg, progress)
    shown = ", ".join(f"{k} {v}" for k, v in result.counts.items() if isinstance(v, (int, float, str)))
    console.print(f"exported {escape(str(cfg.source))} --to {result.to} -> {escape(str(result.out))} ({shown})",
                  highlight=False, soft_wrap=True)
    console.print("files: " + ", ".join(result.files), highlight=False, soft_wrap=True)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


export = bind(ExportConfig, _export)
