"""`ScoreConfig`: every option of `irralctl score` (torch- and numpy-free; the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from irralctl.constants import SCORE_UNCERTAIN
from irralctl.errors import ConfigError
from irralctl.utils.config import option

METEOR_MODES = ("auto", "jar", "nltk", "off")
PROTOCOLS = ("default", "r2gen")
_INPUT, _METRICS, _STATS, _OUTPUT = "References", "Metrics", "Statistics", "Output"


@dataclass(frozen=True)
class ScoreConfig:
    """Options of `irralctl score` (and of `score_reports` for library callers)."""

    # Until 0.2 the paired test was approximate randomisation, with its own `permutations`.
    RENAMED: ClassVar[dict[str, str]] = {"permutations": "paired_resamples"}

    references: str | None = option(None, "Prepared dataset DIR[:split] (split default: test); references matched "
                                          "by id (default: the `reference` field of each prediction).",
                                    metavar="DATASET[:SPLIT]", panel=_INPUT)
    against: str | None = option(None, "Second predictions file B: the difference A - B per metric, its interval "
                                       "and p-value from one paired bootstrap over the studies.", metavar="FILE",
                                 panel=_STATS)
    meteor: str = option("auto", "METEOR implementation: auto (jar, else nltk), jar (METEOR 1.5, Java), nltk, off.",
                         choices=METEOR_MODES, panel=_METRICS)
    standard: bool = option(False, "Also sacreBLEU BLEU/chrF and rouge-score ROUGE-1/2/L (about 4 s per 4,000 "
                                   "studies).", panel=_METRICS)
    clinical: bool = option(True, "Clinical efficacy from CheXpert labels.", panel=_METRICS)
    uncertain: str = option("negative", "CheXpert uncertain (-1) counts as negative or positive.",
                            choices=SCORE_UNCERTAIN, panel=_METRICS)
    protocol: str = option("default", "default, or r2gen (CE as R2Gen/CMN published: macro over 14, uncertain and "
                                      "blank negative).", choices=PROTOCOLS, panel=_METRICS)
    legacy_eval: bool = option(False, "Score against R2Gen's truncated, vocabulary-mapped references instead of the "
                                      "full ones.", panel=_INPUT)
    max_seq_length: int | None = option(None, "--legacy-eval: R2Gen's max_seq_length in tokens, its BOS included "
                                              "(default: 60 IU, 100 MIMIC).", min=2, panel=_INPUT)
    vocab: str | None = option(None, "--legacy-eval: legacy vocabulary (JSON with token2idx; default: the "
                                     "dataset's tokenizers/legacy.json).", metavar="FILE", panel=_INPUT)
    legacy_kind: str | None = option(None, "--legacy-eval without a dataset: iu_xray or mimic_cxr (cleaner and "
                                           "length; default iu_xray).", choices=("iu_xray", "mimic_cxr"), panel=_INPUT)
    allow_subset: bool = option(False, "With --references: score only the predicted studies instead of failing on "
                                       "missing ones.", panel=_INPUT)
    bootstrap: int = option(0, "Bootstrap resamples for confidence intervals (0 = none).", min=0, panel=_STATS)
    paired_resamples: int = option(1000, "Resamples of the paired bootstrap (--against) when --bootstrap is 0.",
                                   min=1, panel=_STATS)
    confidence: float = option(0.95, "Confidence level of the intervals (a fraction).", panel=_STATS)
    seed: int = option(0, "Seed of the resampling.", min=0, max=2**32 - 1, panel=_STATS)
    per_study: bool = option(False, "Include per-study scores in the JSON.", panel=_OUTPUT)

    def check(self) -> None:
        if self.meteor not in METEOR_MODES:
            raise ConfigError(f"--meteor must be one of {', '.join(METEOR_MODES)}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}")
        if self.uncertain not in SCORE_UNCERTAIN:
            raise ConfigError("--uncertain must be negative or positive")
        if self.protocol == "r2gen" and self.uncertain != "negative":
            raise ConfigError("--protocol r2gen counts uncertain findings as negative; drop --uncertain positive")
        if self.bootstrap < 0 or self.paired_resamples < 1:
            raise ConfigError("--bootstrap must be >= 0 and --paired-resamples >= 1")
        if not 0 < self.confidence < 1:
            raise ConfigError("--confidence must be between 0 and 1")
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise ConfigError("--max-seq-length must be at least 2 (it counts R2Gen's leading BOS token)")
        if (self.max_seq_length is not None or self.vocab is not None) and not self.legacy_eval:
            raise ConfigError("--max-seq-length and --vocab apply only with --legacy-eval")
