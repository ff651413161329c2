"""`irralctl heatmap --checkpoint RUN_DIR --study PATH --words "..." --out DIR`: word-to-image attention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from irralctl.cli._common import Device, Overwrite, console

EPILOG = """Examples:

  irralctl heatmap --checkpoint runs/irral --study xrays/CXR2384_IM-0942 --words "cardiac silhouette,pleural effusion" --out maps
  irralctl heatmap --checkpoint runs/irral --dataset data/iu --id CXR2384_IM-0942 --words "opacity,bilateral" --out maps
  irralctl heatmap --compare runs/base --compare runs/mfa --compare runs/irral --labels "Base,+MFA,+ACL" \\
      --study scan.dcm --words "heart,effusion" --text "the heart is enlarged . small left effusion ." --out fig3
"""


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def heatmap(
    words: Annotated[str, typer.Option(help="Words or phrases, comma-separated: \"cardiac silhouette,pleural effusion\".")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (PNGs and heatmaps.json; must not exist unless --overwrite).")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="Run directory of `irralctl train` (or a .pt file).")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="More checkpoints for the Fig. 3 comparison (repeat the option, or comma-separate): one column each.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Column labels, comma-separated, one per checkpoint. Default: run directory names.")] = None,
    study: Annotated[Optional[Path], typer.Option(help="One study: a folder of its views (PNG, JPEG, DICOM) or one image.")] = None,
    dataset: Annotated[Optional[Path], typer.Option(help="A prepared dataset holding the study (with --id); its reference report serves words the generated one lacks.")] = None,
    id: Annotated[Optional[str], typer.Option("--id", help="Record id of the study in --dataset.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split of --dataset to look in. Default: every split.")] = None,
    text: Annotated[Optional[str], typer.Option(help="A report to teacher-force for words absent from the generated one (and the reference).")] = None,
    layer: Annotated[Optional[int], typer.Option(help="Decoder layer to read (0-based; -1 = last). Default: mean over layers.")] = None,
    head: Annotated[Optional[int], typer.Option(help="Attention head to read (0-based). Default: mean over heads.")] = None,
    normalize: Annotated[str, typer.Option(help="view: each map min-max to [0, 1]; study: a word's views share one scale. Default view.")] = "view",
    beam_size: Annotated[int, typer.Option(help="Beam width of the generated report. Default 3.", min=1)] = 3,
    max_len: Annotated[Optional[int], typer.Option(help="Most report tokens. Default: the run's.", min=1)] = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Overlay the decoder's cross-attention for each word on each view of a study (the paper's Fig. 3)."""
    from irralctl.generation import DecodeConfig
    from irralctl.heatmaps import HeatmapConfig, make_heatmaps
    checkpoints = ([checkpoint] if checkpoint is not None else []) + [Path(c) for c in _split(compare)]
    config = HeatmapConfig(
        checkpoints=tuple(checkpoints), out=out, words=tuple(_split([words])), study=study, dataset=dataset, id=id,
        split=split, text=text, labels=tuple(_split([labels] if labels else None)), layer=layer, head=head,
        normalize=normalize, decoding=DecodeConfig(beam_size=beam_size, max_len=max_len), device=device,
        overwrite=overwrite,
    )
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
