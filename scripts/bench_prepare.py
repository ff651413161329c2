"""Benchmark: image preparation (decode + resize into the store) and image-store read speed.

Prints one JSON line per figure. Sources: generated full-size chest-like JPEGs/PNGs
(about 2,500 x 3,000) and, when present, the real radiographs in ../shared/data/images.

    python scripts/bench_prepare.py [--n 200] [--workers 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from irralctl.data.images import load_grey
from irralctl.data.store import ImageStore, build_image_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


def emit(**kw):
    print(json.dumps(kw), flush=True)


def fake_radiograph(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Smooth low-frequency anatomy plus noise: compresses like a real radiograph, unlike pure noise.
    small = rng.normal(128, 40, (h // 64 + 1, w // 64 + 1)).astype(np.float32)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
    img = img + rng.normal(0, 6, (h, w)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120, help="generated full-size JPEGs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reads", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = [fake_radiograph(rng, 3000, 2500) for _ in range(4)]
        items = []
        for k in range(args.n):
            p = tmp / f"g{k}.jpg"
            Image.fromarray(np.roll(base[k % 4], k * 7, axis=1)).save(p, quality=95)
            items.append((f"g{k}", p))
        # Decode speed alone (one process), then the full store build with workers.
        t = time.perf_counter()
        for _, p in items:
            load_grey(p, 256)
        dt = time.perf_counter() - t
        emit(figure="decode_fullsize_jpeg_per_s_one_core", value=round(args.n / dt, 1), n=args.n, size="3000x2500")
        t = time.perf_counter()
        for _, p in items[:10]:
            np.asarray(Image.open(p).convert("L").resize((256, 307), Image.Resampling.BILINEAR))
        emit(figure="naive_full_decode_then_resize_per_s", value=round(10 / (time.perf_counter() - t), 1))
        t = time.perf_counter()
        build_image_store(items, tmp / "store", shorter=256, workers=args.workers)
        emit(figure="store_build_fullsize_jpeg_per_s", value=round(args.n / (time.perf_counter() - t), 1),
             workers=args.workers)
        if SHARED.is_dir():
            real = [(p.stem, p) for p in sorted(SHARED.rglob("*")) if p.suffix.lower() in (".jpeg", ".jpg", ".dcm")]
            t = time.perf_counter()
            for _, p in real:
                load_grey(p, 256)
            emit(figure="decode_real_radiographs_per_s", value=round(len(real) / (time.perf_counter() - t), 1),
                 n=len(real), note="16 Kermany JPEGs (928-1776 px) + 2 DICOMs (one JPEG 2000)")

        # Read speed: a store of 2,000 views at IU's shape after preparation (256 x ~310).
        small = [(f"s{k}", None) for k in range(2000)]
        store_dir = tmp / "read"
        store_dir.mkdir()
        arrs = [fake_radiograph(rng, 256, 310) for _ in range(8)]
        with open(store_dir / "store.bin", "wb") as f:
            for k in range(len(small)):
                f.write(arrs[k % 8].tobytes())
        n = len(small)
        np.savez(store_dir / "index.npz", ids=np.array([i for i, _ in small]),
                 offsets=np.arange(n + 1, dtype=np.int64) * 256 * 310,
                 shapes=np.tile(np.array([[256, 310]], dtype=np.int32), (n, 1)))
        store = ImageStore(store_dir)
        rates = []
        for _ in range(3):
            t = time.perf_counter()
            for k in range(args.reads):
                torch.from_numpy(np.array(store[k % n]))
            rates.append(args.reads / (time.perf_counter() - t))
        emit(figure="store_read_images_per_s_one_core", value=round(statistics.median(rates)), shape="256x310")

        from torchvision.transforms.v2 import functional as TF

        rates = []
        for _ in range(3):
            t = time.perf_counter()
            for k in range(5000):
                img = torch.from_numpy(np.array(store[k % n]))[None]
                TF.resize(img, [224, 224], antialias=True)
            rates.append(5000 / (time.perf_counter() - t))
        emit(figure="store_read_and_resize_224_per_s_one_core", value=round(statistics.median(rates)))


if __name__ == "__main__":
    main()
