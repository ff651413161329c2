"""`ExportConfig`: the options of `irralctl export` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.utils.config import option, overwrite_option

# What each target takes: a prepared dataset (hf, r2gen) or a trained run (safetensors).
TARGETS = {"hf": "dataset", "r2gen": "dataset", "safetensors": "run"}


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    source: Path = option(help="A prepared dataset (--to hf, r2gen) or a run directory of `irralctl train`, or one of "
                               "its .pt files (--to safetensors).", argument=True, metavar="DATASET_OR_RUN")
    out: Path = option(help="Output directory (created; must not exist unless --overwrite).", argument=True,
                       metavar="DIR")
    to: str = option(help="hf: a Hugging Face `datasets` DatasetDict (save_to_disk); r2gen: R2Gen's annotation.json "
                          "and PNG folders; safetensors: weights, tokeniser, config and a model card.",
                     choices=tuple(TARGETS))
    overwrite: bool = overwrite_option()

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise ConfigError(f"unknown --to {self.to!r}; choose {', '.join(TARGETS)}")
