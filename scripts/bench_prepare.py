"""Benchmark: image preparation (decode + resize into the store), resume at MIMIC-CXR's scale,
and image-store read speed. Prints one JSON line per figure.

Full-size test images are made from real radiographs (../shared/data/images/kermany, or
--sources DIR): each is upscaled to 2,544 x 3,056 (MIMIC-CXR-JPG's most common PA size) and saved
as a quality-95 greyscale JPEG, as MIMIC-CXR-JPG's were. Upscaling smooths away the detector
noise that a real full-resolution radiograph has, which makes files small and fast to decode;
Gaussian noise of a chosen strength puts it back, so the figures span file sizes of about 1 to
2.6 MB (MIMIC-CXR-JPG averages about 1.5 MB a file: roughly 570 GB for 377,110 images).
Without real radiographs, smooth synthetic ones are used (and the JSON says so).

    python scripts/bench_prepare.py [--n 16] [--workers 1,2] [--sources DIR] [--quick]

Figures (per core = one worker process; every figure is the median of --repeats passes over
files already in the page cache, so disk reads are not measured):
  decode_per_s_one_core          load_grey(path, 256), the preparation's decoder, per noise level
  decode_phases_ms               header parse, DCT-scaled decode, resize, for one file
  naive_decode_per_s_one_core    full-size decode then resize (what the DCT scaling saves)
  alt_decoder_per_s_one_core     other libjpeg-turbo front ends where installed (simplejpeg, OpenCV)
  store_build_per_s              build_image_store with N workers, and per worker
  projected_mimic_minutes        377,110 images on 16 workers at the measured per-worker rate
  resume_scan_s                  a rerun over a journal of 377,110 finished images (no decoding)
  store_read_images_per_s        reading the finished store (the training loader's path)
  prepare_mimic_end_to_end_images_per_s   with --end-to-end: the whole command on a MIMIC-shaped tree
  gpu_decode_per_s               with --gpu: nvJPEG via torchvision, an investigation figure only
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from irralctl.data.images import load_grey, target_size
from irralctl.data.store import ImageStore, build_image_store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"
MIMIC_IMAGES = 377_110
FULL = (2544, 3056)  # width, height


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def synthetic_radiograph(rng: np.random.Generator, h: int = 1024, w: int = 850) -> Image.Image:
    small = rng.normal(128, 40, (h // 64 + 1, w // 64 + 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)), 0, 255)
                           .astype(np.uint8))


def full_size_jpeg(source: Image.Image, rng: np.random.Generator, noise: float) -> bytes:
    img = source.convert("L").resize(FULL, Image.Resampling.BICUBIC)
    if noise:
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, noise, (FULL[1], FULL[0])).astype(np.float32)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def rate(fn, items, repeats: int) -> float:
    """Median items/s over `repeats` passes of fn(item) over `items`."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for x in items:
            fn(x)
        rates.append(len(items) / (time.perf_counter() - t))
    return statistics.median(rates)


def phases(path: Path, repeats: int) -> dict[str, float]:
    """Milliseconds of each step of load_grey on one JPEG (medians)."""
    def timed(fn) -> float:
        runs = []
        for _ in range(max(5, repeats * 3)):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return statistics.median(runs) * 1000

    def header():
        with Image.open(path) as im:
            return im.size

    def scaled():
        with Image.open(path) as im:
            h, w = target_size(im.height, im.width, 256)
            im.draft("L", (w, h))
            im.load()
            return im.size

    with Image.open(path) as im:
        h, w = target_size(im.height, im.width, 256)
        im.draft("L", (w, h))
        im.load()
        drafted = im.copy()

    def resize():
        return np.asarray(drafted.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None))

    def full():
        with Image.open(path) as im:
            im.load()

    return {"header": round(timed(header), 3), "dct_scaled_decode": round(timed(scaled), 2),
            "resize_to_store": round(timed(resize), 3), "full_decode_no_scaling": round(timed(full), 2),
            "scaled_size": list(drafted.size)}


def alt_decoders(paths: list[Path], repeats: int) -> list[dict]:
    out = []
    blobs = [p.read_bytes() for p in paths]
    try:
        import simplejpeg

        def sj(b):
            return simplejpeg.decode_jpeg(b, colorspace="GRAY", min_height=256, min_width=256)
        out.append({"decoder": f"simplejpeg {simplejpeg.__version__}", "value": round(rate(sj, blobs, repeats), 1)})
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(1)

        def cv(p):
            return cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        out.append({"decoder": f"opencv {cv2.__version__} IMREAD_REDUCED_GRAYSCALE_8",
                    "value": round(rate(cv, paths, repeats), 1)})
    except ImportError:
        pass
    return out


