"""`ModelConfig`: every architectural choice of IRRAL-Net and its baselines, in one frozen dataclass.

The configuration is saved inside every checkpoint, so a model is rebuilt from it alone. The
presets reproduce the rows of the paper's Table 3 as flags of one model:

* `baseline`: a plain CNN + transformer encoder-decoder (R2Gen without its memory);
* `cmn`: + the cross-modal memory (Chen et al., ACL 2021, "Cross-modal Memory Networks");
* `irral`: + multi-scale fusion, MFA (Eq. 4) and ACL (Eq. 5): the paper's full model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from irralctl.errors import ConfigError

BACKBONES = ("resnet101", "resnet50", "resnet18", "tiny")
PRESETS: dict[str, dict[str, bool]] = {
    "baseline": {"memory": False, "mfa": False, "acl": False, "multiscale": False},
    "cmn": {"memory": True, "mfa": False, "acl": False, "multiscale": False},
    "irral": {"memory": True, "mfa": True, "acl": True, "multiscale": True},
}
N_OBSERVATIONS = 14


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    # Special ids of the tokeniser (legacy R2Gen: all three are 0; BPE: 0, 1, 2).
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_len: int = 62               # longest sequence generate() produces, BOS and EOS included
    # Visual encoder (Eq. 1) and multi-scale fusion.
    backbone: str = "resnet101"     # resnet101 | resnet50 | resnet18 | tiny (a small CNN for CPU runs)
    tiny_width: int = 16            # channels of the tiny backbone's first stage (doubles per stage)
    views: int = 2                  # views per study (folded into the batch for one CNN call)
    image_size: int = 224           # square input, pixels
    multiscale: bool = True         # mix the stage-3 grid into the stage-4 tokens
    no_image: bool = False          # image features zeroed: the language prior (no CNN is built)
    # Transformer encoder-decoder (CMN's sizes).
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 512
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.1
    # Cross-modal memory (CMN).
    memory: bool = True             # visual tokens and token embeddings query the memory
    memory_slots: int = 2048
    memory_topk: int = 32
    # IRRAL components.
    mfa: bool = True                # Eq. 4: align pooled visual tokens with the report's BERT embedding
    acl: bool = True                # Eq. 5: clinical-context gate after every encoder layer
    text_dim: int = 384             # hidden size of the BERT text encoder (MiniLM-L6: 384)
    n_observations: int = N_OBSERVATIONS

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.d_model % 4:
            raise ConfigError(f"d_model {self.d_model} must be a multiple of 4 (2-D sinusoidal positions)")
        if self.memory_topk > self.memory_slots:
            raise ConfigError(f"memory_topk {self.memory_topk} exceeds memory_slots {self.memory_slots}")
        if self.vocab_size < 2:
            raise ConfigError(f"vocab_size {self.vocab_size} is too small")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ConfigError(f"{name} {getattr(self, name)} is outside the vocabulary of {self.vocab_size}")
        if self.image_size < 32:
            raise ConfigError(f"image_size {self.image_size} is too small (at least 32 pixels)")

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
    """The component switches of a preset (`baseline`, `cmn`, `irral`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
