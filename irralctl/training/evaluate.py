"""Validation: teacher-forced loss, clinical-head predictions and decoded reports of a split.

Every process evaluates its shard; rank 0 gathers the per-study results (dropping the duplicates
a DistributedSampler pads with) and scores them with `irralctl.metrics.score_reports`, what
`irralctl score` runs (METEOR off: validation runs every epoch). Reports are decoded by
`irralctl.generation.decoding.decode`, the decoder of `irralctl generate` (greedy by default, so
validation stays fast: `--val-beam-size` widens it). Validation drives model selection, LR cuts
and Eq. 6; the test split is decoded and scored once, at the end, by `irralctl generate`'s own
pipeline (see `trainer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from irralctl.data.tokenizers import ReportTokenizer
from irralctl.errors import TrainingError
from irralctl.generation.config import DecodeConfig
from irralctl.generation.decoding import decode
from irralctl.model import IRRALNet, losses
from irralctl.progress import SILENT, Progress
from irralctl.training.data import SplitLoader, to_device
from irralctl.training.distributed import DistState

log = logging.getLogger(__name__)


@dataclass
class SplitResult:
    """Per-study results of one split, in split order (rank 0 only)."""

    indices: list[int]
    predictions: list[str]            # decoded reports
    nll: np.ndarray                   # (n, 2): summed token NLL and token count per study
    head_probs: np.ndarray | None     # (n, 14) clinical-head probabilities (ACL only)
    labels: np.ndarray                # (n, 14) reference label codes (1, 0, -1, blank)
    z_img: np.ndarray | None = None   # (n, d) images in MFA's text space (MFA only)

    @property
    def loss(self) -> float:
        return float(self.nll[:, 0].sum() / max(self.nll[:, 1].sum(), 1))


@torch.no_grad()
def evaluate(model: IRRALNet, data: SplitLoader, tokenizer: ReportTokenizer, decoding: DecodeConfig, *,
             dist: DistState, device: torch.device, autocast: Callable, progress: Progress = SILENT,
             name: str = "evaluate") -> SplitResult | None:
    """Evaluate the bare model on `data`; returns the gathered result on rank 0, None elsewhere."""
    model.eval()
    rows: list[tuple] = []
    with progress.task(name, len(data)) as task:
        for raw in data.loader:
            batch = to_device(raw, device)
            try:
                with autocast():
                    encoded = model.encode(batch["images"], batch["view_mask"])
                    logits = model.teacher_force(encoded, batch["tokens"])            # (B, T-1, vocab)
                    hyps = decode(model, encoded, decoding)
            except torch.OutOfMemoryError:
                raise TrainingError(f"out of memory on {device} while evaluating ({name}) "
                                    f"{batch['images'].shape[0]} studies per batch",
                                    hint="lower --eval-batch-size") from None
            nll_sum, nll_n = losses.token_nll_per_study(logits, batch["tokens"], batch["lengths"])
            per_study = torch.stack([nll_sum, nll_n.float()], dim=1).cpu().numpy()
            probs = _numpy(None if encoded.clinical_logits is None else torch.sigmoid(encoded.clinical_logits.float()))
            z_img = _numpy(encoded.z_img)
            labels = batch["labels"].cpu().numpy()
            for k, index in enumerate(raw["index"].tolist()):
                rows.append((index, tokenizer.decode(hyps.ids(k)), per_study[k], _row(probs, k), labels[k],
                             _row(z_img, k)))
            task.advance(1)
    gathered = dist.gather_to_main(rows)
    if gathered is None:
        return None
    unique = {r[0]: r for part in gathered for r in part}  # DistributedSampler pads with repeats
    ordered = [unique[i] for i in sorted(unique)]
    column = lambda k, width: (None if ordered and ordered[0][k] is None else  # noqa: E731
                               np.stack([r[k] for r in ordered]) if ordered else np.zeros((0, width)))
    return SplitResult(
        indices=[r[0] for r in ordered], predictions=[r[1] for r in ordered],
        nll=column(2, 2), head_probs=column(3, 14), labels=column(4, 14), z_img=column(5, 0),
    )


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.float().cpu().numpy()


def _row(a: np.ndarray | None, k: int) -> np.ndarray | None:
    return None if a is None else a[k]


def head_f1(result: SplitResult, uncertain: str = "mask") -> list[float | None] | None:
    """Per-observation F1 of the clinical head (threshold 0.5) against the reference labels (None without a head)."""
    if result.head_probs is None:
        return None
    targets, mask = losses.clinical_targets(torch.from_numpy(result.labels), uncertain)
    pred = torch.from_numpy(result.head_probs) > 0.5
    ref = targets.bool() & mask
    pred = pred & mask
    out: list[float | None] = []
    for c in range(ref.shape[1]):
        tp = int((pred[:, c] & ref[:, c]).sum())
        fp = int((pred[:, c] & ~ref[:, c]).sum())
        fn = int((~pred[:, c] & ref[:, c]).sum())
        out.append(None if tp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return out


def head_confusion(result: SplitResult, uncertain: str = "mask") -> list[list[int]] | None:
    """Per observation, [TP, FP, FN, TN] of the clinical head (threshold 0.5) over the studies whose
    label takes part in its loss (as `head_f1`); None without a head."""
    if result.head_probs is None:
        return None
    targets, mask = losses.clinical_targets(torch.from_numpy(result.labels), uncertain)
    pred = torch.from_numpy(result.head_probs) > 0.5
    ref = targets.bool()
    cells = (pred & ref, pred & ~ref, ~pred & ref, ~pred & ~ref)           # each (n, 14)
    counts = torch.stack([(c & mask).sum(dim=0) for c in cells], dim=1)    # (14, 4)
    return counts.tolist()
