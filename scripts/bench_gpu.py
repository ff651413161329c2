#!/usr/bin/env python3
"""GPU benchmarks of irralctl: one JSON line per figure, each beside its ceiling measured in the same process.

    python scripts/bench_gpu.py                        # both benchmarks on the GPU (< 3 min on an H100/H200)
    python scripts/bench_gpu.py --bench train --compile
    python scripts/bench_gpu.py --cpu-smoke            # reduced, on the CPU: checks the script (< 2 min)

train (`bench_train`): IRRAL-Net training at IU X-Ray shapes (two 224 px views per study, reports of
60 tokens), end to end from a prepared image store (generated images in a temporary directory)
through the real loader, at 16 and 64 studies per step; the same batches with the data already on
the GPU (model only); and the hardware ceiling: a torchvision ResNet-101 forward+backward with bf16
autocast, channels_last and fused AdamW on the same image count. MFA's text encoder is a
MiniLM-shaped BERT with random weights (its features are cached after the first epoch). Medians
over repeats. Targets (PERFORMANCE.md): >= 0.7 x ceiling at the same batch, >= 600 images/s at 16.

generation (`bench_generation`): beam-search decoding at IU X-Ray shapes with the full-size model
(ResNet-101, d_model 512, 3 + 3 layers, memory 2048 x 32, all IRRAL components on), random
weights, two 224 px views per study, BPE vocabulary of 1,000 (IU's default), bf16 autocast on CUDA.
Random weights rarely choose EOS, and `--min-len 60` forbids it before 60 tokens anyway: every beam
of every study runs all 61 steps (60 tokens + EOS), so early exit cannot flatter the figure.
Studies/s is the median over repeats of encode + beam search (images already on the device,
uint8); the ceiling is ResNet-101 bf16 inference on the same number of 224 px images. On a CPU it
also measures one two-view study end to end through `generate_reports` (checkpoint load included;
the checkpoint holds optimiser state like a trained one) and through a fresh
`python -m irralctl generate` process. Target: >= 1,000 studies/s at beam 3 on an H100/H200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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

from irralctl.data.pipeline import dataset_stage, finish_dataset  # noqa: E402
from irralctl.data.store import write_image_store  # noqa: E402


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


# -- training -----------------------------------------------------------------------------------

WORDS = ("the heart size is normal . lungs are clear . no pleural effusion or pneumothorax . mild cardiomegaly "
         "with small bilateral effusions . there is a right lower lobe opacity . degenerative changes of the spine . "
         "the mediastinal contour is stable . no focal consolidation . calcified granuloma in the left upper lobe .").split()


def make_dataset(root: Path, studies: int, image_size: int, seed: int = 0) -> Path:
    """A prepared dataset of `studies` two-view studies: smooth noise images (shorter side `image_size`,
    IU-like aspect) and reports of about 70 words, so every report fills the 60-token budget."""
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
    runs = [timed(lambda: [step() for _ in range(args.steps)], device) for _ in range(args.train_repeats)]
    return {"images_per_s": images * args.steps / statistics.median(runs), "runs_s": runs}


def random_text_encoder(root: Path) -> Path:
    """A MiniLM-L6-shaped BERT (6 layers, hidden 384, 12 heads) with random weights and a small vocabulary.

    Throughput does not depend on the weights, and the GPU machine may lack the package that ships
    the real MiniLM; a frozen encoder's features are cached after the first epoch anyway.
    """
    import transformers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    transformers.utils.logging.disable_progress_bar()
    path = root / "text_encoder"
    path.mkdir(exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536)).save_pretrained(str(path))
    return path


def train_throughput(dataset: Path, studies: int, args, device: torch.device) -> tuple[dict, dict, object]:
    """(end to end from the store, model only) images/s of IRRAL-Net training steps, and the run."""
    from irralctl.training import TrainConfig
    from irralctl.training.data import make_loader, to_device
    from irralctl.training.distributed import DistState
    from irralctl.training.loop import train_step
    from irralctl.training.trainer import build_run, open_dataset
    from irralctl.utils.config import from_flat

    cfg = from_flat(TrainConfig, dataset=dataset, out=Path(args.tmp) / "unused", backbone=args.backbone,
                    image_size=args.image_size, resize=args.resize, d_model=args.d_model, d_ff=args.d_model,
                    memory_slots=args.memory_slots, batch_size=studies, workers=args.workers, device=str(device),
                    compile=args.compile, warmup=10, epochs=1000, monitor="val_loss", mfa=not args.no_mfa,
                    tiny_width=16, text_encoder=None if args.no_mfa else args.text_encoder)
    dist = DistState()
    ds = open_dataset(cfg)
    run, _ = build_run(cfg, ds, dist, device)
    data = make_loader(ds, "train", ds.tokenizer("bpe"), cfg, dist, device, train=True, batch_size=studies)
    views = cfg.model.views

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
        train_step(run, next(stream))

    def end_to_end() -> None:
        for _ in range(args.steps):
            train_step(run, next(stream))

    runs = [timed(end_to_end, device) for _ in range(args.train_repeats)]
    e2e = {"images_per_s": studies * views * args.steps / statistics.median(runs), "runs_s": runs}
    fixed = to_device(next(stream), device)
    runs = [timed(lambda: [train_step(run, fixed) for _ in range(args.steps)], device) for _ in range(args.train_repeats)]
    model_only = {"images_per_s": studies * views * args.steps / statistics.median(runs), "runs_s": runs}
    if device.type == "cuda":
        e2e["gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return e2e, model_only, (run, fixed)


def greedy(model, images: torch.Tensor, view_mask: torch.Tensor, max_new_tokens: int):
    from irralctl.generation import DecodeConfig, decode

    return decode(model, model.encode(images, view_mask), DecodeConfig(beam_size=1, max_tokens=max_new_tokens))


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
    runs = [timed(go, device) for _ in range(args.train_repeats)]
    return {"decoder": name, "studies_per_s": images.shape[0] / statistics.median(runs), "max_new_tokens": args.gen_len,
            "runs_s": runs}


def bench_train(args) -> None:
    """Training images/s (end to end from the store, and model only) at --train-batches, beside the ceiling."""
    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        args.backbone, args.ceiling_backbone, args.image_size, args.resize = "resnet18", "resnet18", 64, 72
        args.d_model, args.memory_slots, args.gen_len = 64, 256, 12
        args.train_batches, args.steps, args.train_repeats, args.warmup, args.workers = "2,4", 2, 1, 1, min(args.workers, 1)
    else:
        if not torch.cuda.is_available():
            emit(figure="error", error="no CUDA GPU visible to torch; run with --cpu-smoke to check the script on a CPU")
            return
        device = torch.device("cuda:0")
        args.backbone, args.ceiling_backbone, args.image_size, args.resize = "resnet101", "resnet101", 224, 256
        args.d_model, args.memory_slots, args.gen_len = 512, 2048, 61
        torch.backends.cudnn.benchmark = True
    batches = [int(b) for b in args.train_batches.split(",")]
    emit(figure="environment", device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
         torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(), compile=args.compile,
         mfa=not args.no_mfa, backbone=args.backbone, image_size=args.image_size, views=2, report_tokens=60)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="irral_bench_") as tmp:
        args.tmp = tmp
        t = time.perf_counter()
        dataset = make_dataset(Path(tmp), studies=max(batches) * 4 + 16, image_size=args.resize)
        args.text_encoder = None if args.no_mfa else random_text_encoder(Path(tmp))
        emit(figure="dataset", studies=max(batches) * 4 + 16, seconds=round(time.perf_counter() - t, 2))
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
            except Exception as e:  # keep measuring the other batch sizes; report what failed
                emit(figure="error", batch_studies=studies, error=f"{type(e).__name__}: {e}",
                     traceback=traceback.format_exc(limit=6))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    emit(figure="train_total", seconds=round(time.perf_counter() - started, 1))


# -- generation ---------------------------------------------------------------------------------

def _median_time(fn, repeats: int, device: torch.device) -> float:
    return statistics.median(timed(fn, device) for _ in range(repeats))


def _full_size_config(vocab: int):
    from irralctl.model import ModelConfig

    return ModelConfig(vocab_size=vocab)  # defaults: resnet101, d 512, 8 heads, 3+3 layers, irral on


def _write_full_size_checkpoint(path: Path, vocab: int) -> None:
    """A checkpoint shaped like a trained one (weights, AdamW state, configs, tokeniser), random weights."""
    from irralctl.data.tokenizers import BPETokenizer
    from irralctl.model import ModelConfig, build_model
    from irralctl.runs.checkpoint import save_checkpoint
    from irralctl.training.config import TrainConfig
    from irralctl.training.optim import build_optimizer
    from irralctl.utils.config import to_jsonable

    words = ("the heart size is normal . the lungs are clear . no pleural effusion or pneumothorax . "
             "mild cardiomegaly . bibasilar atelectasis . degenerative changes of the spine . ").split()
    texts = [" ".join(words[(i * 7) % len(words):] + words[: (i * 7) % len(words)]) for i in range(200)]
    tok = BPETokenizer.fit(texts, vocab)
    cfg = TrainConfig(dataset=path.parent, out=path.parent)
    model_cfg = ModelConfig(vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id)
    model = build_model(model_cfg)
    opt = build_optimizer(model, None, lr=1e-4, lr_visual=5e-5, weight_decay=0.01, device=torch.device("cpu"))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # creates the AdamW moments a trained checkpoint carries
    save_checkpoint(path, {"model_config": to_jsonable(model_cfg), "model": model.state_dict(),
                           "train_config": to_jsonable(cfg), "optimizer": opt.state_dict(), "epoch": 1, "step": 1,
                           "tokenizer": {"kind": "bpe", "json": tok.to_json(), "text_field": "target"},
                           "inference": {"max_tokens": cfg.max_tokens},
                           "cleaner": {"name": "default", "version": "default-1"}, "dataset": None})


def _radiograph_pair(folder: Path) -> Path:
    """A two-view study folder from real radiographs in ../shared/data (a DICOM + a JPEG when present)."""
    shared = ROOT.parent / "shared" / "data" / "images"
    study = folder / "study1"
    study.mkdir(parents=True, exist_ok=True)
    picks = [shared / "dicom" / "RG1_UNCR.dcm", shared / "kermany" / "NORMAL2-IM-1427-0001.jpeg"]
    if all(p.is_file() for p in picks):
        for p in picks:
            (study / p.name).symlink_to(p)
        return study
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (2500, 2048), dtype=np.uint8)).save(study / f"view{k}.png")
    return study


def bench_generation(args) -> None:
    from irralctl.generation import DecodeConfig, decode
    from irralctl.model import build_model

    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = _full_size_config(args.vocab)
    model = build_model(cfg).to(device).eval()
    amp = torch.bfloat16 if device.type == "cuda" else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        model = model.to(memory_format=torch.channels_last)
    decoding = DecodeConfig(beam_size=args.beam, max_tokens=args.max_len, min_tokens=args.max_len)
    common = dict(device=str(device), gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                  threads=torch.get_num_threads(), model="resnet101 d512 3+3 irral (random weights)", vocab=cfg.vocab_size,
                  views=2, image_size=224, beam=args.beam, max_len=args.max_len, min_len=args.max_len,
                  precision="bf16 autocast" if amp else "fp32", torch=torch.__version__)

    def autocast():
        return torch.autocast(device.type, dtype=amp) if amp else torch.autocast(device.type, enabled=False)

    batches = [int(b) for b in args.batches.split(",")]
    for b in batches:
        images = torch.randint(0, 256, (b, 2, 224, 224), dtype=torch.uint8, device=device)
        mask = torch.ones(b, 2, dtype=torch.bool, device=device)
        lengths = []

        def run(images=images, mask=mask, lengths=lengths):
            with torch.inference_mode(), autocast():
                hyps = decode(model, model.encode(images, mask), decoding)
            lengths.append(hyps.lengths)

        try:
            run()  # warm-up (cudnn autotuning, allocator)
            seconds = _median_time(run, args.repeats, device)
        except torch.OutOfMemoryError:
            emit(bench="generation", batch=b, error="out of memory", **common)
            torch.cuda.empty_cache()
            continue
        steps_ok = bool((lengths[-1] == args.max_len + 1).all())
        emit(bench="generation", batch=b, studies_per_s=round(b / seconds, 1), seconds=round(seconds, 4),
             all_beams_ran_full_length=steps_ok, **common)

        def trunk_only(images=images, b=b):
            with torch.inference_mode(), autocast():
                model.visual.backbone(images.reshape(b * 2, 1, 224, 224).float().contiguous(memory_format=torch.channels_last))

        trunk_only()
        cs = _median_time(trunk_only, args.repeats, device)
        emit(bench="generation_ceiling", batch=b, what="ResNet-101 trunk inference, same images",
             images_per_s=round(2 * b / cs, 1), studies_per_s=round(b / cs, 1), seconds=round(cs, 4), **common)
        del images, mask
        if device.type == "cuda":
            torch.cuda.empty_cache()

    if device.type == "cpu" and not args.skip_latency:
        _cpu_latency(args, common)


def _cpu_latency(args, common: dict) -> None:
    from irralctl.generation import DecodeConfig, GenerateConfig, generate_reports

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir = tmp / "run"
        run_dir.mkdir()
        _write_full_size_checkpoint(run_dir / "best.pt", args.vocab)
        size_mb = (run_dir / "best.pt").stat().st_size / 1e6
        study = _radiograph_pair(tmp / "input")  # INPUT is the folder of studies: input/study1/<2 views>
        latencies = []
        for k in range(args.repeats):
            out = tmp / f"preds{k}.jsonl"
            t = time.perf_counter()
            result = generate_reports(GenerateConfig(
                checkpoint=run_dir, out=out, input=study.parent, device="cpu",
                decoding=DecodeConfig(beam_size=args.beam)))
            latencies.append(time.perf_counter() - t)
        emit(bench="generation_cpu_study", what="one two-view study, generate_reports (checkpoint load, image decode, "
             "beam search, output) in a warm process", seconds=round(statistics.median(latencies), 3),
             checkpoint_mb=round(size_mb, 1), view_files=[p.name for p in sorted(study.iterdir())],
             report_tokens=json.loads(result.out.read_text())["length"], **{**common, "min_len": 0})
        walls = []
        for k in range(args.repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "irralctl", "generate", str(study.parent), "--checkpoint", str(run_dir),
                            "--out", str(tmp / f"cli{k}.jsonl"), "--device", "cpu"], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t)
        emit(bench="generation_cpu_study_cli", what="one two-view study, a fresh `python -m irralctl generate` process "
             "(interpreter start and imports included)", seconds=round(statistics.median(walls), 3),
             **{**common, "min_len": 0})


BENCHES = {"train": bench_train, "generation": bench_generation}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", choices=sorted(BENCHES), action="append", help="Benchmarks to run (default: all).")
    ap.add_argument("--cpu-smoke", action="store_true", help="Reduced sizes on the CPU, to check the script.")
    ap.add_argument("--quick", action="store_true", help="Generation: fewer batch sizes and repeats.")
    # training
    ap.add_argument("--train-batches", default="16,64", help="Training: studies per step (default 16,64).")
    ap.add_argument("--steps", type=int, default=20, help="Training: timed steps per repeat (default 20).")
    ap.add_argument("--train-repeats", type=int, default=3, help="Training: repeats, median reported (default 3).")
    ap.add_argument("--warmup", type=int, default=8, help="Training: untimed steps first (default 8).")
    ap.add_argument("--workers", type=int, default=8, help="Training: loader worker processes (default 8).")
    ap.add_argument("--compile", action="store_true", help="Training: torch.compile the step (default off).")
    ap.add_argument("--no-mfa", action="store_true", help="Training: without MFA's text encoder.")
    # generation
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="Generation device.")
    ap.add_argument("--batches", default=None, help="Generation: studies per batch, comma-separated "
                                                   "(default 256,512,1024,2048 on CUDA; 1 on CPU).")
    ap.add_argument("--repeats", type=int, default=None, help="Generation: timed repeats (median; default 3).")
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=60, help="Generation: report tokens; also the forced minimum.")
    ap.add_argument("--vocab", type=int, default=1000, help="Generation: BPE vocabulary size (IU's default: 1000).")
    ap.add_argument("--skip-latency", action="store_true", help="CPU: skip the end-to-end single-study latency.")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.device = "cpu"
    cuda = args.device.startswith("cuda")
    if args.batches is None:
        args.batches = ("512,1024" if args.quick else "256,512,1024,2048") if cuda else "1"
    if args.repeats is None:
        args.repeats = (2 if args.quick else 3) if cuda else 1
    if not cuda:
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    for name in args.bench or ["train", "generation"]:
        BENCHES[name](args)


if __name__ == "__main__":
    main()
