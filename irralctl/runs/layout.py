"""The run directory that `irralctl train` writes, one name per file (docs/formats.md, "Run directory").

    RUN_DIR/
      config.json             the TrainConfig (nested), seed, versions, dataset fingerprint, model config
      tokenizer.json          the tokeniser the model speaks (copied from the dataset, byte for byte)
      metrics.jsonl           one line per epoch: losses, validation scores, lr, Eq. 6 weights, images/s
      steps.csv               one line per optimiser step: losses, lr, gradient norm, images/s
      tensorboard/            TensorBoard event files of the same figures (when tensorboard is installed)
      last.pt, best.pt        checkpoints; best by the validation monitor
      test_predictions.jsonl  the test split decoded once with best.pt, exactly as `irralctl generate` does
      test_metrics.json       its scores, exactly as `irralctl score --json` writes them

and the directory `irralctl export RUN --to safetensors` writes, which `generate` and `heatmap`
load like a run (`ExportLayout`):

    EXPORT_DIR/
      model.safetensors       the model's weights (state_dict)
      tokenizer.json          the tokeniser, byte for byte
      config.json             model config, train config, tokeniser kind, cleaner, dataset, sha256 of both files
      README.md               the model card
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import InputError

BEST, LAST = "best.pt", "last.pt"
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_FORMAT, EXPORT_FORMAT_VERSION = "irralctl-safetensors", 1


@dataclass(frozen=True)
class RunLayout:
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.dir / "tokenizer.json"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def steps(self) -> Path:
        return self.dir / "steps.csv"

    @property
    def tensorboard(self) -> Path:
        return self.dir / "tensorboard"

    @property
    def best(self) -> Path:
        return self.dir / BEST

    @property
    def last(self) -> Path:
        return self.dir / LAST

    @property
    def test_predictions(self) -> Path:
        return self.dir / "test_predictions.jsonl"

    @property
    def test_metrics(self) -> Path:
        return self.dir / "test_metrics.json"


@dataclass(frozen=True)
class ExportLayout:
    dir: Path

    @property
    def weights(self) -> Path:
        return self.dir / EXPORT_WEIGHTS

    @property
    def tokenizer(self) -> Path:
        return self.dir / "tokenizer.json"

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def card(self) -> Path:
        return self.dir / "README.md"


def stage_of(out: str | Path) -> Path:
    """Where a run is trained before it becomes `out`: `.NAME.partial` beside it (what --resume continues)."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a path names: a run directory's best.pt (else last.pt), an exported directory's
    model.safetensors, or the file itself."""
    path = Path(path)
    if not path.exists():
        raise InputError("checkpoint not found", path=path,
                         hint="give a run directory written by `irralctl train` (or one of its .pt files)")
    if path.is_dir():
        for name in (BEST, LAST, EXPORT_WEIGHTS):
            if (path / name).is_file():
                return path / name
        raise InputError(f"no checkpoint ({BEST} or {LAST}) in this directory, nor an exported {EXPORT_WEIGHTS}",
                         path=path,
                         hint="train one first: `irralctl train DATASET --out RUN_DIR` (an interrupted run "
                              "continues with `irralctl train DATASET --resume RUN_DIR`)")
    return path
