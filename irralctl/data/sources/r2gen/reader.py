"""R2Gen's preprocessed layout (Chen et al. 2020), which CMN and most follow-ups also read.

    annotation.json   {"train": [row, ...], "val": [row, ...], "test": [row, ...]}
    row               {"id": "CXR2384_IM-0942", "report": "<findings text>",
                       "image_path": ["CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png"], "split": "train"}
                      MIMIC-CXR rows are one image each ("id" is the dicom_id) and add "study_id" and
                      "subject_id"
    IMAGES_DIR/       the files `image_path` names, relative to it (R2Gen's `--image_dir`)

R2Gen's IU X-Ray loader reads `image_path[0]` and `image_path[1]` (two views); its MIMIC-CXR loader
reads `image_path[0]` (one example per image); both clean `report` themselves. The split is the
annotation's: a row's `split`, when present, must name the list it is in. irralctl's own export
(`irralctl export --to r2gen`) adds `views` (one view position per image), which R2Gen ignores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from irralctl.data.pipeline import Problem
from irralctl.errors import InputError

# The annotation's lists, in order; they are irralctl's split names too.
SPLITS = ("train", "val", "test")
_SUBJECT_IN_PATH = re.compile(r"(?:^|/)p\d+/p(\d+)/s\d+/")


@dataclass(frozen=True)
class R2GenRow:
    """One example of an annotation.json."""

    id: str
    split: str                      # train | val | test
    report: str
    image_paths: tuple[str, ...]    # relative to IMAGES_DIR, in the annotation's order
    views: tuple[str, ...] | None   # irralctl's addition: one view position per image
    study_id: str | None            # MIMIC-CXR
    subject_id: str | None          # MIMIC-CXR

    def image_ids(self) -> list[str]:
        return [image_id(self.id, p) for p in self.image_paths]


def image_id(row_id: str, path: str) -> str:
    """The id of the image at `path` of row `row_id` in the image store.

    R2Gen's IU X-Ray names views by their index (`CXR2384_IM-0942/0.png`): `<row id>/<index>`, as
    `prepare iu-xray` names R2Gen-layout views. MIMIC-CXR names them by dicom_id (`.../<dicom_id>.jpg`):
    the dicom_id, as `prepare mimic` does.
    """
    stem = PurePosixPath(path).stem
    return f"{row_id}/{stem}" if stem.isdigit() else stem


def _text_id(value: object) -> str | None:
    """An id given as text or as an integer (R2Gen's MIMIC-CXR rows hold study_id and subject_id as numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def read_annotation(path: str | Path) -> list[R2GenRow]:
    """Every row of an R2Gen `annotation.json`, in file order; a malformed row names its list,
    index and field."""
    from irralctl.utils.io import read_json

    path = Path(path)
    if not path.is_file():
        raise InputError("R2Gen annotation not found", path=path, hint="give R2Gen's annotation.json")
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in SPLITS):
        raise InputError("expected an R2Gen annotation: an object with 'train', 'val' and 'test' lists", path=path)
    unknown = sorted(set(data) - set(SPLITS))
    if unknown:
        raise InputError(f"unexpected list(s) {', '.join(map(repr, unknown))}: R2Gen's splits are train, val and test",
                         path=path)
    rows: list[R2GenRow] = []
    seen: dict[str, str] = {}
    for split in SPLITS:
        for k, row in enumerate(data[split]):
            where = f"{split}[{k}]"
            if not isinstance(row, dict):
                raise InputError("expected an object", path=path, record=where)
            rid = _text_id(row.get("id"))
            if rid is None:
                raise InputError("missing, empty or not a string", path=path, record=where, field="id")
            if rid in seen:
                raise InputError(f"id {rid!r} is listed twice (first at {seen[rid]})", path=path, record=where,
                                 field="id")
            seen[rid] = where
            if not isinstance(row.get("report"), str):
                raise InputError("missing or not a string", path=path, record=where, field="report")
            given = row.get("split")
            if given is not None and given != split:
                raise InputError(f"says {given!r} but is in the {split!r} list", path=path, record=where, field="split")
            paths = row.get("image_path", [])
            if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
                raise InputError("expected a list of relative file paths", path=path, record=where, field="image_path")
            for p in paths:
                if PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts:
                    raise InputError(f"{p!r} leaves the image folder: paths must be relative to it", path=path,
                                     record=where, field="image_path")
            views = row.get("views")
            if views is not None and (not isinstance(views, list) or len(views) != len(paths)
                                      or not all(isinstance(v, str) for v in views)):
                raise InputError("expected one view position (text) per image_path entry", path=path, record=where,
                                 field="views")
            rows.append(R2GenRow(
                id=rid, split=split, report=row["report"], image_paths=tuple(paths),
                views=None if views is None else tuple(v.strip().upper() or "UNKNOWN" for v in views),
                study_id=_text_id(row.get("study_id")), subject_id=_text_id(row.get("subject_id")),
            ))
    return rows


def subject_of(row: R2GenRow) -> str | None:
    """A MIMIC-CXR row's patient: its `subject_id`, else the `pSUBJECT` folder of its image path."""
    if row.subject_id:
        return row.subject_id
    for p in row.image_paths:
        m = _SUBJECT_IN_PATH.search(p)
        if m:
            return m.group(1)
    return None


def resolve_images(rows: list[R2GenRow], images_dir: str | Path, problems: list[Problem]) -> dict[str, Path]:
    """Image id -> file under `images_dir` for every image the rows name that exists; the missing
    ones are added to `problems` (kind `missing_image`)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputError("R2Gen image folder not found", path=images_dir,
                         hint="give the folder R2Gen reads as --image_dir (the one image_path is relative to)")
    files: dict[str, Path] = {}
    for row in rows:
        for iid, rel in zip(row.image_ids(), row.image_paths):
            file = images_dir / rel
            if iid in files:
                if files[iid] != file:
                    raise InputError(f"image id {iid!r} names two files ({files[iid]} and {file})", record=row.id,
                                     field="image_path")
                continue
            if file.is_file():
                files[iid] = file
            else:
                problems.append(Problem("missing_image", str(file), row.id,
                                        "listed in the annotation's image_path but not found"))
    if rows and any(r.image_paths for r in rows) and not files:
        raise InputError("none of the images the annotation lists was found", path=images_dir,
                         hint="give the folder R2Gen reads as --image_dir (image_path is relative to it)")
    return files
