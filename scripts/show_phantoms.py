"""Render a contact sheet of phantom studies for eyeballing, and time the renderer.

    python scripts/show_phantoms.py sheet.png [--n 8] [--seed 0] [--size 256] [--low 64]
    python scripts/show_phantoms.py sheet.png --findings   # one study per finding, same anatomy
    python scripts/show_phantoms.py --bench 2000           # print render speed as JSON lines

Each study shows its frontal and lateral view at full size and, beside them, both views after a
block-mean resize to `--low` px (what CI's small models see), captioned with the case's findings.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irralctl.data.sources.phantoms.cases import PhantomCase  # noqa: E402
from irralctl.data.sources.phantoms.prepare import make_phantom  # noqa: E402
from irralctl.data.sources.phantoms.render import render_study  # noqa: E402
from irralctl.data.sources.phantoms.reports import write_report  # noqa: E402


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Block-mean resize (the image side must be a multiple of `size`)."""
    k = img.shape[0] // size
    return img[: k * size, : k * size].reshape(size, k, size, k).mean(axis=(1, 3))


def caption(case: dict) -> str:
    parts = []
    if case["cardiomegaly"]:
        parts.append("cardiomegaly")
    for key in ("effusion", "opacity", "pneumothorax", "nodule", "device"):
        if case[key] != "none":
            parts.append(f"{key}:{case[key]}")
    if case["edema"]:
        parts.append("edema")
    return ", ".join(parts) or "normal"


def finding_gallery(seed: int, size: int) -> list[dict]:
    """The same anatomy (render generator fixed) with one finding at a time."""
    cases = [
        PhantomCase(),
        PhantomCase(cardiomegaly=True),
        PhantomCase(effusion="right"),
        PhantomCase(effusion="bilateral"),
        PhantomCase(opacity="right_upper"),
        PhantomCase(opacity="left_lower"),
        PhantomCase(pneumothorax="left"),
        PhantomCase(pneumothorax="right"),
        PhantomCase(edema=True),
        PhantomCase(nodule="right"),
        PhantomCase(device="line"),
        PhantomCase(device="tube"),
        PhantomCase(device="pacemaker"),
        PhantomCase(cardiomegaly=True, edema=True, effusion="bilateral", device="line"),
    ]
    out = []
    for case in cases:
        frontal, lateral = render_study(case, np.random.default_rng(seed), size)
        report = write_report(case, np.random.default_rng(seed))
        out.append({"case": asdict(case), "frontal": frontal, "lateral": lateral, "report": report})
    return out


def draw(studies: list[dict], path: Path, low: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2  # studies per row; each study takes 4 panels
    rows = (len(studies) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols * 4, figsize=(cols * 4 * 2.2, rows * 2.6))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for i, st in enumerate(studies):
        r, c = divmod(i, cols)
        panels = [st["frontal"], st["lateral"], downsample(st["frontal"], low), downsample(st["lateral"], low)]
        for j, img in enumerate(panels):
            ax = axes[r, c * 4 + j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[r, c * 4].set_title(caption(st["case"]), fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bench(n: int, size: int, repeats: int = 3) -> None:
    """Render `n` complete studies (case, two views, report, labels); print JSON lines."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            make_phantom(0, i, size)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"figure": "phantom_studies_per_s", "size": size, "studies": n,
                      "median_s": round(med, 3), "studies_per_s": round(n / med, 1),
                      "repeats": repeats, "cpu": platform.processor() or platform.machine()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", type=Path, help="PNG path of the contact sheet")
    ap.add_argument("--n", type=int, default=8, help="studies on the sheet (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="phantom set seed (default 0)")
    ap.add_argument("--size", type=int, default=256, help="render size in px (default 256)")
    ap.add_argument("--low", type=int, default=64, help="low-resolution preview size in px (default 64)")
    ap.add_argument("--findings", action="store_true", help="one finding per study on fixed anatomy")
    ap.add_argument("--reports", action="store_true", help="also print each study's report")
    ap.add_argument("--bench", type=int, default=0, help="time rendering of this many studies instead")
    args = ap.parse_args()
    if args.bench:
        bench(args.bench, args.size)
        return
    if args.out is None:
        ap.error("give a PNG path (or --bench N)")
    if args.findings:
        studies = finding_gallery(args.seed, args.size)
    else:
        studies = [make_phantom(args.seed, i, args.size) for i in range(args.n)]
    draw(studies, args.out, args.low)
    if args.reports:
        for st in studies:
            print(f"[{caption(st['case'])}] {st['report']}")


if __name__ == "__main__":
    main()
