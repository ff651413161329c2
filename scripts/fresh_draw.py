"""Does IRRAL-Net learn early? The check on a phantom draw whose seed nobody chose.

Draws a seed from the operating system (or takes `--draw-seed`), prepares that many standard
phantoms, trains `irral`, `no-image` and `baseline` over several seeds for 10 epochs (the bar is
about learning early) with the study's model and optimiser (scripts/ablation_study.py: the demo's
model size, batch 16, learning rate 2e-3, CPU), plus `irral` with the
clinical context on the visual tokens only (`--no-ctx-words`, the design before the context
reached the words), compares them all with `irralctl compare` and writes `docs/fresh-draw.md`:
the thresholds checked, the paired differences, the full compare table and the per-epoch curves
of the clinical head beside the reports.

    python scripts/fresh_draw.py --out /tmp/fresh              # the docs page (CPU, ~25 min on 2 cores)
    python scripts/fresh_draw.py --out /tmp/f --quick --doc -  # every step on tiny sizes (a minute)

Every command it runs is an `irralctl` command a user can type; they are printed as they run.
Running it again with the same --out and --draw-seed continues (`irralctl ablate` is resumable).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_study import (  # noqa: E402
    MODEL, TRAINING, compact_table, curves, epochs, full_compare, run, test_metrics)

from irralctl.utils.io import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METRIC = "ce_macro_f1_14"
# The acceptance thresholds this page checks (test CE F1 macro-14, mean over seeds).
AT_LEAST, ABOVE_PRIOR = 0.35, 0.15
SIZES = {"full": {"n": 800, "epochs": 10, "seeds": 3}, "quick": {"n": 60, "epochs": 1, "seeds": 2}}
QUICK_MODEL = ["--d-model", "32", "--d-ff", "64", "--enc-layers", "1", "--dec-layers", "1", "--memory-slots", "32",
               "--memory-topk", "4"]


def _name(result: dict, name: str) -> str:
    """The group `name`, or the only one of that preset with design options (`irral[ctx-decisions=on]`
    when --train-options set one)."""
    names = [g["name"] for g in result["groups"]]
    if name in names:
        return name
    (found,) = [n for n in names if n.startswith(f"{name}[")]
    return found


def _group(result: dict, name: str) -> dict:
    return next(g for g in result["groups"] if g["name"] == _name(result, name))


def _comparison(result: dict, name: str) -> dict:
    """compare.json's paired comparison of group `name` against the reference, for METRIC."""
    comp = next(c for c in result["comparisons"] if c["group"] == _name(result, name))
    return comp["metrics"][METRIC]


def checks(result: dict) -> list[str]:
    """The thresholds, each with the figures it was decided on."""
    irral = _group(result, "irral")["metrics"][METRIC]
    prior = _group(result, "no-image")["metrics"][METRIC]
    diff = _comparison(result, "irral")
    lines = [
        f"- `irral` reaches test {METRIC} **{irral['mean']:.3f} ± {irral['std']:.3f}** (mean ± std over "
        f"{_group(result, 'irral')['n_seeds']} seeds; threshold {AT_LEAST}): "
        f"**{'met' if irral['mean'] >= AT_LEAST else 'not met'}**.",
        f"- `irral` − `no-image` (the language prior, {prior['mean']:.3f}): **{diff['difference']:+.3f}**, 95% paired "
        f"interval [{diff['low']:+.3f}, {diff['high']:+.3f}] (threshold +{ABOVE_PRIOR}): "
        f"**{'met' if diff['difference'] >= ABOVE_PRIOR else 'not met'}**.",
    ]
    for name in ("irral[ctx-words=off]", "baseline"):
        if any(g["name"] == name for g in result["groups"]):
            row = _comparison(result, name)
            mean = _group(result, name)["metrics"][METRIC]["mean"]
            lines.append(f"- `{name}`: {mean:.3f}; − `no-image` {row['difference']:+.3f} "
                         f"[{row['low']:+.3f}, {row['high']:+.3f}], {row['verdict']}.")
    return lines


