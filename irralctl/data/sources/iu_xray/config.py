"""`IUPrepareConfig`: the options of `irralctl prepare iu-xray` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.utils.config import (
    option,
    out_dir_option,
    overwrite_option,
    workers_option,
)

SECTION_CHOICES = ("findings", "findings+impression")
CLEANERS = ("default", "legacy")
_IN, _SPLIT, _TEXT, _OUT = "Inputs", "Split", "Text and tokenisers", "Output"


@dataclass(frozen=True, kw_only=True)
class IUPrepareConfig:
    out: Path = out_dir_option(panel=_OUT)
    from_r2gen: tuple[Path, Path] | None = option(
        None, "R2Gen's preprocessed layout instead of --reports/--images: its annotation.json (reports and split, "
              "kept as given) and the folder its image_path entries are relative to.",
        metavar="ANNOTATION IMAGES_DIR", panel=_IN)
    reports: Path | None = option(None, "NLMCXR_reports.tgz, its extracted ecgen-radiology/ folder, or an R2Gen "
                                        "annotation.json.", panel=_IN)
    images: Path | None = option(None, "NLMCXR_png.tgz, a folder of CXR*.png named <parentImage id>.png, or R2Gen's "
                                       "images/<study>/<k>.png; omit for a text-only dataset.", panel=_IN)
    annotation: Path | None = option(None, "An R2Gen annotation.json whose train/val/test ids define the split "
                                           "(default: the committed R2Gen manifest).", panel=_SPLIT)
    metadata: Path | None = option(None, "nlmcxr_dicom_metadata.csv.gz: the view position (PA, LATERAL, ...) of "
                                         "each image.", panel=_IN)
    split: str = option("r2gen", "r2gen (R2Gen's 2,069/296/590 studies, exactly) or random (seeded, "
                                 "report-disjoint).", choices=("r2gen", "random"), panel=_SPLIT)
    val_ratio: float = option(0.1, "With --split random: fraction of reports for validation.", min=0.0, max=1.0,
                              panel=_SPLIT)
    test_ratio: float = option(0.2, "With --split random: fraction of reports for test.", min=0.0, max=1.0,
                               panel=_SPLIT)
    seed: int = option(42, "With --split random: shuffling seed.", min=0, max=2**32 - 1, panel=_SPLIT)
    sections: str = option("findings", "Target text: findings (R2Gen's target) or findings+impression.",
                           choices=SECTION_CHOICES, panel=_TEXT)
    cleaner: str = option("default", "Cleaner of `target`: default (keeps decimals, hyphens) or legacy (R2Gen's, "
                                     "byte for byte).", choices=CLEANERS, panel=_TEXT)
    image_size: int = option(256, "Shorter side of every view in the image store, pixels.", min=8)
    bpe_vocab_size: int = option(1000, "BPE vocabulary size (tokens, specials included).", min=300, panel=_TEXT)
    legacy_threshold: int = option(3, "Legacy word vocabulary: minimum count in train (R2Gen: 3 for IU).", min=1,
                                   panel=_TEXT)
    workers: int = workers_option()
    strict: bool = option(False, "Stop at the first problem instead of skipping and listing it in problems.csv.",
                          panel=_OUT)
    overwrite: bool = overwrite_option(panel=_OUT)
