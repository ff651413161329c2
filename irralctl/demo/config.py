"""`DemoConfig`: the options of `irralctl demo` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.utils.config import option, overwrite_option, seed_option

# The full demo and its reduced mode (--quick, what CI runs).
FULL = {"n": 1500, "epochs": 20, "batch_size": 32, "d_model": 64, "heatmaps": 3}
QUICK = {"n": 120, "epochs": 2, "batch_size": 16, "d_model": 32, "heatmaps": 2}


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    out: Path = option(Path("demo"), "Folder for every artefact (data, runs, predictions, scores, heatmaps).",
                       short="-o")
    quick: bool = option(False, "A reduced run (120 studies, 2 epochs, about a minute): checks every step, proves "
                                "nothing about quality.")
    n: int | None = option(None, "Phantom studies (two views each).", min=40, default_text="1500; 120 with --quick")
    epochs: int | None = option(None, "Training epochs per run.", min=1, default_text="20; 2 with --quick")
    seed: int = seed_option(0, "Seed of the phantoms and of training.")
    workers: int = option(2, "Processes for rendering and data loading.", min=0)
    overwrite: bool = overwrite_option()
    # Sizes of the demo (not options).
    image_size: int = option(64, cli=False)     # pixels (views are rendered at this size)
    batch_size: int | None = option(None, cli=False)
    d_model: int | None = option(None, cli=False)
    heatmaps: int | None = option(None, cli=False)  # test studies to draw attention maps for
    beam_size: int = option(3, cli=False)

    def resolved(self) -> DemoConfig:
        """Every size filled from the full or the quick demo."""
        sizes = QUICK if self.quick else FULL
        out = replace(self, **{k: getattr(self, k) if getattr(self, k) is not None else v for k, v in sizes.items()})
        if out.n < 40:
            raise ConfigError(f"--n must be at least 40 studies for a demo (got {out.n})")
        return out
