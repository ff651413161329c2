"""One training step and one training epoch, with the checks that stop a run cleanly.

`train_step` runs forward (bf16 autocast on CUDA), the losses of Eq. 4 plus the clinical head's
weighted BCE (Eq. 6 weights), backward, gradient clipping and the optimiser step, without any
device-to-host synchronisation. `train_one_epoch` reads each step's statistics one step late (the
GPU computes step n+1 while the host checks step n), stops on a non-finite loss naming the step and
the batch's studies, writes the step's row of steps.csv (`irralctl.training.logs`), and turns a
CUDA out-of-memory error into the batch size that fits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from irralctl.errors import TrainingError
from irralctl.model import IRRALNet, losses
from irralctl.model.mfa import MFALoss
from irralctl.model.text_encoder import TextEncoder, TextFeatureCache
from irralctl.progress import Progress
from irralctl.runs.device import autocast
from irralctl.runs.layout import RunLayout
from irralctl.training.config import TrainConfig
from irralctl.training.data import SplitLoader, device_batches
from irralctl.training.distributed import DistState
from irralctl.training.feedback import ObservationWeights
from irralctl.training.logs import StepLog
from irralctl.training.optim import LRController

log = logging.getLogger(__name__)

# Columns of the per-step statistics vector (train_step appends the gradient norm).
NLL_SUM, NLL_N, CLS_SUM, CLS_N, MFA_SUM, MFA_N, LOSS, GRAD_NORM = range(8)


class TrainingModule(nn.Module):
    """What DistributedDataParallel wraps: the model, the MFA loss (its running means are buffers
    DDP keeps equal on every process) and, when tuned, the text encoder (so its gradients are
    averaged too). Returns a tuple (DDP and torch.compile handle tuples natively): next-token
    logits, clinical logits (ACL) and MFA's per-study loss (MFA)."""

    def __init__(self, model: IRRALNet, text_encoder: TextEncoder | None = None, mfa: MFALoss | None = None):
        super().__init__()
        self.model = model
        self.text_encoder = text_encoder
        self.mfa = mfa

    def forward(self, images, view_mask, tokens, text_features=None, text_inputs=None, known_context=None):
        if text_inputs is not None:
            text_features = self.text_encoder(**text_inputs)
        out = self.model(images, view_mask, tokens, text_features, known_context)
        mfa = self.mfa(out.z_img, out.z_txt) if self.mfa is not None and out.z_txt is not None else None
        return out.logits, out.clinical_logits, mfa


@dataclass
class Run:
    """Everything a training run holds between steps."""

    cfg: TrainConfig
    layout: RunLayout                    # where this run writes (a staging folder until it succeeds)
    dist: DistState
    device: torch.device
    model: IRRALNet                      # the bare model (what checkpoints and evaluation use)
    module: nn.Module                    # what a step calls: TrainingModule, maybe DDP-wrapped (--compile
                                         # compiles the model's repeated blocks in place)
    optimizer: torch.optim.Optimizer
    lr: LRController
    scaler: torch.amp.GradScaler
    obs_weights: ObservationWeights
    amp_dtype: torch.dtype | None
    train_ids: list[str]
    text_encoder: TextEncoder | None = None
    mfa: MFALoss | None = None
    text_cache: TextFeatureCache | None = None
    train_texts: list[str] = field(default_factory=list)
    epoch: int = 0                       # epochs completed
    step: int = 0                        # optimizer steps completed
    step_log: StepLog | None = None      # steps.csv (main process only)

    def autocast(self):
        return autocast(self.device, self.amp_dtype)

    def trained_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]


def _text_inputs(run: Run, rows: list[int]) -> dict:
    """What the step needs from the report text for MFA: cached features, or tokens for a tuned BERT."""
    if not run.cfg.model.mfa:
        return {}
    if run.text_cache is not None:
        return {"text_features": run.text_cache(rows)}
    enc = run.text_encoder.tokenize([run.train_texts[i] for i in rows])
    return {"text_inputs": {k: v.to(run.device, non_blocking=True) for k, v in enc.items()}}


def known_context(run: Run, labels: torch.Tensor, rows: list[int]) -> torch.Tensor | None:
    """(B, n_obs) clinical context from the labels for a random `--context-from-labels` share of the
    batch's studies, NaN elsewhere (and where a label is left out of the head's loss).

    The decoder then learns what the context tokens mean from the first steps, while the head is
    still guessing; at validation and test the context is always the head's own prediction.
    """
    share = run.cfg.loss.context_from_labels
    if not run.cfg.model.acl or share <= 0:
        return None
    targets, mask = losses.clinical_targets(labels, run.cfg.loss.uncertain)      # (B, n_obs) each
    chosen = study_uniform(rows, run.step, run.cfg.seed).to(labels.device, non_blocking=True)[:, None] < share  # (B, 1)
    return torch.where(chosen & mask, targets, torch.full_like(targets, float("nan")))


