"""`CompareConfig`: the options of `irralctl compare` (torch- and numpy-free; the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.metrics.config import METEOR_MODES
from irralctl.utils.config import option, overwrite_option, seed_option

GROUP_BY = ("preset", "run")
_RUNS, _STATS, _OUTPUT = "Runs", "Statistics", "Output"


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """Options of `irralctl compare` (and of `compare_runs` for library callers)."""

    runs: tuple[Path, ...] = option(help="Run directories written by `irralctl train` (config.json, "
                                         "test_predictions.jsonl, test_metrics.json), all on the same test split.",
                                    argument=True, metavar="RUN...")
    group_by: str = option("preset", "preset: runs of one preset (and component switches) form a group, their seeds "
                                     "averaged; run: every run is its own group.", choices=GROUP_BY, panel=_RUNS)
    reference: str | None = option(None, "The group every other group is compared with (a preset, or a run "
                                         "directory's name with --group-by run).", panel=_RUNS,
                                   default_text="the first group")
    confidence: float = option(0.95, "Confidence level of the intervals and verdicts (a fraction).", min=0.5,
                               max=0.999, panel=_STATS)
    resamples: int = option(1000, "Resamples of the paired bootstrap and of the randomisation test.", min=100,
                            panel=_STATS)
    seed: int = seed_option(0, "Seed of the resampling.", panel=_STATS)
    meteor: str = option("auto", "METEOR for the paired tests (recomputed per study): auto (jar, else nltk), jar, "
                                 "nltk, off. Means and stds always come from test_metrics.json.",
                         choices=METEOR_MODES, panel=_STATS)
    out: Path | None = option(None, "Folder for compare.md, .csv, .tex, .json and .png (default: print the Markdown "
                                    "table only).", short="-o", panel=_OUTPUT, metavar="DIR")
    overwrite: bool = overwrite_option(panel=_OUTPUT)

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("give the run directories to compare: irralctl compare RUN_A RUN_B ...")
        if self.group_by not in GROUP_BY:
            raise ConfigError(f"--group-by must be one of {', '.join(GROUP_BY)}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError("--confidence must be a fraction between 0.5 and 1 (e.g. 0.95)")
        if self.resamples < 100:
            raise ConfigError("--resamples must be at least 100")
        if self.meteor not in METEOR_MODES:
            raise ConfigError(f"--meteor must be one of {', '.join(METEOR_MODES)}")
