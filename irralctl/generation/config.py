"""`DecodeConfig` (how reports are decoded) and `GenerateConfig` (every option of `irralctl generate`).

Torch-free: the CLI builds its help from these fields. `DecodeConfig()` with its defaults is the
protocol of `irralctl generate` and of training's final test, so both give the same reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from irralctl.constants import PRECISIONS, SPLITS
from irralctl.errors import ConfigError
from irralctl.utils.config import device_option, option, overwrite_option

FORMATS = ("jsonl", "txt", "csv")
_DECODING, _INPUT, _OUTPUT, _HW = "Decoding", "Input", "Output", "Hardware"


@dataclass(frozen=True)
class DecodeConfig:
    """How reports are decoded. `max_tokens` None: the run's (its validation and test length)."""

    beam_size: int = option(3, "Beam width; 1 is greedy decoding.", min=1)
    max_tokens: int | None = option(None, "Most report tokens, EOS excluded.", min=1, default_text="the run's")
    min_tokens: int = option(0, "Fewest report tokens before EOS may end a report.", min=0)
    length_penalty: float = option(0.0, "GNMT alpha: hypotheses ranked by sum of log-probabilities / "
                                        "((5 + length) / 6)^alpha; 0 ranks by the plain sum, as R2Gen.")
    no_repeat_ngram: int = option(0, "Never repeat an n-gram of tokens within a report (3 = R2Gen's "
                                     "block_trigrams); 0 is off.", min=0)
    n_best: int = option(1, "Hypotheses kept per study, with scores (at most --beam-size; with --sample, "
                            "samples drawn).", min=1)
    sample: bool = option(False, "Sample reports instead of beam search.")
    temperature: float = option(1.0, "--sample: softmax temperature.")
    top_p: float = option(1.0, "--sample: nucleus probability mass, in (0, 1].")
    seed: int = option(0, "--sample: random seed.", min=0, max=2**32 - 1)
    check_every: int = option(4, cli=False)   # steps between host checks (all done? drop finished studies?)

    def __post_init__(self) -> None:
        checks = [
            (self.beam_size >= 1, f"beam size must be at least 1, not {self.beam_size}"),
            (self.max_tokens is None or self.max_tokens >= 1, f"max_tokens must be at least 1, not {self.max_tokens}"),
            (self.min_tokens >= 0, f"min_tokens must be at least 0, not {self.min_tokens}"),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens,
             f"--min-tokens {self.min_tokens} exceeds --max-tokens {self.max_tokens}"),
            (self.no_repeat_ngram >= 0, f"no_repeat_ngram must be at least 0, not {self.no_repeat_ngram}"),
            (self.n_best >= 1, f"n_best must be at least 1, not {self.n_best}"),
            (self.sample or self.n_best <= self.beam_size,
             f"--n-best {self.n_best} exceeds the beam size {self.beam_size}: beam search keeps only beam-size hypotheses"),
            (self.temperature > 0, f"temperature must be positive, not {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], not {self.top_p}"),
            (self.check_every >= 1, "check_every must be at least 1"),
            (math.isfinite(self.length_penalty), "length_penalty must be finite"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def resolved(self, run_max_tokens: int) -> DecodeConfig:
        """This config with `max_tokens` filled from the run when unset."""
        from dataclasses import replace

        out = replace(self, max_tokens=self.max_tokens or run_max_tokens)
        if out.min_tokens > out.max_tokens:
            raise ConfigError(f"--min-tokens {out.min_tokens} exceeds --max-tokens {out.max_tokens}")
        return out

    def describe(self) -> str:
        if self.sample:
            what = f"sampling ({self.n_best} per study, temperature {self.temperature}, top-p {self.top_p}, seed {self.seed})"
        elif self.beam_size == 1:
            what = "greedy (beam 1)"
        else:
            what = f"beam search (beam {self.beam_size})"
        extra = [f"max {self.max_tokens} tokens"]
        if self.min_tokens:
            extra.append(f"min {self.min_tokens}")
        if self.length_penalty:
            extra.append(f"length penalty {self.length_penalty} (GNMT)")
        if self.no_repeat_ngram:
            extra.append(f"no repeated {self.no_repeat_ngram}-grams")
        return f"{what}, {', '.join(extra)}"


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    input: Path | None = option(None, "An image (PNG, JPEG, DICOM), a folder of studies (one subfolder each), or a "
                                      "flat folder of Open-i / MIMIC-CXR images.", argument=True)
    checkpoint: Path = option(help="Run directory of `irralctl train` (its best.pt, else last.pt) or a .pt file.",
                              metavar="RUN")
    out: Path = option(help="Output file (written when every study is done; OUT.config.json beside it).", short="-o",
                       panel=_OUTPUT)
    dataset: Path | None = option(None, "A prepared dataset to generate for instead of INPUT (references included "
                                        "for scoring).", panel=_INPUT, metavar="DIR")
    split: str = option("test", "Split of --dataset.", choices=SPLITS, panel=_INPUT)
    group_by: str | None = option(None, "Regex searched in each file's path under INPUT; its group 'study' (or first "
                                        "group) names the study (default: Open-i and MIMIC-CXR names, else the "
                                        "subfolder).", panel=_INPUT, metavar="REGEX")
    format: str | None = option(None, "jsonl (every field), txt (id TAB report, n-best on further lines) or csv.",
                                choices=FORMATS, panel=_OUTPUT, default_text="from --out's extension, else jsonl")
    decoding: DecodeConfig = option(panel=_DECODING, factory=DecodeConfig)
    batch_size: int = option(0, "Studies per device batch; 0 = auto (GPU: 1024, halved on out-of-memory; CPU: 16).",
                             min=0, panel=_HW)
    workers: int | None = option(None, "Image-decoding processes (default: up to 8 when there is more than one "
                                       "batch, else none).", min=0, panel=_HW)
    device: str = device_option(panel=_HW)
    precision: str = option("auto", "auto (bf16 autocast on CUDA, fp32 on CPU), bf16, fp16 or fp32.",
                            choices=PRECISIONS, panel=_HW)
    resume: bool = option(False, "Continue an interrupted run (or add studies missing from a finished jsonl OUT).",
                          panel=_OUTPUT)
    overwrite: bool = overwrite_option(panel=_OUTPUT)
    skip_unreadable: bool = option(False, "Leave out unreadable images (and studies without a readable one) "
                                          "instead of stopping.", panel=_INPUT)

    def __post_init__(self) -> None:
        if (self.input is None) == (self.dataset is None):
            raise ConfigError("give either INPUT (images) or --dataset DIR, not both" if self.input is not None
                              else "nothing to generate for: give INPUT (an image, a folder) or --dataset DIR")
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.batch_size < 0 or (self.workers is not None and self.workers < 0):
            raise ConfigError("batch size and workers must not be negative")
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: choose one")

    @property
    def output_format(self) -> str:
        """--format, else the extension of --out (.txt, .csv), else jsonl."""
        if self.format is not None:
            return self.format
        suffix = self.out.suffix.lower().lstrip(".")
        return suffix if suffix in FORMATS else "jsonl"
