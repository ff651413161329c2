"""`irralctl prepare phantoms`: a prepared dataset of synthetic two-view studies with known findings.

A report generator can score well on IU X-Ray or MIMIC-CXR by writing the most common normal
report; phantoms are the one dataset where a perfect model's output is known, so a model that beats
an image-blind baseline on them has shown that its image path learns. `make_phantom` builds one
complete study (case, report, labels, two views); study `i` of seed `s` does not depend on the
others, so preparation runs in parallel.

The dataset has the format of IU X-Ray and MIMIC-CXR (docs/formats.md), plus the ground truth of
each study: `case` (the findings drawn) and `labels.truth` (the 14 CheXpert observations its
report states). `labels.chexpert` comes from our labeller on the report, as for real data.

`--variant` (cases.py, docs/phantoms.md) draws a set on which one model component should matter:
`lateral` (findings seen on the lateral view only: multi-view fusion), `rare` (rare pneumothorax
and nodule: Eq. 6's re-weighting), `small` (small or faint lesions: multi-scale fusion),
`structured` (findings in clinical patterns, combinations stated in one sentence: memory and ACL).
Study i of a variant depends only on (seed, variant, i), and its anatomy, exposure and noise are
those of study i of every other variant; `standard` is the set drawn before variants existed, byte
for byte. dataset.json records the variant as `phantom_variant` (and in `options`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from irralctl.data.cleaning import report_cleaners
from irralctl.data.labels import attach_labels
from irralctl.data.pipeline import dataset_stage, finish_dataset
from irralctl.data.sources.phantoms.cases import PHANTOM_VERSION, case_labels, sample_case
from irralctl.data.sources.phantoms.config import VARIANTS, PhantomPrepareConfig
from irralctl.data.sources.phantoms.render import render_study
from irralctl.data.sources.phantoms.reports import write_report
from irralctl.data.splits import random_split
from irralctl.data.store import write_image_store
from irralctl.errors import ConfigError, InputError
from irralctl.progress import SILENT, Progress

log = logging.getLogger(__name__)


def make_phantom(seed: int, index: int, size: int = 256, *, p_normal: float = 0.3,
                 variant: str = "standard") -> dict:
    """Study `index` (0-based) of the phantom set `seed` in `variant`, independent of every other study."""
    if seed < 0 or index < 0:
        raise ConfigError(f"phantom seed and index must be non-negative, got {seed} and {index}")
    if variant not in VARIANTS:
        raise ConfigError(f"phantom variant {variant!r} is not one of {', '.join(VARIANTS)}")
    # The same streams in every variant: study i keeps its anatomy and noise across variants
    # (a paired comparison); only what the variant changes differs.
    case_ss, render_ss, report_ss = np.random.SeedSequence([int(seed), int(index)]).spawn(3)
    case = sample_case(np.random.default_rng(case_ss), p_normal, variant)
    frontal, lateral = render_study(case, np.random.default_rng(render_ss), size)
    sid = f"PH{index + 1:05d}"
    return {
        "id": sid,
        "group": sid,  # every phantom is its own patient
        "case": case.record(),
        "report": write_report(case, np.random.default_rng(report_ss), structured=variant == "structured"),
        "labels": case_labels(case),
        "frontal": frontal,
        "lateral": lateral,
    }


def make_phantoms(n: int, seed: int, size: int = 256, *, p_normal: float = 0.3,
                  variant: str = "standard") -> Iterator[dict]:
    """Yield `n` complete phantom studies: id, group, case, report, labels, frontal, lateral.

    Study i depends only on (seed, variant, i): a larger `n` extends a smaller set, and
    `make_phantom` builds any study on its own (for parallel preparation).
    """
    if n < 0:
        raise ConfigError(f"number of phantoms must be non-negative, got {n}")
    for i in range(n):
        yield make_phantom(seed, i, size, p_normal=p_normal, variant=variant)


def _study(index: int, seed: int, size: int, p_normal: float, variant: str) -> dict:
    return make_phantom(seed, index, size, p_normal=p_normal, variant=variant)


# Rendering cost measured on one core of a 2-core machine: about 9 ms per two-view study at 256 px,
# growing with the pixel count.
_SECONDS_PER_STUDY_256 = 0.009


def _announce_size(cfg: PhantomPrepareConfig) -> None:
    """Say what a preparation will cost before it starts (a mistyped --n must not run silently for hours)."""
    gib = cfg.n * 2 * cfg.image_size ** 2 / 2**30
    minutes = cfg.n * _SECONDS_PER_STUDY_256 * (cfg.image_size / 256) ** 2 / max(cfg.workers, 1) / 60
    message = (f"{cfg.n:,} phantom studies at {cfg.image_size} px: about {gib:.2g} GiB of images, "
               f"about {minutes:.2g} min on {cfg.workers} worker(s)")
    (log.warning if gib > 4 or minutes > 30 else log.info)(message)


def prepare_phantoms(cfg: PhantomPrepareConfig, progress: Progress = SILENT) -> Path:
    if cfg.n < 10:
        raise InputError(f"--n must be at least 10 (got {cfg.n}): train, val and test each need studies")
    if cfg.image_size < 32:
        raise InputError(f"--image-size must be at least 32 pixels (got {cfg.image_size})")
    if cfg.variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)} (got {cfg.variant!r})")
    cleaners = report_cleaners(cfg.cleaner, "iu_xray")
    options = {k: v for k, v in vars(cfg).items() if k not in ("out", "workers", "overwrite")}
    _announce_size(cfg)
    with dataset_stage(cfg.out, options, overwrite=cfg.overwrite, inputs=[]) as staging:
        ids = [f"PH{i + 1:05d}" for i in range(cfg.n)]
        split_of = random_split(ids, val=cfg.val_ratio, test=cfg.test_ratio, seed=cfg.seed)
        records: list[dict] = []
        task = progress.task("rendering phantoms", cfg.n)

        def studies() -> Iterator[dict]:
            make = partial(_study, seed=cfg.seed, size=cfg.image_size, p_normal=cfg.p_normal,
                           variant=cfg.variant)
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
                task.advance(1)

        with task:
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
                "target": cleaners.clean(s["report"]),
                "legacy_target": cleaners.legacy(s["report"]),
                "labels": {"truth": s["labels"]},
                "case": s["case"],
            })
        labeler = attach_labels([r for rs in splits.values() for r in rs])
        return finish_dataset(
            staging, cfg.out, name="phantoms", splits=splits, options=cfg, sources=[],
            cleaners=cleaners,
            images={"count": len(rows), "size": cfg.image_size, "views_per_study": 2},
            labeler=labeler, counts={"images": len(rows)}, problems=[],
            bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
            extra={"phantom_version": PHANTOM_VERSION, "phantom_variant": cfg.variant},
        )
