"""Data loaders for training and evaluation, and moving batches to the device.

What keeps a GPU fed: views read from the prepared image store (a memory map, no decoding),
uint8 tensors (a quarter of float32's traffic) in pinned memory, persistent worker processes
with prefetching, non-blocking host-to-device copies made on a side stream while the previous
step computes (`device_batches`), and normalisation on the device.

Sharding: a `DistributedSampler` in every run (one replica when not distributed) orders the data,
so global batch k holds the same studies whatever the number of processes; `EpochSampler` passes
the epoch to persistent workers for the (seed, epoch, index)-seeded random crops.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from irralctl.data.loader import EpochSampler, LoaderConfig, ReportDataset, collate
from irralctl.data.prepared import PreparedDataset
from irralctl.data.tokenizers import ReportTokenizer
from irralctl.errors import ConfigError
from irralctl.training.config import TrainConfig
from irralctl.training.distributed import DistState
from irralctl.utils.parallel import spawn_quietly, worker_count

BATCH_KEYS = ("images", "view_mask", "tokens", "lengths", "labels")


@dataclass
class SplitLoader:
    split: str
    dataset: ReportDataset
    sampler: EpochSampler
    loader: DataLoader

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)


def loader_config(cfg: TrainConfig, train: bool) -> LoaderConfig:
    """What the loader needs of the run's config (training: random crops when --augment)."""
    augment = train and cfg.data.augment
    return LoaderConfig(text_field=cfg.text_field, max_report_tokens=cfg.data.max_report_tokens, views=cfg.model.views,
                        image_size=cfg.model.image_size, resize=cfg.data.resize if augment else cfg.model.image_size,
                        train=augment, hflip=cfg.data.hflip, seed=cfg.seed, no_image=cfg.model.no_image)


def make_loader(ds: PreparedDataset, split: str, tokenizer: ReportTokenizer, cfg: TrainConfig, dist: DistState,
                device: torch.device, *, train: bool, batch_size: int, workers: int | None = None) -> SplitLoader:
    """Loader of `split`; `batch_size` counts studies over all processes."""
    if batch_size % dist.world_size:
        raise ConfigError(f"batch size {batch_size} is not divisible by the {dist.world_size} processes",
                          hint=f"use a multiple of {dist.world_size}")
    rd = ReportDataset(ds, split, tokenizer, loader_config(cfg, train))
    base = DistributedSampler(rd, num_replicas=dist.world_size, rank=dist.rank, shuffle=train, seed=cfg.seed, drop_last=False)
    sampler = EpochSampler(base)
    workers = worker_count(cfg.runtime.workers if workers is None else workers)
    loader = DataLoader(
        rd, batch_size=batch_size // dist.world_size, sampler=sampler, num_workers=workers,
        collate_fn=functools.partial(collate, pad_id=tokenizer.pad_id),
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=cfg.runtime.prefetch if workers > 0 else None,
        # Its own generator: creating iterators never draws from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return SplitLoader(split, rd, sampler, loader)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict:
    """The model's inputs on `device` (non-blocking from pinned memory); `index` (the studies' rows
    in the split) stays on the CPU, and `rows` holds the same as a list: what the step looks up by
    study (cached report features, the labels' context draw) uses it, so the step itself reads no
    tensor back to the host."""
    out: dict = {k: batch[k].to(device, non_blocking=True) for k in BATCH_KEYS}
    out["index"] = batch["index"]
    out["rows"] = batch["index"].tolist()
    return out


def device_batches(loader: Iterable[dict], device: torch.device) -> Iterator[dict]:
    """`to_device` of every batch of `loader`. On CUDA the copy of batch n+1 is queued on a side
    stream before batch n is handed over, so it overlaps step n's kernels instead of waiting behind
    them on the compute stream; each batch's tensors are marked as used by the compute stream, so the
    allocator does not reuse their memory while the step still reads it."""
    raws = spawn_quietly(loader)
    if device.type != "cuda":
        for raw in raws:
            yield to_device(raw, device)
        return
    side = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)

    def start(raw: dict) -> tuple[dict, torch.cuda.Event]:
        # From pinned memory, asynchronously: PyTorch keeps each pinned buffer until its copy is done.
        with torch.cuda.stream(side):
            batch = to_device(raw, device)
            ready = torch.cuda.Event()
            ready.record(side)
        return batch, ready

    first = next(raws, None)
    queued = None if first is None else start(first)
    while queued is not None:
        batch, ready = queued
        compute.wait_event(ready)
        for key in BATCH_KEYS:
            batch[key].record_stream(compute)
        following = next(raws, None)
        queued = None if following is None else start(following)
        yield batch
