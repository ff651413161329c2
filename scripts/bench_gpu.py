"""Benchmark: IRRAL-Net training (and greedy generation) throughput against the ResNet-101 ceiling.

Measured in one process on one GPU (PERFORMANCE.md): IU X-Ray shapes (two 224 px views per study,
reports of 60 tokens), end to end from a prepared image store (generated images, in a temporary
directory) through the real loader, at 16 and 64 studies per step; the same batches with the
data already on the GPU (model only); and the hardware ceiling: a torchvision ResNet-101
forward+backward with bf16 autocast, channels_last and fused AdamW on the same image count.
Prints one JSON line per figure (medians over repeats). Targets: train >= 0.7 x ceiling at the
same batch size, >= 600 images/s at batch 16 (H100/H200).

    python scripts/bench_gpu.py                   # GPU, full figures (< 3 min on an H100)
    python scripts/bench_gpu.py --compile         # the same with torch.compile
    python scripts/bench_gpu.py --cpu-smoke       # a reduced run on the CPU (< 1 min), checks the script
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irralctl.data.prepared import finish_dataset, open_staging  # noqa: E402
from irralctl.data.store import write_image_store  # noqa: E402

WORDS = ("the heart size is normal . lungs are clear . no pleural effusion or pneumothorax . mild cardiomegaly "
         "with small bilateral effusions . there is a right lower lobe opacity . degenerative changes of the spine . "
         "the mediastinal contour is stable . no focal consolidation . calcified granuloma in the left upper lobe .").split()


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def make_dataset(root: Path, studies: int, image_size: int, seed: int = 0) -> Path:
    """A prepared dataset of `studies` two-view studies: smooth noise images (shorter side `image_size`,
    IU-like aspect) and reports of about 70 words, so every report fills the 60-token budget."""
    rng = np.random.default_rng(seed)
    out = root / "bench_data"
    staging = open_staging(out, {"bench": seed}, overwrite=True)
    h, w = image_size, int(image_size * 1.2)
    base = [np.asarray(torch.nn.functional.interpolate(torch.rand(1, 1, h // 16, w // 16) * 255, size=(h, w),
                                                       mode="bilinear")[0, 0], dtype=np.uint8) for _ in range(4)]
    images, records = [], []
    for k in range(studies):
        views = []
        for v in range(2):
            image_id = f"B{k:05d}-{v}"
            images.append((image_id, np.roll(base[(k + v) % 4], k, axis=1)))
            views.append({"id": image_id, "view": "PA" if v == 0 else "LATERAL"})
        text = " ".join(rng.choice(WORDS, 70))
        records.append({"id": f"B{k:05d}", "group": str(k), "images": views, "sections": {"findings": text},
                        "mesh": [], "report": text, "target": text, "legacy_target": text, "labels": {"chexpert": [None] * 14}})
    rows = write_image_store(images, staging / "images")
    for r in records:
        for im in r["images"]:
            im["row"] = rows[im["id"]]
    n_val = max(2, studies // 16)
    splits = {"train": records[n_val:], "val": records[:n_val], "test": records[:n_val]}
    return finish_dataset(staging, out, name="bench", splits=splits, options={"seed": seed}, sources=[],
                          cleaner={"name": "default", "version": "bench"}, legacy_cleaner={"name": "legacy", "version": "bench"},
                          images={"count": len(images), "size": image_size, "views_per_study": 2}, labeler=None,
                          counts={}, problems=[], bpe_vocab_size=1000, legacy_threshold=3)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def ceiling(images: int, args, device: torch.device, backbone: str) -> dict:
    """ResNet forward+backward + fused AdamW on `images` synthetic images already on the device."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, backbone)(weights=None).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
    x = torch.randn(images, 3, args.image_size, args.image_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (images,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with amp:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    runs = [timed(lambda: [step() for _ in range(args.steps)], device) for _ in range(args.repeats)]
    return {"images_per_s": images * args.steps / statistics.median(runs), "runs_s": runs}


def train_throughput(dataset: Path, studies: int, args, device: torch.device) -> tuple[dict, dict, object]:
    """(end to end from the store, model only) images/s of IRRAL-Net training steps, and the run."""
    from irralctl.training import TrainConfig
    from irralctl.training.data import make_loader, to_device
    from irralctl.training.distributed import DistState
    from irralctl.training.loop import train_step
    from irralctl.training.trainer import build_run, open_dataset

    cfg = TrainConfig(dataset=dataset, out=Path(args.tmp) / "unused", backbone=args.backbone, image_size=args.image_size,
                      resize=args.resize, d_model=args.d_model, d_ff=args.d_model, memory_slots=args.memory_slots,
                      batch_size=studies, workers=args.workers, device=str(device), compile=args.compile,
                      warmup_steps=10, epochs=1000, monitor="val_loss", mfa=not args.no_mfa, tiny_width=16)
    dist = DistState()
    ds = open_dataset(cfg)
    run, _ = build_run(cfg, ds, dist, device)
    data = make_loader(ds, "train", ds.tokenizer("bpe"), cfg, dist, device, train=True, batch_size=studies)
    views = cfg.views

    def batches():
        epoch = 0
        while True:
            data.set_epoch(epoch)
            for raw in data.loader:
                if raw["images"].shape[0] == studies:  # skip a short last batch: fixed shapes
                    yield raw
            epoch += 1

    if run.text_cache is not None:  # steady state: after the first epoch every study's T[CLS] is cached
        run.text_cache(torch.arange(len(run.train_ids)))
    stream = batches()
    run.module.train()
    for _ in range(args.warmup):  # cudnn.benchmark, allocator, text-feature cache, compile
        train_step(run, to_device(next(stream), device))

    def end_to_end() -> None:
        for _ in range(args.steps):
            train_step(run, to_device(next(stream), device))

    runs = [timed(end_to_end, device) for _ in range(args.repeats)]
    e2e = {"images_per_s": studies * views * args.steps / statistics.median(runs), "runs_s": runs}
    fixed = to_device(next(stream), device)
    runs = [timed(lambda: [train_step(run, fixed) for _ in range(args.steps)], device) for _ in range(args.repeats)]
    model_only = {"images_per_s": studies * views * args.steps / statistics.median(runs), "runs_s": runs}
    if device.type == "cuda":
        e2e["gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return e2e, model_only, (run, fixed)


def greedy(model, images: torch.Tensor, view_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    return model.generate(images, view_mask, max_new_tokens)


def generation_throughput(run, batch: dict, args, device: torch.device,
                          decode: Callable = greedy, name: str = "greedy") -> dict:
    """Studies/s of `decode(model, images, view_mask, max_new_tokens)` (greedy now; beam search plugs in here).

    The untrained model rarely emits EOS, so every study runs the full length: a worst case.
    """
    model = run.model.eval()
    images, view_mask = batch["images"], batch["view_mask"]

    def go() -> None:
        with torch.no_grad(), run.autocast():
            decode(model, images, view_mask, args.gen_len)

    go()
    runs = [timed(go, device) for _ in range(args.repeats)]
    return {"decoder": name, "studies_per_s": images.shape[0] / statistics.median(runs), "max_new_tokens": args.gen_len,
            "runs_s": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, to check the script (< 1 min)")
    ap.add_argument("--batches", default="16,64", help="studies per step, comma-separated (default 16,64)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats; the median is reported (default 3)")
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps first (default 8)")
    ap.add_argument("--workers", type=int, default=8, help="loader worker processes (default 8)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training step (default off)")
    ap.add_argument("--no-mfa", action="store_true", help="train without MFA's text encoder")
    args = ap.parse_args()

    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        args.backbone, args.ceiling_backbone, args.image_size, args.resize = "resnet18", "resnet18", 64, 72
        args.d_model, args.memory_slots, args.gen_len = 64, 256, 12
        args.batches, args.steps, args.repeats, args.warmup, args.workers = "2,4", 2, 1, 1, min(args.workers, 1)
    else:
        if not torch.cuda.is_available():
            emit(figure="error", error="no CUDA GPU visible to torch; run with --cpu-smoke to check the script on a CPU")
            return 2
        device = torch.device("cuda:0")
        args.backbone, args.ceiling_backbone, args.image_size, args.resize = "resnet101", "resnet101", 224, 256
        args.d_model, args.memory_slots, args.gen_len = 512, 2048, 61
        torch.backends.cudnn.benchmark = True
    batches = [int(b) for b in args.batches.split(",")]
    emit(figure="environment", device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
         torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(), compile=args.compile,
         mfa=not args.no_mfa, backbone=args.backbone, image_size=args.image_size, views=2, report_tokens=60)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="irral_bench_") as tmp:
        args.tmp = tmp
        t = time.perf_counter()
        dataset = make_dataset(Path(tmp), studies=max(batches) * 4 + 16, image_size=args.resize)
        emit(figure="dataset", studies=max(batches) * 4 + 16, seconds=round(time.perf_counter() - t, 2))
        status = 0
        for studies in batches:
            images = 2 * studies
            try:
                ceil = ceiling(images, args, device, args.ceiling_backbone)
                emit(figure="ceiling", model=f"{args.ceiling_backbone} fwd+bwd bf16 channels_last fused AdamW",
                     batch_studies=studies, images=images, **ceil)
                e2e, model_only, (run, batch) = train_throughput(dataset, studies, args, device)
                emit(figure="train_end_to_end", batch_studies=studies, images=images, **e2e,
                     ratio_to_ceiling=e2e["images_per_s"] / ceil["images_per_s"])
                emit(figure="train_model_only", batch_studies=studies, images=images, **model_only,
                     ratio_to_ceiling=model_only["images_per_s"] / ceil["images_per_s"])
                emit(figure="generate", batch_studies=studies, **generation_throughput(run, batch, args, device))
                del run, batch
            except torch.OutOfMemoryError as e:
                emit(figure="error", batch_studies=studies, error=f"out of memory: {str(e).splitlines()[0]}")
                status = 1
            except Exception as e:  # keep measuring the other batch sizes; report what failed
                emit(figure="error", batch_studies=studies, error=f"{type(e).__name__}: {e}",
                     traceback=traceback.format_exc(limit=6))
                status = 1
            if device.type == "cuda":
                torch.cuda.empty_cache()
    emit(figure="total", seconds=round(time.perf_counter() - started, 1))
    return status


if __name__ == "__main__":
    sys.exit(main())
