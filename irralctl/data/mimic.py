"""`irralctl prepare mimic`: MIMIC-CXR-JPG images + MIMIC-CXR reports -> a prepared dataset.

Inputs (PhysioNet's layouts; Johnson et al. 2019, MIMIC-CXR-JPG 2.0.0 / 2.1.0):

* the MIMIC-CXR-JPG root: `files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg` and, beside `files/`,
  `mimic-cxr-2.0.0-split.csv.gz` (dicom_id, study_id, subject_id, split), `...-metadata.csv.gz`
  (dicom_id, ..., ViewPosition, Rows, Columns, ...) and `...-chexpert.csv.gz` (subject_id,
  study_id and the 14 CheXpert observations as 1.0 / 0.0 / -1.0 / blank); plain `.csv` works too;
* the MIMIC-CXR reports: `mimic-cxr-reports.zip` or its extracted tree of
  `files/pXX/pSUBJECT/sSTUDY.txt`.

Steps: read the official split (`validate` becomes `val`; `group` is the subject, so a patient
never spans two splits), the views and the official labels; choose the views; read and section
every report (`mimic_reports.parse_report`); drop studies whose target is empty; check that every
chosen image exists; decode each chosen JPEG once, at reduced size, into the image store (worker
processes, journalled, resumable); label the reports; write one record per study (its views a
set, frontal first) or, with `per_image`, one per image as R2Gen does; fit the tokenisers on train.

Inputs that cannot be used (an image listed in the split but absent, an unreadable JPEG, a
missing report, a study in the metadata but not in the split, ...) are skipped and listed in
`problems.csv`; with `strict` they stop preparation before anything is written.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import random
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.labeling import OBSERVATIONS
from irralctl.data.cleaning import get_cleaner
from irralctl.data.labels import attach_labels
from irralctl.data.mimic_reports import SECTION_CHOICES, parse_report, target_text
from irralctl.data.prepared import Problem, describe_source, finish_dataset, open_staging
from irralctl.data.store import build_image_store
from irralctl.errors import ConfigError, InputError
from irralctl.utils.config import to_jsonable

log = logging.getLogger(__name__)

NAME = "mimic_cxr"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv"
# The official split's names -> ours.
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}
# CheXpert's column order, the order of every `labels.*` list (docs/formats.md).
CHEXPERT_OBSERVATIONS = OBSERVATIONS
FRONTAL = ("PA", "AP")
# Order of views inside a study: frontal first (PA before AP), then lateral, then the rest.
_VIEW_RANK = {"PA": 0, "AP": 1, "LATERAL": 2, "LL": 3}
UNKNOWN_VIEW = "UNKNOWN"
Progress = Callable[[str, int, int], Callable[[int], None]]


@dataclass(frozen=True)
class MimicPrepareConfig:
    root: Path                           # MIMIC-CXR-JPG root: files/ and the csv.gz files
    reports: Path                        # mimic-cxr-reports.zip, or the extracted files/ tree (or its parent)
    out: Path
    split_csv: Path | None = None        # default: ROOT/mimic-cxr-2.0.0-split.csv(.gz)
    metadata: Path | None = None         # default: ROOT/mimic-cxr-2.0.0-metadata.csv(.gz) when present
    chexpert: Path | None = None         # default: ROOT/mimic-cxr-2.0.0-chexpert.csv(.gz) when present
    sections: str = "findings"           # findings | findings+impression | impression
    views: str = "all"                   # all | frontal | a comma list such as PA,AP,LATERAL
    per_image: bool = False              # one example per image (R2Gen) instead of per study
    cleaner: str = "default"             # default | legacy
    image_size: int = 256                # shorter side in the image store, pixels
    images: bool = True                  # False: a text-only dataset (no image decoding)
    bpe_vocab_size: int = 4000
    legacy_threshold: int = 10           # R2Gen's threshold for MIMIC-CXR
    max_studies: int | None = None       # a seeded random subset of studies, for debugging
    seed: int = 42
    workers: int = 1
    strict: bool = False
    overwrite: bool = False


@dataclass
class MimicStudy:
    study_id: str
    subject_id: str
    split: str
    dicom_ids: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Reading the csv files


def find_table(root: Path, name: str) -> Path | None:
    """ROOT/name.gz or ROOT/name, whichever exists."""
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a csv or csv.gz, after checking that its header has `required`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"missing column(s) {', '.join(missing)} (header: {', '.join(reader.fieldnames or [])})",
                                 path=path, record=1)
            for k, row in enumerate(reader, start=2):
                yield k, row
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"unreadable CSV ({e})", path=path) from None


def read_split(path: Path, problems: list[Problem]) -> dict[str, MimicStudy]:
    """Study id -> study (its images in file order) from the official split csv."""
    studies: dict[str, MimicStudy] = {}
    for line, row in _rows(path, ("dicom_id", "study_id", "subject_id", "split")):
        split = SPLIT_NAMES.get(row["split"].strip().lower())
        if split is None:
            raise InputError(f"unknown split {row['split']!r} (expected train, validate or test)",
                             path=path, record=line, field="split")
        sid, subject, dicom = row["study_id"].strip(), row["subject_id"].strip(), row["dicom_id"].strip()
        study = studies.get(sid)
        if study is None:
            study = studies[sid] = MimicStudy(sid, subject, split)
        elif study.split != split or study.subject_id != subject:
            problems.append(Problem("inconsistent_split", str(path), f"line {line}",
                                    f"study {sid} is already {study.subject_id}/{study.split}; "
                                    f"this row says {subject}/{split} (the first is kept)"))
        study.dicom_ids.append(dicom)
    return studies


def read_metadata(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """dicom_id -> ViewPosition (blank -> UNKNOWN), and dicom_id -> (study_id, subject_id)."""
    views, owner = {}, {}
    for _, row in _rows(path, ("dicom_id", "study_id", "subject_id", "ViewPosition")):
        dicom = row["dicom_id"].strip()
        views[dicom] = (row["ViewPosition"] or "").strip().upper() or UNKNOWN_VIEW
        owner[dicom] = (row["study_id"].strip(), row["subject_id"].strip())
    return views, owner


def read_official_labels(path: Path) -> dict[str, list[int | None]]:
    """study_id -> the 14 labels in CheXpert's order (columns are matched by name, not position)."""
    out = {}
    for line, row in _rows(path, ("subject_id", "study_id", *CHEXPERT_OBSERVATIONS)):
        values: list[int | None] = []
        for name in CHEXPERT_OBSERVATIONS:
            raw = (row[name] or "").strip()
            try:
                values.append(None if raw == "" else int(float(raw)))
            except ValueError:
                raise InputError(f"expected 1.0, 0.0, -1.0 or blank, got {raw!r}", path=path, record=line,
                                 field=name) from None
            if values[-1] not in (None, 1, 0, -1):
                raise InputError(f"expected 1.0, 0.0, -1.0 or blank, got {raw!r}", path=path, record=line, field=name)
        out[row["study_id"].strip()] = values
    return out


