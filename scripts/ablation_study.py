"""The ablation study of the README: every phantom variant, several presets, several seeds.

For each phantom variant (`irralctl prepare phantoms --variant ...`, docs/phantoms.md) this
prepares a dataset, trains the grid of presets x seeds with `irralctl ablate` (resumable: run it
again after an interruption and it continues), and collects the compare tables. Then it writes
`OUT/RESULTS.md`: one table per variant as `irralctl compare` produced it, a summary of the
verdicts against the baseline and the language prior, the per-epoch curves of the clinical
head's F1 beside the reports' CE F1, and the MFA collapse diagnostics of each MFA mode.
`--write-readme` also replaces the README's section between its `ablation:start` and
`ablation:end` markers with the same text, so no figure there is typed by hand.

    python scripts/ablation_study.py --out study --jobs 2     # the README's study (CPU, ~80 min on 2 cores)
    python scripts/ablation_study.py --out /tmp/s --quick     # every step on tiny sizes (minutes)

Every command it runs is an `irralctl` command a user can type; they are printed as they run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("standard", "lateral", "rare", "small", "structured")
PRESETS = ("baseline", "no-image", "cmn", "irral")
MFA_MODES = ("literal", "centered", "infonce")
# ACL's design options: head pooling, share of label context in training, context on the words.
ACL_OPTIONS = (("mean", 0.0, True), ("mean", 0.5, True), ("attention", 0.0, True), ("attention", 0.5, True),
               ("attention", 0.5, False))
LONG_PRESETS = ("baseline", "no-image", "cmn")  # the presets without ACL, given more epochs

# The demo's model size (irralctl/demo), on 64 px phantoms: a CPU-sized IRRAL-Net.
MODEL = ["--backbone", "tiny", "--tiny-width", "16", "--image-size", "64", "--resize", "72", "--d-model", "64",
         "--n-heads", "4", "--d-ff", "128", "--enc-layers", "2", "--dec-layers", "2", "--memory-slots", "256",
         "--memory-topk", "16"]
TRAINING = ["--batch-size", "16", "--eval-batch-size", "64", "--lr", "2e-3", "--lr-visual", "2e-3",
            "--patience", "0", "--plateau-patience", "3", "--monitor", "ce_macro_f1_14", "--meteor", "off",
            "--device", "cpu"]
SIZES = {  # studies per variant, epochs, seeds
    # 20 epochs: the presets without ACL learn the image only through the decoder, which starts late
    # (docs/ablation-10-epochs.md: at 10 they had not passed the image-blind run by 0.15 everywhere).
    "full": {"n": 800, "epochs": 20, "seeds": 3},
    "quick": {"n": 120, "epochs": 2, "seeds": 2},
}
MARKERS = ("<!-- ablation:start -->", "<!-- ablation:end -->")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run(cmd: list[str], log: Path | None = None, threads: int | None = None) -> None:
    """Run one command, printing it; its output goes to `log` when given (grids trained at once)."""
    env = None
    if threads is not None:  # torch's intra-op threads: CPU results are bit-identical only at one count
        env = {**os.environ, **{var: str(threads) for var in THREAD_VARIABLES}}
    print("$ " + shlex.join(cmd) + (f"  > {log}" if log else ""), flush=True)
    started = time.perf_counter()
    if log is None:
        subprocess.run(cmd, check=True, env=env)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        if result.returncode:
            raise SystemExit(f"failed ({result.returncode}): {shlex.join(cmd)}; its output: {log}")
    print(f"  ({time.perf_counter() - started:.0f} s) {shlex.join(cmd[:3])} ...", flush=True)


def prepare(out: Path, variant: str, n: int, seed: int, workers: int) -> Path:
    data = out / "data" / variant
    if not (data / "dataset.json").is_file():
        run(["irralctl", "prepare", "phantoms", "--variant", variant, "--n", str(n), "--image-size", "64",
             "--seed", str(seed), "--workers", str(workers), "--out", str(data)])
    return data


@dataclass(frozen=True)
class Grid:
    """One `irralctl ablate` of the study: presets x seeds on one prepared variant."""

    data: Path
    out: Path
    presets: tuple[str, ...]
    seeds: int
    epochs: int
    extra: tuple[str, ...] = ()

    def command(self, workers: int) -> list[str]:
        return ["irralctl", "ablate", str(self.data), "--out", str(self.out), "--presets", ",".join(self.presets),
                "--seeds", str(self.seeds), "--epochs", str(self.epochs), "--workers", str(workers),
                *MODEL, *TRAINING, *self.extra]

    def result(self) -> dict:
        return json.loads((self.out / "compare.json").read_text())


def train_grids(grids: list[Grid], workers: int, jobs: int, threads: int | None, logs: Path) -> None:
    """Train every grid, `jobs` at a time (each a process of its own, resumable), the longest first."""
    if jobs <= 1:
        for grid in grids:
            run(grid.command(workers), threads=threads)
        return
    order = sorted(grids, key=lambda g: -g.epochs * g.seeds * len(g.presets))
    with ThreadPoolExecutor(jobs) as pool:  # threads only wait on the processes
        for done in [pool.submit(run, g.command(workers), logs / f"{g.out.name}.log", threads) for g in order]:
            done.result()


def verdicts(result: dict, metric: str = "ce_macro_f1_14") -> list[str]:
    """One sentence per compared group, from compare.json's paired differences."""
    lines = []
    for comp in result.get("comparisons", []):
        d = comp["metrics"].get(metric)
        if d is None:
            continue
        lines.append(f"{comp['group']} vs {comp['reference']}: {d['difference']:+.3f} "
                     f"[{d['low']:+.3f}, {d['high']:+.3f}], p = {d['p_value']:.3g}: {d['verdict']}")
    return lines


