"""`irralctl ablate DATASET --out DIR`: train presets x seeds with identical options, then compare them.

The grid's options come from `irralctl.ablate.config.AblateConfig`; the training options every run
shares are `irralctl train`'s (from `TrainConfig`), except those the grid sets per run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer

from irralctl.ablate.config import PER_RUN, AblateConfig
from irralctl.cli._bind import bind, build, extra_option
from irralctl.cli._common import console
from irralctl.errors import ConfigError

log = logging.getLogger(__name__)

EPILOG = """Examples:

  irralctl ablate data/phantoms --out ablation --presets baseline,irral --seeds 3

  irralctl ablate data/iu --out ablation --presets baseline,cmn,irral,no-image --seeds 3 --size paper

  irralctl ablate data/mimic --out abl --seed-list 0,1,2 --config runs/irral/config.json --device cuda

Run the same command again after an interruption: finished runs are skipped, an interrupted one
resumes from its last checkpoint, and the comparison is written once every run has finished.
"""

_EXTRA = [
    extra_option("config_file", Optional[Path], typer.Option(
        "--config", metavar="FILE", rich_help_panel="Grid",
        help="Training options every run shares, from a JSON, YAML or TOML file (nested like a run's config.json, "
             "which works); flags typed on the command line override it; preset, seed and out are the grid's.")),
]


def _ablate(*, values: dict[str, Any], given: set[str], config_file: Path | None) -> None:
    """Train every preset with every seed (same options, shared initial weights per seed), then compare them."""
    from irralctl.ablate import run_ablation
    from irralctl.cli._progress import progress_bars
    from irralctl.cli.train import _epoch_line, size_changes
    from irralctl.compare import tables
    from irralctl.utils.config import load_config_file

    if {"seeds", "seed_list"} <= given:
        raise ConfigError("give --seeds N or --seed-list, not both")
    base = None
    if config_file is not None:
        base = {"train": load_config_file(config_file)}
    draft = build(AblateConfig, values, given, base)
    cfg = build(AblateConfig, values, given, base, size_changes(draft.train, given, base, prefix="train."))
    if cfg.train.size_warning:
        log.warning(cfg.train.size_warning)

    def on_event(name: str, record: dict) -> None:
        if name == "ablate_run":
            console.print(f"[bold cyan]run {record['index']}/{record['total']} {record['run']}[/]: {record['action']}",
                          highlight=False)
        else:
            _epoch_line(name, record)

    with progress_bars(transient=True, on_event=on_event) as progress:
        result = run_ablation(cfg, progress, config_file=config_file)
    console.print(tables.markdown(result.comparison), markup=False, highlight=False, soft_wrap=True)
    console.print(f"grid in {result.out}: runs/, ablate.json, " + ", ".join(p.name for p in result.files),
                  markup=False, highlight=False)


ablate = bind(AblateConfig, _ablate, extra=_EXTRA, exclude=PER_RUN)
