"""A small MIMIC-CXR-JPG + MIMIC-CXR reports tree, written by us, in the real layout.

Six patients, eleven studies. The csv files carry the real column names (the CheXpert csv in the
real file's alphabetical column order), the reports follow the real format (a "FINAL REPORT"
line, upper-case headings with a colon, `___` de-identification) in our own wording, and every
heading variant and every input problem that `prepare mimic` must handle appears once:

| study | split | patient | views | report | problem |
| --- | --- | --- | --- | --- | --- |
| 50000001 | train | 10000001 | PA, LATERAL | FINDINGS / IMPRESSION on their own lines | |
| 50000002 | train | 10000001 | AP | headings inline with their text, HISTORY | |
| 50000003 | train | 10000002 | PA, LATERAL, blank | FINDINGS AND IMPRESSION | |
| 50000004 | train | 10000002 | AP | IMPRESSION only (empty findings) | |
| 51000005 | validate | 11000003 | AP | WET READ before FINAL REPORT, NOTIFICATION | |
| 52000006 | test | 12000004 | PA, LATERAL | no headings at all | |
| 52000007 | test | 12000005 | AP | IMPRESSION inline after findings text | |
| 52000008 | test | 12000005 | PA, LATERAL | FINDINGS / IMPRESSION | lateral JPEG missing; no CheXpert row |
| 53000009 | train | 13000006 | PA, LATERAL | FINDINGS / IMPRESSION | lateral JPEG unreadable |
| 53000010 | train | 13000006 | PA | (none) | report file missing |
| 53000011 | (none) | 13000006 | PA | FINDINGS | in the metadata, not in the split |

Images are generated chest-like JPEGs, or, when `sources` is given, made from real radiographs.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HEADER = "                                 FINAL REPORT\n"

REPORTS = {
    "50000001": HEADER + """\
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___M with cough and low-grade fever for three days, evaluate for
 pneumonia.
 
 TECHNIQUE:  Upright PA and lateral views of the chest.
 
 COMPARISON:  Chest radiograph from ___.
 
 FINDINGS:
 
 The lungs are well expanded and clear.  No pleural effusion or pneumothorax is
 seen.  The cardiomediastinal silhouette is within normal limits.  Degenerative
 changes are noted in the thoracic spine.
 
 IMPRESSION:
 
 No acute cardiopulmonary abnormality.
""",
    "50000002": HEADER + """\
 HISTORY:  ___-year-old woman with shortness of breath.
 
 COMPARISON:  None.
 
 FINDINGS:  Portable AP upright view of the chest.  There is mild enlargement of
 the cardiac silhouette.  Small bilateral pleural effusions with adjacent basilar
 opacity, likely atelectasis.  No pneumothorax.
 
 IMPRESSION:  Mild cardiomegaly and small bilateral pleural effusions.
""",
    "50000003": HEADER + """\
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  Follow-up of right lower lobe pneumonia.
 
 FINDINGS AND IMPRESSION:
 Interval improvement of the right lower lobe consolidation, with residual
 patchy opacity.  Heart size is normal.  No pleural effusion.
""",
    "50000004": HEADER + """\
 INDICATION:  Central line placement.
 
 IMPRESSION:  
 
 1. Right internal jugular central venous catheter terminates in the mid SVC.
 2. No pneumothorax.
""",
    "51000005": """\
 WET READ: ___ ___ 9:41 PM
  Small left apical pneumothorax.
 ______________________________________________________________________________
""" + HEADER + """\
 EXAMINATION:  CHEST (PORTABLE AP)
 
 INDICATION:  ___ year old man after left chest tube removal  // ?pneumothorax
 
 COMPARISON:  ___ at 06:10.
 
 FINDINGS: 
 
 A small left apical pneumothorax is new since the prior study.  The left lung
 otherwise remains expanded.  The right lung is clear.
 
 IMPRESSION: 
 
 Small left apical pneumothorax.
 
 NOTIFICATION:  The findings were discussed with Dr. ___ by Dr. ___ on the
 telephone on ___ at 9:40 PM, 2 minutes after discovery of the findings.
