"""`MimicPrepareConfig`: the options of `irralctl prepare mimic` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.data.sources.iu_xray.config import CLEANERS
from irralctl.data.sources.mimic.reports import SECTION_CHOICES
from irralctl.utils.config import (
    option,
    out_dir_option,
    overwrite_option,
    workers_option,
)

_IN, _R2GEN, _SEL, _TEXT, _OUT = "Inputs", "Inputs in R2Gen's layout", "Selection", "Text and tokenisers", "Output"


@dataclass(frozen=True, kw_only=True)
class MimicPrepareConfig:
    root: Path | None = option(None, "MIMIC-CXR-JPG root: holds the files/ tree of JPEGs and the split, "
                                     "metadata and CheXpert csv files (required unless --from-r2gen).", panel=_IN)
    reports: Path | None = option(None, "MIMIC-CXR reports: mimic-cxr-reports.zip, or its extracted files/ folder (or "
                                        "the folder holding it; required unless --from-r2gen).", panel=_IN)
    out: Path = out_dir_option(panel=_OUT)
    from_r2gen: tuple[Path, Path] | None = option(
        None, "R2Gen's preprocessed layout instead of --root/--reports: its annotation.json (one example per image, "
              "reports and split kept as given) and the folder its image_path entries are relative to.",
        metavar="ANNOTATION IMAGES_DIR", panel=_R2GEN)
    split_csv: Path | None = option(None, "The split csv (default: ROOT/mimic-cxr-2.0.0-split.csv.gz).", panel=_IN)
    metadata: Path | None = option(None, "The metadata csv with ViewPosition (default: "
                                         "ROOT/mimic-cxr-2.0.0-metadata.csv.gz if present).", panel=_IN)
    chexpert: Path | None = option(None, "The official CheXpert labels csv, kept as labels.chexpert_official "
                                         "(default: ROOT/mimic-cxr-2.0.0-chexpert.csv.gz if present).", panel=_IN)
    sections: str = option("findings", "Target text: findings (R2Gen's target), findings+impression, or impression; "
                                       "studies whose target is empty are dropped and counted.",
                           choices=SECTION_CHOICES, panel=_TEXT)
    views: str = option("all", "Views kept: all, frontal (PA and AP), or a comma list of ViewPosition values such as "
                               "PA,AP,LATERAL.", panel=_SEL)
    per_image: bool = option(False, "One example per image (R2Gen's MIMIC layout) instead of one per study with its "
                                    "views as a set.", panel=_SEL)
    images: bool = option(True, "Decode the images into the store, or build a text-only dataset.", panel=_IN)
    cleaner: str = option("default", "Cleaner of `target`: default (keeps decimals, hyphens) or legacy (R2Gen's, "
                                     "byte for byte).", choices=CLEANERS, panel=_TEXT)
    image_size: int = option(256, "Shorter side of every view in the image store, pixels.", min=8)
    bpe_vocab_size: int = option(4000, "BPE vocabulary size (tokens, specials included).", min=300, panel=_TEXT)
    legacy_threshold: int = option(10, "Legacy word vocabulary: minimum count in train (R2Gen: 10 for MIMIC).",
                                   min=1, panel=_TEXT)
    max_studies: int | None = option(None, "Keep a random subset of this many studies (seeded by --seed), for "
                                           "debugging (default: all).", min=1, panel=_SEL)
    seed: int = option(42, "Seed of the --max-studies subset.", min=0, max=2**32 - 1, panel=_SEL)
    workers: int = workers_option()
    strict: bool = option(False, "Stop at the first problem instead of skipping and listing it in problems.csv.",
                          panel=_OUT)
    overwrite: bool = overwrite_option(panel=_OUT)
