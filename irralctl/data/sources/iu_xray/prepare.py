"""`irralctl prepare iu-xray`: Open-i or R2Gen-layout IU X-Ray -> a prepared dataset.

Steps: read reports (XML archive/folder, or an R2Gen annotation), split them into studies, find
each study's image files, choose the split, clean the target text, label it, decode every view
once into the image store, fit the tokenisers on train, write the manifests.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from pathlib import Path

from irralctl.data.cleaning import report_cleaners
from irralctl.data.labels import attach_labels
from irralctl.data.pipeline import Problem, dataset_stage, decode_images, describe_source, finish_dataset
from irralctl.data.sources.iu_xray import reader as iu_xray
from irralctl.data.sources.iu_xray.config import SECTION_CHOICES, IUPrepareConfig
from irralctl.data.splits import r2gen_split, random_split, split_from_annotation
from irralctl.errors import InputError, StrictStop
from irralctl.progress import SILENT, Progress

log = logging.getLogger(__name__)


def _target_text(sections: dict[str, str], which: str) -> str:
    if which == "findings":
        return sections.get("findings", "")
    if which == "findings+impression":
        return " ".join(t for t in (sections.get("findings", ""), sections.get("impression", "")) if t)
    raise InputError(f"unknown --sections {which!r}; choose {' or '.join(SECTION_CHOICES)}")


def _group_of_annotation_id(study_id: str) -> str:
    m = re.match(r"CXR(\d+)", study_id)
    return m.group(1) if m else study_id


def prepare_iu_xray(cfg: IUPrepareConfig, progress: Progress = SILENT) -> Path:
    """Build the dataset at `cfg.out`."""
    if cfg.from_r2gen is not None:
        from irralctl.data.sources.r2gen.prepare import prepare_from_r2gen, refuse_what_r2gen_brings

        refuse_what_r2gen_brings(cfg, ("reports", "images", "annotation", "metadata", "split", "sections"),
                                 "the reports, images and split from R2Gen's annotation (findings only)",
                                 with_value=("split", "sections"))
        return prepare_from_r2gen(cfg, name="iu_xray", progress=progress)
    if cfg.reports is None and cfg.annotation is None:
        raise InputError("give --reports (NLMCXR_reports.tgz, ecgen-radiology/ or annotation.json) or --annotation")
    if cfg.split not in ("r2gen", "random"):
        raise InputError(f"unknown --split {cfg.split!r}; choose r2gen or random")
    _target_text({}, cfg.sections)  # validates --sections before any work
    cleaners = report_cleaners(cfg.cleaner, "iu_xray")
    problems: list[Problem] = []

    # 1. Studies and their texts.
    annotation = iu_xray.read_r2gen_annotation(cfg.annotation) if cfg.annotation else None
    reports_are_annotation = cfg.reports is not None and cfg.reports.suffix.lower() == ".json"
    if reports_are_annotation:
        annotation = annotation or iu_xray.read_r2gen_annotation(cfg.reports)
    studies: list[iu_xray.IUStudy] = []
    if cfg.reports is not None and not reports_are_annotation:
        reports = iu_xray.read_reports(cfg.reports)
        extra = _images_by_prefix(cfg.images) if cfg.images and not _is_archive(cfg.images) else {}
        for rep in reports:
            if not rep.image_ids:
                problems.append(Problem("no_images", rep.source, "", "report lists no <parentImage>"))
            studies.extend(iu_xray.studies_of(rep, extra))
    else:
        for rows in annotation.values():
            for row in rows:
                studies.append(iu_xray.IUStudy(
                    id=row["id"], group=_group_of_annotation_id(row["id"]),
                    sections={"comparison": "", "indication": "", "findings": row["report"], "impression": ""},
                    mesh=[], image_ids=[]))
    if cfg.sections != "findings" and reports_are_annotation:
        raise InputError("an R2Gen annotation holds findings only", path=cfg.reports,
                         hint="give the Open-i XML reports for --sections findings+impression")

    # 2. Split.
    if cfg.split == "r2gen":
        assignment = split_from_annotation(annotation) if annotation else r2gen_split()
        split_of = {s.id: assignment.get(s.id) for s in studies}
    else:
        by_group = random_split([s.group for s in studies], val=cfg.val_ratio, test=cfg.test_ratio, seed=cfg.seed)
        split_of = {s.id: by_group[s.group] for s in studies}
    dropped = Counter()
    kept = []
    for s in studies:
        if split_of[s.id] is None:
            dropped["not_in_split"] += 1
            continue
        text = _target_text(s.sections, cfg.sections)
        if not text.strip():
            dropped["empty_target"] += 1
            continue
        kept.append((s, text))
    if cfg.split == "r2gen":
        wanted = split_from_annotation(annotation) if annotation else r2gen_split()
        missing = sorted(wanted.keys() - {s.id for s in studies})
        if missing:
            dropped["split_id_not_found"] = len(missing)
            for sid in missing:
                problems.append(Problem("split_id_not_found", str(cfg.reports or cfg.annotation), sid,
                                        "listed in the split but no such study in the reports"))

    # 3. Images.
    views = iu_xray.read_view_positions(cfg.metadata) if cfg.metadata else {}
    options = cfg
    inputs = [cfg.reports, cfg.images, cfg.annotation, cfg.metadata]
    with dataset_stage(cfg.out, _options_dict(cfg), overwrite=cfg.overwrite, inputs=inputs) as staging:
        image_info = None
        rows: dict[str, int] = {}
        image_files: dict[str, Path] = {}
        if cfg.images is not None:
            all_ids = {i for st in studies for i in st.image_ids}
            image_files = _resolve_images(cfg, staging, [s for s, _ in kept], all_ids, problems)
            items = [(i, image_files[i]) for s, _ in kept for i in s.image_ids if i in image_files]
            seen = set()
            items = [x for x in items if not (x[0] in seen or seen.add(x[0]))]
            rows = decode_images(staging, items, problems, size=cfg.image_size, workers=cfg.workers,
                                 progress=progress).rows
            image_info = {"count": len(rows), "size": cfg.image_size, "views_per_study": 2}
            shutil.rmtree(staging / "raw_images", ignore_errors=True)

        # 4. Records.
        splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
        for s, text in kept:
            listed = [{"id": i, "view": _view(views, i)} for i in s.image_ids]
            if cfg.images is None:  # text-only: the views are still listed, without store rows
                images = listed
            else:
                images = [{**im, "row": rows[im["id"]]} for im in listed if im["id"] in rows]
            if cfg.images is not None and not images:
                dropped["no_readable_image"] += 1
                problems.append(Problem("no_images", "", s.id, "no readable image file for this study"))
                continue
            splits[split_of[s.id]].append({
                "id": s.id,
                "group": s.group,
                "images": images,
                "sections": s.sections,
                "mesh": s.mesh,
                "report": text,
                "target": cleaners.clean(text),
                "legacy_target": cleaners.legacy(text),
            })
        if cfg.metadata:
            for rs in splits.values():
                for r in rs:
                    for im in r["images"]:
                        if im["view"] is None:
                            im["view"] = "UNKNOWN"
                            problems.append(Problem("unknown_view", str(cfg.metadata), im["id"], "image not in the metadata"))

        if cfg.strict and problems:
            shown = "; ".join(p.line() for p in problems[:3])
            raise StrictStop(f"{len(problems)} problem(s) with the inputs (--strict): {shown}",
                             hint="fix the inputs, or drop --strict to skip them and list them in problems.csv")

        labeler = attach_labels([r for rs in splits.values() for r in rs])
        sources = [describe_source(p) for p in (cfg.reports, cfg.images, cfg.annotation, cfg.metadata) if p is not None]
        return finish_dataset(
            staging, cfg.out, name="iu_xray", splits=splits, options=options, sources=sources,
            cleaners=cleaners,
            images=image_info, labeler=labeler, counts={"dropped": dict(dropped), "images": len(rows)},
            problems=problems, bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
        )


def _view(views: dict[str, str], image_id: str) -> str | None:
    """The image's view position; None when metadata was given but does not list the image."""
    if not views:
        return "UNKNOWN"
    return views.get(iu_xray.metadata_key(image_id), views.get(image_id))


