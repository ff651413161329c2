"""Train/val/test splits: R2Gen's published IU X-Ray split (a committed manifest) and seeded,
group-disjoint random splits."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from irralctl.errors import InputError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

R2GEN_MANIFEST = "iu_xray_r2gen_split.csv"


def _manifest(name: str) -> Traversable:
    # Package data (irralctl/data/manifests/), so a source checkout and an installed wheel (or a
    # zipped install) read the same file.
    return resources.files(__package__) / "manifests" / name


def r2gen_split() -> dict[str, str]:
    """Study id -> split for the 2,955 studies of R2Gen's IU X-Ray annotation (2,069/296/590)."""
    manifest = _manifest(R2GEN_MANIFEST)
    if not manifest.is_file():
        raise InputError("R2Gen split manifest missing from this installation", path=str(manifest),
                         hint="reinstall irralctl (the manifest ships inside the package)")
    with manifest.open("r", encoding="utf-8", newline="") as f:
        return {row["id"]: row["split"] for row in csv.DictReader(f)}


def split_from_annotation(annotation: dict[str, list[dict]]) -> dict[str, str]:
    return {row["id"]: split for split, rows in annotation.items() for row in rows}


def random_split(groups: Sequence[str], *, val: float, test: float, seed: int) -> dict[str, str]:
    """Group -> split, shuffling whole groups so no group spans two splits.

    Groups are assigned in shuffled order until each split holds its share of *groups*; with
    IU's one-to-few studies per report this gives study ratios within a few tenths of a percent.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InputError(f"split ratios must satisfy 0 <= val, test and val + test < 1 (got val={val}, test={test})")
    unique = sorted(set(groups))
    random.Random(seed).shuffle(unique)
    n = len(unique)
    n_test, n_val = round(n * test), round(n * val)
    out = {}
    for k, g in enumerate(unique):
        out[g] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return out