""",
    "52000006": HEADER + """\
 CHEST RADIOGRAPH PERFORMED ON ___
 
 Frontal and lateral views of the chest were obtained.  The lungs are clear
 without focal consolidation.  Heart and mediastinal contours are normal.
 
 No acute intrathoracic process.
""",
    "52000007": HEADER + """\
 INDICATION:  Fever.
 
 FINDINGS:  Single frontal view.  Endotracheal tube tip is 4.5 cm above the
 carina.  Nasogastric tube courses below the diaphragm.  Low lung volumes with
 bibasilar atelectasis. IMPRESSION: Lines and tubes in standard position.
""",
    "52000008": HEADER + """\
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  Chest pain.
 
 FINDINGS:
 
 Heart size is normal.  The lungs are clear.  There is no pneumothorax or
 pleural effusion.
 
 IMPRESSION:
 
 Normal chest radiograph.
""",
    "53000009": HEADER + """\
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  History of heart failure, now with leg swelling.
 
 COMPARISON:  ___.
 
 FINDINGS:
 
 Moderate cardiomegaly is stable.  There is mild pulmonary vascular congestion
 with small bilateral pleural effusions.  No focal consolidation.
 
 IMPRESSION:
 
 Mild pulmonary edema and small effusions.
""",
    # 53000010: no report file (a problem on purpose).
    "53000011": HEADER + """\
 FINDINGS:  The lungs are clear.
