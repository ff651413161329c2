"""`HFPrepareConfig`: the options of `irralctl prepare hf` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.data.sources.iu_xray.config import CLEANERS
from irralctl.utils.config import option, out_dir_option, overwrite_option, workers_option

_IN, _COLS, _SPLIT, _TEXT, _OUT = "Input", "Columns", "Split", "Text and tokenisers", "Output"
SPLIT_MODES = ("given", "random")


@dataclass(frozen=True, kw_only=True)
class HFPrepareConfig:
    source: Path = option(help="A folder written by datasets' save_to_disk (a DatasetDict or one Dataset), a .parquet "
                               "file, or a folder of .parquet files (local only: nothing is downloaded).",
                          argument=True, metavar="DIR_OR_PARQUET")
    out: Path = out_dir_option(panel=_OUT)
    image_column: str = option("images", "Column of a study's images: one image or a list (datasets Image values, "
                                         "{bytes, path} structs, raw bytes, or paths relative to the source).",
                               panel=_COLS)
    report_column: str = option("report", "Column of the report text (the target; cleaned and labelled here).",
                                panel=_COLS)
    view_column: str | None = option(None, "Column of the view position of each image (PA, AP, LATERAL, ...; "
                                           "default: every view UNKNOWN).", panel=_COLS)
    id_column: str | None = option(None, "Column of the study ids (default: the row number in reading order, "
                                         "000000, 000001, ...).", panel=_COLS)
    split_column: str | None = option(None, "Column of each row's split: train, validation (val, valid, dev) or "
                                            "test (default: the DatasetDict's splits, or the parquet files' names).",
                                      panel=_COLS)
    split: str = option("given", "given (from --split-column, the DatasetDict or the file names) or random (seeded, "
                                 "ignoring any given split).", choices=SPLIT_MODES, panel=_SPLIT)
    val_ratio: float = option(0.1, "With --split random: fraction of studies for validation.", min=0.0, max=1.0,
                              panel=_SPLIT)
    test_ratio: float = option(0.2, "With --split random: fraction of studies for test.", min=0.0, max=1.0,
                               panel=_SPLIT)
    seed: int = option(42, "With --split random: shuffling seed.", min=0, max=2**32 - 1, panel=_SPLIT)
    cleaner: str = option("default", "Cleaner of `target`: default (keeps decimals, hyphens) or legacy (R2Gen's IU "
                                     "X-Ray cleaner, byte for byte).", choices=CLEANERS, panel=_TEXT)
    image_size: int = option(256, "Shorter side of every view in the image store, pixels (never upscaled).", min=8)
    bpe_vocab_size: int = option(1000, "BPE vocabulary size (tokens, specials included).", min=300, panel=_TEXT)
    legacy_threshold: int = option(3, "Legacy word vocabulary: minimum count in train.", min=1, panel=_TEXT)
    workers: int = workers_option()
    strict: bool = option(False, "Stop at the first problem instead of skipping and listing it in problems.csv.",
                          panel=_OUT)
    overwrite: bool = overwrite_option(panel=_OUT)
