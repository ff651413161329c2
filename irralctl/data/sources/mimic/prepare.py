"""`irralctl prepare mimic`: MIMIC-CXR-JPG images + MIMIC-CXR reports -> a prepared dataset.

Inputs: see `reader` (MIMIC-CXR-JPG 2.0.0 / 2.1.0 and the MIMIC-CXR reports).

Steps: read the official split (`validate` becomes `val`; `group` is the subject, so a patient
never spans two splits), the views and the official labels; choose the views; read and section
every report (`reports.parse_report`); drop studies whose target is empty; check that every
chosen image exists; decode each chosen JPEG once, at reduced size, into the image store (worker
processes, journalled, resumable); label the reports; write one record per study (its views a
set, frontal first) or, with `per_image`, one per image as R2Gen does; fit the tokenisers on train.

Inputs that cannot be used (an image listed in the split but absent, an unreadable JPEG, a
missing report, a study in the metadata but not in the split, ...) are skipped and listed in
`problems.csv`; with `strict` they stop preparation before anything is written.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from pathlib import Path

from irralctl.constants import OBSERVATIONS, view_rank
from irralctl.data.cleaning import ReportCleaners, report_cleaners
from irralctl.data.labels import attach_labels
from irralctl.data.pipeline import Problem, dataset_stage, decode_images, describe_source, finish_dataset
from irralctl.data.sources.mimic.config import MimicPrepareConfig
from irralctl.data.sources.mimic.reader import (
    CHEXPERT_FILE,
    METADATA_FILE,
    SPLIT_FILE,
    UNKNOWN_VIEW,
    MimicStudy,
    ReportSource,
    find_table,
    image_path,
    parse_views,
    read_metadata,
    read_official_labels,
    read_split,
)
from irralctl.data.sources.mimic.reports import SECTION_CHOICES, parse_report, target_text
from irralctl.errors import ConfigError, InputError, StrictStop
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import to_jsonable

log = logging.getLogger(__name__)

NAME = "mimic_cxr"


def _view_key(view: str, dicom_id: str) -> tuple[int, str]:
    return view_rank(view), dicom_id


def _check_options(cfg: MimicPrepareConfig) -> None:
    if cfg.root is None or cfg.reports is None:
        raise ConfigError("give --root (MIMIC-CXR-JPG) and --reports (the MIMIC-CXR reports)",
                          hint="or --from-r2gen ANNOTATION IMAGES_DIR for R2Gen's preprocessed layout")
    if cfg.sections not in SECTION_CHOICES:
        raise ConfigError(f"unknown --sections {cfg.sections!r}; choose {', '.join(SECTION_CHOICES)}")
    parse_views(cfg.views)
    if cfg.max_studies is not None and cfg.max_studies < 1:
        raise ConfigError("--max-studies must be at least 1")
    if not cfg.root.is_dir():
        raise InputError("MIMIC-CXR-JPG root not found", path=cfg.root,
                         hint="give the folder that holds files/ and mimic-cxr-2.0.0-split.csv.gz")


def _options_dict(cfg: MimicPrepareConfig) -> dict:
    d = to_jsonable(cfg)
    for k in ("out", "workers", "strict", "overwrite"):  # these do not change what is built
        d.pop(k, None)
    return d


# ----------------------------------------------------------------------------------------------
# The preparation


def prepare_mimic(cfg: MimicPrepareConfig, progress: Progress = SILENT) -> Path:
    """Build the dataset at `cfg.out`."""
    if cfg.from_r2gen is not None:
        from irralctl.data.sources.r2gen.prepare import prepare_from_r2gen, refuse_what_r2gen_brings

        refuse_what_r2gen_brings(cfg, ("root", "reports", "split_csv", "metadata", "sections", "views", "per_image",
                                       "max_studies"),
                                 "the reports, images, split and layout from R2Gen's annotation")
        return prepare_from_r2gen(cfg, name=NAME, images=cfg.images, official_labels=cfg.chexpert, progress=progress)
    _check_options(cfg)
    cleaners = report_cleaners(cfg.cleaner, NAME)
    problems: list[Problem] = []
    dropped: Counter = Counter()

    # 1. The official split, views and labels; the studies to use and their chosen views.
    tables = _locate_tables(cfg)
    studies = read_split(tables["split"], problems)
    if not studies:
        raise InputError("the split file lists no image", path=tables["split"])
    views, owner = read_metadata(tables["metadata"]) if tables["metadata"] else ({}, {})
    official = read_official_labels(tables["chexpert"]) if tables["chexpert"] else None
    if tables["metadata"]:
        _metadata_problems(studies, views, owner, tables["metadata"], problems)
    chosen = _choose_views(cfg, studies, views, dropped)

    # 2. Reports, sections, targets; 3. the image files of the studies kept.
    texts = _read_reports(cfg, studies, chosen, problems, dropped, progress)
    files = _find_images(cfg, studies, chosen, texts, problems, dropped) if cfg.images else {}
    _stop_if_strict(cfg, problems)
    _log_problems(problems)

    # 4. The image store: each chosen JPEG decoded once, at reduced size.
    inputs = [cfg.root, cfg.reports, cfg.split_csv, cfg.metadata, cfg.chexpert]
    with dataset_stage(cfg.out, _options_dict(cfg), overwrite=cfg.overwrite, inputs=inputs) as staging:
        rows: dict[str, int] = {}
        if cfg.images:
            items = [(d, files[d]) for sid in texts for d, _ in chosen[sid]]
            result = decode_images(staging, items, problems, size=cfg.image_size, workers=cfg.workers,
                                   progress=progress)
            rows = result.rows
            if result.failed:
                log.warning("%d image(s) could not be decoded, skipped", len(result.failed))
            _stop_if_strict(cfg, [p for p in problems if p.kind == "unreadable_image"])

        # 5. Records, labels, layout.
        splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
        for sid, (sections, text) in texts.items():
            record = _study_record(cfg, studies[sid], chosen[sid], sections, text, rows, cleaners)
            if record is None:
                dropped["no_readable_image"] += 1
                continue
            if official is not None:
                record["labels"]["chexpert_official"] = official.get(sid, [None] * len(OBSERVATIONS))
            splits[studies[sid].split].append(record)
        all_records = [r for rs in splits.values() for r in rs]
        labeler = attach_labels(all_records)  # once per report, before any per-image copy
        if cfg.per_image:
            splits = {s: [_image_record(r, im) for r in rs for im in r["images"]] for s, rs in splits.items()}

        counts = {"studies": len(all_records), "images": sum(len(r["images"]) for r in all_records),
                  "dropped": dict(sorted(dropped.items()))}
        if official is not None:
            counts["no_official_labels"] = sum(r["study_id"] not in official for r in all_records)
        image_info = None
        if cfg.images:
            per_example = 1 if cfg.per_image else max((len(r["images"]) for r in all_records), default=0)
            image_info = {"count": len(rows), "size": cfg.image_size, "views_per_study": per_example}
        sources = [describe_source(p) for p in (*tables.values(), cfg.reports) if p is not None]
        sources.append({"path": str((cfg.root / "files").resolve()), "kind": "folder", "images_read": len(rows)})
        return finish_dataset(
            staging, cfg.out, name=NAME, splits=splits, options=cfg, sources=sources,
            cleaners=cleaners,
            images=image_info, labeler=labeler, counts=counts, problems=problems,
            bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
            example_layout="image" if cfg.per_image else "study",
            extra={"label_names": list(OBSERVATIONS)},
        )


def _locate_tables(cfg: MimicPrepareConfig) -> dict[str, Path | None]:
    """The split, metadata and CheXpert csv files: given, or found under the root."""
    split_csv = cfg.split_csv or find_table(cfg.root, SPLIT_FILE)
    if split_csv is None or not split_csv.is_file():
        raise InputError(f"split file not found (looked for {SPLIT_FILE}.gz and {SPLIT_FILE})",
                         path=cfg.split_csv or cfg.root, hint="give --split-csv, or the MIMIC-CXR-JPG root as --root")
    for given in (cfg.metadata, cfg.chexpert):
        if given is not None and not given.is_file():
            raise InputError("file not found", path=given)
    metadata_csv = cfg.metadata or find_table(cfg.root, METADATA_FILE)
    if parse_views(cfg.views) is not None and metadata_csv is None:
        raise InputError(f"--views {cfg.views} needs the view positions of {METADATA_FILE}.gz", path=cfg.root,
                         hint="give --metadata, or --views all")
    return {"split": split_csv, "metadata": metadata_csv, "chexpert": cfg.chexpert or find_table(cfg.root, CHEXPERT_FILE)}


def _choose_views(cfg: MimicPrepareConfig, studies: dict[str, MimicStudy], views: dict[str, str],
                  dropped: Counter) -> dict[str, list[tuple[str, str]]]:
    """Study id -> [(dicom_id, view)] kept by --views, frontal first, for the studies used
    (all, or the seeded --max-studies subset), in study id order."""
    order = sorted(studies, key=int) if all(s.isdigit() for s in studies) else sorted(studies)
    if cfg.max_studies is not None and cfg.max_studies < len(order):
        subset = set(random.Random(cfg.seed).sample(order, cfg.max_studies))
        order = [sid for sid in order if sid in subset]
        log.info("using a random subset of %d studies (seed %d)", len(order), cfg.seed)
    wanted = parse_views(cfg.views)
    chosen = {}
    for sid in order:
        listed = [(d, views.get(d, UNKNOWN_VIEW)) for d in studies[sid].dicom_ids]
        keep = [x for x in listed if wanted is None or x[1] in wanted]
        if keep:
            chosen[sid] = sorted(keep, key=lambda x: _view_key(x[1], x[0]))
        else:
            dropped["no_selected_view"] += 1
    return chosen


def _read_reports(cfg: MimicPrepareConfig, studies: dict[str, MimicStudy], chosen: dict[str, list],
                  problems: list[Problem], dropped: Counter, progress: Progress) -> dict[str, tuple[dict, str]]:
    """Study id -> (sections, target text) for the studies with a report and a non-empty target."""
    source = ReportSource(cfg.reports)
    texts: dict[str, tuple[dict, str]] = {}
    task = progress.task("reading reports", len(chosen))
    try:
        for k, sid in enumerate(chosen):
            if k % 1024 == 1023 or k == len(chosen) - 1:
                task.advance(k % 1024 + 1)
            raw = source.read(studies[sid])
            if raw is None:
                dropped["no_report"] += 1
                problems.append(Problem("no_report", source.location(studies[sid]), sid, "report file not found"))
                continue
            sections = parse_report(raw).as_dict()
            text = target_text(sections, cfg.sections)
            if not text.strip():
                dropped["empty_target"] += 1
                continue
            texts[sid] = (sections, text)
    finally:
        task.close()
        source.close()
    if chosen and dropped["no_report"] == len(chosen):
        raise InputError("no report found for any study", path=cfg.reports,
                         hint="give mimic-cxr-reports.zip or the folder holding files/pXX/pSUBJECT/sSTUDY.txt")
    return texts


def _find_images(cfg: MimicPrepareConfig, studies: dict[str, MimicStudy], chosen: dict[str, list],
                 texts: dict[str, tuple[dict, str]], problems: list[Problem], dropped: Counter) -> dict[str, Path]:
    """dicom_id -> JPEG for the chosen views that exist; `chosen` and `texts` lose the rest."""
    files: dict[str, Path] = {}
    n_listed = len(texts)
    for sid in list(texts):
        present = []
        for dicom, view in chosen[sid]:
            path = image_path(cfg.root, studies[sid], dicom)
            if os.path.isfile(path):
                files[dicom] = path
                present.append((dicom, view))
            else:
                problems.append(Problem("missing_image", str(path), dicom, "listed in the split csv but not on disk"))
        chosen[sid] = present
        if not present:
            dropped["no_images"] += 1
            del texts[sid]
    if n_listed and not files:
        raise InputError("none of the images listed in the split csv was found", path=cfg.root / "files",
                         hint="--root must be the MIMIC-CXR-JPG folder holding files/pXX/pSUBJECT/sSTUDY/*.jpg")
    return files


def _study_record(cfg: MimicPrepareConfig, study: MimicStudy, chosen: list[tuple[str, str]], sections: dict,
                  text: str, rows: dict[str, int], cleaners: ReportCleaners) -> dict | None:
    """One study's record (docs/formats.md); None when none of its chosen views could be read."""
    images = []
    for dicom, view in chosen:
        entry = {"id": dicom, "view": view, "file": str(image_path(Path(), study, dicom))}  # relative to --root
        if cfg.images:
            if dicom not in rows:
                continue
            entry["row"] = rows[dicom]
        images.append(entry)
    if not images:
        return None
    return {
        "id": study.study_id,
        "group": study.subject_id,
        "study_id": study.study_id,
        "images": images,
        "sections": sections,
        "report": text,
        "target": cleaners.clean(text),
        "legacy_target": cleaners.legacy(text),
        "labels": {},
    }