""",
}

# study -> (subject, official split or None, views)
STUDIES = {
    "50000001": ("10000001", "train", ["PA", "LATERAL"]),
    "50000002": ("10000001", "train", ["AP"]),
    "50000003": ("10000002", "train", ["PA", "LATERAL", ""]),
    "50000004": ("10000002", "train", ["AP"]),
    "51000005": ("11000003", "validate", ["AP"]),
    "52000006": ("12000004", "test", ["PA", "LATERAL"]),
    "52000007": ("12000005", "test", ["AP"]),
    "52000008": ("12000005", "test", ["PA", "LATERAL"]),
    "53000009": ("13000006", "train", ["PA", "LATERAL"]),
    "53000010": ("13000006", "train", ["PA"]),
    "53000011": ("13000006", None, ["PA"]),
}

# The real file's header: CheXpert's observations in alphabetical order.
CHEXPERT_COLUMNS = [
    "subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
    "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding",
    "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
]
# study -> {observation: value}; unlisted observations are blank. 52000008 has no row.
CHEXPERT = {
    "50000001": {"No Finding": "1.0"},
    "50000002": {"Cardiomegaly": "1.0", "Pleural Effusion": "1.0", "Atelectasis": "-1.0", "Pneumothorax": "0.0"},
    "50000003": {"Consolidation": "1.0", "Lung Opacity": "1.0", "Pleural Effusion": "0.0"},
    "50000004": {"Support Devices": "1.0", "Pneumothorax": "0.0"},
    "51000005": {"Pneumothorax": "1.0"},
    "52000006": {"No Finding": "1.0"},
    "52000007": {"Support Devices": "1.0", "Atelectasis": "1.0"},
    "53000009": {"Cardiomegaly": "1.0", "Edema": "1.0", "Pleural Effusion": "1.0", "Consolidation": "0.0"},
    "53000010": {"No Finding": "1.0"},
    "53000011": {"No Finding": "1.0"},
}

METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
    "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "": ""}

MISSING_IMAGE_STUDY, UNREADABLE_IMAGE_STUDY = "52000008", "53000009"
NO_REPORT_STUDY, NOT_IN_SPLIT_STUDY = "53000010", "53000011"


def dicom_id(study: str, k: int) -> str:
    """A MIMIC-looking dicom_id (five groups of eight hex digits), stable per (study, k)."""
    h = hashlib.sha1(f"{study}/{k}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


@dataclass
class MimicTree:
    root: Path          # the MIMIC-CXR-JPG root
    reports: Path       # the reports' files/ folder, or the zip
    dicoms: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # study -> [(dicom_id, view)]

    def image(self, study: str, k: int) -> Path:
        subject = STUDIES[study][0]
        return self.root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{self.dicoms[study][k][0]}.jpg"


def chest_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth chest-like picture: bright mediastinum, two darker lung fields, some noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= height
    x /= width
    img = 170 - 40 * np.exp(-(((x - 0.3) / 0.13) ** 2 + ((y - 0.5) / 0.3) ** 2))
    img -= 40 * np.exp(-(((x - 0.7) / 0.13) ** 2 + ((y - 0.5) / 0.3) ** 2))
    img += 50 * np.exp(-(((x - 0.5) / 0.06) ** 2))
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(rng: np.random.Generator, size: tuple[int, int], source: Path | None) -> bytes:
    width, height = size
    if source is not None:
        img = Image.open(source).convert("L").resize((width, height), Image.Resampling.BILINEAR)
    else:
        img = Image.fromarray(chest_like(rng, height, width))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_csv_gz(path: Path, header: list[str], rows: list[list]) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def build_mimic_tree(base: Path, *, sources: list[Path] | None = None, reports_zip: bool = False,
                     large: tuple[int, int] = (1700, 2048), small: tuple[int, int] = (520, 624)) -> MimicTree:
    """Write the tree under `base` (`mimic-cxr-jpg/` and `mimic-cxr/`) and describe it.

    One image (the first PA) is `large`, so DCT-scaled decoding is exercised at a realistic
    ratio; the others are `small` to keep the tests fast.
    """
    rng = np.random.default_rng(7)
    root = base / "mimic-cxr-jpg"
    report_root = base / "mimic-cxr" / "files"
    tree = MimicTree(root=root, reports=report_root)
    split_rows, meta_rows, n = [], [], 0
    for study, (subject, split, views) in STUDIES.items():
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        tree.dicoms[study] = []
        for k, view in enumerate(views):
            did = dicom_id(study, k)
            tree.dicoms[study].append((did, view))
            size = large if n == 0 else small
            if view == "LATERAL":
                size = (size[0] + 40, size[1])
            source = sources[n % len(sources)] if sources else None
            n += 1
            meta_rows.append([did, subject, study, "CHEST (PA AND LAT)" if len(views) > 1 else "CHEST (PORTABLE AP)",
                              view, size[1], size[0], 21800506 + n, f"{120000 + n}.123", "CHEST (PA AND LAT)",
                              _VIEW_MEANING[view], "Erect"])
            if split is not None:
                split_rows.append([did, study, subject, split])
            path = folder / f"{did}.jpg"
            if study == MISSING_IMAGE_STUDY and view == "LATERAL":
                continue  # listed in the split and metadata, never written
            if study == UNREADABLE_IMAGE_STUDY and view == "LATERAL":
                path.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)
                continue
            path.write_bytes(_jpeg(rng, size, source))
    _write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    _write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_COLUMNS, meta_rows)
    chex_rows = [[STUDIES[s][0], s, *[values.get(c, "") for c in CHEXPERT_COLUMNS[2:]]] for s, values in CHEXPERT.items()]
    _write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", CHEXPERT_COLUMNS, chex_rows)

    members = {}
    for study, text in REPORTS.items():
        subject = STUDIES[study][0]
        members[f"files/p{subject[:2]}/p{subject}/s{study}.txt"] = text
    if reports_zip:
        tree.reports = base / "mimic-cxr-reports.zip"
        with zipfile.ZipFile(tree.reports, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in members.items():
                z.writestr(name, text)
    else:
        for name, text in members.items():
            p = report_root.parent / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
    return tree
