"""`irralctl demo`: the whole pipeline on synthetic phantoms, on a CPU, in minutes.

Every step calls the same library function as the command a user would type by hand (printed in
`DemoResult.commands`), so the demo proves the pipeline, not a special path:

    irralctl prepare phantoms --n N --image-size 64 --out DIR/data
    irralctl train DIR/data --out DIR/runs/irral ...                     (IRRAL-Net, small)
    irralctl train DIR/data --out DIR/runs/no_image --no-image ...       (the language prior)
    irralctl generate --dataset DIR/data --split test --checkpoint DIR/runs/<run> --out DIR/preds/<run>.jsonl
    irralctl score DIR/preds/<run>.jsonl --json DIR/scores/<run>.json
    irralctl heatmap --checkpoint DIR/runs/irral --dataset DIR/data --id <study> --words ... --out DIR/heatmaps/<study>

On phantoms a model that reads the images must clearly beat the language prior on clinical
efficacy (CE F1): the comparison table at the end shows whether it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.constants import HEADLINE_METRICS
from irralctl.demo.config import DemoConfig
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import save_config, to_flags
from irralctl.utils.outputs import output_in_place

log = logging.getLogger(__name__)

# Words whose attention the demo draws: each is a finding the phantoms render.
HEATMAP_WORDS = ("heart", "effusion", "pneumothorax", "consolidation")


@dataclass
class DemoResult:
    out: Path
    runs: dict[str, Path] = field(default_factory=dict)          # name -> run directory
    predictions: dict[str, Path] = field(default_factory=dict)   # name -> preds.jsonl
    scores: dict[str, dict] = field(default_factory=dict)        # name -> score_files result
    score_files: dict[str, Path] = field(default_factory=dict)
    heatmaps: list[Path] = field(default_factory=list)           # one folder per study
    comparison_files: list[Path] = field(default_factory=list)   # ablate's compare.md and compare.png
    commands: list[str] = field(default_factory=list)            # the equivalent hand-typed commands


# preset -> run name: IRRAL-Net and the image-blind language prior, trained by `irralctl ablate`.
RUNS = {"no-image": "no_image", "irral": "irral"}


def _train_config(cfg: DemoConfig, data: Path):
    """The training options both runs share (`ablate` sets each run's preset switches and seed): the
    small model of `irralctl train --size cpu` at the demo's image size, width, batch and epochs."""
    from irralctl.training.config import TrainConfig, size_values
    from irralctl.utils.config import from_flat

    d = cfg.d_model
    small = {path.rsplit(".", 1)[-1]: value for path, value in size_values("cpu").items()}
    return from_flat(
        TrainConfig, dataset=data, size="cpu",
        **{**small, "image_size": cfg.image_size, "resize": cfg.image_size + 8, "d_model": d, "d_ff": 2 * d,
           "batch_size": cfg.batch_size, "epochs": cfg.epochs},
        warmup=20, patience=0, plateau_patience=max(3, cfg.epochs // 3), monitor="ce_macro_f1_14",
        meteor="off", device="cpu", workers=cfg.workers, prefetch=2,
    )


def _command(name: str, config) -> str:
    """The command line that reproduces `config` (flags only where it differs from the defaults)."""
    import shlex

    return shlex.join(["irralctl", *name.split(), *to_flags(config)])


def run_demo(cfg: DemoConfig, progress: Progress = SILENT, step: Callable[[str], None] | None = None) -> DemoResult:
    """Run every stage into `cfg.out`; `step(title)` announces each stage (for the CLI). An existing
    output is replaced only when the whole demo succeeded (it is kept aside until then)."""
    cfg = cfg.resolved()
    with output_in_place(cfg.out, overwrite=cfg.overwrite):
        return _run_demo(cfg, progress, step or (lambda _title: None))


def _run_demo(cfg: DemoConfig, progress: Progress, announce: Callable[[str], None]) -> DemoResult:
    from irralctl.data.prepared import PreparedDataset
    from irralctl.data.sources.phantoms.config import PhantomPrepareConfig
    from irralctl.data.sources.phantoms.prepare import prepare_phantoms
    from irralctl.generation import DecodeConfig, GenerateConfig, generate_reports
    from irralctl.heatmaps import HeatmapConfig, make_heatmaps
    from irralctl.metrics import ScoreConfig, score_files
    from irralctl.ablate import AblateConfig, run_ablation
    from irralctl.utils.io import write_json

    out = cfg.out
    result = DemoResult(out=out)
    save_config(out / "demo.config.json", cfg)

    data = out / "data"
    announce(f"1/5 rendering {cfg.n} phantom studies")
    phantoms = PhantomPrepareConfig(out=data, n=cfg.n, seed=cfg.seed, image_size=cfg.image_size, workers=cfg.workers)
    prepare_phantoms(phantoms, progress=progress)
    result.commands.append(_command("prepare phantoms", phantoms))

    announce(f"2/5 training {' and '.join(RUNS.values())} ({cfg.epochs} epochs each on the CPU) and comparing them")
    grid = AblateConfig(train=_train_config(cfg, data), out=out / "ablation", presets=tuple(RUNS),
                        seed_list=(cfg.seed,), reference="no-image")
    ablation = run_ablation(grid, progress)
    for run in ablation.runs:
        result.runs[RUNS[run.preset]] = run.path
    result.comparison_files = [f for f in ablation.files if f.suffix in (".md", ".png")]
    result.commands.append(_command("ablate", grid))

    decoding = DecodeConfig(beam_size=cfg.beam_size)
    for name, run in result.runs.items():
        announce(f"3/5 generating test reports with {name} (beam {cfg.beam_size})")
        preds = out / "preds" / f"{name}.jsonl"
        gc = GenerateConfig(checkpoint=run, out=preds, dataset=data, split="test", decoding=decoding, device="cpu")
        generate_reports(gc, progress=progress)
        result.predictions[name] = preds
        result.commands.append(_command("generate", gc))

    announce("4/5 scoring both runs (NLG + clinical efficacy)")
    for name, preds in result.predictions.items():
        scores = score_files(preds, ScoreConfig(meteor="auto"))
        path = out / "scores" / f"{name}.json"
        write_json(path, scores)
        result.scores[name], result.score_files[name] = scores, path
        result.commands.append(f"irralctl score {preds} --json {path}")

    announce(f"5/5 drawing attention heatmaps for {cfg.heatmaps} test studies")
    test_ids = [r["id"] for r in PreparedDataset(data).records("test")[: cfg.heatmaps]]
    for study in test_ids:
        folder = out / "heatmaps" / study
        hc = HeatmapConfig(checkpoint=result.runs["irral"], out=folder, words=HEATMAP_WORDS, dataset=data, id=study,
                           beam_size=cfg.beam_size, device="cpu")
        make_heatmaps(hc)
        result.heatmaps.append(folder)
        result.commands.append(_command("heatmap", hc))
    write_json(out / "demo.json", {
        "runs": {k: str(v) for k, v in result.runs.items()},
        "predictions": {k: str(v) for k, v in result.predictions.items()},
        "scores": {k: str(v) for k, v in result.score_files.items()},
        "heatmaps": [str(p) for p in result.heatmaps],
        "commands": result.commands,
        "comparison": comparison(result),
    })
    return result


def comparison(result: DemoResult) -> dict[str, dict[str, float | None]]:
    """metric -> run -> value, for the table the CLI prints."""
    return {m: {name: s["metrics"].get(m) for name, s in result.scores.items()} for m in HEADLINE_METRICS}