# ----------------------------------------------------------------------------------------------
# Reports and image paths


def _prefix(subject_id: str) -> str:
    return f"p{subject_id[:2]}/p{subject_id}"


def image_path(root: Path, study: MimicStudy, dicom_id: str) -> Path:
    return root / "files" / _prefix(study.subject_id) / f"s{study.study_id}" / f"{dicom_id}.jpg"


class ReportSource:
    """The reports, from `mimic-cxr-reports.zip` or from a folder holding `files/pXX/...` (or
    being that `files/` folder): `read(study) -> text | None` (None: no such report)."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as e:
                raise InputError(f"not a readable zip archive ({e})", path=path,
                                 hint="give mimic-cxr-reports.zip or its extracted folder") from None
            # Members are `[prefix/]files/pXX/pSUBJECT/sSTUDY.txt`; index them by study id.
            for name in self._zip.namelist():
                base = name.rsplit("/", 1)[-1]
                if base.startswith("s") and base.endswith(".txt"):
                    self._members[base[1:-4]] = name
        elif path.is_dir():
            self._base = path / "files" if (path / "files").is_dir() else path
        else:
            raise InputError("reports not found", path=path,
                             hint="give mimic-cxr-reports.zip or its extracted files/ folder")

    def location(self, study: MimicStudy) -> str:
        """Where the study's report is (or would be): a file, or `archive.zip:member`."""
        relative = f"{_prefix(study.subject_id)}/s{study.study_id}.txt"
        if self._zip is not None:
            return f"{self.path}:{self._members.get(study.study_id, 'files/' + relative)}"
        return str(self._base / relative)

    def read(self, study: MimicStudy) -> str | None:
        if self._zip is not None:
            member = self._members.get(study.study_id)
            if member is None:
                return None
            data = self._zip.read(member)
        else:
            try:
                data = (self._base / _prefix(study.subject_id) / f"s{study.study_id}.txt").read_bytes()
            except FileNotFoundError:
                return None
        # The reports are ASCII; never fail a 377k-report run on one odd byte.
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


