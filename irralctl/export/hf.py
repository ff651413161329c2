"""`irralctl export DATASET --to hf DIR`: a prepared dataset as a Hugging Face `datasets` DatasetDict.

DIR is what `DatasetDict.save_to_disk` writes (`datasets.load_from_disk(DIR)` opens it), with the
splits `train`, `validation` and `test` and one row per example:

    id       string          the record id
    images   list of Image   its views as PNG (8-bit grey, the image store's pixels)
    views    list of string  the view position of each image (PA, AP, LATERAL, ..., UNKNOWN)
    report   string          the raw report text
    target   string          the cleaned target (`dataset.json` names the cleaner)
    labels   list of int8    the 14 CheXpert observations (1, 0, -1, null), in CheXpert's order
    split    string          train, validation or test (the DatasetDict's key)
    group    string          studies sharing it (a patient, an IU report) belong to one split

plus DIR/export.json (what was exported, from which dataset). `irralctl prepare hf DIR --id-column
id --view-column views` reads it back. Rows are written to Arrow files a batch at a time and
memory-mapped, so exporting MIMIC-CXR does not hold it in memory; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from irralctl.constants import SPLITS
from irralctl.data.images import encode_png
from irralctl.data.prepared import PreparedDataset
from irralctl.data.sources.hf.reader import offline_datasets
from irralctl.export import ExportResult
from irralctl.export.config import ExportConfig
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import save_config
from irralctl.utils.outputs import output_dir

# irralctl's split names -> the Hugging Face convention.
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_BATCH = 64  # rows per Arrow record batch


def features(datasets):
    """The columns of an exported dataset (module docstring), as `datasets.Features`."""
    seq = getattr(datasets, "List", None) or datasets.Sequence  # `List` since datasets 4
    return datasets.Features({
        "id": datasets.Value("string"),
        "images": seq(datasets.Image()),
        "views": seq(datasets.Value("string")),
        "report": datasets.Value("string"),
        "target": datasets.Value("string"),
        "labels": seq(datasets.Value("int8")),
        "split": datasets.Value("string"),
        "group": datasets.Value("string"),
    })


def _row(record: dict, split: str, store) -> dict:
    images = record["images"] if store is not None else []
    return {
        "id": str(record["id"]),
        "images": [{"bytes": encode_png(store[im["row"]]), "path": None} for im in images],
        "views": [im.get("view") or "UNKNOWN" for im in images],
        "report": record["report"],
        "target": record["target"],
        "labels": list(record.get("labels", {}).get("chexpert") or []),
        "split": HF_SPLITS[split],
        "group": str(record.get("group", record["id"])),
    }


def _write_arrow(path: Path, rows, schema, progress_task) -> None:
    """Rows as an Arrow IPC stream (the format of `datasets`' cache files), a batch at a time."""
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _BATCH:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                progress_task.advance(len(batch))
                batch = []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            progress_task.advance(len(batch))


def export_hf(cfg: ExportConfig, ds: PreparedDataset, progress: Progress = SILENT) -> ExportResult:
    """Write `ds` to `cfg.out` as a DatasetDict (see the module docstring)."""
    ds.check()
    datasets = offline_datasets()
    feats = features(datasets)
    store = ds.images if ds.has_images else None
    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=[cfg.source]) as stage:
        # The Arrow files are memory-mapped by the Datasets that save_to_disk copies: beside the
        # output, never inside it, and removed whatever happens.
        scratch = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.arrow-", dir=stage.parent))
        try:
            parts, counts = {}, {}
            for split in SPLITS:
                records = ds.records(split)
                counts[HF_SPLITS[split]] = len(records)
                path = scratch / f"{split}.arrow"
                with progress.task(f"writing {HF_SPLITS[split]}", len(records)) as task:
                    _write_arrow(path, (_row(r, split, store) for r in records), feats.arrow_schema, task)
                parts[HF_SPLITS[split]] = datasets.Dataset.from_file(str(path))
            dd = datasets.DatasetDict(parts)
            dd.save_to_disk(str(stage))
            del dd, parts  # release the memory maps before the files go
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        counts["images"] = sum(len(r["images"]) for s in SPLITS for r in ds.records(s)) if store is not None else 0
        save_config(stage / "export.json", cfg, source={"path": str(ds.dir.resolve()), "name": ds.name,
                                                        "fingerprint": ds.info.get("fingerprint")},
                    counts=counts, columns=list(feats))
    return ExportResult(out=cfg.out, to="hf", counts=counts, files=["dataset_dict.json", *HF_SPLITS.values()])