def context_effect(data: Path, grids: list[Path], out: Path) -> str:
    """The paired comparison of irral with and without the context on the words."""
    runs = [str(p) for g in grids for p in sorted((g / "runs").glob("irral-seed*"))]
    run(["irralctl", "compare", *runs, "--reference", "irral[ctx-words=off]", "--meteor", "off",
         "--out", str(out), "--overwrite"])
    result = json.loads((out / "compare.json").read_text())
    row = _comparison(result, "irral")
    return (f"`irral` − `irral[ctx-words=off]` on test {METRIC}: **{row['difference']:+.3f}**, 95% paired "
            f"interval [{row['low']:+.3f}, {row['high']:+.3f}], p {row['p_value']:.3g}: {row['verdict']} "
            f"(seeds paired; {len(runs) // 2} per group).")


def options_effect(main_grid: Path, default_grid: Path, out: Path, train_options: str) -> str:
    """The paired comparison of irral with `train_options` against irral with the defaults."""
    runs = [str(p) for g in (main_grid, default_grid) for p in sorted((g / "runs").glob("irral-seed*"))]
    run(["irralctl", "compare", *runs, "--reference", "irral", "--meteor", "off", "--out", str(out), "--overwrite"])
    result = json.loads((out / "compare.json").read_text())
    names = [g["name"] for g in result["groups"]]
    others = [n for n in names if n != "irral"]
    if "irral" not in names or len(others) != 1:
        return f"Not measured: `irralctl compare` does not tell runs with `{train_options}` from the defaults."
    name = others[0]
    row = next(c for c in result["comparisons"] if c["group"] == name)["metrics"][METRIC]
    return (f"`{name}` − `irral` (the defaults, {row['reference_mean']:.3f}) on test {METRIC}: "
            f"**{row['difference']:+.3f}**, 95% paired interval [{row['low']:+.3f}, {row['high']:+.3f}], "
            f"p {row['p_value']:.3g}: {row['verdict']} (seeds paired; {len(runs) // 2} per group).")


def head_and_words(grid: Path, preset: str = "irral") -> str:
    """Per observation: what the clinical head finds (validation F1, last epoch) beside what the
    reports say (test CE F1), seed means; the observations with positive test studies."""
    runs = sorted((grid / "runs").glob(f"{preset}-seed*"))
    head: dict[int, list[float]] = {}
    words: dict[str, list[float]] = {}
    support: dict[str, int] = {}
    names: list[str] = []
    for run_dir in runs:
        last = epochs(run_dir)[-1]
        for i, f1 in enumerate(last.get("val_head_f1") or []):
            if f1 is not None:
                head.setdefault(i, []).append(f1)
        per = test_metrics(run_dir)["clinical"]["per_observation"]
        names = [o["observation"] for o in per]
        for o in per:
            words.setdefault(o["observation"], []).append(o["f1"])
            support[o["observation"]] = o["support"]
    rows = ["| observation | test positives | head F1 (validation, last epoch) | report CE F1 (test) |",
            "|---|---:|---:|---:|"]
    for i, name in enumerate(names):
        if support[name]:
            h = head.get(i)
            rows.append(f"| {name} | {support[name]} | {'-' if not h else f'{sum(h) / len(h):.3f}'} "
                        f"| {sum(words[name]) / len(words[name]):.3f} |")
    return "\n".join(rows)


README_MARKERS = ("<!-- fresh-draw:start -->", "<!-- fresh-draw:end -->")


