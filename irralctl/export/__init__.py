"""`irralctl export`: prepared datasets and trained runs in the formats other tools read.

* `hf`: a prepared dataset as a Hugging Face `datasets` DatasetDict saved with `save_to_disk`
  (`export.hf`); `irralctl prepare hf` reads it (or parquet files) back.
* `r2gen`: a prepared dataset in R2Gen's layout, annotation.json and one PNG folder per example
  (`export.r2gen`), so R2Gen/CMN's code trains and tests on exactly irralctl's split;
  `irralctl prepare iu-xray|mimic --from-r2gen` reads it back.
* `safetensors`: a run's weights as `model.safetensors`, its tokeniser, its configs and a model
  card (`export.safetensors`); `generate` and `heatmap` load the directory with `--checkpoint`.

Every export is an output transaction (`utils.outputs`): built beside DIR, moved onto it when
complete, and DIR/export.json (or config.json for safetensors) says what was exported from what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from irralctl.export.config import TARGETS, ExportConfig
from irralctl.progress import SILENT, Progress


@dataclass
class ExportResult:
    out: Path
    to: str
    counts: dict                 # what was written: examples per split, images, tensors, ...
    files: list[str]             # the main files, relative to `out`
    warnings: list[str] = field(default_factory=list)


def export(cfg: ExportConfig, progress: Progress = SILENT) -> ExportResult:
    """Write `cfg.source` to `cfg.out` in the format `cfg.to`."""
    _check_source(cfg)
    if TARGETS[cfg.to] == "dataset":
        from irralctl.data.prepared import PreparedDataset

        ds = PreparedDataset(cfg.source)
        if cfg.to == "hf":
            from irralctl.export.hf import export_hf

            return export_hf(cfg, ds, progress)
        from irralctl.export.r2gen import export_r2gen

        return export_r2gen(cfg, ds, progress)
    from irralctl.export.safetensors import export_safetensors

    return export_safetensors(cfg, progress)


def _check_source(cfg: ExportConfig) -> None:
    """A run given where a dataset is expected (or the reverse) is named as such, with the right --to."""
    from irralctl.errors import InputError

    src = cfg.source
    if not src.exists():
        raise InputError("not found", path=src)
    is_dataset = (src / "dataset.json").is_file()
    if TARGETS[cfg.to] == "dataset" and not is_dataset and (src.suffix == ".pt" or (src / "config.json").is_file()):
        raise InputError(f"is a run, not a prepared dataset: --to {cfg.to} exports a dataset", path=src,
                         hint="--to safetensors exports a run")
    if TARGETS[cfg.to] == "run" and is_dataset:
        raise InputError("is a prepared dataset, not a run: --to safetensors exports a run", path=src,
                         hint="--to hf or --to r2gen export a dataset")


__all__ = ["ExportConfig", "ExportResult", "export"]