def _options_dict(cfg: IUPrepareConfig) -> dict:
    from irralctl.utils.config import to_jsonable

    d = to_jsonable(cfg)
    for k in ("out", "workers", "strict", "overwrite"):  # do not change what is built
        d.pop(k, None)
    return d


def _is_archive(path: Path) -> bool:
    return path.is_file() and (path.name.endswith((".tgz", ".tar.gz", ".tar")))


def _images_by_prefix(folder: Path) -> dict[str, list[str]]:
    """Study id -> image ids found on disk under Open-i names (for studies the XML lists short)."""
    if not folder.is_dir() or iu_xray.is_r2gen_image_layout(folder):
        return {}
    out: dict[str, list[str]] = {}
    for image_id in sorted(iu_xray.index_image_folder(folder)):
        sid = iu_xray.study_id_of(image_id)
        while True:
            out.setdefault(sid, []).append(image_id)
            parent = iu_xray.study_id_of(sid)
            if parent == sid:
                break
            sid = parent
    return out


def _resolve_images(cfg: IUPrepareConfig, staging: Path, studies: list[iu_xray.IUStudy], known: set[str],
                    problems: list[Problem]) -> dict[str, Path]:
    """Image id -> file, for Open-i folders/archives and R2Gen's images/<id>/<k>.png layout."""
    src = cfg.images
    if not src.exists():
        raise InputError("images not found", path=src)
    if _is_archive(src):
        src = iu_xray.extract_image_archive(src, staging / "raw_images")
        if not any(src.iterdir()):
            raise InputError("the image archive holds no images", path=cfg.images)
    if iu_xray.is_r2gen_image_layout(src):
        files: dict[str, Path] = {}
        for s in studies:
            folder = src / s.id
            pngs = sorted(folder.glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else 1 << 30) if folder.is_dir() else []
            if not s.image_ids:  # annotation-only studies: name views by their R2Gen index
                s.image_ids = [f"{s.id}/{p.stem}" for p in pngs]
                files.update({f"{s.id}/{p.stem}": p for p in pngs})
            else:  # R2Gen's k.png is the k-th image of the study in XML order
                for k, p in enumerate(pngs):
                    if k < len(s.image_ids):
                        files[s.image_ids[k]] = p
                s.image_ids = s.image_ids[:len(pngs)]
            if not pngs:
                problems.append(Problem("missing_image", str(folder), s.id, "no images for this study"))
        return files
    index = iu_xray.index_image_folder(src)
    if not index:
        raise InputError("no PNG/JPEG/DICOM images found", path=src)
    wanted = {i for s in studies for i in s.image_ids}
    for i in sorted(wanted - index.keys()):
        problems.append(Problem("missing_image", str(src), i, "listed in the report XML but no file found"))
    for i in sorted(index.keys() - known):
        problems.append(Problem("image_without_report", str(index[i]), i, "no report lists this image"))
    return {i: p for i, p in index.items() if i in wanted}
