"""`irralctl export DATASET --to r2gen DIR`: a prepared dataset in R2Gen's layout.

    DIR/annotation.json        {"train": [row, ...], "val": [...], "test": [...]}, rows as R2Gen reads them:
                               {"id", "report", "image_path": ["<id>/0.png", ...], "split", "views"}
                               (MIMIC-CXR rows add "study_id" and "subject_id")
    DIR/images/<id>/<k>.png    view k of the example (8-bit grey, as the image store holds it)
    DIR/export.json            what was exported, from which dataset (name, fingerprint)

R2Gen/CMN then train on exactly irralctl's split: `--ann_path DIR/annotation.json --image_dir
DIR/images`. `report` is the raw report (R2Gen cleans it itself); `views` is irralctl's addition
(R2Gen ignores it) so that `prepare --from-r2gen` gets the view positions back. R2Gen's IU X-Ray
loader reads exactly two views per example and its MIMIC-CXR loader the first one: a warning
counts the examples that have another number. Images are the store's pixels (resized at
preparation), not the original files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from PIL import Image

from irralctl.constants import SPLITS
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import InputError
from irralctl.export import ExportResult
from irralctl.export.config import ExportConfig
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import save_config
from irralctl.utils.io import write_json
from irralctl.utils.outputs import output_dir


def _folder(rid: str, path: Path, line: int) -> str:
    """The example's image folder under images/: its id, which must be a safe relative path."""
    p = PurePosixPath(rid)
    if not rid or p.is_absolute() or ".." in p.parts or "\\" in rid or rid != str(p):
        raise InputError(f"id {rid!r} cannot name a folder of images/", path=path, record=line, field="id")
    return rid


def _as_number(value: object) -> object:
    """R2Gen's MIMIC-CXR annotation holds study and subject ids as numbers."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _row(record: dict, split: str, name: str, paths: list[str]) -> dict:
    row = {"id": str(record["id"]), "report": record["report"], "image_path": paths, "split": split,
           "views": [im.get("view") or "UNKNOWN" for im in record["images"]][:len(paths)]}
    if name == "mimic_cxr":
        row["study_id"] = _as_number(record.get("study_id", record["id"]))
        row["subject_id"] = _as_number(record.get("group"))
    return row


def export_r2gen(cfg: ExportConfig, ds: PreparedDataset, progress: Progress = SILENT) -> ExportResult:
    """Write `ds` to `cfg.out` as annotation.json + images/<id>/<k>.png."""
    ds.check(images=True)
    if not ds.has_images:
        raise InputError("text-only dataset: R2Gen's layout needs the images", path=ds.dir,
                         hint="prepare the dataset with its images")
    store = ds.images
    annotation: dict[str, list[dict]] = {s: [] for s in SPLITS}
    views = Counter()
    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=[cfg.source]) as stage:
        for split in SPLITS:
            records = ds.records(split)
            with progress.task(f"writing {split}", len(records)) as task:
                for line, record in enumerate(records, start=1):
                    folder = _folder(str(record["id"]), ds.dir / f"{split}.jsonl", line)
                    paths = []
                    for k, im in enumerate(record["images"]):
                        rel = f"{folder}/{k}.png"
                        (stage / "images" / folder).mkdir(parents=True, exist_ok=True)
                        Image.fromarray(store[im["row"]], mode="L").save(stage / "images" / rel, format="PNG")
                        paths.append(rel)
                    views[len(paths)] += 1
                    annotation[split].append(_row(record, split, ds.name, paths))
                    task.advance(1)
        write_json(stage / "annotation.json", annotation)
        counts = {**{s: len(rows) for s, rows in annotation.items()}, "images": sum(k * n for k, n in views.items()),
                  "views_per_example": {str(k): n for k, n in sorted(views.items())}}
        save_config(stage / "export.json", cfg, source={"path": str(ds.dir.resolve()), "name": ds.name,
                                                        "fingerprint": ds.info.get("fingerprint")}, counts=counts)
    warnings = []
    other = sum(n for k, n in views.items() if k != 2)
    if ds.name != "mimic_cxr" and other:
        warnings.append(f"{other} example(s) have other than two views; R2Gen's IU X-Ray loader reads exactly two "
                        f"(image_path[0] and [1])")
    if ds.name == "mimic_cxr" and any(k > 1 for k in views):
        warnings.append("examples have several views; R2Gen's MIMIC-CXR loader reads image_path[0] only "
                        "(prepare with --per-image for its one-example-per-image layout)")
    return ExportResult(out=cfg.out, to="r2gen", counts=counts, files=["annotation.json", "images/"], warnings=warnings)