def page_summary(page: Path, root: Path) -> list[str]:
    """README lines for one page this script wrote: its command, then its verdict lines as written."""
    text = page.read_text(encoding="utf-8")
    found = re.search(r"Written by `scripts/fresh_draw.py` \(`([^`]*)`\)", text)
    if found is None:
        raise SystemExit(f"{page}: not a page of scripts/fresh_draw.py (no 'Written by' line)")
    lines = text.splitlines()
    start = lines.index("## The thresholds") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("## "))
    verdicts = [line for line in lines[start:end] if line.startswith("- ")]
    verdicts += [f"- {line}" for line in lines
                 if line.startswith("`irral` − `irral[ctx-words=off]`") or re.match(r"`irral\[[^`]*\]` − `irral`", line)]
    rel = page.relative_to(root).as_posix()
    return [f"- [{rel}]({rel}), `{found.group(1)}`:", *(f"  {line}" for line in verdicts)]


def update_readme(readme: Path, docs: Path) -> None:
    """Replace the README's block between README_MARKERS with the summaries of every
    `fresh-draw*.md` page in `docs` (so that the README quotes no figure by hand)."""
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"{readme}: needs the markers {start} and {end} once each")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    with atomic_write(readme) as f:  # the README is replaced whole or not at all
        f.write(head + start + "\n" + readme_block(docs, readme.parent) + end + tail)


