"""`DemoConfig`: the options of `irralctl demo` (light: the CLI reads it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.training.config import size_values
from irralctl.utils.config import option, overwrite_option, seed_option

# The full demo trains the small model of `irralctl train --size cpu`; its reduced mode (--quick,
# what CI runs) a smaller one, briefly.
_CPU = size_values("cpu")
FULL = {"n": 1500, "epochs": _CPU["optim.epochs"], "batch_size": _CPU["optim.batch_size"],
        "d_model": _CPU["model.d_model"], "heatmaps": 3}
QUICK = {"n": 120, "epochs": 2, "batch_size": 16, "d_model": 32, "heatmaps": 2}


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    out: Path = option(Path("demo"), "Folder for every artefact (data, runs, predictions, scores, heatmaps).",
                       short="-o")
    quick: bool = option(False, f"A reduced run ({QUICK['n']} studies, {QUICK['epochs']} epochs): checks every "
                                "step, proves nothing about quality.", tiny=True)
    n: int | None = option(None, "Phantom studies (two views each).", min=40,
                           default_text=f"{FULL['n']}; {QUICK['n']} with --quick", tiny=40)
    epochs: int | None = option(None, "Training epochs per run.", min=1,
                                default_text=f"{FULL['epochs']}; {QUICK['epochs']} with --quick", tiny=1)
    seed: int = seed_option(0, "Seed of the phantoms and of training.")
    workers: int = option(2, "Processes for rendering and data loading.", min=0, tiny=0)
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