def prior_margins(result: dict, metric: str = "ce_macro_f1_14") -> str:
    """Each image-reading preset's mean minus the image-blind one's (`no-image`), seeds averaged."""
    means = {g["name"]: g["metrics"][metric]["mean"] for g in result["groups"] if metric in g["metrics"]}
    if "no-image" not in means:
        return ""
    return ", ".join(f"{name} {m:.3f} ({m - means['no-image']:+.3f})" for name, m in means.items() if name != "no-image")


COMPACT = ("bleu_4", "cider", "ce_micro_f1_14", "ce_macro_f1_14")


def compact_table(result: dict) -> str:
    """Mean ± std over seeds of a few metrics per preset (the full table is in docs/ablation.md)."""
    out = ["| preset (seeds) | " + " | ".join(COMPACT) + " |", "|---|" + "---:|" * len(COMPACT)]
    for g in result["groups"]:
        # One seed has no spread: compare.json gives its std as null.
        cells = [f"{g['metrics'][m]['mean']:.3f}" + ("" if g["metrics"][m]["std"] is None else
                                                     f" ± {g['metrics'][m]['std']:.3f}") for m in COMPACT]
        out.append(f"| {g['name']} ({g['n_seeds']}) | " + " | ".join(cells) + " |")
    return "\n".join(out)


def full_compare(grid: Path) -> str:
    """`irralctl compare`'s Markdown, headings moved under the variant's, without the local run paths."""
    text = (grid / "compare.md").read_text().split("\n## Runs")[0].strip()
    return "\n".join("####" + line if line.startswith("#") else line for line in text.splitlines())


def epochs(run_dir: Path) -> list[dict]:
    """A finished run's per-epoch records (metrics.jsonl)."""
    from irralctl.runs.layout import RunLayout
    from irralctl.utils.io import iter_jsonl

    return [record for _, record in iter_jsonl(RunLayout(run_dir).metrics)]


