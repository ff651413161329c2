"""`HeatmapConfig`: every option of `irralctl heatmap` (torch-free; the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irralctl.constants import SPLITS
from irralctl.errors import ConfigError
from irralctl.generation.config import DecodeConfig
from irralctl.utils.config import device_option, option, overwrite_option

NORMALIZATIONS = ("view", "study")
_RUNS, _STUDY, _MAPS, _OUTPUT = "Checkpoints", "Study", "Maps", "Output"


@dataclass(frozen=True, kw_only=True)
class HeatmapConfig:
    words: tuple[str, ...] = option(help="Words or phrases, comma-separated: \"cardiac silhouette,pleural effusion\".",
                                    panel=_MAPS)
    out: Path = option(help="Output directory (PNGs and heatmaps.json).", short="-o", panel=_OUTPUT)
    checkpoint: Path | None = option(None, "Run directory of `irralctl train` (or a .pt file).", metavar="RUN",
                                     panel=_RUNS)
    compare: tuple[Path, ...] = option((), "More checkpoints for the Fig. 3 comparison, one column each "
                                           "(repeat the option, or comma-separate).", metavar="RUN", panel=_RUNS)
    labels: tuple[str, ...] = option((), "Column labels, comma-separated, one per checkpoint (default: the run "
                                         "directories' names).", panel=_RUNS)
    study: Path | None = option(None, "One study: a folder of its views (PNG, JPEG, DICOM) or one image.",
                                panel=_STUDY)
    dataset: Path | None = option(None, "A prepared dataset holding the study (with --id); its reference report "
                                        "serves words the generated one lacks.", panel=_STUDY, metavar="DIR")
    id: str | None = option(None, "Record id of the study in --dataset.", panel=_STUDY)
    split: str | None = option(None, "Split of --dataset to look in (default: every split).", choices=SPLITS,
                               panel=_STUDY)
    text: str | None = option(None, "A report to teacher-force for words absent from the generated one (and the "
                                    "reference).", panel=_MAPS)
    layer: int | None = option(None, "Decoder layer to read (0-based; -1 = last; default: mean over layers).",
                               panel=_MAPS)
    head: int | None = option(None, "Attention head to read (0-based; default: mean over heads).", panel=_MAPS)
    normalize: str = option("view", "view: each map min-max to [0, 1]; study: a word's views share one scale.",
                            choices=NORMALIZATIONS, panel=_MAPS)
    decoding: DecodeConfig = option(cli=False, factory=DecodeConfig)
    beam_size: int = option(3, "Beam width of the generated report.", min=1, panel=_MAPS)
    max_tokens: int | None = option(None, "Most report tokens of the generated report.", min=1, panel=_MAPS,
                                    default_text="the run's")
    device: str = device_option()
    overwrite: bool = overwrite_option(panel=_OUTPUT)

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise ConfigError("give a checkpoint (--checkpoint RUN_DIR) or several (--compare RUN_A --compare RUN_B)")
        if not self.words or any(not w.strip() for w in self.words):
            raise ConfigError("give the words or phrases to draw, comma-separated: --words \"pleural effusion,heart\"")
        if (self.study is None) == (self.dataset is None):
            raise ConfigError("give one study: --study PATH (a folder of its views, or an image), or --dataset DIR --id ID")
        if self.dataset is not None and not self.id:
            raise ConfigError("--dataset needs --id ID (the study's record id)")
        if self.labels and len(self.labels) != len(self.checkpoints):
            raise ConfigError(f"{len(self.labels)} label(s) for {len(self.checkpoints)} checkpoint(s)")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalisation {self.normalize!r}; choose view or study")

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        return ((self.checkpoint,) if self.checkpoint is not None else ()) + tuple(Path(c) for c in self.compare)

    @property
    def decode_config(self) -> DecodeConfig:
        """The generated report's decoding: the run's defaults with --beam-size and --max-tokens."""
        from dataclasses import replace

        return replace(self.decoding, beam_size=self.beam_size, max_tokens=self.max_tokens)
