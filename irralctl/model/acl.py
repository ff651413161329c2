"""Adaptive clinical learning (ACL, Eq. 5) and the clinical multi-label head that drives it.

    C        = sigmoid(ClinicalHead(V))            the 14 CheXpert observations predicted from the image
    alpha(C) = sigmoid(MLP(C))                     a per-channel gate in (0, 1)^d
    F        = alpha(C) * V + (1 - alpha(C)) * T   after every encoder layer ("iterative feature stacking")

T is the memory read-out of the layer's tokens projected into the text space (`TextSpace`), the
space MFA (Eq. 4) aligns with the report's BERT embedding. Training and inference run the same
graph: E_txt only supervises T through the MFA loss, it never enters F.

The head reads the visual tokens before the encoder (a learned query per observation, or their
mean: `--head-pooling`). C enters the gate and the context detached: the head learns only from the labels, so C stays a calibrated set of probabilities
rather than whatever code the report loss would find convenient.

The paper leaves open how C reaches the words beyond the gate, which scales every token alike and
so tells the decoder little about which finding is present. Here C is also added to every encoder
output token as one vector, sum over c of p_c e_c+ + (1 - p_c) e_c- (learned "present" and
"absent" embeddings of observation c mixed by its predicted probability), so the decoder reads the
head's findings wherever it attends. Appending them as 14 extra tokens instead was tried and
rejected: the decoder then attended to the context tokens and learned to read the visual tokens,
and with them where a finding is (left or right), far later (docs/model.md). With
`--ctx-words` (the default) the same vector is also added to every word embedding of the
decoder, where it is read without attending at all (IRRALNet carries it as `word_context`). The
head and everything C drives belong to ACL: a model without ACL has neither the head nor its loss.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x: (B, N, d), mask: (B, N) True for real tokens -> (B, d)."""
    m = mask.to(x.dtype).unsqueeze(-1)                                   # (B, N, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class ClinicalHead(nn.Module):
    """Visual tokens -> logits of the 14 CheXpert observations.

    `pooling="attention"`: each observation has a learned query that attends over the real visual
    tokens (a finding is local: a small nodule is a few tokens of one view, which a mean over all
    tokens dilutes) and its own linear read-out. `"mean"`: one MLP over the masked mean of the tokens.
    """

    def __init__(self, d_model: int, n_observations: int, dropout: float, pooling: str = "attention"):
        super().__init__()
        self.pooling = pooling
        self.norm = nn.LayerNorm(d_model)
        if pooling == "attention":
            self.queries = nn.Linear(d_model, n_observations, bias=False)  # row c: observation c's query
            self.readout = nn.Linear(d_model, n_observations)            # row c: observation c's weights
            self.dropout = nn.Dropout(dropout)
        else:
            self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(d_model, n_observations))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, N, d), mask: (B, N) -> (B, n_obs)."""
        x = self.norm(tokens)
        if self.pooling != "attention":
            return self.net(masked_mean(x, mask))
        scores = self.queries(x).transpose(1, 2) / x.shape[-1] ** 0.5     # (B, n_obs, N)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        pooled = scores.softmax(dim=-1) @ x                               # (B, n_obs, d)
        pooled = self.dropout(pooled)
        return (pooled * self.readout.weight).sum(-1) + self.readout.bias  # (B, n_obs)


class ClinicalContext(nn.Module):
    """C -> one vector added to every encoder output token: sum_c p_c e_c+ + (1 - p_c) e_c-."""

    def __init__(self, n_observations: int, d_model: int):
        super().__init__()
        self.present = nn.Parameter(torch.zeros(n_observations, d_model))
        self.absent = nn.Parameter(torch.zeros(n_observations, d_model))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """probs: (B, n_obs) -> (B, d)."""
        p = probs.to(self.present.dtype)                                  # (B, n_obs)
        return p @ self.present + (1.0 - p) @ self.absent                # (B, d)


class ACLGate(nn.Module):
    """alpha(C): a small MLP of the predicted observation probabilities giving a per-channel gate."""

    def __init__(self, n_observations: int, d_model: int, hidden: int = 64):
        super().__init__()
        # Initialised close to the visual path (alpha ~ 0.88: T is untrained at first) by irralctl.model.init.
        self.net = nn.Sequential(nn.Linear(n_observations, hidden), nn.ReLU(), nn.Linear(hidden, d_model))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """probs: (B, n_obs) -> alpha: (B, 1, d)."""
        return torch.sigmoid(self.net(probs)).unsqueeze(1)

    @staticmethod
    def fuse(v: torch.Tensor, t: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Eq. 5: F = alpha * V + (1 - alpha) * T; v, t: (B, N, d), alpha: (B, 1, d)."""
        return alpha * v + (1.0 - alpha) * t