def test_metrics(run_dir: Path) -> dict:
    """A finished run's test_metrics.json."""
    from irralctl.runs.layout import RunLayout
    from irralctl.utils.io import read_json

    return read_json(RunLayout(run_dir).test_metrics)


def curves(run_dir: Path) -> str:
    """Per-epoch validation figures of one run: the head's F1 beside the reports' CE F1."""
    rows = epochs(run_dir)
    out = ["| epoch | clinical head F1 (macro, val) | report CE F1 macro-14 (val) | train NLL |", "|---|---|---|---|"]
    for r in rows:
        head = r.get("val_head_f1_macro")
        out.append(f"| {r['epoch']} | {'-' if head is None else f'{head:.3f}'} | {r['val_ce_macro_f1_14']:.3f} "
                   f"| {r['train_nll']:.3f} |")
    return "\n".join(out)


def mfa_table(grids: dict[str, Path]) -> str:
    out = ["| MFA mode | val loss term | text pairwise cos | image pairwise cos | matched cos | mismatched cos "
           "| recall@1 | test CE F1 macro-14 |", "|---|---|---|---|---|---|---|---|"]
    for mode, grid in grids.items():
        for run_dir in sorted((grid / "runs").iterdir()):
            last = epochs(run_dir)[-1]
            test = test_metrics(run_dir)["metrics"]
            out.append(f"| {mode} | {last['val_mfa']:.3f} | {last['val_mfa_text_cos']:.3f} "
                       f"| {last['val_mfa_image_cos']:.3f} | {last['val_mfa_matched_cos']:.3f} "
                       f"| {last['val_mfa_mismatched_cos']:.3f} | {last['val_mfa_recall_at_1']:.3f} "
                       f"| {test['ce_macro_f1_14']:.3f} |")
    return "\n".join(out)