def readme_block(docs: Path, root: Path) -> str:
    """The summaries of every `fresh-draw*.md` page in `docs`, linked relative to `root`."""
    return "".join(line + "\n" for page in sorted(docs.glob("fresh-draw*.md")) for line in page_summary(page, root))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="working folder (data, runs, tables)")
    ap.add_argument("--draw-seed", type=int, help="phantom draw seed (default: drawn from the OS and printed)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks every step, proves nothing")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16, help="studies per step (the study's: 16)")
    ap.add_argument("--presets", default="no-image,irral,baseline", help="presets of the main grid (no-image first)")
    ap.add_argument("--no-context-off", action="store_true", help="skip irral with --no-ctx-words")
    ap.add_argument("--train-options", default="", help="more `irralctl train` options for every run, one string "
                                                        "(e.g. '--context-from-labels 1 --ctx-decisions')")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "fresh-draw.md"), help="page to write ('-': print it)")
    ap.add_argument("--readme", type=Path, help="then refresh this README's block of fresh-draw summaries "
                                                "(from every fresh-draw*.md beside --doc)")
    args = ap.parse_args(argv)
    if args.train_options and not args.no_context_off:
        ap.error("--train-options needs --no-context-off (the context-off comparison is of the default irral)")
    size = SIZES["quick" if args.quick else "full"]
    args.out.mkdir(parents=True, exist_ok=True)
    seed_file = args.out / "draw-seed.txt"
    if args.draw_seed is None:
        args.draw_seed = int(seed_file.read_text()) if seed_file.is_file() else int.from_bytes(os.urandom(4), "little")
    seed_file.write_text(f"{args.draw_seed}\n")
    print(f"phantom draw seed: {args.draw_seed}", flush=True)

    data = args.out / "data"
    if not (data / "dataset.json").is_file():
        run(["irralctl", "prepare", "phantoms", "--variant", "standard", "--n", str(size["n"]), "--image-size", "64",
             "--seed", str(args.draw_seed), "--workers", str(args.workers), "--out", str(data)])
    model = MODEL + (QUICK_MODEL if args.quick else [])
    training = list(TRAINING)
    training[training.index("--batch-size") + 1] = str(args.batch_size)
    defaults = ["--seeds", str(size["seeds"]), "--epochs", str(size["epochs"]), "--workers", str(args.workers),
                *model, *training]
    common = [*defaults, *shlex.split(args.train_options)]
    main_grid, off_grid = args.out / "grid", args.out / "grid-context-off"
    run(["irralctl", "ablate", str(data), "--out", str(main_grid), "--presets", args.presets, *common])
    grids = [main_grid]
    if not args.no_context_off:
        run(["irralctl", "ablate", str(data), "--out", str(off_grid), "--presets", "irral", "--no-ctx-words",
             *common])
        grids.append(off_grid)
    both = args.out / "compare"
    run(["irralctl", "compare", *(str(p) for g in grids for p in sorted((g / "runs").iterdir())),
         "--reference", "no-image", "--meteor", "off", "--out", str(both), "--overwrite"])
    result = json.loads((both / "compare.json").read_text())
    effect = (context_effect(data, grids, args.out / "compare-context") if len(grids) == 2
              else "Not measured in this run (`--no-context-off`).")
    options = []
    if args.train_options:  # the same draw, seeds and batch without the options: a paired comparison
        default_grid = args.out / "grid-default"
        run(["irralctl", "ablate", str(data), "--out", str(default_grid), "--presets", "irral", *defaults])
        options = ["## The options against the defaults", "",
                   options_effect(main_grid, default_grid, args.out / "compare-options", args.train_options), ""]

    shlex_cmd = ("python scripts/fresh_draw.py --out DIR" + (" --quick" if args.quick else "")
                 + (f" --batch-size {args.batch_size}" if args.batch_size != 16 else "")
                 + (f" --presets {args.presets}" if args.presets != "no-image,irral,baseline" else "")
                 + (" --no-context-off" if args.no_context_off else "")
                 + (f" --train-options {shlex.quote(args.train_options)}" if args.train_options else ""))
    page = [
        "# Does IRRAL-Net learn early? A phantom draw nobody chose",
        "",
        f"Written by `scripts/fresh_draw.py` (`{shlex_cmd}`) on {datetime.date.today().isoformat()}, "
        f"{platform.processor() or platform.machine()}, CPU. Every figure below comes from `irralctl compare`'s "
        "compare.json; none is typed by hand." + (" **Quick mode: tiny sizes, the figures mean nothing.**"
                                                  if args.quick else ""),
        "",
        f"Draw: {size['n']} standard phantoms at 64 px, seed **{args.draw_seed}** taken from the operating system "
        f"(`irralctl prepare phantoms --variant standard --n {size['n']} --seed {args.draw_seed}`). Training: the "
        f"demo's model size, {size['epochs']} epochs, {size['seeds']} seeds per preset, batch {args.batch_size}, "
        + (f"with `{args.train_options}`, " if args.train_options else "")
        + "otherwise the settings of the README's ablation (`scripts/ablation_study.py`: batch 16, learning rate "
        "2e-3, CPU).",
        "",
        "## The thresholds",
        "",
        *checks(result),
        "",
        *options,
        "## The clinical context on the words",
        "",
        "ACL's clinical context C (the head's 14 probabilities, as learned present/absent embeddings) was first added "
        "to the visual tokens only, so the decoder had to learn to attend for it; `--ctx-words` (the default now) "
        "also adds it to every word embedding, where the decoder reads it without attending.",
        "",
        effect,
        "",
        f"## What the head finds and what the reports say (`irral`, {size['seeds']} seeds)",
        "",
        "An observation the head does not find cannot reach the words; one it finds but the reports "
        "leave out is lost in the decoder.",
        "",
        head_and_words(main_grid),
        "",
        "## Mean ± std over seeds",
        "",
        compact_table(result),
        "",
        "## Per-epoch curves (seed 0): the clinical head beside the reports",
        "",
        "`irral`:",
        "",
        curves(main_grid / "runs" / "irral-seed0"),
        "",
        *(["`irral[ctx-words=off]`:", "", curves(off_grid / "runs" / "irral-seed0"), ""] if len(grids) == 2
          else []),
        "## Every metric against the language prior",
        "",
        full_compare(both),
        "",
    ]
    text = "\n".join(page)
    if args.doc == "-":
        print(text)
    else:
        with atomic_write(args.doc) as f:
            f.write(text)
        print(f"wrote {args.doc}")
        if args.readme is not None:
            update_readme(args.readme, Path(args.doc).parent)
            print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode or 1)
