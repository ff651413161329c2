"""Dynamic parameter optimisation, Eq. 6: theta_new = g(theta_old, Delta_med(C), Delta_internal).

Clinical feedback (Delta_med): the clinical head's loss weighs each CheXpert observation by w_c,
moved every epoch towards the observation's difficulty on the validation split:

    target_c = (1 - F1_c + eps) / mean over observed c' of (1 - F1_c' + eps)
    w_c     <- (1 - m) w_c + m target_c,  clipped to [0.25, 4]

where F1_c is the validation clinical-efficacy F1 of observation c (labels of generated vs
reference reports; observations absent from the validation references keep their weight) and m
the momentum. Internal feedback (Delta_internal) is the learning-rate cut on plateau in
`irralctl.training.optim.LRController`. Both are logged in metrics.jsonl every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

EPS = 0.05
W_MIN, W_MAX = 0.25, 4.0


class ObservationWeights:
    def __init__(self, n: int = 14, momentum: float = 0.5):
        self.weights = [1.0] * n
        self.momentum = momentum
        self._cached: tuple[tuple[float, ...], torch.Tensor] | None = None

    def update(self, f1: Sequence[float | None]) -> list[float]:
        """f1[c]: validation F1 of observation c, None (or NaN) where c has no reference positive."""
        known = [k for k, v in enumerate(f1) if v is not None and not math.isnan(v)]
        if not known:
            return self.weights
        difficulty = {k: 1.0 - f1[k] + EPS for k in known}
        mean = sum(difficulty.values()) / len(difficulty)
        m = self.momentum
        for k in known:
            w = (1 - m) * self.weights[k] + m * difficulty[k] / mean
            self.weights[k] = min(W_MAX, max(W_MIN, w))
        return self.weights

    def tensor(self, device: torch.device) -> torch.Tensor:
        """The weights on `device`, copied there only when they change (a copy per step would
        synchronise the host with the GPU at every step)."""
        key = tuple(self.weights)
        if self._cached is None or self._cached[0] != key or self._cached[1].device != device:
            self._cached = (key, torch.tensor(key, dtype=torch.float32, device=device))
        return self._cached[1]

    def state_dict(self) -> dict:
        return {"weights": list(self.weights), "momentum": self.momentum}

    def load_state_dict(self, state: dict) -> None:
        self.weights, self.momentum = list(state["weights"]), state["momentum"]
