#!/usr/bin/env python3
"""The GPU proof: IRRAL-Net training and generation throughput beside the hardware ceiling, in one process.

    python scripts/bench_gpu.py                     # every figure on the GPU (about 3 minutes on an H100/H200)
    python scripts/bench_gpu.py --compile           # the same with `train --compile` (regional compile)
    python scripts/bench_gpu.py --bench generation  # one part only (train | generation)
    python scripts/bench_gpu.py --cpu-smoke         # tiny sizes on the CPU: checks the script (seconds; CI runs it)

Prints one JSON line per figure (key "figure"); medians over --repeats.

train, at IU X-Ray shapes (two 224 px views per study, reports of 60 tokens), the `irral` preset
(ACL, MFA with a MiniLM-shaped text encoder whose features are cached after the first epoch, the
memory), bf16 autocast, at 16 and 64 studies per step:
  ceiling            ResNet-101 trunk (the model's own, one input channel) forward + backward with
                     bf16 autocast, channels_last and fused AdamW on the same number of images
  train_end_to_end   `train_step` fed by the real loader from a prepared image store (generated
                     images in a temporary directory; worker processes, pinned memory, side-stream
                     copies): what `irralctl train` sustains
  train_model_only   the same steps on one batch already on the GPU
each with images/s, ratio_to_ceiling and peak_memory_gib (torch.cuda.max_memory_allocated).
generation: beam search, beam 3, at most and at least 60 tokens (random weights: every beam of every
study runs all steps, so early exit cannot flatter the figure), the full-size model, 1,024 two-view
studies in one batch, images already on the GPU: studies/s and peak memory, beside the ResNet-101
trunk's bf16 inference on the same images (generation_ceiling).
targets (PERFORMANCE.md): >= 600 images/s end to end at 16 studies, >= 0.7 x ceiling at 64,
>= 1,000 studies/s generation, training at 16 studies within 12 GiB; each figure says whether it
meets its target ("meets_target").

--cpu-smoke runs every part at tiny sizes on the CPU (tiny CNN, 64 px, d_model 32, 2 and 4
studies, 8 tokens): its numbers mean nothing; it proves the script runs, and CI checks its lines.
"""

from __future__ import annotations

import argparse
import json
import os
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"train_end_to_end_16": 600.0, "ratio_to_ceiling_64": 0.7, "generation_studies_per_s": 1000.0,
           "train_memory_gib_16": 12.0}

# Sizes: the GPU run (IU X-Ray shapes, full-size model) and the CPU smoke test.
FULL = dict(backbone="resnet101", image_size=224, resize=256, d_model=512, n_heads=8, d_ff=512, enc_layers=3,
            dec_layers=3, memory_slots=2048, memory_topk=32, report_tokens=60, train_batches="16,64", steps=20,
            repeats=3, warmup=8, workers=8, gen_studies=1024, gen_tokens=60, text_hidden=384, text_layers=6,
            text_heads=12, vocab=1000)
SMOKE = dict(backbone="tiny", image_size=64, resize=72, d_model=32, n_heads=4, d_ff=32, enc_layers=1, dec_layers=1,
             memory_slots=32, memory_topk=4, report_tokens=8, train_batches="2,4", steps=2, repeats=1, warmup=1,
             workers=0, gen_studies=4, gen_tokens=8, text_hidden=32, text_layers=1, text_heads=2, vocab=300)


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], None], repeats: int, device: torch.device) -> tuple[float, list[float]]:
    runs = [timed(fn, device) for _ in range(repeats)]
    return statistics.median(runs), [round(r, 4) for r in runs]


class PeakMemory:
    """Peak GPU memory allocated inside the block, GiB (None on the CPU)."""

    def __init__(self, device: torch.device):
        self.device, self.gib = device, None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)
        return False


# -- data ---------------------------------------------------------------------------------------

WORDS = ("the heart size is normal . lungs are clear . no pleural effusion or pneumothorax . mild cardiomegaly "
         "with small bilateral effusions . there is a right lower lobe opacity . degenerative changes of the spine . "
         "the mediastinal contour is stable . no focal consolidation . calcified granuloma in the left upper lobe .").split()


