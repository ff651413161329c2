"""`irralctl prepare iu-xray|mimic --from-r2gen ANNOTATION IMAGES_DIR`: R2Gen's layout -> a prepared dataset.

The annotation gives the examples, their report and their split, exactly (`reader`); the images are
the files its `image_path` lists under IMAGES_DIR. Steps: read the annotation, find the image
files, clean and label every report, decode every view once into the image store, fit the
tokenisers on train, write the manifests (`data.pipeline`).

What the annotation lacks: view positions (`UNKNOWN`, in the annotation's order, which is R2Gen's
frontal-then-lateral for IU X-Ray; irralctl's own export keeps them in `views`), IU X-Ray's other
report sections and MeSH terms. A row's `group` (the unit a random split keeps together; here only
recorded) is its IU report number (`CXR<n>`) or MIMIC-CXR subject.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from irralctl.constants import OBSERVATIONS
from irralctl.data.cleaning import ReportCleaners, report_cleaners
from irralctl.data.labels import attach_labels
from irralctl.data.pipeline import Problem, dataset_stage, decode_images, describe_source, finish_dataset
from irralctl.data.sources.r2gen.reader import R2GenRow, read_annotation, resolve_images, subject_of
from irralctl.errors import ConfigError, InputError, StrictStop
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import to_jsonable

log = logging.getLogger(__name__)

NAMES = ("iu_xray", "mimic_cxr")


def _group(row: R2GenRow, name: str) -> str:
    if name == "mimic_cxr":
        return subject_of(row) or row.study_id or row.id
    m = re.match(r"CXR(\d+)", row.id)
    return m.group(1) if m else row.id


def _record(row: R2GenRow, name: str, images: list[dict], cleaners: ReportCleaners) -> dict:
    record = {
        "id": row.id,
        "group": _group(row, name),
        "images": images,
        "sections": {"comparison": "", "indication": "", "findings": row.report, "impression": ""},
        "report": row.report,
        "target": cleaners.clean(row.report),
        "legacy_target": cleaners.legacy(row.report),
        "labels": {},
    }
    if name == "mimic_cxr":
        record["study_id"] = row.study_id or row.id
    else:
        record["mesh"] = []
    return record


def _layout(rows: list[R2GenRow], name: str) -> str:
    """`image` for R2Gen's MIMIC-CXR (one image per row, rows of one study sharing its study_id), else `study`."""
    per_image = name == "mimic_cxr" and all(len(r.image_paths) <= 1 for r in rows) \
        and any(r.study_id is not None and r.study_id != r.id for r in rows)
    return "image" if per_image else "study"


def refuse_what_r2gen_brings(cfg, options: Sequence[str], brings: str, *, with_value: Sequence[str] = ()) -> None:
    """--from-r2gen brings `brings` (reports, images, split, ...): refuse each of `options` (field names
    of `cfg`, an `IUPrepareConfig` or `MimicPrepareConfig`) given away from its default, naming its flag,
    and its value too for those in `with_value`."""
    defaults = type(cfg)(from_r2gen=cfg.from_r2gen, out=cfg.out)
    clash = []
    for name in options:
        value = getattr(cfg, name)
        if value != getattr(defaults, name):
            flag = "--" + name.replace("_", "-")
            clash.append(f"{flag} {value}" if name in with_value else flag)
    if clash:
        raise ConfigError(f"--from-r2gen takes {brings}; drop {', '.join(clash)}")


def _stop_if_strict(strict: bool, problems: list[Problem]) -> None:
    if strict and problems:
        shown = "; ".join(p.line() for p in problems[:3])
        raise StrictStop(f"{len(problems)} problem(s) with the inputs (--strict): {shown}",
                         hint="fix the inputs, or drop --strict to skip them and list them in problems.csv")