def _image_record(study_record: dict, image: dict) -> dict:
    """R2Gen's layout: one example per image, its study's report; `group` is still the subject."""
    return {**study_record, "id": f"{study_record['id']}/{image['id']}", "images": [image]}


def _metadata_problems(studies: dict[str, MimicStudy], views: dict[str, str], owner: dict[str, tuple[str, str]],
                       path: Path, problems: list[Problem]) -> None:
    """Studies (and images) that the metadata lists but the split does not, and the reverse."""
    in_split = {d for s in studies.values() for d in s.dicom_ids}
    absent_studies: dict[str, list[str]] = {}
    for dicom, (sid, _subject) in owner.items():
        if dicom in in_split:
            continue
        if sid in studies:
            problems.append(Problem("image_not_in_split", str(path), dicom,
                                    f"study {sid} is in the split csv but this image is not"))
        else:
            absent_studies.setdefault(sid, []).append(dicom)
    for sid, dicoms in sorted(absent_studies.items()):
        problems.append(Problem("not_in_split", str(path), sid,
                                f"study in the metadata ({len(dicoms)} image(s)) but not in the split csv; skipped"))
    for s in studies.values():
        for d in s.dicom_ids:
            if d not in views:
                problems.append(Problem("unknown_view", str(path), d, "image not in the metadata; view UNKNOWN"))


def _stop_if_strict(cfg: MimicPrepareConfig, problems: list[Problem]) -> None:
    if not cfg.strict or not problems:
        return
    kinds = Counter(p.kind for p in problems)
    shown = "; ".join(p.line() for p in problems[:3])
    raise StrictStop(
        f"{len(problems)} problem(s) with the inputs (--strict): "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + f". First: {shown}",
        hint="fix the inputs, or drop --strict to skip them and list them in problems.csv",
    )


def _log_problems(problems: list[Problem]) -> None:
    if problems:
        kinds = Counter(p.kind for p in problems)
        log.warning("%d input problem(s), skipped: %s", len(problems),
                    ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))

