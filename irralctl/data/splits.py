"""Train/val/test splits: R2Gen's published IU X-Ray split (a committed manifest) and seeded,
group-disjoint random splits."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from irralctl.errors import InputError

R2GEN_MANIFEST = "iu_xray_r2gen_split.csv"


def _manifest_path(name: str) -> Path:
    # Installed wheels carry the manifests as package data; a source checkout has them at the root.
    packaged = resources.files("irralctl") / "manifests" / name
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "data_manifests" / name


def r2gen_split() -> dict[str, str]:
    """Study id -> split for the 2,955 studies of R2Gen's IU X-Ray annotation (2,069/296/590)."""
    path = _manifest_path(R2GEN_MANIFEST)
    if not path.is_file():
        raise InputError("R2Gen split manifest missing from this installation", path=path)
    with open(path, encoding="utf-8", newline="") as f:
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
