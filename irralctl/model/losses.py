"""Training losses, each returned as (sum, count) so the trainer can normalise by global counts.

Dividing by counts summed over every process (not a per-process mean) makes a distributed step
compute exactly the loss of one process over the same global batch.

* `token_nll`: the report NLL of Eq. 4, over BOS-excluded targets up to and including EOS; which
  positions are real comes from `lengths`, never from pad ids (legacy: PAD = EOS = 0).
* `clinical_bce`: the multi-label head's binary cross-entropy, per-observation weighted (Eq. 6).
  Label policy (CheXpert codes 1 / 0 / -1 / blank):
    positive (1) -> target 1;  negative (0) and blank (not mentioned) -> target 0;
    uncertain (-1) -> left out of the loss with `uncertain="mask"` (default), else target 0
    (`"negative"`) or 1 (`"positive"`). Blank counts as absent as in the CE protocol: a report
    that does not mention an observation is read as not reporting it.
* MFA's hinge is `irralctl.model.mfa.mfa_hinge`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from irralctl.constants import HEAD_UNCERTAIN, POSITIVE, UNCERTAIN


def token_nll_per_study(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL (B,), target count (B,)); logits: (B, T-1, V) predicting tokens[:, 1:]; tokens: (B, T);
    lengths: (B,) incl. BOS/EOS."""
    b, t, v = logits.shape
    targets = tokens[:, 1:]                                               # (B, T-1)
    valid = torch.arange(t, device=tokens.device)[None, :] < (lengths - 1)[:, None]
    nll = F.cross_entropy(logits.reshape(b * t, v).float(), targets.reshape(b * t), reduction="none").view(b, t)
    return (nll * valid).sum(dim=1), valid.sum(dim=1)


def token_nll(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL, target count) of the batch (see `token_nll_per_study`)."""
    nll, n = token_nll_per_study(logits, tokens, lengths)
    return nll.sum(), n.sum()


def clinical_targets(labels: torch.Tensor, uncertain: str = "mask") -> tuple[torch.Tensor, torch.Tensor]:
    """labels: (B, 14) codes (1, 0, -1, blank) -> float targets and a bool mask of entries in the loss."""
    if uncertain not in HEAD_UNCERTAIN:
        raise ValueError(f"uncertain must be one of {HEAD_UNCERTAIN}")
    positive = labels == POSITIVE
    if uncertain == "positive":
        positive = positive | (labels == UNCERTAIN)
    mask = labels != UNCERTAIN if uncertain == "mask" else torch.ones_like(positive)
    return positive.float(), mask


def clinical_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                 uncertain: str = "mask") -> tuple[torch.Tensor, torch.Tensor]:
    """logits: (B, 14); labels: (B, 14) codes; weights: (14,) per observation (Eq. 6)."""
    targets, mask = clinical_targets(labels, uncertain)
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    if weights is not None:
        bce = bce * weights[None, :]
    return (bce * mask).sum(), mask.sum()
