"""`ModelConfig`: every architectural choice of IRRAL-Net and its baselines, in one frozen dataclass.

The configuration is saved inside every checkpoint, so a model is rebuilt from it alone. Fields
marked `cli=False` are not options: the trainer fills them from the tokeniser and the text
encoder. The presets are the rows of an ablation, as switches of one model:

* `baseline`: a plain CNN + transformer encoder-decoder (R2Gen without its memory);
* `no-image`: the baseline with the image zeroed: what the reports alone teach (the language prior);
* `cmn`: + the cross-modal memory (Chen et al., ACL 2021, "Cross-modal Memory Networks");
* `mfa`, `acl`: cmn + MFA (Eq. 4), cmn + ACL with its clinical head (Eq. 5-6): the paper's
  "+MFA" and "+ACL" rows;
* `irral`: + multi-scale fusion, MFA and ACL: the paper's full model.

The sizes are the paper's (CMN's transformer, ResNet-101 at 224 px); a field's `cpu=` value is
the small model of `irralctl train --size cpu` (irralctl.training.config), its `tiny=` value
what IRRALCTL_TINY=1 substitutes. This module imports nothing heavy (the CLI builds its help from it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from irralctl.constants import N_OBSERVATIONS
from irralctl.errors import ConfigError
from irralctl.utils.config import option

BACKBONES = ("resnet101", "resnet50", "resnet18", "tiny")
SWITCHES = ("memory", "mfa", "acl", "multiscale", "no_image")
_OFF = dict.fromkeys(SWITCHES, False)
# The component switches of each preset: the rows of an ablation. Each row names what it adds to
# the row it is compared with, and nothing else differs (initial weights included: see init.py).
PRESETS: dict[str, dict[str, bool]] = {
    "baseline": _OFF,                                          # CNN + transformer (R2Gen without memory)
    "no-image": {**_OFF, "no_image": True},                    # baseline blind to the image: the language prior
    "cmn": {**_OFF, "memory": True},                           # + cross-modal memory (CMN)
    "mfa": {**_OFF, "memory": True, "mfa": True},              # cmn + MFA (Eq. 4)
    "acl": {**_OFF, "memory": True, "acl": True},              # cmn + ACL and its clinical head (Eq. 5-6)
    "irral": {**_OFF, "memory": True, "mfa": True, "acl": True, "multiscale": True},  # the paper's full model
}
MFA_MODES = ("centered", "literal", "infonce")   # Eq. 4's forms (irralctl.model.mfa)
HEAD_POOLINGS = ("attention", "mean")            # ACL's clinical head (irralctl.model.acl)
TINY_NORMS = ("channel", "group")                # the tiny CNN's normalisation (irralctl.model.backbone)
_FROM_PRESET = "from --preset"


@dataclass(frozen=True)
class ModelConfig:
    # Options added since checkpoints of format 2 were first written: what a saved config without
    # them meant (irralctl.utils.config.from_dict(saved=True)).
    ADDED: ClassVar[dict[str, object]] = {"context_words": False, "context_decisions": False, "tiny_norm": "group"}

    # Visual encoder (Eq. 1) and multi-scale fusion.
    backbone: str = option("resnet101", "CNN of the visual encoder; tiny is a small CNN for CPU runs.",
                           choices=BACKBONES, cpu="tiny", tiny="tiny")
    tiny_width: int = option(16, "Channels of the tiny backbone's first stage (doubling per stage).", min=4, tiny=8)
    tiny_norm: str = option("channel", "Normalisation in the tiny backbone: each channel over its own image (channel), "
                                       "or over groups of channels (group, 8 groups: the form before 0.2).",
                            choices=TINY_NORMS)
    views: int = option(2, "Views per study, folded into the batch for one CNN call.", min=1)
    image_size: int = option(224, "Model input side, pixels (square).", min=32, cpu=64, tiny=32)
    multiscale: bool = option(True, "Multi-scale fusion of CNN stages 3 and 4.", default_text=_FROM_PRESET)
    no_image: bool = option(False, "Image features zeroed, no CNN: the language prior.", default_text=_FROM_PRESET)
    # Transformer encoder-decoder (CMN's sizes).
    d_model: int = option(512, "Transformer width.", min=8, cpu=64, tiny=32)
    n_heads: int = option(8, "Attention heads.", min=1, cpu=4, tiny=4)
    d_ff: int = option(512, "Feed-forward width.", min=8, cpu=128, tiny=64)
    enc_layers: int = option(3, "Encoder layers.", min=1, cpu=2, tiny=1)
    dec_layers: int = option(3, "Decoder layers.", min=1, cpu=2, tiny=1)
    dropout: float = option(0.1, "Dropout probability.", min=0.0, max=1.0)
    # Cross-modal memory (CMN).
    memory: bool = option(True, "Cross-modal memory (CMN): visual tokens and word embeddings read it.",
                          default_text=_FROM_PRESET)
    memory_slots: int = option(2048, "Rows of the memory matrix.", min=1, cpu=256, tiny=64)
    memory_topk: int = option(32, "Memory slots read per query.", min=1, cpu=16, tiny=8)
    # IRRAL components.
    mfa: bool = option(True, "MFA alignment loss (Eq. 4) against the report's BERT embedding.", default_text=_FROM_PRESET)
    acl: bool = option(True, "ACL clinical-context gate after every encoder layer (Eq. 5).", default_text=_FROM_PRESET)
    head_pooling: str = option("attention", "ACL's clinical head: a learned query per observation attending over "
                                            "the visual tokens (attention), or their mean (mean).",
                               choices=HEAD_POOLINGS)
    context_words: bool = option(True, "ACL: add the clinical context C to every word embedding of the decoder too, "
                                       "not only to the visual tokens it attends to.", flag="--ctx-words")
    context_decisions: bool = option(False, "ACL: the decoder reads the head's decisions (probability >= 0.5), "
                                            "0 or 1 as the labels it may learn from, instead of its probabilities.",
                                     flag="--ctx-decisions")
    # Filled by the trainer (not options).
    vocab_size: int = option(0, cli=False)          # tokeniser's vocabulary (0: not yet known)
    pad_id: int = option(0, cli=False)              # special ids (legacy R2Gen: all three 0; BPE: 0, 1, 2)
    bos_id: int = option(1, cli=False)
    eos_id: int = option(2, cli=False)
    max_positions: int = option(1024, cli=False)    # decoder positions (BOS + report + EOS at most)
    unspeakable: tuple[int, ...] = option((), cli=False)  # token ids never generated (partial UTF-8 bytes)
    text_dim: int = option(384, cli=False)          # hidden size of the BERT text encoder (MiniLM-L6: 384)
    n_observations: int = option(N_OBSERVATIONS, cli=False)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.d_model % 4:
            raise ConfigError(f"d_model {self.d_model} must be a multiple of 4 (2-D sinusoidal positions)")
        if self.memory_topk > self.memory_slots:
            raise ConfigError(f"memory_topk {self.memory_topk} exceeds memory_slots {self.memory_slots}")
        if self.image_size < 32:
            raise ConfigError(f"image_size {self.image_size} is too small (at least 32 pixels)")
        if self.vocab_size:
            for name in ("pad_id", "bos_id", "eos_id"):
                if not 0 <= getattr(self, name) < self.vocab_size:
                    raise ConfigError(f"{name} {getattr(self, name)} is outside the vocabulary of {self.vocab_size}")

    def check_buildable(self) -> None:
        """A model can be built only once the tokeniser has filled the vocabulary."""
        if self.vocab_size < 2:
            raise ConfigError(f"vocab_size {self.vocab_size} is too small (the tokeniser fills it)")

    @property
    def has_memory_matrix(self) -> bool:
        """The memory matrix exists when CMN reads it or when ACL reads it out (its T)."""
        return self.memory or self.acl

    @property
    def has_text_space(self) -> bool:
        """The projection into the text space is shared by MFA (Z_img) and ACL (T)."""
        return self.mfa or self.acl

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def apply_preset(name: str) -> dict[str, bool]:
    """The component switches of a preset (see `PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