def study_uniform(index, step: int, seed: int) -> torch.Tensor:
    """(B,) uniform numbers in [0, 1) drawn from (seed, step, study index) alone (a splitmix64 hash).

    A draw that depends on the study and not on the process it landed on keeps one-process and
    multi-process runs identical (a generator per process would split the batch's draws
    differently); computed on the host from the rows (a list, or a CPU tensor), so it costs no device
    sync.
    """
    mask = (1 << 64) - 1
    out = []
    for i in (index.tolist() if isinstance(index, torch.Tensor) else index):
        z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + i * 0x94D049BB133111EB) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(((z ^ (z >> 31)) >> 11) / float(1 << 53))
    return torch.tensor(out, dtype=torch.float32)


def forward_losses(run: Run, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backpropagate, statistics (7,)). Losses are normalised by counts over all processes."""
    loss_cfg = run.cfg.loss
    with run.autocast():
        logits, clinical_logits, mfa = run.module(
            batch["images"], batch["view_mask"], batch["tokens"], **_text_inputs(run, batch["rows"]),
            known_context=known_context(run, batch["labels"], batch["rows"]))
    nll_sum, nll_n = losses.token_nll(logits, batch["tokens"], batch["lengths"])
    zero = torch.zeros((), device=logits.device)
    cls_sum = cls_n = mfa_sum = mfa_n = zero
    if clinical_logits is not None:  # ACL's head, its BCE weighted per observation (Eq. 6)
        cls_sum, cls_n = losses.clinical_bce(clinical_logits, batch["labels"], run.obs_weights.tensor(run.device),
                                             loss_cfg.uncertain)
    if mfa is not None:
        # torch.full launches a fill kernel; torch.tensor(n, device=cuda) would copy from the host and sync.
        mfa_sum, mfa_n = mfa.sum(), torch.full((), mfa.shape[0], device=mfa.device)
    counts = torch.stack([nll_n, cls_n, mfa_n]).float()
    local = counts.clone()
    run.dist.all_reduce_sum(counts)
    world = run.dist.world_size  # DDP averages gradients over processes: scale the global mean back up
    lam_cls, lam_mfa = loss_cfg.clinical_lambda, loss_cfg.mfa_lambda
    loss = world * (nll_sum / counts[0].clamp_min(1) + lam_cls * cls_sum / counts[1].clamp_min(1)
                    + lam_mfa * mfa_sum / counts[2].clamp_min(1))
    shown = (nll_sum / local[0].clamp_min(1) + lam_cls * cls_sum / local[1].clamp_min(1)
             + lam_mfa * mfa_sum / local[2].clamp_min(1))
    stats = torch.stack([nll_sum, local[0], cls_sum, local[1], mfa_sum, local[2], shown]).detach().float()
    return loss, stats


def train_step(run: Run, batch: dict) -> torch.Tensor:
    """Forward, backward, clip, optimiser and LR step; returns the statistics (8,) on the device:
    those of `forward_losses` and the gradient norm before clipping."""
    loss, stats = forward_losses(run, batch)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)  # the true gradients (a no-op without fp16's scaler); step() skips it then
    params = run.trained_parameters()
    if run.cfg.optim.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, run.cfg.optim.grad_clip)
    else:  # the same norm, for steps.csv, without touching the gradients
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.lr.step()
    return torch.cat([stats, norm.detach().float().reshape(1)])


def _slice(batch: dict, n: int) -> dict:
    return {k: v[:n] for k, v in batch.items()}


def probe_batch_size(run: Run, batch: dict) -> int | None:
    """After an out-of-memory error: the largest halving of this batch whose forward+backward fits."""
    size = batch["images"].shape[0] // 2
    while size >= 1:
        try:
            loss, _ = forward_losses(run, _slice(batch, size))
            loss.backward()
            run.optimizer.zero_grad(set_to_none=True)
            return size
        except torch.OutOfMemoryError:
            run.optimizer.zero_grad(set_to_none=True)
            if run.device.type == "cuda":
                torch.cuda.empty_cache()
            size //= 2
    return None


def _oom_error(run: Run, batch: dict) -> TrainingError:
    run.optimizer.zero_grad(set_to_none=True)
    if run.device.type == "cuda":
        torch.cuda.empty_cache()
    local = batch["images"].shape[0]
    world = run.dist.world_size
    fits = probe_batch_size(run, batch)
    where = f"{run.device}" + (f" (process {run.dist.rank} of {world})" if world > 1 else "")
    if fits is None:
        return TrainingError(f"out of memory on {where} even with 1 study per process",
                             hint="lower --image-size, --d-model or --memory-slots, or use a smaller --backbone")
    return TrainingError(f"out of memory on {where} at {local} studies per process (--batch-size {local * world}); "
                         f"{fits} per process fits", hint=f"rerun with --batch-size {fits * world}")


def _check_finite(run: Run, value: float, step: int, index: torch.Tensor, epoch: int) -> float:
    if not math.isfinite(value):
        ids = [run.train_ids[i] for i in index.tolist()]
        shown = ", ".join(ids[:8]) + (f" (+{len(ids) - 8} more)" if len(ids) > 8 else "")
        kept = f"the last good checkpoint is {run.layout.last} (epoch {run.epoch})" if run.epoch else "no checkpoint was written yet"
        raise TrainingError(f"non-finite loss ({value}) at epoch {epoch + 1}, step {step}; batch studies: {shown}; {kept}",
                            hint="lower --lr or --lr-visual, keep --grad-clip on, check these studies' images and reports")
    return value


@dataclass
class _Pending:
    """A step whose statistics are still on the device: read once the next step is queued."""

    stats: torch.Tensor
    step: int
    index: torch.Tensor
    lrs: dict[str, float]     # the rates this step used
    images: int               # views in this process's batch


def _finish(run: Run, pending: _Pending, epoch: int, since: float) -> tuple[float, float]:
    """Check a queued step and log it; returns (its loss, when it was read)."""
    values = pending.stats.tolist()        # waits for that step only: the next one is already queued
    loss = _check_finite(run, values[LOSS], pending.step, pending.index, epoch)
    now = time.perf_counter()
    if run.step_log is not None:
        row = {"step": pending.step, "epoch": epoch + 1, "loss": loss, "grad_norm": values[GRAD_NORM],
               "images_per_s": pending.images * run.dist.world_size / max(now - since, 1e-9),
               **{f"lr_{name}": lr for name, lr in pending.lrs.items()}}
        for name, total, count in (("nll", NLL_SUM, NLL_N), ("clinical_bce", CLS_SUM, CLS_N), ("mfa", MFA_SUM, MFA_N)):
            row[name] = values[total] / values[count] if values[count] > 0 else None
        run.step_log.write(row)
    return loss, now


def loss_terms(cfg: TrainConfig) -> list[str]:
    """The loss terms a run trains with, as steps.csv names them."""
    return ["nll", *(["clinical_bce"] if cfg.model.acl else []), *(["mfa"] if cfg.model.mfa else [])]


def train_one_epoch(run: Run, data: SplitLoader, epoch: int, progress: Progress) -> dict:
    """One pass over the training split; returns the epoch's mean losses and throughput."""
    run.module.train()
    data.set_epoch(epoch)
    totals = torch.zeros(6, device=run.device)
    views = run.cfg.model.views
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.device)
    start = time.perf_counter()
    images = 0
    read = start              # when the last step was read back
    pending: _Pending | None = None
    with progress.task(f"epoch {epoch + 1}/{run.cfg.optim.epochs}", len(data)) as task:
        for batch in device_batches(data.loader, run.device):
            lrs = run.lr.lrs()
            try:
                stats = train_step(run, batch)
            except torch.OutOfMemoryError:
                raise _oom_error(run, batch) from None
            run.step += 1
            totals += stats[:6]
            step_images = batch["images"].shape[0] * views
            images += step_images
            if pending is not None:
                loss, read = _finish(run, pending, epoch, read)
                task.advance(1, loss=loss, images_per_s=images / (time.perf_counter() - start))
            pending = _Pending(stats, run.step, batch["index"], lrs, step_images)
        if pending is not None:
            loss, read = _finish(run, pending, epoch, read)
            task.advance(1, loss=loss, images_per_s=images / (time.perf_counter() - start))
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - start
    run.dist.all_reduce_sum(totals)
    t = totals.tolist()
    images_total = images * run.dist.world_size
    out = {
        "train_nll": t[NLL_SUM] / max(t[NLL_N], 1),
        "train_seconds": seconds,
        "images_per_s": images_total / seconds if seconds > 0 else None,
    }
    if run.cfg.model.acl:
        out["train_clinical_bce"] = t[CLS_SUM] / max(t[CLS_N], 1)
    if run.cfg.model.mfa:
        out["train_mfa"] = t[MFA_SUM] / max(t[MFA_N], 1)
    if run.device.type == "cuda":
        out["gpu_memory_mib"] = torch.cuda.max_memory_allocated(run.device) / 2**20
    return out
