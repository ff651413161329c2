"""`irralctl train DATASET --out RUN_DIR`: train IRRAL-Net or a baseline from a prepared dataset.

Every option comes from `irralctl.training.config.TrainConfig` (flags, defaults, help).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import typer

from irralctl.cli._bind import bind, build, extra_option
from irralctl.cli._common import console
from irralctl.errors import ConfigError
from irralctl.training.config import TrainConfig
from irralctl.utils.config import flatten

log = logging.getLogger(__name__)

EPILOG = """Examples:

  irralctl train data/phantoms --out runs/irral

  irralctl train data/iu --out runs/iu --visual-weights resnet101.pth

  irralctl train data/iu --out runs/cmn --preset cmn

  irralctl train data/iu --out runs/prior --preset baseline --no-image

  irralctl train data/iu --resume runs/irral --epochs 40

  irralctl train data/iu --config runs/irral/config.json --out runs/again

  torchrun --nproc_per_node 4 -m -- irralctl train data/mimic --out runs/m

--size auto trains the paper's model on a GPU and a small one on a CPU; --size paper or cpu chooses.
Under torchrun, `--` before `irralctl` keeps torchrun from reading --monitor as its --monitor-interval.
"""

_EXTRA = [
    extra_option("config_file", Optional[Path], typer.Option(
        "--config", metavar="FILE", rich_help_panel="Output",
        help="Options from a JSON, YAML or TOML file (nested like config.json; a run's config.json works); "
             "flags typed on the command line override it.")),
    extra_option("resume", Optional[Path], typer.Option(
        "--resume", metavar="RUN", rich_help_panel="Output",
        help="Continue this run directory exactly where its last.pt stopped, with its saved options; only "
             "--epochs, --patience, --device, --workers, --prefetch and DATASET may change.")),
]


def _config(values: dict[str, Any], given: set[str], config_file: Path | None) -> TrainConfig:
    from irralctl.model.config import PRESETS, SWITCHES
    from irralctl.utils.config import load_config_file

    base = load_config_file(config_file) if config_file is not None else None
    changes = {}
    # A preset sets the component switches the user did not type: the default preset when no
    # config file is given, or the one typed on the command line.
    if base is None or "preset" in given:
        preset = values.get("preset", "irral")
        changes = {f"model.{k}": v for k, v in PRESETS[preset].items() if f"model.{k}" not in given and k in SWITCHES}
    draft = build(TrainConfig, values, given, base, changes)
    cfg = build(TrainConfig, values, given, base, {**changes, **size_changes(draft, given, base)})
    if cfg.out is None:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    return cfg


def size_changes(draft: TrainConfig, given: set[str], base: dict | None, prefix: str = "") -> dict[str, Any]:
    """What --size sets (dotted paths under `prefix`): the resolved size, and the size of every
    field the user did not type, nor a config file set (unless --size itself is typed: then it
    overrides the file's sizes too). `auto` looks for a GPU (`--device`)."""
    typed = {k.removeprefix(prefix) for k in given if k.startswith(prefix)}
    fixed = set(typed)
    if base is not None and "size" not in typed:
        fixed |= {k.removeprefix(prefix) for k in flatten(base) if k.startswith(prefix)}
    device_type = "cpu"
    if draft.size == "auto":
        from irralctl.runs.device import resolve_device  # imports torch: only when the device decides

        device_type = resolve_device(draft.runtime.device).type
    return {prefix + k: v for k, v in draft.size_changes(device_type, fixed).items()}


def _train(*, values: dict[str, Any], given: set[str], config_file: Path | None, resume: Path | None) -> None:
    """Train a report generator; writes checkpoints, metrics.jsonl and test predictions to --out."""
    from irralctl.cli._progress import progress_bars
    from irralctl.training import resume_config, train

    if resume is not None:
        if config_file is not None:
            raise ConfigError("--config and --resume contradict each other: a resumed run keeps its own options")
        out = values.get("out")
        if "out" in given and out is not None and Path(out).resolve() != resume.resolve():
            raise ConfigError("--out and --resume name different directories", hint="give only --resume RUN_DIR")
        cfg = resume_config(resume, {k: v for k, v in values.items() if k in given and k not in ("out",)})
    else:
        cfg = _config(values, given, config_file)
    main_process = os.environ.get("RANK", "0") == "0"
    if cfg.size_warning and main_process:
        log.warning(cfg.size_warning)
    with progress_bars(transient=True, on_event=_epoch_line, enabled=main_process) as progress:
        result = train(cfg, progress, resume=resume is not None)
    if main_process:
        _summary(result)


def _epoch_line(name: str, record: dict) -> None:
    if name != "epoch":
        return
    shown = [f"epoch {record['epoch']}", f"train nll {record['train_nll']:.3f}"]
    value = record.get("monitor_value")
    if value is not None:
        shown.append(f"{record['monitor']} {value:.4f}" + (" [green](best)[/]" if record.get("best") else ""))
    if record.get("val_head_f1_macro") is not None:
        shown.append(f"head F1 {record['val_head_f1_macro']:.3f}")
    if record.get("val_mfa_recall_at_1") is not None:  # alignment: matched vs mismatched similarity, retrieval
        shown.append(f"mfa {record['val_mfa_matched_cos']:.2f}/{record['val_mfa_mismatched_cos']:.2f} "
                     f"r@1 {record['val_mfa_recall_at_1']:.2f}")
    if record.get("images_per_s"):
        shown.append(f"{record['images_per_s']:.0f} img/s")
    shown.append("lr " + "/".join(f"{v:.2g}" for v in record["lr"].values()) + (" [yellow](cut)[/]" if record.get("lr_reduced") else ""))
    console.print(", ".join(shown), highlight=False, soft_wrap=True)  # one line per epoch, however narrow


def _summary(result) -> None:
    from rich.table import Table

    from irralctl.constants import HEADLINE_METRICS

    best = f"{result.monitor} {result.best_value:.4f} at epoch {result.best_epoch}" if result.best_epoch else "no best epoch"
    console.print(f"trained {result.epochs_run} epoch(s){' (stopped early)' if result.stopped_early else ''}; {best}")
    shown = {k: result.test_metrics[k] for k in HEADLINE_METRICS if result.test_metrics.get(k) is not None}
    if shown:
        table = Table(title="test split, best checkpoint (decoded as `irralctl generate` does)", show_header=True)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in shown.items():
            table.add_row(k, f"{v:.4f}")
        console.print(table)
    console.print(f"run directory: {result.run_dir}")


train = bind(TrainConfig, _train, extra=_EXTRA)
