#!/usr/bin/env python3
"""GPU benchmarks of irralctl: one JSON line per figure, each with its ceiling measured in the same process.

    python scripts/bench_gpu.py [--bench generation] [--device cuda] [--quick]

Each benchmark is one function of this file (`bench_<name>(args)`), registered in BENCHES.

generation (`bench_generation`): beam-search decoding at IU X-Ray shapes with the full-size model
(ResNet-101, d_model 512, 3 + 3 layers, memory 2048 x 32, all IRRAL components on), random
weights, two 224 px views per study, BPE vocabulary of 1,000 (IU's default), bf16 autocast on CUDA.
Random weights rarely choose EOS, and `--min-len 60` forbids it before 60 tokens anyway: every beam
of every study runs all 61 steps (60 tokens + EOS), so early exit cannot flatter the figure.
Studies/s is the median over repeats of encode + beam search (images already on the device,
uint8), at several batch sizes; the ceiling is ResNet-101 bf16 inference on the same number of
224 px images. On a CPU (`--device cpu`, reduced) it also measures one two-view study end to end
through `generate_reports` (checkpoint load included; the checkpoint holds optimiser state like a
trained one) and the same through a fresh `python -m irralctl generate` process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _emit(**row) -> None:
    print(json.dumps(row), flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- generation ---------------------------------------------------------------------------------

def _full_size_config(vocab: int):
    from irralctl.model import ModelConfig

    return ModelConfig(vocab_size=vocab, max_len=62)  # defaults: resnet101, d 512, 8 heads, 3+3 layers, irral on


def _write_full_size_checkpoint(path: Path, vocab: int) -> None:
    """A checkpoint shaped like a trained one (weights, AdamW state, configs, tokeniser), random weights."""
    from irralctl.data.tokenizers import BPETokenizer
    from irralctl.model import build_model
    from irralctl.training.checkpoint import config_payload, save_checkpoint
    from irralctl.training.config import TrainConfig
    from irralctl.training.optim import build_optimizer

    words = ("the heart size is normal . the lungs are clear . no pleural effusion or pneumothorax . "
             "mild cardiomegaly . bibasilar atelectasis . degenerative changes of the spine . ").split()
    texts = [" ".join(words[(i * 7) % len(words):] + words[: (i * 7) % len(words)]) for i in range(200)]
    tok = BPETokenizer.fit(texts, vocab)
    cfg = TrainConfig(dataset=path.parent, out=path.parent)
    model_cfg = cfg.model_config(tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, 384)
    model = build_model(model_cfg)
    opt = build_optimizer(model, None, lr=1e-4, lr_visual=5e-5, weight_decay=0.01, device=torch.device("cpu"))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # creates the AdamW moments a trained checkpoint carries
    save_checkpoint(path, {**config_payload(cfg, model_cfg), "model": model.state_dict(), "optimizer": opt.state_dict(),
                           "epoch": 1, "step": 1, "tokenizer": {"kind": "bpe", "json": tok.to_json()},
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
    decoding = DecodeConfig(beam_size=args.beam, max_len=args.max_len, min_len=args.max_len)
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

        def run():
            with torch.inference_mode(), autocast():
                hyps = decode(model, model.encode(images, mask), decoding, args.max_len)
            lengths.append(hyps.lengths)

        try:
            run()  # warm-up (cudnn autotuning, allocator)
            seconds = _median_time(run, args.repeats, device)
        except torch.OutOfMemoryError:
            _emit(bench="generation", batch=b, error="out of memory", **common)
            torch.cuda.empty_cache()
            continue
        steps_ok = bool((lengths[-1] == args.max_len + 1).all())
        _emit(bench="generation", batch=b, studies_per_s=round(b / seconds, 1), seconds=round(seconds, 4),
              all_beams_ran_full_length=steps_ok, **common)

        def ceiling():
            with torch.inference_mode(), autocast():
                model.visual.backbone(images.reshape(b * 2, 1, 224, 224).float().contiguous(memory_format=torch.channels_last))

        ceiling()
        cs = _median_time(ceiling, args.repeats, device)
        _emit(bench="generation_ceiling", batch=b, what="ResNet-101 trunk inference, same images",
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
        _emit(bench="generation_cpu_study", what="one two-view study, generate_reports (checkpoint load, image decode, "
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
        _emit(bench="generation_cpu_study_cli", what="one two-view study, a fresh `python -m irralctl generate` process "
              "(interpreter start and imports included)", seconds=round(statistics.median(walls), 3),
              **{**common, "min_len": 0})


BENCHES = {"generation": bench_generation}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", choices=sorted(BENCHES), action="append", help="Benchmarks to run (default: all).")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="Fewer batch sizes and repeats.")
    ap.add_argument("--batches", default=None, help="Generation: studies per batch, comma-separated "
                                                    "(default 256,512,1024 on CUDA; 1,8 on CPU).")
    ap.add_argument("--repeats", type=int, default=None, help="Timed repeats per figure (median; default 3, CPU 1).")
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=60, help="Report tokens; also the forced minimum length.")
    ap.add_argument("--vocab", type=int, default=1000, help="BPE vocabulary size (IU X-Ray's default: 1000).")
    ap.add_argument("--skip-latency", action="store_true", help="CPU: skip the end-to-end single-study latency.")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    if args.batches is None:
        args.batches = ("512,1024" if args.quick else "256,512,1024,2048") if cuda else ("1" if args.quick else "1,8")
    if args.repeats is None:
        args.repeats = (2 if args.quick else 3) if cuda else (1 if args.quick else 3)
    if not cuda:
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    for name in args.bench or sorted(BENCHES):
        BENCHES[name](args)


if __name__ == "__main__":
    main()
