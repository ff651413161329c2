"""`irralctl prepare phantoms`: a prepared dataset of synthetic two-view studies with known findings.

The same format as IU X-Ray and MIMIC-CXR (docs/formats.md), plus the ground truth of each study:
`case` (the findings drawn) and `labels.truth` (the 14 CheXpert observations its report states).
`labels.chexpert` comes from our labeller on the report, as for real data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from irralctl.data.cleaning import get_cleaner
from irralctl.data.labels import attach_labels
from irralctl.data.phantoms import PHANTOM_VERSION, make_phantom
from irralctl.data.prepared import finish_dataset, open_staging
from irralctl.data.splits import random_split
from irralctl.data.store import write_image_store
from irralctl.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhantomPrepareConfig:
    out: Path
    n: int = 2000                 # studies
    seed: int = 0
    image_size: int = 256         # pixels, square views
    p_normal: float = 0.3         # share of studies without pathology
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    cleaner: str = "default"
    bpe_vocab_size: int = 500
    legacy_threshold: int = 3
    workers: int = 1
    overwrite: bool = False


def _study(index: int, seed: int, size: int, p_normal: float) -> dict:
    return make_phantom(seed, index, size, p_normal=p_normal)


def prepare_phantoms(cfg: PhantomPrepareConfig,
                     progress: Callable[[str, int, int], Callable[[int], None]] | None = None) -> Path:
    if cfg.n < 10:
        raise InputError(f"--n must be at least 10 (got {cfg.n}): train, val and test each need studies")
    if cfg.image_size < 32:
        raise InputError(f"--image-size must be at least 32 pixels (got {cfg.image_size})")
    cleaner_name, cleaner_version, clean = get_cleaner(cfg.cleaner, "iu_xray")
    legacy_name, legacy_version, legacy_clean = get_cleaner("legacy", "iu_xray")
    options = {k: v for k, v in vars(cfg).items() if k not in ("out", "workers", "overwrite")}
    staging = open_staging(cfg.out, options, overwrite=cfg.overwrite)

    ids = [f"PH{i + 1:05d}" for i in range(cfg.n)]
    split_of = random_split(ids, val=cfg.val_ratio, test=cfg.test_ratio, seed=cfg.seed)
    records: list[dict] = []
    advance = progress("rendering phantoms", cfg.n, 0) if progress else None

    def studies() -> Iterator[dict]:
        make = partial(_study, seed=cfg.seed, size=cfg.image_size, p_normal=cfg.p_normal)
        if cfg.workers > 1:
            with ProcessPoolExecutor(cfg.workers) as pool:
                yield from pool.map(make, range(cfg.n), chunksize=16)
        else:
            yield from map(make, range(cfg.n))

    def views() -> Iterator[tuple[str, object]]:
        for s in studies():
            records.append(s)
            yield f"{s['id']}-frontal", s.pop("frontal")
            yield f"{s['id']}-lateral", s.pop("lateral")
            if advance:
                advance(1)

    rows = write_image_store(views(), staging / "images")
    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for s in records:
        splits[split_of[s["id"]]].append({
            "id": s["id"],
            "group": s["group"],
            "images": [{"id": f"{s['id']}-frontal", "view": "PA", "row": rows[f"{s['id']}-frontal"]},
                       {"id": f"{s['id']}-lateral", "view": "LATERAL", "row": rows[f"{s['id']}-lateral"]}],
            "sections": {"comparison": "", "indication": "", "findings": s["report"], "impression": ""},
            "mesh": [],
            "report": s["report"],
            "target": clean(s["report"]),
            "legacy_target": legacy_clean(s["report"]),
            "labels": {"truth": s["labels"]},
            "case": s["case"],
        })
    labeler = attach_labels([r for rs in splits.values() for r in rs])
    return finish_dataset(
        staging, cfg.out, name="phantoms", splits=splits, options=cfg, sources=[],
        cleaner={"name": cleaner_name, "version": cleaner_version},
        legacy_cleaner={"name": legacy_name, "version": legacy_version},
        images={"count": len(rows), "size": cfg.image_size, "views_per_study": 2},
        labeler=labeler, counts={"images": len(rows)}, problems=[],
        bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
        extra={"phantom_version": PHANTOM_VERSION},
    )
