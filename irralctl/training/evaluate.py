"""Evaluation of a split: teacher-forced loss, clinical-head predictions and generated reports.

Every process evaluates its shard; rank 0 gathers the per-study results (dropping the duplicates
a DistributedSampler pads with), then scores them with `irralctl.training.scoring`. Validation
drives model selection, LR cuts and Eq. 6; the test split is evaluated once, at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from irralctl.data.tokenizers import ReportTokenizer
from irralctl.errors import TrainingError
from irralctl.model import IRRALNet, losses
from irralctl.training import scoring
from irralctl.training.data import SplitLoader, to_device
from irralctl.training.distributed import DistState
from irralctl.training.loop import Callbacks

log = logging.getLogger(__name__)


@dataclass
class SplitResult:
    """Per-study results of one split, in split order (rank 0 only)."""

    indices: list[int]
    predictions: list[str]            # generated reports ("" when generation was skipped)
    nll: np.ndarray                   # (n, 2): summed token NLL and token count per study
    head_probs: np.ndarray            # (n, 14) clinical-head probabilities
    labels: np.ndarray                # (n, 14) reference label codes (1, 0, -1, blank)

    @property
    def loss(self) -> float:
        return float(self.nll[:, 0].sum() / max(self.nll[:, 1].sum(), 1))


@torch.no_grad()
def evaluate(model: IRRALNet, data: SplitLoader, tokenizer: ReportTokenizer, *, dist: DistState,
             device: torch.device, autocast: Callable, gen_len: int, generate: bool = True,
             callbacks: Callbacks | None = None, name: str = "evaluate") -> SplitResult | None:
    """Evaluate the bare model on `data`; returns the gathered result on rank 0, None elsewhere."""
    callbacks = callbacks or Callbacks()
    model.eval()
    rows: list[tuple] = []
    callbacks.start(name, len(data))
    for raw in data.loader:
        batch = to_device(raw, device)
        try:
            with autocast():
                out = model(batch["images"], batch["view_mask"], batch["tokens"])
                generated = model.generate(batch["images"], batch["view_mask"], gen_len).cpu() if generate else None
        except torch.OutOfMemoryError:
            raise TrainingError(f"out of memory on {device} while evaluating ({name}) "
                                f"{batch['images'].shape[0]} studies per batch",
                                hint="lower --eval-batch-size") from None
        b, t, v = out.logits.shape
        nll = torch.nn.functional.cross_entropy(out.logits.reshape(b * t, v).float(), batch["tokens"][:, 1:].reshape(b * t),
                                                reduction="none").view(b, t)
        valid = torch.arange(t, device=device)[None, :] < (batch["lengths"] - 1)[:, None]
        per_study = torch.stack([(nll * valid).sum(1), valid.sum(1).float()], dim=1).cpu().numpy()
        probs = torch.sigmoid(out.clinical_logits.float()).cpu().numpy()
        labels = batch["labels"].cpu().numpy()
        for k, index in enumerate(raw["index"].tolist()):
            text = tokenizer.decode(generated[k].tolist()) if generated is not None else ""
            rows.append((index, text, per_study[k], probs[k], labels[k]))
        callbacks.advance(1, {})
    callbacks.end()
    gathered = dist.gather_to_main(rows)
    if gathered is None:
        return None
    unique = {r[0]: r for part in gathered for r in part}  # DistributedSampler pads with repeats
    ordered = [unique[i] for i in sorted(unique)]
    return SplitResult(
        indices=[r[0] for r in ordered], predictions=[r[1] for r in ordered],
        nll=np.stack([r[2] for r in ordered]) if ordered else np.zeros((0, 2)),
        head_probs=np.stack([r[3] for r in ordered]) if ordered else np.zeros((0, 14)),
        labels=np.stack([r[4] for r in ordered]) if ordered else np.zeros((0, 14)),
    )


def head_f1(result: SplitResult, uncertain: str = "mask") -> list[float | None]:
    """Per-observation F1 of the clinical head (threshold 0.5) against the reference labels."""
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


def split_metrics(result: SplitResult, references: list[str], ids: list[str], ref_labels: list | None,
                  *, nlg: bool, clinical: bool, meteor: str = "off") -> tuple[dict, dict | None]:
    """(scores, scoring protocol) of a gathered split result: loss, and NLG and CE where available."""
    out: dict = {"loss": result.loss}
    if not nlg:
        return out, None
    preds = {ids[i]: p for i, p in zip(result.indices, result.predictions)}
    refs = {ids[i]: references[i] for i in result.indices}
    labels = {ids[i]: ref_labels[i] for i in result.indices} if clinical and ref_labels is not None else None
    scores, protocol = scoring.score(preds, refs, clinical=labels is not None, ref_labels=labels, meteor=meteor)
    out.update(scores)
    return out, protocol