def gpu_decode(paths: list[Path], batch: int, repeats: int) -> dict | None:
    """nvJPEG through torchvision (full-size decode on the GPU, then an antialiased resize there):
    an investigation figure only. Preparation decodes on the CPU with load_grey, the function
    generation also uses, so the store holds exactly what inference will see."""
    import torch

    if not torch.cuda.is_available():
        return None
    from torchvision.io import ImageReadMode, decode_jpeg

    blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
    batches = [[blobs[(k + j) % len(blobs)] for j in range(batch)] for k in range(0, 4 * batch, batch)]

    def run(b):
        imgs = decode_jpeg(b, mode=ImageReadMode.GRAY, device="cuda")
        out = [torch.nn.functional.interpolate(i[None].float(), size=(309, 256), mode="bilinear", antialias=True)
               for i in imgs]
        return torch.cat(out).round().clamp(0, 255).to(torch.uint8).cpu()

    run(batches[0])  # warm-up: nvJPEG handles, kernels
    torch.cuda.synchronize()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            run(b)
        torch.cuda.synchronize()
        rates.append(len(batches) * batch / (time.perf_counter() - t))
    return {"value": round(statistics.median(rates), 1), "batch": batch, "device": torch.cuda.get_device_name()}


def end_to_end(tmp: Path, paths: list[Path], studies: int, workers: int) -> dict:
    """`prepare mimic` on a MIMIC-shaped tree of `studies` two-view studies whose JPEGs are hard
    links to the generated full-size files: the whole command, csv and report reading included."""
    import csv
    import gzip

    from irralctl.data.sources.mimic.config import MimicPrepareConfig
    from irralctl.data.sources.mimic.prepare import prepare_mimic

    root, reports = tmp / "e2e" / "jpg", tmp / "e2e" / "reports" / "files"
    split_rows, meta_rows = [], []
    for k in range(studies):
        subject, study = f"1{k // 3:07d}", f"5{k:07d}"
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        for v, view in enumerate(("PA", "LATERAL")):
            dicom = f"{k:08x}-{v:08x}-0000-0000-000000000000"
            os.link(paths[(2 * k + v) % len(paths)], folder / f"{dicom}.jpg")
            split_rows.append([dicom, study, subject, ("train", "train", "train", "validate", "test")[k % 5]])
            meta_rows.append([dicom, subject, study, view])
        rep = reports / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        rep.parent.mkdir(parents=True, exist_ok=True)
        rep.write_text("                                 FINAL REPORT\n INDICATION:  ___ with cough.\n\n"
                       f" FINDINGS:\n\n The lungs are clear. Study {k % 97} shows no effusion.\n\n"
                       " IMPRESSION:\n\n No acute process.\n")
    for name, header, rows in (("split", ["dicom_id", "study_id", "subject_id", "split"], split_rows),
                               ("metadata", ["dicom_id", "subject_id", "study_id", "ViewPosition"], meta_rows)):
        with gzip.open(root / f"mimic-cxr-2.0.0-{name}.csv.gz", "wt", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    t = time.perf_counter()
    prepare_mimic(MimicPrepareConfig(root=root, reports=reports, out=tmp / "e2e" / "out", workers=workers,
                                     bpe_vocab_size=300, legacy_threshold=1))
    dt = time.perf_counter() - t
    return {"value": round(2 * studies / dt, 1), "per_worker": round(2 * studies / dt / workers, 1),
            "workers": workers, "images": 2 * studies, "seconds": round(dt, 2)}


def resume_scan(tmp: Path, n: int) -> float:
    """Seconds for build_image_store to finish a store whose journal already holds n images."""
    d = tmp / "resume"
    d.mkdir()
    (d / "store.bin").write_bytes(bytes(2 * n))
    with open(d / "journal.tsv", "w") as f:
        f.writelines(f"{k:08x}-0000-0000-0000-000000000000\tok\t1\t2\t{2 * k}\n" for k in range(n))
    items = [(f"{k:08x}-0000-0000-0000-000000000000", f"files/p10/p1000{k}/s5{k}/{k}.jpg") for k in range(n)]
    t = time.perf_counter()
    build_image_store(items, d)
    return time.perf_counter() - t


def store_reads(tmp: Path, reads: int, repeats: int) -> float:
    import torch

    torch.set_num_threads(1)
    n, shape = 2000, (307, 256)
    d = tmp / "read"
    d.mkdir()
    rng = np.random.default_rng(1)
    tiles = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(8)]
    with open(d / "store.bin", "wb") as f:
        for k in range(n):
            f.write(tiles[k % 8].tobytes())
    np.savez(d / "index.npz", ids=np.array([f"s{k}" for k in range(n)]),
             offsets=np.arange(n + 1, dtype=np.int64) * shape[0] * shape[1],
             shapes=np.tile(np.array([shape], dtype=np.int32), (n, 1)))
    store = ImageStore(d)
    return rate(lambda k: torch.from_numpy(np.array(store[k % n])), range(reads), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="distinct full-size JPEGs per noise level")
    ap.add_argument("--noise", default="0,2,4", help="Gaussian noise levels (grey levels), comma separated")
    ap.add_argument("--workers", default="1,2", help="worker counts for the store build, comma separated")
    ap.add_argument("--store-images", type=int, default=0, help="images per store build (default 8 per worker, min 2n)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sources", type=Path, default=SHARED / "kermany", help="folder of real radiographs")
    ap.add_argument("--end-to-end", type=int, default=0, metavar="STUDIES",
                    help="also time `prepare mimic` on a tree of this many two-view studies (largest --workers)")
    ap.add_argument("--gpu", action="store_true", help="also measure nvJPEG decoding through torchvision (CUDA)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a 2-core machine")
    ap.add_argument("--resume-entries", type=int, default=MIMIC_IMAGES)
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeats, args.noise, args.resume_entries = 6, 2, "2", 50_000
    rng = np.random.default_rng(0)
    sources = sorted(p for p in args.sources.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if args.sources.is_dir() else []
    origin = f"real radiographs from {args.sources}" if sources else "synthetic smooth images (no real radiographs found)"
    emit(figure="setup", cpu_count=os.cpu_count(), origin=origin, size=f"{FULL[0]}x{FULL[1]}", quality=95,
         pillow=Image.__version__, libjpeg_turbo=_turbo_version())

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per_noise: dict[float, list[Path]] = {}
        for noise in (float(x) for x in args.noise.split(",")):
            paths = []
            for k in range(args.n):
                src = Image.open(sources[k % len(sources)]) if sources else synthetic_radiograph(rng)
                if k >= len(sources) and sources:  # more files than sources: vary them
                    src = src.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                p = tmp / f"n{noise:g}_{k}.jpg"
                p.write_bytes(full_size_jpeg(src, rng, noise))
                paths.append(p)
            per_noise[noise] = paths
            mb = statistics.mean(p.stat().st_size for p in paths) / 1e6
            r = rate(lambda p: load_grey(p, 256), paths, args.repeats)
            emit(figure="decode_per_s_one_core", value=round(r, 1), ms=round(1000 / r, 2), noise=noise,
                 mean_file_mb=round(mb, 2), n=len(paths), decoder="load_grey (Pillow draft, DCT scaling)")
            emit(figure="decode_phases_ms", noise=noise, **phases(paths[0], args.repeats))
            alts = alt_decoders(paths, args.repeats)
            for a in alts:
                emit(figure="alt_decoder_per_s_one_core", noise=noise, **a)
            naive = rate(lambda p: np.asarray(Image.open(p).convert("L").resize((256, 309), Image.Resampling.BILINEAR)),
                         paths[:4], 1)
            emit(figure="naive_decode_per_s_one_core", value=round(naive, 1), noise=noise,
                 note="full decode then resize")

        # The store build, as preparation runs it, on the middle noise level.
        levels = sorted(per_noise)
        paths = per_noise[levels[len(levels) // 2]]
        mb = statistics.mean(p.stat().st_size for p in paths) / 1e6
        for w in (int(x) for x in args.workers.split(",")):
            n_items = args.store_images or max(8 * w * 4, 2 * len(paths))
            items = [(f"img{k}", paths[k % len(paths)]) for k in range(n_items)]
            t = time.perf_counter()
            build_image_store(items, tmp / f"store{w}", shorter=256, workers=w)
            r = n_items / (time.perf_counter() - t)
            emit(figure="store_build_per_s", workers=w, value=round(r, 1), per_worker=round(r / w, 1),
                 images=n_items, mean_file_mb=round(mb, 2))
            emit(figure="projected_mimic_minutes", workers=16, from_workers=w, per_worker=round(r / w, 1),
                 value=round(MIMIC_IMAGES / (r / w * 16) / 60, 1),
                 note=f"16 workers at this per-worker rate; the disk must deliver {r / w * 16 * mb:.0f} MB/s")

        if args.end_to_end:
            w = max(int(x) for x in args.workers.split(","))
            emit(figure="prepare_mimic_end_to_end_images_per_s", mean_file_mb=round(mb, 2),
                 **end_to_end(tmp, paths, args.end_to_end, w))

        if args.gpu:
            g = gpu_decode(paths, 64, args.repeats)
            emit(figure="gpu_decode_per_s", mean_file_mb=round(mb, 2), **(g or {"value": None, "note": "no CUDA device"}))

        if sources:
            real = [p for p in sources if p.suffix.lower() in (".jpg", ".jpeg")]
            r = rate(lambda p: load_grey(p, 256), real, args.repeats)
            emit(figure="decode_real_radiographs_per_s_one_core", value=round(r, 1), n=len(real),
                 mean_file_mb=round(statistics.mean(p.stat().st_size for p in real) / 1e6, 3),
                 note="the radiographs as they are (928-1776 px)")

        emit(figure="resume_scan_s", value=round(resume_scan(tmp, args.resume_entries), 2),
             entries=args.resume_entries)
        emit(figure="store_read_images_per_s_one_core", value=round(store_reads(tmp, 20_000, args.repeats)),
             shape="307x256")


def _turbo_version() -> str | None:
    from PIL import features

    try:
        return features.version("libjpeg_turbo")
    except (ValueError, KeyError):
        return None


if __name__ == "__main__":
    main()