def make_dataset(root: Path, studies: int, image_size: int, vocab: int, seed: int = 0) -> Path:
    """A prepared dataset of `studies` two-view studies: smooth noise images (shorter side `image_size`,
    IU-like aspect) and reports of about 70 words, so every report fills the token budget."""
    from irralctl.data.cleaning import report_cleaners
    from irralctl.data.pipeline import dataset_stage, finish_dataset
    from irralctl.data.store import write_image_store

    rng = np.random.default_rng(seed)
    out = root / "bench_data"
    with dataset_stage(out, {"bench": seed}, overwrite=True, inputs=[]) as staging:
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
                            "mesh": [], "report": text, "target": text, "legacy_target": text,
                            "labels": {"chexpert": [None] * 14}})
        rows = write_image_store(images, staging / "images")
        for r in records:
            for im in r["images"]:
                im["row"] = rows[im["id"]]
        n_val = max(2, studies // 16)
        splits = {"train": records[n_val:], "val": records[:n_val], "test": records[:n_val]}
        return finish_dataset(staging, out, name="bench", splits=splits, options={"seed": seed}, sources=[],
                              cleaners=report_cleaners("default", "iu_xray"),
                              images={"count": len(images), "size": image_size, "views_per_study": 2}, labeler=None,
                              counts={}, problems=[], bpe_vocab_size=vocab, legacy_threshold=3)


def random_text_encoder(root: Path, hidden: int, layers: int, heads: int) -> Path:
    """A BERT with MiniLM-L6's shape on the GPU run (6 layers, hidden 384, 12 heads), random weights.

    Throughput does not depend on the weights, the GPU machine may lack the package that ships the
    real MiniLM, and a frozen encoder's features are cached after the first epoch anyway."""
    import transformers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    transformers.utils.logging.disable_progress_bar()
    path = root / "text_encoder"
    path.mkdir(exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=4 * hidden)).save_pretrained(str(path))
    return path


# -- training -----------------------------------------------------------------------------------

