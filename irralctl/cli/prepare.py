"""`irralctl prepare ...`: build a prepared dataset directory from raw files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from irralctl.cli._common import OutDir, Overwrite, Workers, console
from irralctl.cli._progress import progress_bars

app = typer.Typer(
    help="Build a prepared dataset (manifests, tokenisers, image store, labels) from raw files.",
    no_args_is_help=True,
)

Sections = Annotated[str, typer.Option(help="Target text: findings (R2Gen's target) or findings+impression.")]
Cleaner = Annotated[str, typer.Option(help="Cleaner for `target`: default (keeps decimals, hyphens) or legacy (R2Gen, byte for byte).")]
ImageSize = Annotated[int, typer.Option(min=8, help="Shorter side of every view in the image store, pixels.")]
BpeVocab = Annotated[int, typer.Option(min=300, help="BPE vocabulary size (tokens, specials included).")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first problem instead of skipping and listing it in problems.csv.")]


def _workers(n: int) -> int:
    import os

    return n or (os.cpu_count() or 1)


def _summary(out: Path) -> None:
    from rich.table import Table

    from irralctl.data.prepared import PreparedDataset

    ds = PreparedDataset(out)
    counts = ds.info["counts"]
    table = Table(title=f"prepared {ds.name} -> {out}", show_header=True)
    for col in ("train", "val", "test", "images", "problems"):
        table.add_column(col, justify="right")
    table.add_row(*(str(counts.get(c, 0)) for c in ("train", "val", "test", "images", "problems")))
    console.print(table)
    dropped = counts.get("dropped") or {}
    if dropped:
        console.print("dropped studies: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if counts.get("problems"):
        console.print(f"[yellow]{counts['problems']} input problem(s) listed in {out / 'problems.csv'}[/]")


@app.command("iu-xray")
def iu_xray(
    out: OutDir,
    reports: Annotated[Optional[Path], typer.Option(help="NLMCXR_reports.tgz, its extracted ecgen-radiology/ folder, or an R2Gen annotation.json.")] = None,
    images: Annotated[Optional[Path], typer.Option(help="NLMCXR_png.tgz, a folder of CXR*.png named <parentImage id>.png, or R2Gen's images/<study>/<k>.png. Omit for a text-only dataset.")] = None,
    annotation: Annotated[Optional[Path], typer.Option(help="An R2Gen annotation.json whose train/val/test ids define the split (default: the committed R2Gen manifest).")] = None,
    metadata: Annotated[Optional[Path], typer.Option(help="nlmcxr_dicom_metadata.csv.gz: view position (PA, LATERAL, ...) of each image.")] = None,
    split: Annotated[str, typer.Option(help="r2gen (R2Gen's 2,069/296/590 studies, exactly) or random (seeded, report-disjoint).")] = "r2gen",
    val_ratio: Annotated[float, typer.Option(help="With --split random: fraction of reports for validation.")] = 0.1,
    test_ratio: Annotated[float, typer.Option(help="With --split random: fraction of reports for test.")] = 0.2,
    seed: Annotated[int, typer.Option(help="With --split random: shuffling seed.")] = 42,
    sections: Sections = "findings",
    cleaner: Cleaner = "default",
    image_size: ImageSize = 256,
    bpe_vocab_size: BpeVocab = 1000,
    legacy_threshold: Annotated[int, typer.Option(min=1, help="Legacy word vocabulary: minimum count in train (R2Gen: 3 for IU).")] = 3,
    workers: Workers = 0,
    strict: Strict = False,
    overwrite: Overwrite = False,
) -> None:
    """Prepare IU X-Ray (Open-i) for training, generation, labelling and scoring.

    Example: irralctl prepare iu-xray --reports NLMCXR_reports.tgz --images NLMCXR_png.tgz
    --metadata nlmcxr_dicom_metadata.csv.gz --out data/iu_xray
    """
    from irralctl.data.iu_prepare import IUPrepareConfig, prepare_iu_xray

    cfg = IUPrepareConfig(
        out=out, reports=reports, images=images, annotation=annotation, metadata=metadata, split=split,
        val_ratio=val_ratio, test_ratio=test_ratio, seed=seed, sections=sections, cleaner=cleaner,
        image_size=image_size, bpe_vocab_size=bpe_vocab_size, legacy_threshold=legacy_threshold,
        workers=_workers(workers), strict=strict, overwrite=overwrite,
    )
    with progress_bars() as start:
        prepare_iu_xray(cfg, progress=start)
    _summary(out)
