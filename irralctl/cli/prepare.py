"""`irralctl prepare iu-xray|mimic|phantoms|hf`: build a prepared dataset directory from raw files.

Every option comes from the source's config (`irralctl.data.sources.*.config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from irralctl.cli._bind import bind, build
from irralctl.cli._commands import Command, Group
from irralctl.cli._common import console
from irralctl.data.sources.hf.config import HFPrepareConfig
from irralctl.data.sources.iu_xray.config import IUPrepareConfig
from irralctl.data.sources.mimic.config import MimicPrepareConfig
from irralctl.data.sources.phantoms.config import PhantomPrepareConfig

app = typer.Typer(
    cls=Group,
    help="Build a prepared dataset (manifests, tokenisers, image store, labels) from raw files.",
    no_args_is_help=True,
)


def _with_workers(config):
    """--workers 0 means every CPU core; more than the cores is capped, with a warning."""
    from dataclasses import replace

    from irralctl.utils.parallel import worker_count

    return replace(config, workers=worker_count(config.workers, zero_means_all=True))


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


def _iu_xray(*, values: dict[str, Any], given: set[str]) -> None:
    """Prepare IU X-Ray (Open-i) for training, generation, labelling and scoring.

    Example: irralctl prepare iu-xray --reports NLMCXR_reports.tgz --images NLMCXR_png.tgz
    --metadata nlmcxr_dicom_metadata.csv.gz --out data/iu_xray; from R2Gen's layout: irralctl prepare
    iu-xray --from-r2gen iu_xray/annotation.json iu_xray/images --out data/iu_xray
    """
    from irralctl.cli._progress import progress_bars
    from irralctl.data.sources.iu_xray.prepare import prepare_iu_xray

    cfg = _with_workers(build(IUPrepareConfig, values, given))
    with progress_bars() as progress:
        prepare_iu_xray(cfg, progress=progress)
    _summary(cfg.out)


def _mimic(*, values: dict[str, Any], given: set[str]) -> None:
    """Prepare MIMIC-CXR-JPG with the MIMIC-CXR reports: official split, views, official and own labels.

    An interrupted run resumes where it stopped when rerun with the same options.

    Example: irralctl prepare mimic --root mimic-cxr-jpg/2.1.0 --reports mimic-cxr-reports.zip
    --views frontal --out data/mimic; from R2Gen's layout: irralctl prepare mimic --from-r2gen
    mimic_cxr/annotation.json mimic_cxr/images --out data/mimic
    """
    from irralctl.cli._progress import progress_bars
    from irralctl.data.sources.mimic.prepare import prepare_mimic

    cfg = _with_workers(build(MimicPrepareConfig, values, given))
    with progress_bars() as progress:
        prepare_mimic(cfg, progress=progress)
    _summary(cfg.out)


def _phantoms(*, values: dict[str, Any], given: set[str]) -> None:
    """Synthetic two-view chest-radiograph phantoms with known findings and matching reports.

    A model that reads the image beats one that only learned the language prior on them.
    Example: irralctl prepare phantoms --n 2000 --out data/phantoms
    """
    from irralctl.cli._progress import progress_bars
    from irralctl.data.sources.phantoms.prepare import prepare_phantoms

    cfg = _with_workers(build(PhantomPrepareConfig, values, given))
    with progress_bars() as progress:
        prepare_phantoms(cfg, progress=progress)
    _summary(cfg.out)


def _hf(*, values: dict[str, Any], given: set[str]) -> None:
    """Prepare a local Hugging Face datasets dataset (a save_to_disk folder or parquet files).

    Nothing is downloaded. Examples: irralctl prepare hf exports/iu_hf --id-column id --view-column views
    --out data/iu_again; irralctl prepare hf train.parquet --image-column image --report-column findings
    --split random --out data/other
    """
    from irralctl.cli._progress import progress_bars
    from irralctl.data.sources.hf.prepare import prepare_hf

    cfg = _with_workers(build(HFPrepareConfig, values, given))
    with progress_bars() as progress:
        prepare_hf(cfg, progress=progress)
    _summary(cfg.out)


app.command("iu-xray", cls=Command)(bind(IUPrepareConfig, _iu_xray))
app.command("mimic", cls=Command)(bind(MimicPrepareConfig, _mimic))
app.command("phantoms", cls=Command)(bind(PhantomPrepareConfig, _phantoms))
app.command("hf", cls=Command)(bind(HFPrepareConfig, _hf))
