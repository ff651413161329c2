"""`PhantomPrepareConfig`: the options of `irralctl prepare phantoms` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.data.sources.iu_xray.config import CLEANERS
from irralctl.utils.config import (
    option,
    out_dir_option,
    overwrite_option,
    workers_option,
)

_SET, _SPLIT, _OUT, _TEXT = "Phantoms", "Split", "Output", "Text and tokenisers"

# The phantom sets (cases.py says what each draws); here so that the CLI need not import numpy.
VARIANTS = ("standard", "lateral", "rare", "small", "structured")


@dataclass(frozen=True, kw_only=True)
class PhantomPrepareConfig:
    out: Path = out_dir_option(panel=_OUT)
    n: int = option(2000, "Number of studies (two views each).", flag="--n", min=10, panel=_SET, tiny=60)
    seed: int = option(0, "Seed: study i depends only on (seed, variant, i).", min=0, max=2**32 - 1,
                    panel=_SET)
    variant: str = option(
        "standard",
        "Which set (docs/phantoms.md): standard; lateral (findings seen on the lateral view only: "
        "rewards multi-view fusion); rare (pneumothorax and nodule in ~2.5 % of studies: Eq. 6 "
        "re-weighting); small (small or faint lesions: multi-scale fusion); structured (findings in "
        "clinical patterns, combinations in one sentence: memory and ACL).",
        choices=VARIANTS,
        panel=_SET,
    )
    image_size: int = option(256, "Side of the square views, pixels.", min=32, panel=_SET, tiny=64)
    p_normal: float = option(0.3, "Share of studies without pathology.", min=0.0, max=1.0, panel=_SET)
    val_ratio: float = option(0.1, "Fraction of studies for validation.", min=0.0, max=1.0, panel=_SPLIT)
    test_ratio: float = option(0.1, "Fraction of studies for test.", min=0.0, max=1.0, panel=_SPLIT)
    cleaner: str = option("default", "Cleaner of `target`: default or legacy (R2Gen's).", choices=CLEANERS, panel=_TEXT)
    bpe_vocab_size: int = option(500, "BPE vocabulary size (tokens, specials included).", min=300, panel=_TEXT)
    legacy_threshold: int = option(3, "Legacy word vocabulary: minimum count in train.", min=1, panel=_TEXT)
    workers: int = workers_option()
    overwrite: bool = overwrite_option(panel=_OUT)
