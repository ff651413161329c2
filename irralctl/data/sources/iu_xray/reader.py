"""IU X-Ray (Open-i) sources: the report XML archive, image folders, DICOM metadata, R2Gen layout.

Open-i facts this module relies on:

* `NLMCXR_reports.tgz` holds `ecgen-radiology/<n>.xml`, one radiology report each, with
  `<AbstractText Label="COMPARISON|INDICATION|FINDINGS|IMPRESSION">`, MeSH terms, and one
  `<parentImage id="...">` per image. Image files are named `<parentImage id>.png`.
* A study id is an image id minus its last `-NNNN` part (`CXR2169_IM-0785-0001-0001` ->
  `CXR2169_IM-0785-0001`); one report can hold several studies.
* A study's views are the report's images whose id starts with `<study id>-`, in XML order. This
  prefix rule (rather than exact study-id equality) is what gives R2Gen's two views to studies
  such as CXR3912_IM-1988, whose XML lists a single `-1001` image followed by `-2001-000k` ones.
"""

from __future__ import annotations

import csv
import gzip
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.errors import InputError

SECTIONS = ("comparison", "indication", "findings", "impression")
_STUDY_OF_IMAGE = re.compile(r"^(.*)-\d+$")


def study_id_of(image_id: str) -> str:
    m = _STUDY_OF_IMAGE.match(image_id)
    return m.group(1) if m else image_id


@dataclass
class IUReport:
    """One Open-i XML report: its sections, MeSH terms and images in XML order."""

    source: str                    # file name inside the archive or folder
    group: str                     # the report number (n of n.xml): one patient/exam
    sections: dict[str, str]
    mesh: list[str]
    image_ids: list[str]


@dataclass
class IUStudy:
    id: str
    group: str
    sections: dict[str, str]
    mesh: list[str]
    image_ids: list[str] = field(default_factory=list)


def _text(el: ET.Element | None) -> str:
    return "" if el is None or el.text is None else el.text.strip()


def parse_report_xml(data: bytes, source: str) -> IUReport:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise InputError(f"malformed XML ({e})", path=source) from None
    sections = {s: "" for s in SECTIONS}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().lower()
        if label in sections:
            sections[label] = _text(el)
    mesh = [_text(el) for tag in ("major", "minor") for m in root.iter("MeSH") for el in m.iter(tag) if _text(el)]
    image_ids = [el.get("id") for el in root.iter("parentImage") if el.get("id")]
    group = Path(source).stem
    return IUReport(source=source, group=group, sections=sections, mesh=mesh, image_ids=image_ids)


def iter_report_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every `*.xml` in a `.tgz`/`.tar.gz` archive or a folder (recursively)."""
    path = Path(path)
    if not path.exists():
        raise InputError("reports not found", path=path)
    if path.is_dir():
        files = sorted(path.rglob("*.xml"), key=_natural_key)
        for f in files:
            yield f.name, f.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")),
                             key=lambda m: _natural_key(Path(m.name)))
            for m in members:
                f = tar.extractfile(m)
                if f is not None:
                    yield Path(m.name).name, f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(f"not a readable tar archive ({e})", path=path) from None


def _natural_key(p: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))


def read_reports(path: str | Path) -> list[IUReport]:
    reports = [parse_report_xml(data, f"{path}:{name}" if Path(path).is_file() else name)
               for name, data in iter_report_files(path)]
    for r in reports:
        r.source = r.source.rsplit(":", 1)[-1]
        r.group = Path(r.source).stem
    if not reports:
        raise InputError("no *.xml reports found", path=path,
                         hint="give NLMCXR_reports.tgz or its extracted ecgen-radiology/ folder")
    return reports


def studies_of(report: IUReport, extra_images: dict[str, list[str]] | None = None) -> list[IUStudy]:
    """Split a report into its studies; `extra_images` adds image ids found on disk by name."""
    order: list[str] = []
    for image_id in report.image_ids:
        sid = study_id_of(image_id)
        if sid not in order:
            order.append(sid)
    studies = []
    for sid in order:
        prefix = sid + "-"
        images = [i for i in report.image_ids if i.startswith(prefix)]
        for i in (extra_images or {}).get(sid, []):
            if i not in images:
                images.append(i)
        studies.append(IUStudy(id=sid, group=report.group, sections=dict(report.sections),
                               mesh=list(report.mesh), image_ids=images))
    return studies


def index_image_folder(folder: str | Path) -> dict[str, Path]:
    """Image id -> file for a flat (or nested) folder of Open-i `CXR*.png` files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("image folder not found", path=folder)
    out = {}
    for f in folder.rglob("*"):
        if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm") and f.is_file():
            out[f.stem] = f
    return out


def extract_image_archive(archive: str | Path, dest: str | Path) -> Path:
    """Unpack `NLMCXR_png.tgz` (only image members, no path escapes) into `dest`."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                if m.isfile() and Path(m.name).suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"):
                    f = tar.extractfile(m)
                    if f is not None:
                        (dest / Path(m.name).name).write_bytes(f.read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(f"not a readable tar archive ({e})", path=archive) from None
    return dest


def metadata_key(image_id: str) -> str:
    """The metadata's spelling of an image id: it drops the `_k` of `CXR1_1_IM-...` names."""
    return re.sub(r"^(CXR\d+)_\d+_", r"\1_", image_id)


def read_view_positions(path: str | Path) -> dict[str, str]:
    """Image id (as `metadata_key` spells it) -> View Position from `nlmcxr_dicom_metadata.csv(.gz)`.

    A blank View Position (about a third of IU's images) gives "UNKNOWN".
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("metadata file not found", path=path)
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "imageid" not in reader.fieldnames or "View Position" not in reader.fieldnames:
                raise InputError("expected columns 'imageid' and 'View Position'", path=path, record=1)
            for row in reader:
                view = (row.get("View Position") or "").strip().upper()
                out[row["imageid"]] = view or "UNKNOWN"
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:  # EOFError: a truncated .gz
        raise InputError(f"unreadable CSV ({e})", path=path) from None
    return out


def read_r2gen_annotation(path: str | Path) -> dict[str, list[dict]]:
    """R2Gen's `annotation.json`: {"train"|"val"|"test": [{"id", "report", "image_path", ...}]}."""
    from irralctl.utils.io import read_json

    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("train", "val", "test")):
        raise InputError("expected an R2Gen annotation with 'train', 'val' and 'test' lists", path=path)
    for split, rows in data.items():
        for k, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InputError("expected an object", path=path, record=f"{split}[{k}]")
            for key in ("id", "report"):
                if not isinstance(row.get(key), str):
                    raise InputError("missing or not a string", path=path, record=f"{split}[{k}]", field=key)
    return data


def is_r2gen_image_layout(folder: Path) -> bool:
    """True for `images/<study>/<k>.png` (R2Gen), False for a flat folder of Open-i names."""
    for child in folder.iterdir():
        if child.is_dir() and (child / "0.png").exists():
            return True
    return False
