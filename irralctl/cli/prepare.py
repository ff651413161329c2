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
    if ds.info.get("example_layout") == "image":
        console.print(f"one example per image ({counts.get('studies', '?')} studies)")
    dropped = counts.get("dropped") or {}
    if dropped:
        console.print("dropped studies: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if counts.get("problems"):
        kinds = _problem_kinds(out / "problems.csv")
        console.print(f"[yellow]{counts['problems']} input problem(s) skipped ({kinds}), "
                      f"listed in {out / 'problems.csv'}[/]", soft_wrap=True)


def _problem_kinds(path: Path) -> str:
    import csv
    from collections import Counter

    with open(path, encoding="utf-8", newline="") as f:
        kinds = Counter(row["kind"] for row in csv.DictReader(f))
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


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


@app.command("mimic")
def mimic(
    out: OutDir,
    root: Annotated[Path, typer.Option(help="MIMIC-CXR-JPG root: holds files/pXX/pSUBJECT/sSTUDY/*.jpg and mimic-cxr-2.0.0-{split,metadata,chexpert}.csv.gz.")],
    reports: Annotated[Path, typer.Option(help="MIMIC-CXR reports: mimic-cxr-reports.zip, or its extracted files/ folder (or the folder holding it).")],
    split_csv: Annotated[Optional[Path], typer.Option(help="The split csv (default: ROOT/mimic-cxr-2.0.0-split.csv.gz).")] = None,
    metadata: Annotated[Optional[Path], typer.Option(help="The metadata csv with ViewPosition (default: ROOT/mimic-cxr-2.0.0-metadata.csv.gz if present).")] = None,
    chexpert: Annotated[Optional[Path], typer.Option(help="The official CheXpert labels csv, kept as labels.chexpert_official (default: ROOT/mimic-cxr-2.0.0-chexpert.csv.gz if present).")] = None,
    sections: Annotated[str, typer.Option(help="Target text: findings (R2Gen's target), findings+impression, or impression. Studies whose target is empty are dropped and counted. Default findings.")] = "findings",
    views: Annotated[str, typer.Option(help="Views kept: all, frontal (PA and AP), or a comma list of ViewPosition values such as PA,AP,LATERAL. Default all.")] = "all",
    per_image: Annotated[bool, typer.Option("--per-image", help="One example per image (R2Gen's MIMIC layout) instead of one per study with its views as a set.")] = False,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Decode the images into the store (default), or build a text-only dataset.")] = True,
    cleaner: Cleaner = "default",
    image_size: ImageSize = 256,
    bpe_vocab_size: BpeVocab = 4000,
    legacy_threshold: Annotated[int, typer.Option(min=1, help="Legacy word vocabulary: minimum count in train (R2Gen: 10 for MIMIC). Default 10.")] = 10,
    max_studies: Annotated[Optional[int], typer.Option(min=1, help="Keep a random subset of this many studies (seeded by --seed), for debugging. Default: all.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --max-studies subset. Default 42.")] = 42,
    workers: Workers = 0,
    strict: Strict = False,
    overwrite: Overwrite = False,
) -> None:
    """Prepare MIMIC-CXR-JPG with the MIMIC-CXR reports: official split, views, official and own labels.

    An interrupted run resumes where it stopped when rerun with the same options.

    Example: irralctl prepare mimic --root mimic-cxr-jpg/2.1.0 --reports mimic-cxr-reports.zip
    --views frontal --out data/mimic
    """
    from irralctl.data.mimic import MimicPrepareConfig, prepare_mimic

    cfg = MimicPrepareConfig(
        root=root, reports=reports, out=out, split_csv=split_csv, metadata=metadata, chexpert=chexpert,
        sections=sections, views=views, per_image=per_image, cleaner=cleaner, image_size=image_size,
        images=images, bpe_vocab_size=bpe_vocab_size, legacy_threshold=legacy_threshold,
        max_studies=max_studies, seed=seed, workers=_workers(workers), strict=strict, overwrite=overwrite,
    )
    with progress_bars() as start:
        prepare_mimic(cfg, progress=start)
    _summary(out)


@app.command("phantoms")
def phantoms(
    out: OutDir,
    n: Annotated[int, typer.Option("--n", min=10, help="Number of studies (two views each).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: study i depends only on (seed, i).")] = 0,
    image_size: Annotated[int, typer.Option(min=32, help="Side of the square views, pixels.")] = 256,
    p_normal: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of studies without pathology.")] = 0.3,
    val_ratio: Annotated[float, typer.Option(help="Fraction of studies for validation.")] = 0.1,
    test_ratio: Annotated[float, typer.Option(help="Fraction of studies for test.")] = 0.1,
    cleaner: Cleaner = "default",
    bpe_vocab_size: Annotated[int, typer.Option(min=300, help="BPE vocabulary size (tokens, specials included).")] = 500,
    workers: Workers = 0,
    overwrite: Overwrite = False,
) -> None:
    """Synthetic two-view chest-radiograph phantoms with known findings and matching reports.

    A model that reads the image beats one that only learned the language prior on them.
    Example: irralctl prepare phantoms --n 2000 --out data/phantoms
    """
    from irralctl.data.phantom_prepare import PhantomPrepareConfig, prepare_phantoms

    cfg = PhantomPrepareConfig(out=out, n=n, seed=seed, image_size=image_size, p_normal=p_normal,
                               val_ratio=val_ratio, test_ratio=test_ratio, cleaner=cleaner,
                               bpe_vocab_size=bpe_vocab_size, workers=_workers(workers), overwrite=overwrite)
    with progress_bars() as start:
        prepare_phantoms(cfg, progress=start)
    _summary(out)
