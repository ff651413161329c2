"""What `generate` and `heatmap` read: studies found on disk or in a prepared dataset, and their pixels.

Studies from files (`discover_studies`): INPUT is a single image, a folder with one subfolder per
study, or a flat folder whose file names say the study. Every PNG, JPEG and DICOM file under INPUT
is found (recursively, in natural order: `2.png` before `10.png`) and grouped:

1. with `--group-by REGEX`: the regex is searched in the file's path relative to INPUT; its group
   `study` (or its first group, or the whole match) is the study id;
2. otherwise, by the first rule that applies:
   * Open-i names `CXR<n>[_<k>]_IM-<a>-<b>.<ext>`: the image id minus its last `-<b>`
     (`CXR2384_IM-0942-1001.png` -> `CXR2384_IM-0942`, the id IU X-Ray datasets use);
   * MIMIC-CXR-JPG's `.../s<study_id>/<dicom_id>.jpg`: `<study_id>` (the dataset's record id);
   * a file in a subfolder: that subfolder's path (R2Gen's `images/<study id>/0.png` layout);
   * a file directly in INPUT: a study of its own, named by the file's stem.

Views: frontal first when it can be told (a DICOM's ViewPosition tag); otherwise file order. When a
study has more views than the model takes, the first frontal (or unknown) view, then the first
lateral, then the rest in order are kept (`choose_views`, flag `extra_views`); fewer views are zero
images masked out of attention (flag `one_view` for a single view of a two-view model).

Pixels: `load_grey` (the decoder shared with preparation) at the shorter side the image store of a
default preparation has (256 px, or the model's input size if larger), then the loader's own
evaluation transform (`eval_view`): a prepared study and the same study from files look alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from irralctl.constants import view_kind, view_rank
from irralctl.data.images import IMAGE_SUFFIXES, is_dicom, load_grey
from irralctl.data.loader import LoaderConfig, ReportDataset, eval_view
from irralctl.data.prepared import PreparedDataset
from irralctl.data.tokenizers import ReportTokenizer
from irralctl.errors import ConfigError, InputError

log = logging.getLogger(__name__)

STORE_SHORTER_SIDE = 256   # `irralctl prepare`'s default image-store size (shorter side, pixels)
_OPENI = re.compile(r"^(CXR\d+(?:_\d+)*_IM-\d+)-\d+$", re.IGNORECASE)
_MIMIC_STUDY = re.compile(r"^s(\d+)$")


@dataclass(frozen=True)
class View:
    """One image of a study: a file, or a row of a prepared dataset's image store."""

    id: str
    position: str = "UNKNOWN"        # PA, AP, LATERAL, ... as the DICOM or the dataset says
    path: str | None = None
    row: int | None = None

    def describe(self) -> dict:
        out = {"id": self.id, "view": self.position}
        if self.path is not None:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class Study:
    id: str
    views: tuple[View, ...]          # given to the model, in slot order
    reference: str | None = None     # the record's target text (prepared datasets only)
    flags: tuple[str, ...] = ()
    dropped: tuple[View, ...] = field(default=())  # views beyond the model's count


def choose_views(views: Sequence[View], n: int) -> tuple[list[View], list[View]]:
    """(kept, dropped): at most n views in slot order.

    The first slot takes the best view that is not a lateral (a frontal one, else one of unknown
    position: an image file without metadata is most often frontal), the second the best lateral,
    the rest follow in `view_rank` order (files of equal rank in file order).
    """
    ordered = sorted(views, key=lambda v: view_rank(v.position))  # stable: file order within a rank
    kept: list[View] = []
    for first in (next((v for v in ordered if view_kind(v.position) != "lateral"), None),
                  next((v for v in ordered if view_kind(v.position) == "lateral"), None)):
        if first is not None and len(kept) < n:
            kept.append(first)
    for v in ordered:
        if len(kept) >= n:
            break
        if v not in kept:
            kept.append(v)
    return kept, [v for v in ordered if v not in kept]