def prepare_from_r2gen(cfg, *, name: str, images: bool = True, official_labels: Path | None = None,
                       progress: Progress = SILENT) -> Path:
    """Build the dataset at `cfg.out` from `cfg.from_r2gen` = (annotation.json, IMAGES_DIR).

    `cfg` is an `IUPrepareConfig` or `MimicPrepareConfig` (their shared fields: out, cleaner,
    image_size, bpe_vocab_size, legacy_threshold, workers, strict, overwrite); `name` the dataset's
    (`iu_xray`, `mimic_cxr`: the legacy cleaner's flavour); `images` False for a text-only dataset;
    `official_labels` MIMIC-CXR's chexpert.csv, matched by study_id.
    """
    if name not in NAMES:
        raise ConfigError(f"R2Gen's layout is IU X-Ray's or MIMIC-CXR's, not {name!r}")
    annotation, images_dir = (Path(p) for p in cfg.from_r2gen)
    cleaners = report_cleaners(cfg.cleaner, name)
    problems: list[Problem] = []
    dropped: Counter = Counter()

    rows = read_annotation(annotation)
    official = None
    if official_labels is not None:
        from irralctl.data.sources.mimic.reader import read_official_labels

        official = read_official_labels(official_labels)
    kept = []
    for row in rows:
        if not row.report.strip():
            dropped["empty_target"] += 1
        elif images and not row.image_paths:
            dropped["no_images"] += 1
            problems.append(Problem("no_images", str(annotation), row.id, "image_path is empty"))
        else:
            kept.append(row)
    files = resolve_images(kept, images_dir, problems) if images else {}
    _stop_if_strict(cfg.strict, problems)

    options = {k: v for k, v in to_jsonable(cfg).items() if k not in ("out", "workers", "strict", "overwrite")}
    inputs = [annotation, images_dir if images else None, official_labels]
    with dataset_stage(cfg.out, options, overwrite=cfg.overwrite, inputs=inputs) as staging:
        rows_of: dict[str, int] = {}
        if images:
            items = list({iid: files[iid] for row in kept for iid in row.image_ids() if iid in files}.items())
            rows_of = decode_images(staging, items, problems, size=cfg.image_size, workers=cfg.workers,
                                    progress=progress).rows
            _stop_if_strict(cfg.strict, problems)

        splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
        for row in kept:
            views = row.views or ("UNKNOWN",) * len(row.image_paths)
            listed = [{"id": iid, "view": view, "file": rel}
                      for iid, view, rel in zip(row.image_ids(), views, row.image_paths)]
            if images:
                listed = [{**im, "row": rows_of[im["id"]]} for im in listed if im["id"] in rows_of]
                if not listed:
                    dropped["no_readable_image"] += 1
                    continue
            record = _record(row, name, listed, cleaners)
            if official is not None:
                record["labels"]["chexpert_official"] = official.get(record["study_id"], [None] * len(OBSERVATIONS))
            splits[row.split].append(record)
        records = [r for rs in splits.values() for r in rs]
        if not splits["train"]:
            raise InputError("no usable example in the annotation's train list", path=annotation)
        labeler = attach_labels(records)
        counts = {"images": len(rows_of), "dropped": dict(sorted(dropped.items()))}
        extra = {"label_names": list(OBSERVATIONS)} if name == "mimic_cxr" else None
        if official is not None:
            counts["no_official_labels"] = sum(r["study_id"] not in official for r in records)
        image_info = None
        if images:
            image_info = {"count": len(rows_of), "size": cfg.image_size,
                          "views_per_study": max((len(r["images"]) for r in records), default=0)}
        sources = [describe_source(p) for p in inputs if p is not None]
        log.info("R2Gen annotation: %s", ", ".join(f"{s} {len(v)}" for s, v in splits.items()))
        return finish_dataset(
            staging, cfg.out, name=name, splits=splits, options=cfg, sources=sources,
            cleaners=cleaners,
            images=image_info, labeler=labeler, counts=counts, problems=problems,
            bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
            example_layout=_layout(kept, name), extra=extra,
        )