def _seed0(grid: Path, preset: str) -> float | None:
    """Test CE F1 macro-14 of a grid's `preset` run at seed 0."""
    from irralctl.runs.layout import RunLayout

    run_dir = grid / "runs" / f"{preset}-seed0"
    return test_metrics(run_dir)["metrics"]["ce_macro_f1_14"] if RunLayout(run_dir).test_metrics.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks every step, proves nothing")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--data-seed", type=int, default=2026, help="seed of the phantom draws")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, help="seeds per preset (default: 3; --quick: 2)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: 20; --quick: 2)")
    parser.add_argument("--extra-variants-seeds", type=int,
                        help="seeds per preset on the variants other than `standard` (default: --seeds)")
    parser.add_argument("--extra-variants-presets",
                        help="presets on the variants other than `standard` (default: --presets)")
    parser.add_argument("--no-options", action="store_true", help="skip the MFA-mode and ACL-option tables")
    parser.add_argument("--long-epochs", type=int,
                        help="also train baseline, no-image and cmn this long on `standard`, seed 0 "
                             "(default: 30; --quick: 3; 0: skip)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="grids trained at once, each process on cores / jobs torch threads "
                             "(default 1: one at a time on torch's default threads)")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README --write-readme rewrites")
    args = parser.parse_args(argv)
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.seeds:
        size["seeds"] = args.seeds
    if args.epochs:
        size["epochs"] = args.epochs
    variants = tuple(args.variants.split(","))
    presets = tuple(args.presets.split(","))
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    long_epochs = args.long_epochs if args.long_epochs is not None else (3 if args.quick else 30)

    # What to train: one grid per variant, then the option tables' and the long runs' on `standard`.
    grids: dict[str, Grid] = {}
    for variant in variants:
        seeds, grid_presets = size["seeds"], presets
        if variant != "standard":
            seeds = args.extra_variants_seeds or seeds
            grid_presets = tuple(args.extra_variants_presets.split(",")) if args.extra_variants_presets else presets
        data = prepare(args.out, variant, size["n"], args.data_seed, args.workers)
        grids[variant] = Grid(data, args.out / "grids" / variant, grid_presets, seeds, size["epochs"])
    standard = args.out / "data" / "standard"
    mfa_grids, acl_grids, long_grid = {}, {}, None
    if "standard" in variants and not args.no_options:
        for mode in MFA_MODES:
            mfa_grids[mode] = Grid(standard, args.out / "grids" / f"mfa-{mode}", ("mfa",), 1, size["epochs"],
                                   ("--mfa-mode", mode))
        for pooling, share, words in ACL_OPTIONS:
            name = f"acl-{pooling}-{share}" + ("" if words else "-context-off")
            acl_grids[(pooling, share, words)] = Grid(
                standard, args.out / "grids" / name, ("acl",), 1, size["epochs"],
                ("--head-pooling", pooling, "--context-from-labels", str(share), "--ctx-words" if words else "--no-ctx-words"))
    if "standard" in variants and long_epochs:
        long_grid = Grid(standard, args.out / "grids" / f"long-{long_epochs}", LONG_PRESETS, 1, long_epochs)
    train_grids([*grids.values(), *mfa_grids.values(), *acl_grids.values(), *([long_grid] if long_grid else [])],
                args.workers, args.jobs, threads, args.out / "logs")

    sections = [f"Phantoms: {size['n']} studies per variant at 64 px (data seed {args.data_seed}), "
                f"{size['epochs']} epochs, {size['seeds']} seeds per preset"
                + (f" on `standard` and {args.extra_variants_seeds} on the other variants"
                   if args.extra_variants_seeds else "")
                + (f" (presets {', '.join(presets)} on `standard`, {args.extra_variants_presets.replace(',', ', ')} "
                   "on the others)" if args.extra_variants_presets else "")
                + ", the demo's model size on the CPU"
                + (f" ({threads} torch thread{'s' if threads > 1 else ''} per run, {args.jobs} runs at once)"
                   if threads else "")
                + "; test split decoded with beam 3. Differences are against `baseline` on the same test studies "
                "(paired bootstrap over studies, seeds averaged; `irralctl compare`).", ""]
    results = {}
    full = ["# The ablation on phantoms: every table", "",
            "Written by `scripts/ablation_study.py` with the README's section "
            "([Does each component matter?](../README.md#does-each-component-matter-the-ablation-on-phantoms)): "
            "`irralctl compare`'s full report for each variant.", ""]
    for variant, grid in grids.items():
        results[variant] = grid.result()
        sections += [f"#### Variant `{variant}`", "", compact_table(results[variant]), ""]
        full += [f"## Variant `{variant}`", "", full_compare(grid.out), ""]

    summary = ["#### Verdicts on CE F1 macro-14 (95 % paired bootstrap intervals)", ""]
    for variant, result in results.items():
        summary += [f"- `{variant}`: " + "; ".join(verdicts(result))]
    summary += ["", "Test CE F1 macro-14, seed means, and in brackets the margin over the image-blind "
                "`no-image` run of the same seeds:", ""]
    for variant, result in results.items():
        summary += [f"- `{variant}`: {prior_margins(result)}"]
    sections = sections[:2] + summary + [""] + sections[2:]

    if "standard" in variants:
        runs = sorted(str(p) for p in (args.out / "grids" / "standard" / "runs").iterdir() if p.is_dir())
        run([sys.executable, str(ROOT / "scripts" / "diagnose_runs.py"), *runs, "--out", str(args.out / "diagnostics")],
            threads=threads)
        sections += ["#### Reading the image, decoding, memory use (`standard`; `scripts/diagnose_runs.py`)", "",
                     "CE F1 with beam 1 and beam 3; the CE F1 left when each study is decoded from another "
                     "study's images (what the reports owe to the image is the difference); memory slots "
                     "the top-k reads use, with the perplexity of their use (`memory_slots.png` has the "
                     "histogram).", "", (args.out / "diagnostics" / "diagnostics.md").read_text().strip(), ""]

    if "standard" in variants and "irral" in presets:
        run_dir = args.out / "grids" / "standard" / "runs" / "irral-seed0"
        sections += ["#### Learning early: `irral` on `standard`, seed 0, per epoch", "", curves(run_dir), ""]
    if mfa_grids:
        sections += ["#### MFA: does the alignment collapse? (`mfa` preset, `standard`, seed 0, last epoch)", "",
                     mfa_table({mode: grid.out for mode, grid in mfa_grids.items()}), ""]
    if acl_grids:
        acl_rows = ["| ACL head pooling | label context share | context on the words | val head F1 macro (last epoch) "
                    "| test CE F1 micro-14 | test CE F1 macro-14 |", "|---|---|---|---|---|---|"]
        for (pooling, share, words), grid in acl_grids.items():
            run_dir = next((grid.out / "runs").iterdir())
            last = epochs(run_dir)[-1]
            test = test_metrics(run_dir)["metrics"]
            acl_rows.append(f"| {pooling} | {share} | {'yes' if words else 'no'} | {last['val_head_f1_macro']:.3f} "
                            f"| {test['ce_micro_f1_14']:.3f} | {test['ce_macro_f1_14']:.3f} |")
        sections += ["#### ACL head and context (`acl` preset, `standard`, seed 0)", "", "\n".join(acl_rows), ""]
    if long_grid is not None:
        result = long_grid.result()
        rows = ["| preset | test CE F1 macro-14 at " + f"{size['epochs']} epochs (seed 0) | at {long_epochs} epochs "
                "| first epoch whose validation CE F1 macro-14 passes its first epoch's by 0.05 |", "|---|---|---|---|"]
        short = {g["name"]: g for g in results["standard"]["groups"]}
        for g in result["groups"]:
            records = epochs(long_grid.out / "runs" / f"{g['name']}-seed0")
            prior = records[0]["val_ce_macro_f1_14"]
            start = next((r["epoch"] for r in records if r["val_ce_macro_f1_14"] > prior + 0.05), None)
            at_short = _seed0(args.out / "grids" / "standard", g["name"]) if g["name"] in short else None
            rows.append(f"| {g['name']} | {'-' if at_short is None else f'{at_short:.3f}'} "
                        f"| {g['metrics']['ce_macro_f1_14']['mean']:.3f} | {start or 'never'} |")
        sections += [f"#### Without ACL, given more steps (`standard`, seed 0, {long_epochs} epochs)", "",
                     "\n".join(rows), ""]

    text = "\n".join(sections).rstrip() + "\n"
    given = list(argv if argv is not None else sys.argv[1:])
    if "--readme" in given:  # where this copy of the README lives is not part of the study
        i = given.index("--readme")
        del given[i:i + 2]
    command = shlex.join(["python", "scripts/ablation_study.py", *given])
    # The script resumes its grids, so its own run time says little: it states the command only.
    text += f"\n<sub>Written by `{command}`.</sub>\n"
    text = text.replace("\n#### Variant", "\nEvery metric, per-observation F1 and the paired tests: "
                        "[docs/ablation.md](docs/ablation.md).\n\n#### Variant", 1)
    (args.out / "RESULTS.md").write_text(text)
    footer = text[text.rindex("\n<sub>"):]
    (args.out / "ablation.md").write_text("\n".join(full).rstrip() + "\n" + footer)
    print(text)
    if args.write_readme:
        from irralctl.utils.io import atomic_write

        readme = args.readme
        body = readme.read_text()
        start, end = body.index(MARKERS[0]), body.index(MARKERS[1])
        with atomic_write(readme) as f:  # the README is replaced whole or not at all
            f.write(body[:start + len(MARKERS[0])] + "\n" + text + body[end:])
        with atomic_write(readme.parent / "docs" / "ablation.md") as f:
            f.write((args.out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