def ceiling(images: int, args, device: torch.device) -> dict:
    """The model's CNN trunk + a linear classifier, forward+backward with bf16 autocast (on CUDA),
    channels_last and fused AdamW, on `images` synthetic images already on the device."""
    from irralctl.model.backbone import build_backbone

    torch.manual_seed(0)
    trunk = build_backbone(args.backbone, 8)
    head = torch.nn.Linear(trunk.channels[1], 1000)
    model = torch.nn.ModuleDict({"trunk": trunk, "head": head}).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True if device.type == "cuda" else None)
    x = torch.randn(images, 1, args.image_size, args.image_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (images,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with amp:
            features = model["trunk"](x)[1].mean(dim=(2, 3))
            loss = torch.nn.functional.cross_entropy(model["head"](features), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with PeakMemory(device) as peak:
        for _ in range(args.warmup):
            step()
        seconds, runs = median_time(lambda: [step() for _ in range(args.steps)], args.repeats, device)
    return {"images_per_s": round(images * args.steps / seconds, 1), "runs_s": runs, "peak_memory_gib": peak.gib}


def train_throughput(dataset: Path, studies: int, args, device: torch.device) -> tuple[dict, dict]:
    """(end to end from the store, model only) images/s of IRRAL-Net's training step."""
    from irralctl.training import TrainConfig
    from irralctl.training.data import device_batches, make_loader, to_device
    from irralctl.training.distributed import DistState
    from irralctl.training.loop import train_step
    from irralctl.training.trainer import build_run, open_dataset
    from irralctl.utils.config import from_flat

    cfg = from_flat(TrainConfig, dataset=dataset, out=Path(args.tmp) / "unused", preset="irral", backbone=args.backbone,
                    image_size=args.image_size, resize=args.resize, d_model=args.d_model, n_heads=args.n_heads,
                    d_ff=args.d_ff, enc_layers=args.enc_layers, dec_layers=args.dec_layers,
                    memory_slots=args.memory_slots, memory_topk=args.memory_topk, tiny_width=8,
                    max_report_tokens=args.report_tokens, batch_size=studies, workers=args.workers,
                    device=str(device), compile=args.compile, warmup=10, epochs=1000, monitor="val_loss",
                    text_encoder=str(args.text_encoder))
    dist = DistState()
    ds = open_dataset(cfg)
    run, _ = build_run(cfg, ds, dist, device)
    data = make_loader(ds, "train", ds.tokenizer("bpe"), cfg, dist, device, train=True, batch_size=studies)
    views = cfg.model.views

    def batches():
        epoch = 0
        while True:
            data.set_epoch(epoch)
            for batch in device_batches(data.loader, device):
                if batch["images"].shape[0] == studies:  # skip a short last batch: fixed shapes
                    yield batch
            epoch += 1

    if run.text_cache is not None:  # steady state: after the first epoch every study's T[CLS] is cached
        run.text_cache(list(range(len(run.train_ids))))
    stream = batches()
    run.module.train()
    with PeakMemory(device) as peak:
        for _ in range(args.warmup):  # cudnn.benchmark, allocator, compile
            train_step(run, next(stream))
        seconds, runs = median_time(lambda: [train_step(run, next(stream)) for _ in range(args.steps)],
                                    args.repeats, device)
    e2e = {"images_per_s": round(studies * views * args.steps / seconds, 1), "runs_s": runs, "peak_memory_gib": peak.gib}
    fixed = to_device(next(iter(data.loader)), device)
    with PeakMemory(device) as peak:
        seconds, runs = median_time(lambda: [train_step(run, fixed) for _ in range(args.steps)], args.repeats, device)
    model_only = {"images_per_s": round(studies * views * args.steps / seconds, 1), "runs_s": runs,
                  "peak_memory_gib": peak.gib}
    stream.close()  # ends the loader's iterator (its worker processes) before the next batch size
    return e2e, model_only


def bench_train(args, device: torch.device) -> None:
    batches = [int(b) for b in args.train_batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="irral_bench_") as tmp:
        args.tmp = tmp
        t = time.perf_counter()
        studies = max(batches) * 4 + 16
        dataset = make_dataset(Path(tmp), studies=studies, image_size=args.resize, vocab=args.vocab)
        args.text_encoder = random_text_encoder(Path(tmp), args.text_hidden, args.text_layers, args.text_heads)
        emit(figure="dataset", studies=studies, seconds=round(time.perf_counter() - t, 2))
        for b in batches:
            images = 2 * b
            try:
                ceil = ceiling(images, args, device)
                what = "bf16 autocast, channels_last, fused AdamW" if device.type == "cuda" else "fp32, AdamW"
                emit(figure="ceiling", model=f"{args.backbone} trunk fwd+bwd, {what}", batch_studies=b, images=images,
                     **ceil)
                e2e, model_only = train_throughput(dataset, b, args, device)
                row = dict(figure="train_end_to_end", batch_studies=b, images=images, **e2e,
                           ratio_to_ceiling=round(e2e["images_per_s"] / ceil["images_per_s"], 3))
                if b == 16 and device.type == "cuda":
                    row.update(target=f">= {TARGETS['train_end_to_end_16']:.0f} images/s; <= "
                                      f"{TARGETS['train_memory_gib_16']:.0f} GiB",
                               meets_target=e2e["images_per_s"] >= TARGETS["train_end_to_end_16"]
                               and (e2e["peak_memory_gib"] or 0) <= TARGETS["train_memory_gib_16"])
                if b == 64 and device.type == "cuda":
                    row.update(target=f">= {TARGETS['ratio_to_ceiling_64']} x ceiling",
                               meets_target=row["ratio_to_ceiling"] >= TARGETS["ratio_to_ceiling_64"])
                emit(**row)
                emit(figure="train_model_only", batch_studies=b, images=images, **model_only,
                     ratio_to_ceiling=round(model_only["images_per_s"] / ceil["images_per_s"], 3))
            except torch.OutOfMemoryError as e:
                emit(figure="error", batch_studies=b, error=f"out of memory: {str(e).splitlines()[0]}")
            except Exception as e:  # keep measuring the other batch sizes; report what failed
                emit(figure="error", batch_studies=b, error=f"{type(e).__name__}: {e}",
                     traceback=traceback.format_exc(limit=6))
            if device.type == "cuda":
                torch.cuda.empty_cache()


# -- generation ---------------------------------------------------------------------------------

def bench_generation(args, device: torch.device) -> None:
    from irralctl.generation import DecodeConfig, decode
    from irralctl.model import IRRALNet, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, backbone=args.backbone, tiny_width=8, image_size=args.image_size,
                      d_model=args.d_model, n_heads=args.n_heads, d_ff=args.d_ff, enc_layers=args.enc_layers,
                      dec_layers=args.dec_layers, memory_slots=args.memory_slots, memory_topk=args.memory_topk)
    model = IRRALNet(cfg).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    n, s = args.gen_studies, args.image_size
    decoding = DecodeConfig(beam_size=3, max_tokens=args.gen_tokens, min_tokens=args.gen_tokens)
    images = torch.randint(0, 256, (n, 2, s, s), dtype=torch.uint8, device=device)
    mask = torch.ones(n, 2, dtype=torch.bool, device=device)
    lengths = []

    def generate() -> None:
        with torch.inference_mode(), amp:
            hyps = decode(model, model.encode(images, mask), decoding)
        lengths.append(hyps.lengths)

    try:
        with PeakMemory(device) as peak:
            generate()  # warm-up (cudnn autotuning, allocator)
            seconds, runs = median_time(generate, args.repeats, device)
    except torch.OutOfMemoryError as e:
        emit(figure="error", part="generation", error=f"out of memory: {str(e).splitlines()[0]}")
        return
    rate = n / seconds
    emit(figure="generation", studies=n, beam=3, tokens=args.gen_tokens, studies_per_s=round(rate, 1), runs_s=runs,
         peak_memory_gib=peak.gib, all_beams_ran_full_length=bool((lengths[-1] == args.gen_tokens + 1).all()),
         precision="bf16 autocast" if device.type == "cuda" else "fp32",
         target=f">= {TARGETS['generation_studies_per_s']:.0f} studies/s",
         meets_target=rate >= TARGETS["generation_studies_per_s"] if device.type == "cuda" else None)

    def trunk() -> None:
        with torch.inference_mode(), amp:
            model.visual.backbone(images.reshape(n * 2, 1, s, s).float().contiguous(memory_format=torch.channels_last))

    trunk()
    seconds, runs = median_time(trunk, args.repeats, device)
    emit(figure="generation_ceiling", what=f"{args.backbone} trunk inference on the same images",
         images_per_s=round(2 * n / seconds, 1), studies_per_s=round(n / seconds, 1), runs_s=runs)


BENCHES = {"train": bench_train, "generation": bench_generation}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", choices=sorted(BENCHES), action="append", help="Parts to run (default: all).")
    ap.add_argument("--cpu-smoke", action="store_true", help="Tiny sizes on the CPU: checks the script.")
    ap.add_argument("--compile", action="store_true", help="Training with --compile (regional torch.compile).")
    ap.add_argument("--train-batches", help="Training: studies per step, comma-separated (default 16,64).")
    ap.add_argument("--steps", type=int, help="Training: timed steps per repeat (default 20).")
    ap.add_argument("--repeats", type=int, help="Timed repeats; the median is reported (default 3).")
    ap.add_argument("--workers", type=int, help="Training: loader worker processes (default 8).")
    ap.add_argument("--gen-studies", type=int, help="Generation: studies in the batch (default 1024).")
    args = ap.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    sizes = SMOKE if args.cpu_smoke else FULL
    for key, value in sizes.items():
        setattr(args, key, given.get(key, value))
    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        emit(figure="error", error="no CUDA GPU visible to torch; --cpu-smoke checks the script on a CPU")
        sys.exit(1)
    else:
        device = torch.device("cuda:0")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    started = time.perf_counter()
    emit(figure="environment", device=torch.cuda.get_device_name(device) if device.type == "cuda" else
         (platform.processor() or platform.machine() or "cpu"), cpu_smoke=args.cpu_smoke, torch=torch.__version__,
         cuda=torch.version.cuda, python=platform.python_version(), compile=args.compile, preset="irral",
         backbone=args.backbone, image_size=args.image_size, views=2, report_tokens=args.report_tokens,
         date=time.strftime("%Y-%m-%d"), cpu_threads=torch.get_num_threads(), pid=os.getpid())
    for name in args.bench or list(BENCHES):
        BENCHES[name](args, device)
    emit(figure="total", seconds=round(time.perf_counter() - started, 1), targets=TARGETS)


if __name__ == "__main__":
    main()