def _flags(n_found: int, n_kept: int, model_views: int) -> tuple[str, ...]:
    flags = []
    if n_kept < model_views:
        flags.append("one_view" if n_kept == 1 else "missing_views")
    if n_found > n_kept:
        flags.append("extra_views")
    return tuple(flags)


def _natural_key(rel: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", rel))


def _is_image(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    return path.suffix == "" and is_dicom(path)  # DICOM files often have no extension


def dicom_view_position(path: str | Path) -> str:
    """A DICOM file's ViewPosition (UNKNOWN when absent, unreadable, or not a DICOM)."""
    path = Path(path)
    if path.suffix.lower() not in (".dcm", ".dicom", ""):
        return "UNKNOWN"
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ViewPosition"])
    except Exception:  # a broken file is reported when its pixels are read
        return "UNKNOWN"
    value = str(ds.get("ViewPosition", "") or "").strip().upper()
    return value or "UNKNOWN"


def _default_study_id(rel: Path) -> str:
    m = _OPENI.match(rel.stem)
    if m:
        return m.group(1)
    if len(rel.parts) > 1:
        m = _MIMIC_STUDY.match(rel.parent.name)
        if m:
            return m.group(1)
        return rel.parent.as_posix()
    return rel.stem


def _regex_study_id(pattern: re.Pattern, rel: Path) -> str | None:
    m = pattern.search(rel.as_posix())
    if m is None:
        return None
    if "study" in pattern.groupindex:
        return m.group("study")
    return m.group(1) if pattern.groups else m.group(0)


def discover_studies(input_path: str | Path, views: int, group_by: str | None = None) -> list[Study]:
    """Studies of the image files at `input_path` (see the module docstring), in natural order."""
    root = Path(input_path)
    if not root.exists():
        raise InputError("input not found", path=root)
    if root.is_file():
        if not _is_image(root):
            raise InputError(f"not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))}, or DICOM)", path=root)
        files, root_dir = [root], root.parent
    else:
        files = sorted((p for p in root.rglob("*") if p.is_file() and _is_image(p)),
                       key=lambda p: _natural_key(p.relative_to(root).as_posix()))
        root_dir = root
        if not files:
            raise InputError("no images (PNG, JPEG or DICOM) found in this folder", path=root,
                             hint="give a folder of studies (one subfolder each), a folder of images, a single image, "
                                  "or a prepared dataset with --dataset DIR --split test")
    pattern = None
    if group_by:
        try:
            pattern = re.compile(group_by)
        except re.error as e:
            raise ConfigError(f"--group-by {group_by!r} is not a valid regular expression ({e})") from None
    groups: dict[str, list[Path]] = {}
    unmatched: list[Path] = []
    for f in files:
        rel = f.relative_to(root_dir)
        sid = _default_study_id(rel) if pattern is None else _regex_study_id(pattern, rel)
        if sid is None or sid == "":
            unmatched.append(rel)
            continue
        groups.setdefault(sid, []).append(f)
    if unmatched:
        raise InputError(f"{len(unmatched)} file(s) do not match --group-by {group_by!r}, e.g. {unmatched[0].as_posix()}",
                         path=root, hint="the regex is searched in each path relative to INPUT; its group 'study' "
                                         "(or first group) names the study")
    studies = []
    for sid, paths in groups.items():
        found = [View(id=p.stem, position=dicom_view_position(p), path=str(p)) for p in paths]
        kept, dropped = choose_views(found, views)
        studies.append(Study(id=sid, views=tuple(kept), flags=_flags(len(found), len(kept), views), dropped=tuple(dropped)))
    return studies


def single_study(path: str | Path, views: int) -> Study:
    """Every image at `path` (an image, or a folder searched recursively) as the views of one study."""
    path = Path(path)
    if path.is_file():
        return discover_studies(path, views)[0]
    if not path.is_dir():
        raise InputError("study not found", path=path)
    files = sorted((p for p in path.rglob("*") if p.is_file() and _is_image(p)),
                   key=lambda p: _natural_key(p.relative_to(path).as_posix()))
    if not files:
        raise InputError("no images (PNG, JPEG or DICOM) found in this folder", path=path,
                         hint="give the folder of one study's views, or one image")
    found = [View(id=p.stem, position=dicom_view_position(p), path=str(p)) for p in files]
    kept, dropped = choose_views(found, views)
    return Study(id=path.name, views=tuple(kept), flags=_flags(len(found), len(kept), views), dropped=tuple(dropped))


def dataset_studies(ds: PreparedDataset, split: str, views: int, text_field: str) -> list[Study]:
    """The studies of a prepared split, views as the training loader takes them, references included."""
    studies = []
    for r in ds.records(split):
        images = [im for im in r.get("images", []) if "row" in im]
        kept = [View(id=str(im.get("id", im["row"])), position=str(im.get("view") or "UNKNOWN"), row=int(im["row"]))
                for im in images[:views]]
        dropped = [View(id=str(im.get("id", im["row"])), position=str(im.get("view") or "UNKNOWN"), row=int(im["row"]))
                   for im in images[views:]]
        ref = r.get(text_field)
        studies.append(Study(id=str(r["id"]), views=tuple(kept), reference=ref if isinstance(ref, str) else None,
                             flags=_flags(len(images), len(kept), views), dropped=tuple(dropped)))
    return studies


def file_shorter_side(image_size: int) -> int:
    """Shorter side image files are decoded at: what a default preparation stores."""
    return max(STORE_SHORTER_SIDE, image_size)


class FileStudies(Dataset):
    """Pixels of file studies: item i -> {index, images (V, S, S) uint8, n_views, errors}.

    Unreadable views are left out (later views move up a slot) and reported in `errors` as
    (path, message); the caller decides whether that stops the run.
    """

    def __init__(self, studies: Sequence[Study], views: int, image_size: int, no_image: bool = False):
        self.studies, self.views, self.image_size, self.no_image = list(studies), views, image_size, no_image
        self.shorter = file_shorter_side(image_size)

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict:
        study = self.studies[index]
        images = torch.zeros(self.views, self.image_size, self.image_size, dtype=torch.uint8)
        n, errors, used = 0, [], []
        for view in study.views[: self.views]:
            if self.no_image:
                used.append(view.id)
                n += 1
                continue
            try:
                images[n] = eval_view(load_grey(view.path, self.shorter), self.image_size)[0]
            except InputError as e:  # returned, not raised: a worker's exception loses its message
                errors.append((view.path, e.message))
                continue
            used.append(view.id)
            n += 1
        return {"index": index, "images": images, "n_views": n, "errors": errors, "used": used}


class DatasetStudies(Dataset):
    """Pixels of a prepared split through the training loader's evaluation path (`ReportDataset`)."""

    def __init__(self, ds: PreparedDataset, split: str, tokenizer: ReportTokenizer, *, text_field: str,
                 views: int, image_size: int, no_image: bool = False):
        cfg = LoaderConfig(text_field=text_field, views=views, image_size=image_size, train=False,
                           no_image=no_image or not ds.has_images)
        self.inner = ReportDataset(ds, split, tokenizer, cfg)
        self.no_image = cfg.no_image

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        item = self.inner[index]
        n = len(self.inner.rows[index]) if self.no_image else item["n_views"]
        return {"index": index, "images": item["images"], "n_views": n, "errors": [], "used": None}


def collate_studies(items: list[dict]) -> dict:
    """Stack items of `FileStudies` / `DatasetStudies`; view_mask[b, v] is True for real views."""
    images = torch.stack([it["images"] for it in items])                   # (B, V, S, S) uint8
    n_views = torch.tensor([it["n_views"] for it in items])
    return {
        "index": [it["index"] for it in items],
        "images": images,
        "view_mask": torch.arange(images.shape[1])[None, :] < n_views[:, None],  # (B, V)
        "errors": [it["errors"] for it in items],
        "used": [it["used"] for it in items],
    }


def display_image(view: View, store=None, shorter: int = 512) -> np.ndarray:
    """The view at its own aspect for drawing: a file at `shorter` px, or its image-store row."""
    if view.path is not None:
        return load_grey(view.path, shorter)
    if store is None or view.row is None:
        raise InputError(f"view {view.id} has neither a file nor an image-store row")
    return np.array(store[view.row])
