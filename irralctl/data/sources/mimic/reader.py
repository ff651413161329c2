"""Reading MIMIC-CXR-JPG and the MIMIC-CXR reports (PhysioNet's layouts; Johnson et al. 2019).

* the MIMIC-CXR-JPG root: `files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg` and, beside `files/`,
  `mimic-cxr-2.0.0-split.csv.gz` (dicom_id, study_id, subject_id, split), `...-metadata.csv.gz`
  (dicom_id, ..., ViewPosition, Rows, Columns, ...) and `...-chexpert.csv.gz` (subject_id,
  study_id and the 14 CheXpert observations as 1.0 / 0.0 / -1.0 / blank); plain `.csv` works too;
* the MIMIC-CXR reports: `mimic-cxr-reports.zip` or its extracted tree of
  `files/pXX/pSUBJECT/sSTUDY.txt` (sections: `reports`).
"""

from __future__ import annotations

import csv
import gzip
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.constants import OBSERVATIONS
from irralctl.data.pipeline import Problem
from irralctl.errors import ConfigError, InputError

SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv"
# The official split's names -> ours.
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}
FRONTAL = ("PA", "AP")
UNKNOWN_VIEW = "UNKNOWN"


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
    for line, row in _rows(path, ("subject_id", "study_id", *OBSERVATIONS)):
        values: list[int | None] = []
        for name in OBSERVATIONS:
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
            try:
                data = self._zip.read(member)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:  # a damaged member
                raise InputError(f"damaged member of the reports archive ({e})", path=self.path, record=member) from None
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
