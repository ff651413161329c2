"""`irralctl prepare hf DIR_OR_PARQUET`: a local Hugging Face `datasets` dataset -> a prepared dataset.

Steps: open the source (`reader`: a save_to_disk folder or parquet files), check the named
columns, read each row's id, report, images, views and split; write each image's bytes once to
the staging folder and decode it into the image store (workers, journalled, resumable); clean and
label the reports; fit the tokenisers on train; write the manifests (`data.pipeline`).

A record's image ids are `<id>/<k>` (the k-th image of the row), its views are sorted frontal
first (`constants.view_rank`; rows without a view column keep their order), its `group` is its
id (a random split is per study). `dataset.json`'s `name` is `hf`; the legacy cleaner is R2Gen's
IU X-Ray one.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

from irralctl.constants import view_rank
from irralctl.data.cleaning import report_cleaners
from irralctl.data.labels import attach_labels
from irralctl.data.pipeline import Problem, dataset_stage, decode_images, describe_source, finish_dataset
from irralctl.data.sources.hf.config import SPLIT_MODES, HFPrepareConfig
from irralctl.data.sources.hf.reader import Part, image_values, open_source, split_name
from irralctl.data.splits import random_split
from irralctl.errors import ConfigError, InputError, StrictStop
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import to_jsonable

log = logging.getLogger(__name__)

NAME = "hf"


def _check_columns(cfg: HFPrepareConfig, parts: list[Part]) -> None:
    wanted = [(flag, col) for flag, col in (("--image-column", cfg.image_column), ("--report-column", cfg.report_column),
                                            ("--view-column", cfg.view_column), ("--id-column", cfg.id_column),
                                            ("--split-column", cfg.split_column)) if col]
    for part in parts:
        for flag, col in wanted:
            if col not in part.columns:
                raise InputError(f"no column {col!r} ({flag}); its columns: {', '.join(part.columns)}", path=part.name,
                                 hint=f"name the right column with {flag}")


def _views(value: object, n: int, where: str, column: str) -> list[str]:
    views = value if isinstance(value, list) else [value] * (n if value is not None else 0)
    if len(views) != n or not all(v is None or isinstance(v, str) for v in views):
        raise InputError(f"expected one view position per image ({n}), got {value!r}", record=where, field=column)
    return [(v or "").strip().upper() or "UNKNOWN" for v in views]


def _read_rows(cfg: HFPrepareConfig, parts: list[Part], raw: Path, problems: list[Problem], dropped: Counter,
               progress: Progress) -> list[dict]:
    """One dict per usable row: id, split, report, images [(image id, file, view)]; image bytes go to `raw`."""
    rows, seen = [], {}
    n = 0
    with progress.task("reading rows") as task:
        for part in parts:
            for batch in part.batches():
                for k, cell in enumerate(batch):
                    n += 1
                    where = f"{part.name}: row {n - 1}"
                    rid = f"{n - 1:06d}" if cfg.id_column is None else cell.get(cfg.id_column)
                    if isinstance(rid, int) and not isinstance(rid, bool):
                        rid = str(rid)
                    if not isinstance(rid, str) or not rid.strip():
                        raise InputError("missing, empty or not a string", record=where, field=cfg.id_column)
                    if rid in seen:
                        raise InputError(f"id {rid!r} appears twice (first at {seen[rid]})", record=where,
                                         field=cfg.id_column)
                    seen[rid] = where
                    split = part.split
                    if cfg.split_column is not None:
                        split = split_name(cell.get(cfg.split_column))
                        if split is None:
                            raise InputError(f"{cell.get(cfg.split_column)!r} is not train, validation or test",
                                             record=where, field=cfg.split_column)
                    if split is None and cfg.split == "given":
                        raise InputError(f"no split for this row (the part {part.name!r} names none)", record=where,
                                         hint="give --split-column COLUMN, or --split random")
                    report = cell.get(cfg.report_column)
                    if report is not None and not isinstance(report, str):
                        raise InputError(f"expected text, got {type(report).__name__}", record=where,
                                         field=cfg.report_column)
                    if not (report or "").strip():
                        dropped["empty_target"] += 1
                        continue
                    values = image_values(cell.get(cfg.image_column), where, cfg.image_column)
                    views = (_views(cell.get(cfg.view_column), len(values), where, cfg.view_column)
                             if cfg.view_column else ["UNKNOWN"] * len(values))
                    images = []
                    for j, ((data, path), view) in enumerate(zip(values, views)):
                        if data is not None:
                            file = raw / f"{len(rows):07d}-{j}.img"
                            file.write_bytes(data)
                        else:
                            file = Path(path) if Path(path).is_absolute() else part.base / path
                            if not file.is_file():
                                problems.append(Problem("missing_image", str(file), rid, "the row's image path names "
                                                        "no file"))
                                continue
                        images.append((f"{rid}/{j}", file, view))
                    if not images:
                        dropped["no_images"] += 1
                        problems.append(Problem("no_images", part.name, rid, "no image for this row"))
                        continue
                    rows.append({"id": rid, "split": split, "report": report, "images": images})
                task.advance(len(batch))
    return rows


def prepare_hf(cfg: HFPrepareConfig, progress: Progress = SILENT) -> Path:
    """Build the dataset at `cfg.out`."""
    if cfg.split not in SPLIT_MODES:
        raise ConfigError(f"unknown --split {cfg.split!r}; choose given or random")
    parts = open_source(cfg.source)
    _check_columns(cfg, parts)
    cleaners = report_cleaners(cfg.cleaner, "iu_xray")
    problems: list[Problem] = []
    dropped: Counter = Counter()
    options = {k: v for k, v in to_jsonable(cfg).items() if k not in ("out", "workers", "strict", "overwrite")}
    with dataset_stage(cfg.out, options, overwrite=cfg.overwrite, inputs=[cfg.source]) as staging:
        raw = staging / "raw_images"
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir()
        rows = _read_rows(cfg, parts, raw, problems, dropped, progress)
        if not rows:
            raise InputError("no usable row (each needs a report and an image)", path=cfg.source)
        if cfg.strict and problems:
            shown = "; ".join(p.line() for p in problems[:3])
            raise StrictStop(f"{len(problems)} problem(s) with the inputs (--strict): {shown}",
                             hint="fix the inputs, or drop --strict to skip them and list them in problems.csv")
        if cfg.split == "random":
            by_id = random_split([r["id"] for r in rows], val=cfg.val_ratio, test=cfg.test_ratio, seed=cfg.seed)
            for r in rows:
                r["split"] = by_id[r["id"]]

        items = [(iid, file) for r in rows for iid, file, _ in r["images"]]
        result = decode_images(staging, items, problems, size=cfg.image_size, workers=cfg.workers, progress=progress)
        if cfg.strict and result.failed:
            raise StrictStop(f"{len(result.failed)} unreadable image(s) (--strict): {problems[-1].line()}",
                             hint="fix the inputs, or drop --strict to skip them and list them in problems.csv")
        shutil.rmtree(raw, ignore_errors=True)

        splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
        for r in rows:
            images = sorted(({"id": iid, "view": view, "row": result.rows[iid]}
                             for iid, _, view in r["images"] if iid in result.rows),
                            key=lambda im: view_rank(im["view"]))
            if not images:
                dropped["no_readable_image"] += 1
                continue
            report = r["report"]
            splits[r["split"]].append({
                "id": r["id"], "group": r["id"], "images": images,
                "sections": {"comparison": "", "indication": "", "findings": report, "impression": ""},
                "report": report, "target": cleaners.clean(report), "legacy_target": cleaners.legacy(report),
                "labels": {},
            })
        if not splits["train"]:
            raise InputError("no usable row in the train split", path=cfg.source,
                             hint="check --split-column, or use --split random")
        labeler = attach_labels([r for rs in splits.values() for r in rs])
        views_per_study = max(len(r["images"]) for rs in splits.values() for r in rs)
        return finish_dataset(
            staging, cfg.out, name=NAME, splits=splits, options=cfg, sources=[describe_source(cfg.source)],
            cleaners=cleaners,
            images={"count": len(result.rows), "size": cfg.image_size, "views_per_study": views_per_study},
            labeler=labeler, counts={"dropped": dict(sorted(dropped.items())), "images": len(result.rows)},
            problems=problems, bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
            extra={"hf_columns": {"image": cfg.image_column, "report": cfg.report_column, "view": cfg.view_column,
                                  "id": cfg.id_column, "split": cfg.split_column}},
        )
