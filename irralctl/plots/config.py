"""`PlotConfig`: the options of `irralctl plot` (matplotlib-free; the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.utils.config import option, out_dir_option, overwrite_option


@dataclass(frozen=True, kw_only=True)
class PlotConfig:
    """Options of `irralctl plot` (and of `plot_runs` for library callers)."""

    runs: tuple[Path, ...] = option(help="Run directories written by `irralctl train`, finished or still training "
                                         "(then their .NAME.partial stage is read).", argument=True, metavar="RUN...")
    out: Path = out_dir_option()
    smooth: int = option(0, "Per-step curves: moving average over this many steps (0: about 1% of the run's "
                            "steps; 1: raw).", min=0)
    overwrite: bool = overwrite_option()

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("give the run directories to plot: irralctl plot RUN_A RUN_B ... --out DIR")
        if self.smooth < 0:
            raise ConfigError("--smooth must be 0 or more")
