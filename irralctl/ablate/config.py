"""`AblateConfig`: the options of `irralctl ablate` (torch-free; the CLI builds its help from it).

The grid's own options, and `train`: the TrainConfig every run shares. The CLI offers all of
`irralctl train`'s options except those a grid sets per run (--out, --overwrite, --preset, --seed
and the component switches --memory, --mfa, --acl, --multiscale, --no-image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import ConfigError
from irralctl.model.config import PRESETS, SWITCHES
from irralctl.training.config import TrainConfig
from irralctl.utils.config import option

# The paper's Table 3 rows (baseline, +MFA, +ACL, +both) and the memory they build on (cmn).
DEFAULT_PRESETS = ("baseline", "cmn", "mfa", "acl", "irral")
# TrainConfig options a grid sets for each run: not options of `irralctl ablate`.
PER_RUN = ("train.out", "train.overwrite", "train.preset", "train.seed", *(f"train.model.{s}" for s in SWITCHES))
_GRID = "Grid"


@dataclass(frozen=True, kw_only=True)
class AblateConfig:
    train: TrainConfig = option(help="The training options every run shares.")
    out: Path = option(help="Grid folder: runs/<preset>-seed<k>/, ablate.json and the compare.* tables.", short="-o",
                       panel=_GRID)
    presets: tuple[str, ...] = option(DEFAULT_PRESETS, f"Presets to train, comma-separated ({', '.join(PRESETS)}).",
                                      panel=_GRID)
    seeds: int = option(3, "Seeds per preset: 0 to N-1.", min=1, panel=_GRID, tiny=1)
    seed_list: tuple[int, ...] = option((), "The seeds, comma-separated (instead of --seeds).", panel=_GRID)
    reference: str | None = option(None, "Preset every other is compared with.", panel=_GRID,
                                   default_text="the first of --presets")

    def __post_init__(self) -> None:
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise ConfigError(f"unknown preset(s) {', '.join(unknown)}; choose among {', '.join(PRESETS)}")
        if not self.presets or len(set(self.presets)) != len(self.presets):
            raise ConfigError("--presets must name each preset once")
        if self.reference is not None and self.reference not in self.presets:
            raise ConfigError(f"--reference {self.reference} is not one of --presets ({', '.join(self.presets)})")
        if any(s < 0 or s > 2**32 - 1 for s in self.seed_list) or len(set(self.seed_list)) != len(self.seed_list):
            raise ConfigError("--seed-list must hold distinct seeds between 0 and 2**32 - 1")
        if self.seeds < 1:
            raise ConfigError("--seeds must be at least 1")

    @property
    def seed_values(self) -> tuple[int, ...]:
        return self.seed_list or tuple(range(self.seeds))

    @property
    def reference_preset(self) -> str:
        return self.reference or self.presets[0]