# ----------------------------------------------------------------------------------------------
# Options


def parse_views(spec: str) -> tuple[str, ...] | None:
    """`all` -> None (every view), `frontal` -> (PA, AP), `PA,AP,LATERAL` -> those positions."""
    s = spec.strip().upper()
    if s == "ALL":
        return None
    if s == "FRONTAL":
        return FRONTAL
    views = tuple(v.strip() for v in s.split(",") if v.strip())
    if not views:
        raise ConfigError(f"--views {spec!r} names no view; use all, frontal or a list such as PA,AP,LATERAL")
    return views


def _view_key(view: str, dicom_id: str) -> tuple[int, str]:
    return _VIEW_RANK.get(view, 4 if view != UNKNOWN_VIEW else 5), dicom_id


def _check_options(cfg: MimicPrepareConfig) -> None:
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


def prepare_mimic(cfg: MimicPrepareConfig, progress: Progress | None = None) -> Path:
    """Build the dataset at `cfg.out`; `progress(description, total, done)` returns an advance callback."""
    _check_options(cfg)
    cleaner_name, cleaner_version, clean = get_cleaner(cfg.cleaner, NAME)
    legacy_name, legacy_version, legacy_clean = get_cleaner("legacy", NAME)
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
    _stop_if_strict(cfg, problems, None)
    _log_problems(problems)

    # 4. The image store: each chosen JPEG decoded once, at reduced size.
    staging = open_staging(cfg.out, _options_dict(cfg), overwrite=cfg.overwrite)
    rows: dict[str, int] = {}
    if cfg.images:
        items = [(d, files[d]) for sid in texts for d, _ in chosen[sid]]
        advance = progress("decoding images", len(items), 0) if progress else None
        result = build_image_store(items, staging / "images", shorter=cfg.image_size, workers=cfg.workers,
                                   progress=advance)
        rows = result.rows
        for dicom, path, reason in result.failed:
            problems.append(Problem("unreadable_image", path, dicom, reason.removeprefix(f"{path}: ")))
        if result.failed:
            log.warning("%d image(s) could not be decoded, skipped", len(result.failed))
        _stop_if_strict(cfg, [p for p in problems if p.kind == "unreadable_image"], staging)

    # 5. Records, labels, layout.
    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for sid, (sections, text) in texts.items():
        record = _study_record(cfg, studies[sid], chosen[sid], sections, text, rows, clean, legacy_clean)
        if record is None:
            dropped["no_readable_image"] += 1
            continue
        if official is not None:
            record["labels"]["chexpert_official"] = official.get(sid, [None] * len(CHEXPERT_OBSERVATIONS))
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
        cleaner={"name": cleaner_name, "version": cleaner_version},
        legacy_cleaner={"name": legacy_name, "version": legacy_version},
        images=image_info, labeler=labeler, counts=counts, problems=problems,
        bpe_vocab_size=cfg.bpe_vocab_size, legacy_threshold=cfg.legacy_threshold,
        example_layout="image" if cfg.per_image else "study",
        extra={"label_names": list(CHEXPERT_OBSERVATIONS)},
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
                  problems: list[Problem], dropped: Counter, progress: Progress | None) -> dict[str, tuple[dict, str]]:
    """Study id -> (sections, target text) for the studies with a report and a non-empty target."""
    source = ReportSource(cfg.reports)
    texts: dict[str, tuple[dict, str]] = {}
    advance = progress("reading reports", len(chosen), 0) if progress else None
    try:
        for k, sid in enumerate(chosen):
            if advance and (k % 1024 == 1023 or k == len(chosen) - 1):
                advance(k % 1024 + 1)
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
                  text: str, rows: dict[str, int], clean, legacy_clean) -> dict | None:
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
        "target": clean(text),
        "legacy_target": legacy_clean(text),
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


def _stop_if_strict(cfg: MimicPrepareConfig, problems: list[Problem], staging: Path | None) -> None:
    if not cfg.strict or not problems:
        return
    kinds = Counter(p.kind for p in problems)
    shown = "; ".join(p.line() for p in problems[:3])
    where = f"; the decoded images stay in {staging} for a rerun" if staging else ""
    raise InputError(
        f"{len(problems)} problem(s) with the inputs (--strict): "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + f". First: {shown}",
        hint=f"fix the inputs, or drop --strict to skip them and list them in problems.csv{where}",
    )


def _log_problems(problems: list[Problem]) -> None:
    if problems:
        kinds = Counter(p.kind for p in problems)
        log.warning("%d input problem(s), skipped: %s", len(problems),
                    ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))

