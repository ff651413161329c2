"""A small Open-i-shaped IU X-Ray tree written by us: XML reports, PNG views, metadata."""

from __future__ import annotations

import csv
import gzip
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

# (report number, findings, impression, image ids in XML order)
REPORTS = [
    (1, "The heart is normal in size. The lungs are clear.", "Normal chest.", ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]),
    (2, "Heart size is enlarged. Small right pleural effusion.", "Cardiomegaly.", ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"]),
    # Two studies in one report; the second has its own -NNNN-000k images.
    (3, "No pneumothorax. Stable 4.5 cm nodule.", "", ["CXR3_IM-0700-1001", "CXR3_IM-0700-2001-0001", "CXR3_IM-0700-2001-0002"]),
    (4, "", "Clear lungs.", ["CXR4_IM-0800-1001", "CXR4_IM-0800-2001"]),           # empty findings
    (5, "Lungs are hyperinflated. No focal consolidation.", "COPD.", ["CXR5_IM-0900-1001"]),  # one view
    (6, "No acute disease.", "", []),                                                # no images at all
    (7, "Mild cardiomegaly. No effusion.", "", ["CXR7_IM-1000-1001", "CXR7_IM-1000-2001"]),
    (8, "Right upper lobe opacity. Possible pneumonia.", "", ["CXR8_IM-1100-1001", "CXR8_IM-1100-2001"]),
]
VIEWS = {"-1001": "PA", "-2001": "LATERAL", "-3001": "PA", "-4001": "LL"}


def _xml(n: int, findings: str, impression: str, images: list[str]) -> str:
    parts = ['<AbstractText Label="COMPARISON">None.</AbstractText>',
             f'<AbstractText Label="INDICATION">Cough, report {n}</AbstractText>',
             f'<AbstractText Label="FINDINGS">{findings}</AbstractText>' if findings else '<AbstractText Label="FINDINGS"/>',
             f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>']
    imgs = "".join(f'<parentImage id="{i}"><figureId>F{k}</figureId></parentImage>' for k, i in enumerate(images, 1))
    return (f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR{n}"/><MedlineCitation><Article>'
            f'<Abstract>{"".join(parts)}</Abstract></Article></MedlineCitation>'
            f'<MeSH><major>normal</major></MeSH>{imgs}</eCitation>')


def write_reports(root: Path, as_tgz: bool = False) -> Path:
    folder = root / "ecgen-radiology"
    folder.mkdir(parents=True, exist_ok=True)
    for n, f, i, imgs in REPORTS:
        (folder / f"{n}.xml").write_text(_xml(n, f, i, imgs), encoding="utf-8")
    if not as_tgz:
        return folder
    tgz = root / "NLMCXR_reports.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    return tgz


def image_ids() -> list[str]:
    return [i for _, _, _, imgs in REPORTS for i in imgs]


def pixel_value(image_id: str) -> int:
    """Each fixture image is a flat grey level derived from its id, so tests can tell views apart."""
    return 10 + (sum(map(ord, image_id)) * 7) % 230


def write_images(folder: Path, size=(60, 48), ids: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids or image_ids():
        arr = np.full(size, pixel_value(i), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def write_metadata(path: Path) -> Path:
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["imageid", "Rows", "View Position"])
        for i in image_ids():
            key = i.replace("CXR1_1_", "CXR1_")  # the metadata drops the `_1` of CXR1_1_ names
            view = next((v for suffix, v in VIEWS.items() if suffix in i), "")
            w.writerow([key, 60, view])
    return path


def write_annotation(path: Path, split: dict[str, str]) -> Path:
    import json

    by_split: dict[str, list] = {"train": [], "val": [], "test": []}
    for sid, s in split.items():
        by_split[s].append({"id": sid, "report": "x", "image_path": [f"{sid}/0.png", f"{sid}/1.png"], "split": s})
    path.write_text(json.dumps(by_split))
    return path
