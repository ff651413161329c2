"""Optimiser and learning-rate control.

The paper's split: the CNN (visual encoder) at `lr_visual` (5e-5) without weight decay, as its
plain Adam; everything else at `lr` (1e-4) with AdamW's decoupled weight decay on weight matrices
(biases, norm scales and lookup tables such as embeddings and memory slots are not decayed). One
fused AdamW holds all groups on CUDA.

`LRController` sets every group's rate each step as base * warm-up * schedule * plateau scale:
linear warm-up, then constant or cosine, and a multiplicative cut when the validation monitor stops
improving (the paper's "internal feedback" of Eq. 6), only once it has improved at least once:
before that the model has not started to learn, and a cut would only slow the start. Its state
(the resolved warm-up length included) goes into checkpoints.

`--warmup` below 1 is a fraction of the run's optimiser steps, capped at `WARMUP_CAP` steps (the
4,000 of Vaswani et al. 2017: a long run needs no longer warm-up than the transformer did); 1 or
more is a number of steps, taken as given.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from irralctl.model.irral import IRRALNet
from irralctl.training.config import WARMUP_CAP


def warmup_steps(warmup: float, total_steps: int) -> int:
    """Warm-up steps of `--warmup`: a fraction (< 1) of `total_steps`, capped at WARMUP_CAP, else steps."""
    if warmup < 1:
        return min(WARMUP_CAP, round(warmup * total_steps))
    return int(warmup)


# Lookup tables are not decayed: decay pulls rarely used rows (rare words, memory slots, observation
# embeddings) towards zero between their few updates (as minGPT's configure_optimizers).
_TABLES = (nn.Embedding,)
_TABLE_NAMES = ("memory.memory", "view_embed", "context.present", "context.absent")


def build_optimizer(model: IRRALNet, extra: nn.Module | None, *, lr: float, lr_visual: float,
                    weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with a visual group (the CNN) and decay / no-decay groups for the rest (+ `extra`, e.g. a tuned BERT)."""
    visual = {id(p) for p in model.visual_parameters()}
    tables = {id(p) for m in model.modules() if isinstance(m, _TABLES) for p in m.parameters(recurse=False)}
    tables |= {id(p) for name, p in model.named_parameters() if name.endswith(_TABLE_NAMES)}
    decay, no_decay = [], []
    modules = [model] + ([extra] if extra is not None else [])
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in visual:
                continue
            (decay if p.ndim >= 2 and id(p) not in tables else no_decay).append(p)
    groups = [
        {"name": "visual", "params": [p for p in model.visual_parameters() if p.requires_grad], "lr": lr_visual, "weight_decay": 0.0},
        {"name": "decay", "params": decay, "lr": lr, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    # Fused kernels exist for CUDA tensors; the CPU keeps the (default) foreach implementation.
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-8, fused=fused or None)


class LRController:
    """Warm-up + schedule per step, and reduce-on-plateau per epoch (`observe`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, warmup: float, total_steps: int,
                 schedule: str = "constant", plateau_factor: float = 0.5, plateau_patience: int = 2,
                 higher_is_better: bool = True):
        self.optimizer = optimizer
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.warmup = warmup
        self.total_steps = max(1, total_steps)
        self.warmup_steps = warmup_steps(warmup, self.total_steps)
        self.schedule = schedule
        self.plateau_factor, self.plateau_patience = plateau_factor, plateau_patience
        self.higher_is_better = higher_is_better
        self.steps = 0
        self.scale = 1.0
        self.best: float | None = None
        self.stalled = 0
        self.learning = False   # True once the monitor has improved on its first value
        self._apply()

    def factor(self) -> float:
        warm = min(1.0, (self.steps + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        sched = 1.0
        if self.schedule == "cosine":
            progress = min(1.0, self.steps / self.total_steps)
            sched = 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * sched * self.scale

    def set_total_steps(self, total_steps: int) -> None:
        """The run's length in optimiser steps, known once the loader is built (resolves a fractional warm-up)."""
        self.total_steps = max(1, total_steps)
        self.warmup_steps = warmup_steps(self.warmup, self.total_steps)
        self._apply()

    @property
    def in_warmup(self) -> bool:
        """True while no step has yet run at the full rate (the last step taken was still warming up)."""
        return self.steps < self.warmup_steps

    def _apply(self) -> None:
        f = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * f

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def observe(self, value: float | None) -> bool:
        """One epoch's monitor value; returns True when the learning rate was just reduced."""
        if value is None or math.isnan(value):
            return False
        better = self.best is None or (value > self.best if self.higher_is_better else value < self.best)
        if better:
            # Learning has begun once the monitor first improves on its first value: a flat start
            # (CE F1 at the language prior for a few epochs) is not a plateau to cut the rate on.
            self.learning = self.learning or self.best is not None
            self.best, self.stalled = value, 0
            return False
        if not self.learning:
            return False
        self.stalled += 1
        if self.stalled > self.plateau_patience and self.plateau_factor < 1.0:
            self.scale *= self.plateau_factor
            self.stalled = 0
            self._apply()
            return True
        return False

    def lrs(self) -> dict[str, float]:
        return {g.get("name", str(k)): g["lr"] for k, g in enumerate(self.optimizer.param_groups)}

    def state_dict(self) -> dict:
        return {"steps": self.steps, "scale": self.scale, "best": self.best, "stalled": self.stalled,
                "learning": self.learning, "base": self.base, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.scale, self.best, self.stalled = state["steps"], state["scale"], state["best"], state["stalled"]
        self.learning = state.get("learning", True)
        self.base = list(state["base"])
        # The warm-up the run started with: a fraction of a changed --epochs must not move it on --resume.
        self.warmup_steps = state.get("warmup_steps", self.warmup_steps)
        self._apply()
